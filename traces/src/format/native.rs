//! The project's own trace format, carrying every field of [`OpRecord`] and [`TraceMeta`], in
//! CSV and in JSON.
//!
//! CSV: optional leading metadata lines `# key: value` (keys `name`, `model`, `mode`,
//! `batch_size`, `device`, `source`, `update_start`; any other key, or one written as
//! `extra.KEY`, goes into [`TraceMeta::extra`]; `#` lines that are not `key: value` are
//! comments), then a header row naming some of [`NATIVE_COLUMNS`] in any order (the first five
//! required), then one op per row. Empty cells of optional columns mean "unknown"; dimensions
//! are written `XxYxZ`.
//!
//! JSON: `{"format": "orion-rs-trace/1", "meta": {...}, "ops": [{...}, ...]}` with the serde
//! form of [`TraceMeta`] and [`OpRecord`].

use super::{Preamble, json_error, json_message, origin_stem, parse_ns, split_preamble, strip_bom};
use crate::error::{Location, Result, TraceError};
use crate::op::{Dim3, KernelClass, OpKind, OpRecord};
use crate::trace::{Trace, TraceMeta, TraceSource};
use crate::workload::WorkKind;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

/// The columns of the CSV form, in the order the writer uses; the first five are required.
pub const NATIVE_COLUMNS: [&str; 16] = [
    "kind",
    "name",
    "duration_ns",
    "sm_needed",
    "class",
    "grid",
    "block",
    "registers_per_thread",
    "shared_mem_per_block",
    "blocks_per_sm",
    "sm_throughput_pct",
    "dram_throughput_pct",
    "flops",
    "bytes",
    "host_gap_ns",
    "copy_bytes",
];

/// Number of required leading columns of [`NATIVE_COLUMNS`].
const REQUIRED: usize = 5;

/// The `format` tag of the JSON form.
pub const JSON_FORMAT: &str = "orion-rs-trace/1";

/// Metadata keys with a field of their own in [`TraceMeta`].
const META_KEYS: [&str; 7] = ["name", "model", "mode", "batch_size", "device", "source", "update_start"];

/// Whether a CSV header line is the project's (it has a `kind` or `duration_ns` column).
pub fn is_native_header(line: &str) -> bool {
    line.split(',').any(|c| {
        let c = c.trim().trim_matches('"');
        c.eq_ignore_ascii_case("kind") || c.eq_ignore_ascii_case("duration_ns")
    })
}

/// Reads a trace in the project's CSV form.
pub fn read_native_csv(path: &Path) -> Result<Trace> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    parse_native_csv(&text, Location::file(path))
}

/// Parses the project's CSV form; `origin` names the source in errors, and its file stem names
/// a trace without a `# name:` line.
pub fn parse_native_csv(text: &str, origin: Location) -> Result<Trace> {
    let pre = split_preamble(strip_bom(text));
    let mut meta = parse_metadata(&pre, &origin)?;
    if meta.name.is_empty() && !has_key(&pre, "name") {
        meta.name = origin_stem(&origin).unwrap_or_default();
    }
    let offset = pre.lines as u64;
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(pre.rest.as_bytes());
    let mut records = reader.records();
    let header_at = origin.clone().line(offset + 1);
    let header = match records.next() {
        Some(rec) => rec.map_err(|e| csv_error(&origin, offset, e))?,
        None => {
            return Err(TraceError::invalid(
                header_at,
                format!("no header row (expected columns from {})", NATIVE_COLUMNS.join(",")),
            ));
        }
    };
    let cols = parse_header(&header, &header_at)?;
    let mut ops = Vec::new();
    for rec in records {
        let rec = rec.map_err(|e| csv_error(&origin, offset, e))?;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let at = origin.clone().line(offset + rec.position().map_or(0, |p| p.line()));
        if rec.len() != cols.len() {
            return Err(TraceError::invalid(
                at,
                format!(
                    "{} fields, but the header has {}; a name containing a comma must be quoted",
                    rec.len(),
                    cols.len()
                ),
            ));
        }
        ops.push(parse_row(&rec, &cols, &at)?);
    }
    let trace = Trace::new(meta, ops);
    check_update_start(&trace, origin.field("update_start"))?;
    Ok(trace)
}

fn has_key(pre: &Preamble<'_>, key: &str) -> bool {
    pre.comments.iter().any(|l| meta_line(l).is_some_and(|(k, _)| k == key))
}

