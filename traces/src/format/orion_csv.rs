//! Orion's kernel-file CSV, as published with the paper (`benchmarking/model_kernels/*`).
//!
//! The header is `Name,Profile,Memory_footprint,SM_usage,Duration`; a newer variant appends
//! `,Block,Grid`. Every row is a kernel: `Profile` is 1 (compute-bound), 0 (memory-bound) or
//! -1 (unknown), `Memory_footprint` is always 0 and ignored, `SM_usage` is the SMs one wave
//! needs and `Duration` the standalone duration in nanoseconds.
//!
//! Headers match case-insensitively and by name (so `Grid,Block` works too), and
//! `Duration(ns)` is accepted for `Duration`. A `Block` or `Grid` of `0` or empty means
//! unknown (Orion writes `0` for cuDNN kernels whose launch shape it did not record).

use super::{origin_stem, parse_ns, parse_whole, split_preamble, strip_bom};
use crate::error::{Location, Result, TraceError};
use crate::op::{Dim3, KernelClass, OpRecord};
use crate::trace::{Trace, TraceMeta, TraceSource};
use std::io::{self, Write};
use std::path::Path;

/// The five columns every Orion kernel file has, in Orion's order.
pub const ORION_COLUMNS: [&str; 5] = ["Name", "Profile", "Memory_footprint", "SM_usage", "Duration"];

/// The optional launch-shape columns of the newer variant.
pub const ORION_SHAPE_COLUMNS: [&str; 2] = ["Block", "Grid"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Name,
    Profile,
    MemoryFootprint,
    SmUsage,
    Duration,
    Block,
    Grid,
}

impl Col {
    const ALL: [Col; 7] =
        [Col::Name, Col::Profile, Col::MemoryFootprint, Col::SmUsage, Col::Duration, Col::Block, Col::Grid];

    fn header(self) -> &'static str {
        match self {
            Col::Name => "Name",
            Col::Profile => "Profile",
            Col::MemoryFootprint => "Memory_footprint",
            Col::SmUsage => "SM_usage",
            Col::Duration => "Duration",
            Col::Block => "Block",
            Col::Grid => "Grid",
        }
    }

    fn required(self) -> bool {
        !matches!(self, Col::Block | Col::Grid)
    }

    /// The column a header cell names (case-insensitive; `Duration(ns)` is `Duration`).
    fn parse(cell: &str) -> Option<Col> {
        let key: String = cell
            .trim()
            .trim_matches('"')
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let key = match key.as_str() {
            "duration(ns)" => "duration",
            k => k,
        };
        Col::ALL.into_iter().find(|c| c.header().eq_ignore_ascii_case(key))
    }
}

/// Whether a CSV header line is Orion's (it has a `Profile` or `SM_usage` column).
pub fn is_orion_header(line: &str) -> bool {
    line.split(',').any(|c| matches!(Col::parse(c), Some(Col::Profile | Col::SmUsage)))
}

/// Reads an Orion kernel file; the trace is named after the file's stem.
pub fn read_orion_csv(path: &Path) -> Result<Trace> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    parse_orion_csv(&text, Location::file(path))
}

