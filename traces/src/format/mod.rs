//! Trace file formats: Orion's kernel-file CSV and the project's own CSV and JSON.
//!
//! [`read_trace`] reads any of them, telling them apart by extension and first line;
//! [`write_trace`] writes the project's format (JSON for `.json`, CSV otherwise).

pub mod native;
pub mod orion_csv;

use crate::error::{Location, Result, TraceError};
use crate::trace::Trace;
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The trace file formats this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// Orion's kernel file (`Name,Profile,Memory_footprint,SM_usage,Duration[,Block,Grid]`).
    OrionCsv,
    /// The project's CSV: `# key: value` metadata lines, then one op per row.
    NativeCsv,
    /// The project's JSON: `{"format": "orion-rs-trace/1", "meta": ..., "ops": [...]}`.
    NativeJson,
}

impl TraceFormat {
    /// A short name for messages (`orion-csv`, `csv`, `json`).
    pub fn as_str(self) -> &'static str {
        match self {
            TraceFormat::OrionCsv => "orion-csv",
            TraceFormat::NativeCsv => "csv",
            TraceFormat::NativeJson => "json",
        }
    }

    /// The format [`write_trace`] uses for a path: JSON for a `.json` extension, else CSV.
    pub fn for_path(path: &Path) -> TraceFormat {
        if has_json_extension(path) { TraceFormat::NativeJson } else { TraceFormat::NativeCsv }
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a trace file of any supported format: `.json` is the project's JSON; otherwise the
/// first line that is not blank or a `#` comment decides between Orion's CSV and the
/// project's CSV. An Orion file's trace is named after the file's stem.
pub fn read_trace(path: &Path) -> Result<Trace> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    let origin = Location::file(path);
    if has_json_extension(path) {
        return native::parse_native_json(&text, origin);
    }
    read_trace_str(&text, origin)
}

/// Parses a trace of any supported format from text; `origin` names the source in errors (and,
/// when it names a file, gives unnamed traces the file's stem as name). Text whose first
/// non-blank character is `{` is read as JSON.
pub fn read_trace_str(text: &str, origin: Location) -> Result<Trace> {
    match detect_format(text, &origin)? {
        TraceFormat::NativeJson => native::parse_native_json(text, origin),
        TraceFormat::NativeCsv => native::parse_native_csv(text, origin),
        TraceFormat::OrionCsv => orion_csv::parse_orion_csv(text, origin),
    }
}

/// Tells the format of a trace's text (ignoring any file extension); the error, at `origin`,
/// says which headers are accepted.
pub fn detect_format(text: &str, origin: &Location) -> Result<TraceFormat> {
    let text = strip_bom(text);
    if text.trim_start().starts_with('{') {
        return Ok(TraceFormat::NativeJson);
    }
    let preamble = split_preamble(text);
    let Some(first) = preamble.rest.lines().next() else {
        return Err(TraceError::invalid(
            origin.clone(),
            format!("the file has no header line; {}", accepted_headers()),
        ));
    };
    if orion_csv::is_orion_header(first) {
        Ok(TraceFormat::OrionCsv)
    } else if native::is_native_header(first) {
        Ok(TraceFormat::NativeCsv)
    } else {
        Err(TraceError::invalid(
            origin.clone().line(preamble.lines as u64 + 1),
            format!("`{}` is not a trace header; {}", first.trim(), accepted_headers()),
        ))
    }
}

/// Writes a trace in the format its path's extension asks for: the project's JSON for
/// `.json`, the project's CSV otherwise.
pub fn write_trace(path: &Path, trace: &Trace) -> Result<()> {
    write_trace_as(path, trace, TraceFormat::for_path(path))
}

/// Writes a trace to a file in a given format. Orion's CSV keeps only the kernels (its format
/// has no place for copies, memsets or syncs) and none of the metadata.
pub fn write_trace_as(path: &Path, trace: &Trace, format: TraceFormat) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| TraceError::io(path, e))?;
    let mut out = BufWriter::new(file);
    match format {
        TraceFormat::OrionCsv => orion_csv::write_orion_csv(trace, &mut out),
        TraceFormat::NativeCsv => native::write_native_csv(trace, &mut out),
        TraceFormat::NativeJson => native::write_native_json(trace, &mut out),
    }
    .and_then(|()| out.flush())
    .map_err(|e| TraceError::io(path, e))
}

fn accepted_headers() -> String {
    format!(
        "expected Orion's kernel-file header `{}` (optionally followed by `,Block,Grid`), \
         the orion-rs CSV header (columns {}; the first five required), \
         or an orion-rs JSON trace starting with `{{`",
        orion_csv::ORION_COLUMNS.join(","),
        native::NATIVE_COLUMNS.join(","),
    )
}