/// A `# key: value` line's key and value, or `None` for a plain comment or blank line.
fn meta_line(line: &str) -> Option<(&str, &str)> {
    let body = line.trim().strip_prefix('#')?;
    let (key, value) = body.split_once(':')?;
    let key = key.trim();
    valid_key(key).then_some((key, value.trim()))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn parse_metadata(pre: &Preamble<'_>, origin: &Location) -> Result<TraceMeta> {
    let mut meta = TraceMeta::default();
    let mut seen: Vec<&str> = Vec::new();
    for (i, line) in pre.comments.iter().enumerate() {
        let Some((key, value)) = meta_line(line) else {
            continue;
        };
        let at = origin.clone().line(i as u64 + 1).field(key);
        if seen.contains(&key) {
            return Err(TraceError::invalid(at, "the metadata key appears twice".to_string()));
        }
        seen.push(key);
        let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
        match key {
            "name" => meta.name = value.to_string(),
            "model" => meta.model = opt(value),
            "device" => meta.device = opt(value),
            "mode" if value.is_empty() => {}
            "mode" => {
                meta.mode = Some(WorkKind::from_str(value).map_err(|m| TraceError::invalid(at.clone(), m))?);
            }
            "batch_size" if value.is_empty() => {}
            "batch_size" => {
                meta.batch_size = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| TraceError::invalid(at.clone(), format!("`{value}` is not a batch size")))?,
                );
            }
            "source" => meta.source = parse_source(value).map_err(|m| TraceError::invalid(at, m))?,
            "update_start" if value.is_empty() => {}
            "update_start" => {
                meta.update_start = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| TraceError::invalid(at.clone(), format!("`{value}` is not an op index")))?,
                );
            }
            _ => {
                let k = key.strip_prefix("extra.").unwrap_or(key);
                meta.extra.insert(k.to_string(), value.to_string());
            }
        }
    }
    Ok(meta)
}

fn parse_source(value: &str) -> std::result::Result<TraceSource, String> {
    [TraceSource::Analytic, TraceSource::Measured, TraceSource::File]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(value))
        .ok_or_else(|| format!("unknown source `{value}` (expected analytic, measured or file)"))
}

fn parse_header(header: &csv::StringRecord, at: &Location) -> Result<Vec<usize>> {
    let mut cols = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    for cell in header.iter() {
        let name = cell.trim();
        match NATIVE_COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) {
            Some(i) if cols.contains(&i) => {
                return Err(TraceError::invalid(
                    at.clone(),
                    format!("column `{}` appears twice in the header", NATIVE_COLUMNS[i]),
                ));
            }
            Some(i) => cols.push(i),
            None => unknown.push(format!("`{name}`")),
        }
    }
    if !unknown.is_empty() {
        return Err(TraceError::invalid(
            at.clone(),
            format!(
                "unknown column{} {} (known columns: {})",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                NATIVE_COLUMNS.join(",")
            ),
        ));
    }
    let missing: Vec<String> =
        (0..REQUIRED).filter(|i| !cols.contains(i)).map(|i| format!("`{}`", NATIVE_COLUMNS[i])).collect();
    if !missing.is_empty() {
        return Err(TraceError::invalid(
            at.clone(),
            format!("the header lacks the required column(s) {}", missing.join(", ")),
        ));
    }
    Ok(cols)
}