/// Parses an Orion kernel file from text; `origin` names the source in errors, and its file
/// stem (or `trace` without one) names the trace.
pub fn parse_orion_csv(text: &str, origin: Location) -> Result<Trace> {
    let pre = split_preamble(strip_bom(text));
    let offset = pre.lines as u64;
    if pre.rest.trim().is_empty() {
        return Err(TraceError::invalid(
            origin,
            format!("the file is empty (expected the header `{}`)", ORION_COLUMNS.join(",")),
        ));
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(pre.rest.as_bytes());
    let mut records = reader.records();
    let header_line = offset + 1;
    let header = match records.next() {
        Some(Ok(rec)) => rec,
        Some(Err(e)) => return Err(csv_error(&origin, offset, e)),
        None => {
            return Err(TraceError::invalid(origin, "the file has no header".to_string()));
        }
    };
    let cols = parse_header(&header, &origin.clone().line(header_line))?;

    let mut ops = Vec::new();
    for rec in records {
        let rec = rec.map_err(|e| csv_error(&origin, offset, e))?;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let line = offset + rec.position().map_or(0, |p| p.line());
        let at = origin.clone().line(line);
        if rec.len() != cols.len() {
            return Err(TraceError::invalid(
                at,
                format!(
                    "{} fields, but the header has {} ({}); a kernel name containing a comma \
                     must be quoted",
                    rec.len(),
                    cols.len(),
                    cols.iter().map(|c| c.header()).collect::<Vec<_>>().join(",")
                ),
            ));
        }
        ops.push(parse_row(&rec, &cols, &at)?);
    }
    if ops.is_empty() {
        return Err(TraceError::invalid(origin.line(header_line + 1), "the file has a header but no kernel rows"));
    }
    let meta = TraceMeta {
        name: origin_stem(&origin).unwrap_or_else(|| "trace".into()),
        source: TraceSource::File,
        ..TraceMeta::default()
    };
    Ok(Trace::new(meta, ops))
}

fn parse_header(header: &csv::StringRecord, at: &Location) -> Result<Vec<Col>> {
    let mut cols = Vec::with_capacity(header.len());
    for cell in header.iter() {
        let Some(col) = Col::parse(cell) else {
            return Err(TraceError::invalid(
                at.clone(),
                format!(
                    "unknown column `{}` in Orion's header (expected {}, optionally followed \
                     by {})",
                    cell.trim(),
                    ORION_COLUMNS.join(","),
                    ORION_SHAPE_COLUMNS.join(",")
                ),
            ));
        };
        if cols.contains(&col) {
            return Err(TraceError::invalid(
                at.clone(),
                format!("column `{}` appears twice in the header", col.header()),
            ));
        }
        cols.push(col);
    }
    if let Some(missing) = Col::ALL.into_iter().find(|c| c.required() && !cols.contains(c)) {
        return Err(TraceError::invalid(
            at.clone(),
            format!("Orion's header lacks the column `{}` (expected {})", missing.header(), ORION_COLUMNS.join(",")),
        ));
    }
    Ok(cols)
}

fn parse_row(rec: &csv::StringRecord, cols: &[Col], at: &Location) -> Result<OpRecord> {
    let mut op = OpRecord::kernel("", 0, 0, KernelClass::Unknown);
    for (col, raw) in cols.iter().zip(rec.iter()) {
        let value = raw.trim();
        let bad = |message: String| TraceError::invalid(at.clone().field(col.header()), message);
        match col {
            Col::Name => op.name = value.to_string(),
            Col::Profile => {
                let class = parse_whole(value).and_then(KernelClass::from_orion_profile).ok_or_else(|| {
                    bad(format!(
                        "`{value}` is not a profile (expected 1 compute-bound, 0 \
                             memory-bound or -1 unknown)"
                    ))
                })?;
                op.class = class;
            }
            Col::MemoryFootprint => {
                parse_whole(value).ok_or_else(|| bad(format!("`{value}` is not an integer")))?;
            }
            Col::SmUsage => {
                let sms = parse_whole(value).ok_or_else(|| bad(format!("`{value}` is not a whole number of SMs")))?;
                if sms < 1 || sms > u32::MAX as i64 {
                    return Err(bad(format!("{sms} SMs: a kernel needs at least one SM")));
                }
                op.sm_needed = sms as u32;
            }
            Col::Duration => op.duration_ns = parse_ns(value).map_err(bad)?,
            Col::Block | Col::Grid => {
                let dim =
                    if value.is_empty() || value == "0" { None } else { Some(value.parse::<Dim3>().map_err(bad)?) };
                if *col == Col::Block {
                    op.block = dim;
                } else {
                    op.grid = dim;
                }
            }
        }
    }
    op.validate().map_err(|(field, msg)| TraceError::invalid(at.clone().field(field), msg))?;
    Ok(op)
}

fn csv_error(origin: &Location, offset: u64, e: csv::Error) -> TraceError {
    let mut at = origin.clone();
    if let Some(p) = e.position() {
        at = at.line(offset + p.line());
    }
    TraceError::invalid(at, format!("malformed CSV: {e}"))
}

/// Writes a trace as an Orion kernel file (the five-column form). Only kernels are written:
/// the format has no place for copies, memsets, allocations or syncs. Commas, quotes and line
/// breaks in names are replaced, so that the file reads back with a plain split on `,`.
pub fn write_orion_csv<W: Write>(trace: &Trace, mut out: W) -> io::Result<()> {
    writeln!(out, "{}", ORION_COLUMNS.join(","))?;
    for op in trace.ops.iter().filter(|o| o.kind.is_kernel()) {
        writeln!(out, "{},{},0,{},{}", orion_name(&op.name), op.class.orion_profile(), op.sm_needed, op.duration_ns)?;
    }
    Ok(())
}

/// A kernel name fit for Orion's unquoted CSV.
fn orion_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ',' => ';',
            '"' => '\'',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::OpKind;

    const FIVE: &str = "Name,Profile,Memory_footprint,SM_usage,Duration\n\
                        Conv,1,0,98,100480\n\
                        BatchNorm,0,0,64,40480\n\
                        void at::native::vectorized_elementwise_kernel,-1,0,392,1.2e4\n";

    fn parse(text: &str) -> Result<Trace> {
        parse_orion_csv(text, Location::file("model_kernels/x.csv"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_the_five_column_form() {
        let t = parse(FIVE).unwrap();
        assert_eq!(t.meta.name, "x");
        assert_eq!(t.meta.source, TraceSource::File);
        assert_eq!(t.ops.len(), 3);
        assert_eq!(t.ops[0], OpRecord::kernel("Conv", 100480, 98, KernelClass::Compute));
        assert_eq!(t.ops[1].class, KernelClass::Memory);
        assert_eq!(t.ops[2].class, KernelClass::Unknown);
        assert_eq!(t.ops[2].duration_ns, 12000);
        assert!(t.ops.iter().all(|o| o.kind == OpKind::Kernel));
    }

    #[test]
    fn reads_the_seven_column_form_with_unknown_shapes() {
        let t = parse(
            "Name,Profile,Memory_footprint,SM_usage,Duration,Block,Grid\n\
             Conv-void cutlass::Kernel2,0,0,392,23264,0,0\n\
             BatchNorm,0,0,64,19584,512,256\n\
             Elt,0,0,64,19584,,\n",
        )
        .unwrap();
        assert_eq!(t.ops[0].block, None);
        assert_eq!(t.ops[0].grid, None);
        assert_eq!(t.ops[1].block, Some(Dim3::linear(512)));
        assert_eq!(t.ops[1].grid, Some(Dim3::linear(256)));
        assert_eq!(t.ops[2].grid, None);
    }

    #[test]
    fn header_is_matched_by_name_case_insensitively() {
        let t = parse(
            "name,PROFILE,memory_footprint,sm_usage,Duration(ns),Grid,Block\n\
             k,1,0,4,100,\"(2,3,1)\",128x2\n",
        )
        .unwrap();
        assert_eq!(t.ops[0].grid, Some(Dim3::new(2, 3, 1)));
        assert_eq!(t.ops[0].block, Some(Dim3::new(128, 2, 1)));
        assert_eq!(t.ops[0].duration_ns, 100);
    }

    #[test]
    fn quoted_names_with_commas_are_read() {
        let t = parse(
            "Name,Profile,Memory_footprint,SM_usage,Duration\n\
             \"void k<float, 4>\",1,0,2,10\n",
        )
        .unwrap();
        assert_eq!(t.ops[0].name, "void k<float, 4>");
    }

    #[test]
    fn bom_crlf_and_integer_valued_floats_are_tolerated() {
        let t = parse("\u{feff}Name,Profile,Memory_footprint,SM_usage,Duration\r\nk,1.0,0,98.0,5\r\n").unwrap();
        assert_eq!(t.ops[0].sm_needed, 98);
        assert_eq!(t.ops[0].class, KernelClass::Compute);
    }

    #[test]
    fn bad_duration_names_file_line_and_field() {
        let mut text = FIVE.to_string();
        text.push_str("k,1,0,2,3\nk,1,0,2,3\nk,1,0,2,abc\n");
        let msg = err(&text);
        assert_eq!(msg, "model_kernels/x.csv, line 7, field `Duration`: `abc` is not a number of nanoseconds");
    }

    #[test]
    fn negative_duration_is_rejected() {
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\nk,1,0,2,-4\n");
        assert!(msg.contains("line 2, field `Duration`"), "{msg}");
    }

    #[test]
    fn bad_profile_is_rejected() {
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\nk,2,0,2,4\n");
        assert!(msg.contains("line 2, field `Profile`: `2` is not a profile"), "{msg}");
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\nk,x,0,2,4\n");
        assert!(msg.contains("field `Profile`"), "{msg}");
    }

    #[test]
    fn zero_sm_usage_is_rejected() {
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\nk,1,0,0,4\n");
        assert!(msg.contains("line 2, field `SM_usage`"), "{msg}");
        assert!(msg.contains("at least one SM"), "{msg}");
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\nk,1,0,2.5,4\n");
        assert!(msg.contains("field `SM_usage`: `2.5` is not a whole number"), "{msg}");
    }

    #[test]
    fn non_integer_memory_footprint_is_rejected() {
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\nk,1,lots,2,4\n");
        assert!(msg.contains("line 2, field `Memory_footprint`"), "{msg}");
    }

    #[test]
    fn bad_shape_is_rejected() {
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration,Block,Grid\nk,1,0,2,4,12q,1\n");
        assert!(msg.contains("line 2, field `Block`"), "{msg}");
    }

    #[test]
    fn wrong_column_count_is_rejected() {
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\nvoid k<float, 4>,1,0,2,4\n");
        assert!(msg.contains("line 2: 6 fields, but the header has 5"), "{msg}");
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\nk,1,0,2\n");
        assert!(msg.contains("line 2: 4 fields"), "{msg}");
    }

    #[test]
    fn bad_headers_are_rejected() {
        let msg = err("Name,Profile,SM_usage,Duration\nk,1,2,3\n");
        assert!(msg.contains("line 1") && msg.contains("`Memory_footprint`"), "{msg}");
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration,Color\n");
        assert!(msg.contains("unknown column `Color`"), "{msg}");
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration,Name\n");
        assert!(msg.contains("`Name` appears twice"), "{msg}");
    }

    #[test]
    fn empty_file_and_header_only_are_rejected() {
        let msg = err("");
        assert!(msg.contains("model_kernels/x.csv") && msg.contains("empty"), "{msg}");
        let msg = err("Name,Profile,Memory_footprint,SM_usage,Duration\n");
        assert!(msg.contains("line 2") && msg.contains("no kernel rows"), "{msg}");
    }

    #[test]
    fn write_then_read_keeps_kernels_and_cleans_names() {
        let ops = vec![
            OpRecord::kernel("void k<float, 4>", 1234, 7, KernelClass::Compute),
            OpRecord::new(OpKind::CopyH2D, "h2d", 50, 0, KernelClass::Unknown),
            OpRecord::kernel("say \"hi\"\nthere", 99, 1, KernelClass::Unknown),
            OpRecord::kernel("mem", 5, 3, KernelClass::Memory),
        ];
        let trace = Trace::new(TraceMeta::default(), ops);
        let mut buf = Vec::new();
        write_orion_csv(&trace, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        for line in text.lines() {
            assert_eq!(line.split(',').count(), 5, "{line}");
        }
        let back = parse(&text).unwrap();
        assert_eq!(back.ops.len(), 3);
        assert_eq!(back.ops[0], OpRecord::kernel("void k<float; 4>", 1234, 7, KernelClass::Compute));
        assert_eq!(back.ops[1].name, "say 'hi' there");
        assert_eq!(back.ops[2].class, KernelClass::Memory);
    }

    #[test]
    fn blank_rows_are_skipped() {
        let t = parse("Name,Profile,Memory_footprint,SM_usage,Duration\nk,1,0,2,3\n   \n\nk,1,0,2,3\n").unwrap();
        assert_eq!(t.ops.len(), 2);
    }

    #[test]
    fn header_detection() {
        assert!(is_orion_header("Name,Profile,Memory_footprint,SM_usage,Duration"));
        assert!(is_orion_header("name,profile,memory_footprint,sm_usage,duration(ns),block,grid"));
        assert!(!is_orion_header("kind,name,duration_ns,sm_needed,class"));
    }
}