fn has_json_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// The text without a leading byte-order mark.
pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Leading blank and `#` lines of a CSV file, and the text after them.
pub(crate) struct Preamble<'a> {
    /// The leading blank and `#` lines, without their line ends.
    pub comments: Vec<&'a str>,
    /// Number of lines before `rest`.
    pub lines: usize,
    /// The text from the first other line on.
    pub rest: &'a str,
}

/// Splits the leading blank and `#` comment lines off a CSV text.
pub(crate) fn split_preamble(text: &str) -> Preamble<'_> {
    let mut comments = Vec::new();
    let mut lines = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let trimmed = line.trim();
        if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            break;
        }
        comments.push(line.trim_end_matches('\r'));
        lines += 1;
        rest = next;
    }
    Preamble { comments, lines, rest }
}

/// The stem of the file a location names, for naming traces.
pub(crate) fn origin_stem(origin: &Location) -> Option<String> {
    origin.file.as_ref().and_then(|f| f.file_stem()).map(|s| s.to_string_lossy().into_owned())
}

/// Turns a JSON deserialisation error into a located error: line from serde_json, field path
/// (e.g. `clients[1].arrival.rate`) from `serde_path_to_error`.
pub(crate) fn json_error(origin: &Location, err: serde_path_to_error::Error<serde_json::Error>) -> TraceError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let mut loc = origin.clone();
    if inner.line() > 0 {
        loc = loc.line(inner.line() as u64);
    }
    if path != "." && !path.is_empty() {
        loc = loc.field(path);
    }
    TraceError::invalid(loc, json_message(&inner))
}

/// serde_json's message without its ` at line L column C` suffix (the line goes into the
/// location; the column is kept in words).
pub(crate) fn json_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    if err.line() == 0 {
        return full;
    }
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match full.strip_suffix(&suffix) {
        Some(msg) => format!("{msg} (column {})", err.column()),
        None => full,
    }
}

/// A duration in nanoseconds from a CSV field: an integer, or a float (`1.2e4`) rounded.
pub(crate) fn parse_ns(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    if let Ok(v) = t.parse::<u64>() {
        return Ok(v);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 => Ok(v.round() as u64),
        Ok(_) => Err(format!("`{t}` is not a non-negative number of nanoseconds")),
        Err(_) => Err(format!("`{t}` is not a number of nanoseconds")),
    }
}

/// A whole number from a CSV field; a float with no fractional part (`98.0`) is accepted too.
pub(crate) fn parse_whole(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Some(v);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 => Some(v as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_content() {
        let o = Location::file("t");
        assert_eq!(
            detect_format("Name,Profile,Memory_footprint,SM_usage,Duration\n", &o).unwrap(),
            TraceFormat::OrionCsv
        );
        assert_eq!(
            detect_format("# name: x\nkind,name,duration_ns,sm_needed,class\n", &o).unwrap(),
            TraceFormat::NativeCsv
        );
        assert_eq!(detect_format("  {\"format\": 1}", &o).unwrap(), TraceFormat::NativeJson);
    }

    #[test]
    fn unknown_header_names_file_line_and_accepted_headers() {
        let err = detect_format("# c\nfoo,bar\n", &Location::file("dir/x.csv")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("dir/x.csv, line 2"), "{msg}");
        assert!(msg.contains("`foo,bar`"), "{msg}");
        assert!(msg.contains("Name,Profile,Memory_footprint,SM_usage,Duration"), "{msg}");
        assert!(msg.contains("kind,name,duration_ns"), "{msg}");
    }

    #[test]
    fn empty_text_is_an_error() {
        let err = detect_format("\n# only a comment\n", &Location::file("e.csv")).unwrap_err();
        assert!(err.to_string().contains("no header line"), "{err}");
    }

    #[test]
    fn ns_parsing() {
        assert_eq!(parse_ns("100480"), Ok(100480));
        assert_eq!(parse_ns("1.2e4"), Ok(12000));
        assert_eq!(parse_ns(" 7.6 "), Ok(8));
        assert!(parse_ns("abc").is_err());
        assert!(parse_ns("-5").is_err());
        assert!(parse_ns("inf").is_err());
    }

    #[test]
    fn whole_parsing() {
        assert_eq!(parse_whole("-1"), Some(-1));
        assert_eq!(parse_whole("98.0"), Some(98));
        assert_eq!(parse_whole("98.5"), None);
        assert_eq!(parse_whole("x"), None);
    }

    #[test]
    fn preamble_counts_lines() {
        let p = split_preamble("# a: b\r\n\n#c\nkind,name\nx\n");
        assert_eq!(p.lines, 3);
        assert_eq!(p.comments, vec!["# a: b", "", "#c"]);
        assert_eq!(p.rest, "kind,name\nx\n");
    }
}