fn parse_row(rec: &csv::StringRecord, cols: &[usize], at: &Location) -> Result<OpRecord> {
    let mut op = OpRecord::kernel("", 0, 0, KernelClass::Unknown);
    for (&col, raw) in cols.iter().zip(rec.iter()) {
        let field = NATIVE_COLUMNS[col];
        let bad = |message: String| TraceError::invalid(at.clone().field(field), message);
        let value = raw.trim();
        if value.is_empty() && col != 1 {
            if col < REQUIRED {
                return Err(bad("is empty, but the column is required".into()));
            }
            continue;
        }
        match field {
            "kind" => op.kind = OpKind::from_str(value).map_err(bad)?,
            "name" => op.name = raw.to_string(),
            "duration_ns" => op.duration_ns = parse_ns(value).map_err(bad)?,
            "sm_needed" => op.sm_needed = parse_int(value).map_err(bad)?,
            "class" => op.class = KernelClass::from_str(value).map_err(bad)?,
            "grid" => op.grid = Some(Dim3::from_str(value).map_err(bad)?),
            "block" => op.block = Some(Dim3::from_str(value).map_err(bad)?),
            "registers_per_thread" => op.registers_per_thread = Some(parse_int(value).map_err(bad)?),
            "shared_mem_per_block" => op.shared_mem_per_block = Some(parse_int(value).map_err(bad)?),
            "blocks_per_sm" => op.blocks_per_sm = Some(parse_int(value).map_err(bad)?),
            "sm_throughput_pct" => op.sm_throughput_pct = Some(parse_float(value).map_err(bad)?),
            "dram_throughput_pct" => op.dram_throughput_pct = Some(parse_float(value).map_err(bad)?),
            "flops" => op.flops = Some(parse_float(value).map_err(bad)?),
            "bytes" => op.bytes = Some(parse_float(value).map_err(bad)?),
            "host_gap_ns" => op.host_gap_ns = Some(parse_ns(value).map_err(bad)?),
            "copy_bytes" => op.copy_bytes = Some(parse_int(value).map_err(bad)?),
            _ => {}
        }
    }
    op.validate().map_err(|(field, msg)| TraceError::invalid(at.clone().field(field), msg))?;
    Ok(op)
}

fn parse_int<T: FromStr>(value: &str) -> std::result::Result<T, String> {
    value.parse::<T>().map_err(|_| format!("`{value}` is not a non-negative integer in range"))
}

fn parse_float(value: &str) -> std::result::Result<f64, String> {
    value.parse::<f64>().map_err(|_| format!("`{value}` is not a number"))
}

fn csv_error(origin: &Location, offset: u64, e: csv::Error) -> TraceError {
    let mut at = origin.clone();
    if let Some(p) = e.position() {
        at = at.line(offset + p.line());
    }
    TraceError::invalid(at, format!("malformed CSV: {e}"))
}

fn check_update_start(trace: &Trace, at: Location) -> Result<()> {
    match trace.meta.update_start {
        Some(u) if u > trace.ops.len() => {
            Err(TraceError::invalid(at, format!("op index {u} is past the end of the trace ({} ops)", trace.ops.len())))
        }
        _ => Ok(()),
    }
}

/// Writes a trace in the project's CSV form: metadata lines, then the required columns and
/// every optional column some op has a value for. Metadata values are single lines (line
/// breaks become spaces) and are trimmed; a metadata key of `extra` that is not made of
/// letters, digits, `_`, `-` and `.` is refused.
pub fn write_native_csv<W: Write>(trace: &Trace, mut out: W) -> io::Result<()> {
    let m = &trace.meta;
    let mut meta_line = |key: &str, value: &str| -> io::Result<()> {
        let value: String = value.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
        writeln!(out, "# {key}: {}", value.trim())
    };
    meta_line("name", &m.name)?;
    if let Some(v) = &m.model {
        meta_line("model", v)?;
    }
    if let Some(v) = m.mode {
        meta_line("mode", v.as_str())?;
    }
    if let Some(v) = m.batch_size {
        meta_line("batch_size", &v.to_string())?;
    }
    if let Some(v) = &m.device {
        meta_line("device", v)?;
    }
    meta_line("source", m.source.as_str())?;
    if let Some(v) = m.update_start {
        meta_line("update_start", &v.to_string())?;
    }
    for (k, v) in &m.extra {
        if !valid_key(k) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "metadata key `{k}` cannot be written to CSV (use letters, digits, `_`, `-` \
                     and `.`, or the JSON format)"
                ),
            ));
        }
        if META_KEYS.contains(&k.as_str()) || k.starts_with("extra.") {
            meta_line(&format!("extra.{k}"), v)?;
        } else {
            meta_line(k, v)?;
        }
    }

    let used: Vec<usize> = (0..NATIVE_COLUMNS.len())
        .filter(|&c| c < REQUIRED || trace.ops.iter().any(|o| !cell(o, c).is_empty()))
        .collect();
    let mut w = csv::Writer::from_writer(out);
    w.write_record(used.iter().map(|&c| NATIVE_COLUMNS[c]))?;
    for op in &trace.ops {
        w.write_record(used.iter().map(|&c| cell(op, c)))?;
    }
    w.flush()?;
    Ok(())
}

