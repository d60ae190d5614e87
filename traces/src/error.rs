//! Errors of reading traces, configs, scenarios and device files.

use std::fmt;
use std::path::PathBuf;

/// Where in an input a problem was found: file, line and field, each when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file, or a label such as `<built-in h100>` for embedded data.
    pub file: Option<PathBuf>,
    /// 1-based line number.
    pub line: Option<u64>,
    /// Field (column, JSON key path) name.
    pub field: Option<String>,
}

impl Location {
    /// A location in a file.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location { file: Some(file.into()), ..Default::default() }
    }

    /// The same location at a line.
    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    /// The same location at a field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(file) = &self.file {
            parts.push(file.display().to_string());
        }
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(field) = &self.field {
            parts.push(format!("field `{field}`"));
        }
        if parts.is_empty() { f.write_str("<input>") } else { f.write_str(&parts.join(", ")) }
    }
}

/// An error reading or validating input data.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The input is malformed or inconsistent at a known place.
    #[error("{location}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// What is wrong, in words a user can act on.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A name (model, device, pair, policy...) is not known.
    #[error("unknown {what} `{name}`{hint}", hint = if expected.is_empty() { String::new() } else { format!(" (expected one of: {})", expected.join(", ")) })]
    Unknown {
        /// What kind of name.
        what: &'static str,
        /// The name given.
        name: String,
        /// The accepted names.
        expected: Vec<String>,
    },
}

impl TraceError {
    /// An `Invalid` error at a location.
    pub fn invalid(location: Location, message: impl Into<String>) -> Self {
        TraceError::Invalid { location, message: message.into() }
    }

    /// An `Io` error for a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TraceError::Io { path: path.into(), source }
    }
}

/// Results of this crate.
pub type Result<T, E = TraceError> = std::result::Result<T, E>;
