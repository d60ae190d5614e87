//! Experiment descriptions that produce a [`Scenario`]: Orion's `config.json` (a JSON list of
//! clients) and the project's scenario file (a JSON object).
//!
//! [`load_scenario`] reads either, telling them apart by their top-level JSON value. Both
//! accept `//` and `/* */` comments. Relative paths inside a file are taken from the file's
//! folder.

pub mod orion;
pub mod scenario_file;

use crate::device::DeviceSpec;
use crate::error::{Location, Result, TraceError};
use crate::format::{json_message, read_trace};
use crate::scenario::{DEFAULT_WARMUP, Scenario};
use crate::trace::Trace;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// What a scenario gets where its file does not say (Orion's configs never name a device or a
/// seed; the project's scenario files may leave them out).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The device.
    pub device: DeviceSpec,
    /// Where the device came from (`builtin:h100` or a path).
    pub device_source: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// Warm-up requests per client excluded from statistics.
    pub warmup: u32,
}

impl LoadOptions {
    /// Options for a device, with seed 0 and the default warm-up.
    pub fn new(device: DeviceSpec, device_source: impl Into<String>) -> Self {
        LoadOptions { device, device_source: device_source.into(), seed: 0, warmup: DEFAULT_WARMUP }
    }

    /// Options for a built-in device preset (`v100`, `a100`, `h100`), with seed 0 and the
    /// default warm-up.
    pub fn preset(name: &str) -> Result<Self> {
        let device = DeviceSpec::preset(name)?;
        let source = format!("builtin:{}", device.name);
        Ok(Self::new(device, source))
    }
}

/// The experiment description formats [`load_scenario`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigFormat {
    /// Orion's `config.json`: a JSON list of clients, the last one high-priority.
    Orion,
    /// The project's scenario file: a JSON object (see [`scenario_file`]).
    Scenario,
}

impl ConfigFormat {
    /// A short name for messages (`orion-config`, `scenario`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigFormat::Orion => "orion-config",
            ConfigFormat::Scenario => "scenario",
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tells Orion's config (a top-level JSON list) from a scenario file (a top-level object);
/// comments are skipped.
pub fn detect_config_format(text: &str, origin: &Location) -> Result<ConfigFormat> {
    let text = strip_json_comments(text);
    match text.trim_start().chars().next() {
        Some('[') => Ok(ConfigFormat::Orion),
        Some('{') => Ok(ConfigFormat::Scenario),
        _ => Err(TraceError::invalid(
            origin.clone(),
            "not an experiment description: expected Orion's config (a JSON list of clients, \
             `[...]`) or an orion-rs scenario (a JSON object, `{...}`)",
        )),
    }
}

/// Reads an experiment description of either format into a scenario named after the file's
/// stem (a scenario file's `name` wins); `opts` fills in what the file does not say.
pub fn load_scenario(path: &Path, opts: &LoadOptions) -> Result<Scenario> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    load_scenario_str(&text, path, opts)
}

/// Parses an experiment description of either format; `path` names it in errors and anchors
/// its relative paths (it need not exist).
pub fn load_scenario_str(text: &str, path: &Path, opts: &LoadOptions) -> Result<Scenario> {
    match detect_config_format(text, &Location::file(path))? {
        ConfigFormat::Orion => orion::parse_orion_config(text, path, opts),
        ConfigFormat::Scenario => scenario_file::parse_scenario_file(text, path, opts),
    }
}