/// The CSV text of an op's column.
fn cell(op: &OpRecord, col: usize) -> String {
    fn opt<T: ToString>(v: Option<T>) -> String {
        v.map(|v| v.to_string()).unwrap_or_default()
    }
    match NATIVE_COLUMNS[col] {
        "kind" => op.kind.to_string(),
        "name" => op.name.clone(),
        "duration_ns" => op.duration_ns.to_string(),
        "sm_needed" => op.sm_needed.to_string(),
        "class" => op.class.to_string(),
        "grid" => opt(op.grid),
        "block" => opt(op.block),
        "registers_per_thread" => opt(op.registers_per_thread),
        "shared_mem_per_block" => opt(op.shared_mem_per_block),
        "blocks_per_sm" => opt(op.blocks_per_sm),
        "sm_throughput_pct" => opt(op.sm_throughput_pct),
        "dram_throughput_pct" => opt(op.dram_throughput_pct),
        "flops" => opt(op.flops),
        "bytes" => opt(op.bytes),
        "host_gap_ns" => opt(op.host_gap_ns),
        "copy_bytes" => opt(op.copy_bytes),
        _ => String::new(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTrace {
    format: String,
    meta: TraceMeta,
    ops: Vec<OpRecord>,
}

/// Reads a trace in the project's JSON form.
pub fn read_native_json(path: &Path) -> Result<Trace> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    parse_native_json(&text, Location::file(path))
}

/// Parses the project's JSON form; `origin` names the source in errors. Errors of the JSON
/// itself carry its line and field path (e.g. `ops[3].duration_ns`).
pub fn parse_native_json(text: &str, origin: Location) -> Result<Trace> {
    let mut de = serde_json::Deserializer::from_str(strip_bom(text));
    let raw: JsonTrace = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&origin, e))?;
    de.end().map_err(|e| TraceError::invalid(origin.clone().line(e.line() as u64), json_message(&e)))?;
    if raw.format != JSON_FORMAT {
        return Err(TraceError::invalid(
            origin.field("format"),
            format!("unsupported trace format `{}` (this version reads `{JSON_FORMAT}`)", raw.format),
        ));
    }
    for (i, op) in raw.ops.iter().enumerate() {
        op.validate()
            .map_err(|(field, msg)| TraceError::invalid(origin.clone().field(format!("ops[{i}].{field}")), msg))?;
    }
    let trace = Trace::new(raw.meta, raw.ops);
    check_update_start(&trace, origin.field("meta.update_start"))?;
    Ok(trace)
}