/// The text with `//` and `/* */` comments outside strings blanked out (line breaks kept, so
/// that line numbers still hold).
pub(crate) fn strip_json_comments(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                out.push(' ');
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                    out.push(' ');
                }
            }
            ('/', Some('*')) => {
                chars.next();
                out.push_str("  ");
                let mut prev = ' ';
                for n in chars.by_ref() {
                    out.push(if n == '\n' { '\n' } else { ' ' });
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The folder relative paths in a file are taken from.
pub(crate) fn base_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A path named in a file, taken relative to the file's folder unless absolute.
pub(crate) fn resolve(base: &Path, raw: &str) -> PathBuf {
    let p = Path::new(raw);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

/// A referenced file that must exist; the error names `at` (the referring file and field).
pub(crate) fn existing(base: &Path, raw: &str, at: &Location, what: &str) -> Result<PathBuf> {
    if raw.trim().is_empty() {
        return Err(TraceError::invalid(at.clone(), format!("the {what} path is empty")));
    }
    let path = resolve(base, raw);
    if !path.is_file() {
        let hint = if Path::new(raw).is_absolute() {
            ""
        } else {
            " (relative paths are taken from the folder of the file naming them)"
        };
        let state = if path.exists() { "is not a file" } else { "does not exist" };
        return Err(TraceError::invalid(at.clone(), format!("{what} `{}` {state}{hint}", path.display())));
    }
    Ok(path)
}

/// Reads the traces named in one description, each file once.
#[derive(Default)]
pub(crate) struct TraceCache {
    traces: HashMap<PathBuf, Trace>,
}

impl TraceCache {
    /// The trace in `path` (which [`existing`] has checked).
    pub(crate) fn get(&mut self, path: &Path) -> Result<Trace> {
        if let Some(t) = self.traces.get(path) {
            return Ok(t.clone());
        }
        let t = read_trace(path)?;
        self.traces.insert(path.to_path_buf(), t.clone());
        Ok(t)
    }
}

/// Reads a file of inter-arrival times in seconds: Orion's JSON list, or one value a line
/// (the format of [`crate::arrival::read_inter_arrivals`]).
pub(crate) fn read_inter_arrival_file(path: &Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    let origin = Location::file(path);
    if text.trim_start().starts_with('[') {
        let gaps: Vec<f64> = serde_json::from_str(&text).map_err(|e| {
            TraceError::invalid(origin.clone().line(e.line() as u64).field("inter_arrival_s"), json_message(&e))
        })?;
        if gaps.is_empty() {
            return Err(TraceError::invalid(origin.field("inter_arrival_s"), "no inter-arrival times in the file"));
        }
        Ok(gaps)
    } else {
        crate::arrival::parse_inter_arrivals(&text, origin)
    }
}

/// Checks a finished scenario; the error names the file.
pub(crate) fn validated(scenario: Scenario, origin: &Location) -> Result<Scenario> {
    scenario.validate().map_err(|m| TraceError::invalid(origin.clone(), m))?;
    Ok(scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_blanked_but_strings_kept() {
        let text = "{\n // c \"x\"\n \"a\": \"//not\", /* b\n c */ \"d\": \"/*x*/\\\"//\"\n}";
        let s = strip_json_comments(text);
        assert_eq!(s.lines().count(), text.lines().count());
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "//not");
        assert_eq!(v["d"], "/*x*/\"//");
    }

    #[test]
    fn detects_config_formats() {
        let o = Location::file("c.json");
        assert_eq!(detect_config_format("// c\n[{}]", &o).unwrap(), ConfigFormat::Orion);
        assert_eq!(detect_config_format(" {\"clients\": []}", &o).unwrap(), ConfigFormat::Scenario);
        let msg = detect_config_format("42", &o).unwrap_err().to_string();
        assert!(msg.starts_with("c.json: not an experiment description"), "{msg}");
    }

    #[test]
    fn preset_options() {
        let o = LoadOptions::preset("H100").unwrap();
        assert_eq!(o.device_source, "builtin:h100");
        assert_eq!(o.warmup, DEFAULT_WARMUP);
        assert!(LoadOptions::preset("tpu").is_err());
    }

    #[test]
    fn json_inter_arrivals_and_lines() {
        let dir = std::env::temp_dir().join(format!("orion-rs-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let j = dir.join("gaps.json");
        std::fs::write(&j, "[0.1, 0.2]").unwrap();
        assert_eq!(read_inter_arrival_file(&j).unwrap(), vec![0.1, 0.2]);
        let l = dir.join("gaps.txt");
        std::fs::write(&l, "# s\n0.5\n0.25\n").unwrap();
        assert_eq!(read_inter_arrival_file(&l).unwrap(), vec![0.5, 0.25]);
        std::fs::write(&j, "[0.1,\n \"x\"]").unwrap();
        let msg = read_inter_arrival_file(&j).unwrap_err().to_string();
        assert!(msg.contains("gaps.json, line 2"), "{msg}");
        std::fs::write(&j, "[]").unwrap();
        assert!(read_inter_arrival_file(&j).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