/// Writes a trace in the project's JSON form, one op per line.
pub fn write_native_json<W: Write>(trace: &Trace, mut out: W) -> io::Result<()> {
    #[derive(Serialize)]
    struct Head<'a> {
        format: &'a str,
        meta: &'a TraceMeta,
    }
    let head = serde_json::to_string(&Head { format: JSON_FORMAT, meta: &trace.meta })?;
    // `head` is `{...}`: reopen it to append the ops.
    let head = head.strip_suffix('}').unwrap_or(&head);
    writeln!(out, "{head},")?;
    write!(out, "\"ops\":[")?;
    for (i, op) in trace.ops.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut out, op)?;
    }
    writeln!(out, "\n]}}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A trace with every field of the metadata and of an op set.
    pub(crate) fn full_trace() -> Trace {
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("gpu".to_string(), "NVIDIA H100 SXM5".to_string());
        extra.insert("name".to_string(), "clashes with a field".to_string());
        extra.insert("cmd".to_string(), "orion-profile --model resnet50: fast".to_string());
        let meta = TraceMeta {
            name: "resnet50-training-b32".into(),
            model: Some("resnet50".into()),
            mode: Some(WorkKind::Training),
            batch_size: Some(32),
            device: Some("h100".into()),
            source: TraceSource::Measured,
            update_start: Some(2),
            extra,
        };
        let full = OpRecord {
            kind: OpKind::Kernel,
            name: "void cutlass::Kernel<float, 4>(\"x\")".into(),
            duration_ns: 123_456,
            sm_needed: 50,
            class: KernelClass::Compute,
            grid: Some(Dim3::new(100, 2, 1)),
            block: Some(Dim3::new(128, 1, 2)),
            registers_per_thread: Some(96),
            shared_mem_per_block: Some(49_152),
            blocks_per_sm: Some(4),
            sm_throughput_pct: Some(87.25),
            dram_throughput_pct: Some(12.5),
            flops: Some(1.5e12),
            bytes: Some(3.0e-3),
            host_gap_ns: Some(4_500),
            copy_bytes: Some(0),
        };
        let mut copy = OpRecord::new(OpKind::CopyH2D, " input, batch ", 9_000, 0, KernelClass::Unknown);
        copy.copy_bytes = Some(602_112);
        copy.host_gap_ns = Some(12);
        let sync = OpRecord::new(OpKind::Sync, "", 2_000, 0, KernelClass::Unknown);
        Trace::new(meta, vec![full, copy, sync])
    }

    fn csv_round_trip(t: &Trace) -> Trace {
        let mut buf = Vec::new();
        write_native_csv(t, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        parse_native_csv(&text, Location::file("t.csv")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn json_round_trip(t: &Trace) -> Trace {
        let mut buf = Vec::new();
        write_native_json(t, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        parse_native_json(&text, Location::file("t.json")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn csv_round_trip_keeps_every_field() {
        let t = full_trace();
        assert_eq!(csv_round_trip(&t), t);
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let t = full_trace();
        assert_eq!(json_round_trip(&t), t);
    }

    #[test]
    fn csv_writer_output_is_readable() {
        let mut buf = Vec::new();
        write_native_csv(&full_trace(), &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("# name: resnet50-training-b32\n# model: resnet50\n"), "{text}");
        assert!(text.contains("# extra.name: clashes with a field\n"), "{text}");
        assert!(text.contains(&format!("\n{}\n", NATIVE_COLUMNS.join(","))), "{text}");
        assert!(text.contains(",100x2x1,128x1x2,"), "{text}");
    }

    #[test]
    fn csv_writer_omits_unused_optional_columns() {
        let t = Trace::new(TraceMeta::default(), vec![OpRecord::kernel("k", 1, 1, KernelClass::Memory)]);
        let mut buf = Vec::new();
        write_native_csv(&t, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text, "# name: \n# source: file\nkind,name,duration_ns,sm_needed,class\nkernel,k,1,1,memory\n");
        assert_eq!(csv_round_trip(&t), t);
    }

    #[test]
    fn csv_columns_in_any_order_and_unnamed_trace_gets_file_stem() {
        let t = parse_native_csv(
            "# a plain comment\nclass,sm_needed,duration_ns,name,kind,grid\n\
             compute,2,1.5e3,k,kernel,\nunknown,0,10,c,copy_h2d,\n",
            Location::file("dir/mytrace.csv"),
        )
        .unwrap();
        assert_eq!(t.meta.name, "mytrace");
        assert_eq!(t.ops[0], OpRecord::kernel("k", 1500, 2, KernelClass::Compute));
        assert_eq!(t.ops[1].kind, OpKind::CopyH2D);
    }

    #[test]
    fn unknown_metadata_keys_go_to_extra() {
        let t = parse_native_csv(
            "# driver: 550.54\n# extra.model: x\nkind,name,duration_ns,sm_needed,class\n",
            Location::default(),
        )
        .unwrap();
        assert_eq!(t.meta.extra.get("driver").map(String::as_str), Some("550.54"));
        assert_eq!(t.meta.extra.get("model").map(String::as_str), Some("x"));
        assert_eq!(t.meta.model, None);
        assert!(t.ops.is_empty());
    }

    fn csv_err(text: &str) -> String {
        parse_native_csv(text, Location::file("t.csv")).unwrap_err().to_string()
    }

    const HEAD: &str = "kind,name,duration_ns,sm_needed,class,grid,blocks_per_sm,sm_throughput_pct\n";

    #[test]
    fn csv_errors_name_line_and_field() {
        let cases = [
            ("kernel,k,abc,1,compute,,,\n", "line 2, field `duration_ns`: `abc` is not a number"),
            ("kernel,k,1,-1,compute,,,\n", "line 2, field `sm_needed`"),
            ("kernal,k,1,1,compute,,,\n", "line 2, field `kind`: unknown op kind `kernal`"),
            ("kernel,k,1,1,cpu,,,\n", "line 2, field `class`: unknown kernel class"),
            ("kernel,k,1,1,compute,0x1,,\n", "line 2, field `grid`"),
            ("kernel,k,,1,compute,,,\n", "line 2, field `duration_ns`: is empty"),
            ("kernel,k,1,1,compute,,,x%\n", "line 2, field `sm_throughput_pct`: `x%` is not a number"),
            ("kernel,k,1,1,compute,,,150\n", "line 2, field `sm_throughput_pct`: 150 is not a percentage"),
            ("kernel,k,1,1,compute,\n", "line 2: 6 fields, but the header has 8"),
            ("kernel,k,1,1,compute,,,\nkernel,k,1,2,compute,10,4,\n", "line 3, field `sm_needed`: is 2 but ceil"),
            ("kernel,k,1,0,compute,,,\n", "line 2, field `sm_needed`: a kernel needs at least one SM"),
        ];
        for (row, want) in cases {
            let text = format!("{HEAD}{row}");
            let msg = parse_native_csv(&text, Location::file("t.csv")).unwrap_err().to_string();
            assert!(msg.starts_with("t.csv, "), "{msg}");
            assert!(msg.contains(want), "want `{want}` in `{msg}`");
        }
    }

    #[test]
    fn csv_lines_count_metadata() {
        let msg = csv_err(
            "# name: x\n# mode: training\n\nkind,name,duration_ns,sm_needed,class\nkernel,k,1,1,compute\nkernel,k,1,1,nope\n",
        );
        assert!(msg.contains("t.csv, line 6, field `class`"), "{msg}");
    }

    #[test]
    fn csv_header_errors() {
        let msg = csv_err("kind,name,duration_ns,sm_needed,class,colour,taste\n");
        assert!(msg.contains("line 1") && msg.contains("unknown columns `colour`, `taste`"), "{msg}");
        let msg = csv_err("kind,name,duration_ns\n");
        assert!(msg.contains("required column(s) `sm_needed`, `class`"), "{msg}");
        let msg = csv_err("kind,name,duration_ns,sm_needed,class,kind\n");
        assert!(msg.contains("`kind` appears twice"), "{msg}");
        let msg = csv_err("# name: x\n");
        assert!(msg.contains("line 2") && msg.contains("no header row"), "{msg}");
    }

    #[test]
    fn csv_metadata_errors() {
        let h = "kind,name,duration_ns,sm_needed,class\n";
        let msg = csv_err(&format!("# batch_size: many\n{h}"));
        assert!(msg.contains("line 1, field `batch_size`: `many` is not a batch size"), "{msg}");
        let msg = csv_err(&format!("# x: 1\n# mode: sleeping\n{h}"));
        assert!(msg.contains("line 2, field `mode`: unknown mode `sleeping`"), "{msg}");
        let msg = csv_err(&format!("# source: guessed\n{h}"));
        assert!(msg.contains("field `source`: unknown source `guessed`"), "{msg}");
        let msg = csv_err(&format!("# name: a\n# name: b\n{h}"));
        assert!(msg.contains("line 2, field `name`: the metadata key appears twice"), "{msg}");
        let msg = csv_err(&format!("# update_start: 5\n{h}kernel,k,1,1,compute\n"));
        assert!(msg.contains("field `update_start`: op index 5 is past the end"), "{msg}");
    }

    #[test]
    fn csv_writer_refuses_unwritable_extra_keys() {
        let mut t = full_trace();
        t.meta.extra.insert("a key: with colon".into(), "v".into());
        let err = write_native_csv(&t, Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("a key: with colon"));
    }

    fn json_err(text: &str) -> String {
        parse_native_json(text, Location::file("t.json")).unwrap_err().to_string()
    }

    #[test]
    fn json_errors_name_line_and_path() {
        let msg = json_err(
            "{\"format\": \"orion-rs-trace/1\",\n\"meta\": {\"name\": \"x\"},\n\"ops\": [\n\
             {\"kind\": \"kernel\", \"name\": \"k\", \"duration_ns\": 1, \"sm_needed\": 1, \"class\": \"compute\"},\n\
             {\"kind\": \"kernel\", \"name\": \"k\", \"duration_ns\": \"slow\", \"sm_needed\": 1, \"class\": \"compute\"}\n]}",
        );
        assert!(msg.starts_with("t.json, line 5, field `ops[1].duration_ns`: invalid type"), "{msg}");
        let msg = json_err("{\"format\": \"orion-rs-trace/9\", \"meta\": {\"name\": \"x\"}, \"ops\": []}");
        assert!(msg.contains("field `format`: unsupported trace format `orion-rs-trace/9`"), "{msg}");
        let msg = json_err("{\"format\": \"orion-rs-trace/1\", \"meta\": {\"name\": \"x\"}, \"ops\": [], \"more\": 1}");
        assert!(msg.contains("unknown field `more`"), "{msg}");
        let msg = json_err(
            "{\"format\": \"orion-rs-trace/1\", \"meta\": {\"name\": \"x\"}, \"ops\": [\
             {\"kind\": \"kernel\", \"name\": \"k\", \"duration_ns\": 1, \"sm_needed\": 0, \"class\": \"compute\"}]}",
        );
        assert!(msg.contains("field `ops[0].sm_needed`: a kernel needs at least one SM"), "{msg}");
        let msg = json_err(
            "{\"format\": \"orion-rs-trace/1\", \"meta\": {\"name\": \"x\", \"update_start\": 1}, \"ops\": []}",
        );
        assert!(msg.contains("field `meta.update_start`"), "{msg}");
        let msg = json_err("{\"format\": \"orion-rs-trace/1\", \"meta\": {\"name\": \"x\"}, \"ops\": []} trailing");
        assert!(msg.contains("t.json, line 1: trailing characters"), "{msg}");
        let msg = json_err("{\"format\": \"orion-rs-trace/1\",\n \"meta\": ");
        assert!(msg.contains("t.json, line 2"), "{msg}");
    }

    #[test]
    fn header_detection() {
        assert!(is_native_header("kind,name,duration_ns,sm_needed,class"));
        assert!(is_native_header("name,KIND"));
        assert!(!is_native_header("Name,Profile,Memory_footprint,SM_usage,Duration"));
    }

    fn dim() -> impl Strategy<Value = Dim3> {
        (1u32..5000, 1u32..64, 1u32..8).prop_map(|(x, y, z)| Dim3::new(x, y, z))
    }

    prop_compose! {
        fn op()(
            kind in prop::sample::select(OpKind::ALL.to_vec()),
            name in ".{0,30}",
            duration_ns in any::<u64>(),
            sm in 1u32..100_000,
            class in prop::sample::select(vec![KernelClass::Compute, KernelClass::Memory, KernelClass::Unknown]),
            grid in prop::option::of(dim()),
            block in prop::option::of(dim()),
            regs in prop::option::of(any::<u32>()),
            smem in prop::option::of(any::<u32>()),
            bps in prop::option::of(1u32..64),
            smt in prop::option::of(0.0f64..=100.0),
            dramt in prop::option::of(0.0f64..=100.0),
            flops in prop::option::of(0.0f64..1e18),
            bytes in prop::option::of(0.0f64..1e15),
            gap in prop::option::of(any::<u64>()),
            copy in prop::option::of(any::<u64>()),
        ) -> OpRecord {
            let mut op = OpRecord {
                kind, name, duration_ns, sm_needed: sm, class, grid, block,
                registers_per_thread: regs, shared_mem_per_block: smem, blocks_per_sm: bps,
                sm_throughput_pct: smt, dram_throughput_pct: dramt, flops, bytes,
                host_gap_ns: gap, copy_bytes: copy,
            };
            if let (Some(g), Some(b)) = (op.blocks(), op.blocks_per_sm) {
                op.sm_needed = g.div_ceil(b as u64) as u32;
            }
            op
        }
    }

    prop_compose! {
        fn trace()(
            name in "[A-Za-z0-9_][A-Za-z0-9_ .-]{0,20}[A-Za-z0-9]|",
            model in prop::option::of("[a-z0-9]{1,10}"),
            mode in prop::option::of(prop::sample::select(vec![WorkKind::Inference, WorkKind::Training])),
            batch in prop::option::of(any::<u32>()),
            source in prop::sample::select(vec![TraceSource::Analytic, TraceSource::Measured, TraceSource::File]),
            extra in prop::collection::btree_map("[a-z_.]{1,10}", "[ -~]{0,20}[!-~]|", 0..4),
            ops in prop::collection::vec(op(), 0..8),
            update in any::<prop::sample::Index>(),
        ) -> Trace {
            let update_start = mode.filter(|m| *m == WorkKind::Training).map(|_| update.index(ops.len() + 1));
            let extra = extra.into_iter().map(|(k, v): (String, String)| (k, v.trim().to_string())).collect();
            Trace::new(
                TraceMeta { name, model, mode, batch_size: batch, device: None, source, update_start, extra },
                ops,
            )
        }
    }

    proptest! {
        #[test]
        fn prop_csv_round_trip(t in trace()) {
            prop_assert_eq!(csv_round_trip(&t), t);
        }

        #[test]
        fn prop_json_round_trip(t in trace()) {
            prop_assert_eq!(json_round_trip(&t), t);
        }
    }
}
