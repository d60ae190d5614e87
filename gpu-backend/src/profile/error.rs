//! Errors of `orion-profile`: every one names the file (and, where it has them, the line,
//! event or field) it is about.

use std::path::PathBuf;

/// What can go wrong while capturing or converting a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// An input file is malformed or inconsistent.
    #[error("{file}{at}: {message}", file = file.display(), at = at.as_deref().map(|a| format!(", {a}")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Where in it (`line 3, column `dram__bytes_read.sum``, `event 12 (kernel `x`)`).
        at: Option<String>,
        /// What is wrong.
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
    /// An external step (the Python capture, ncu) failed.
    #[error("{step} failed: {message}")]
    Step {
        /// Which step.
        step: &'static str,
        /// What happened, with the command.
        message: String,
    },
    /// A trace could not be written.
    #[error(transparent)]
    Trace(#[from] orion_traces::TraceError),
}

impl ProfileError {
    /// An `Invalid` error in `file` at `at`.
    pub fn invalid(file: impl Into<PathBuf>, at: Option<String>, message: impl Into<String>) -> Self {
        ProfileError::Invalid { file: file.into(), at, message: message.into() }
    }

    /// An `Io` error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ProfileError::Io { path: path.into(), source }
    }
}

/// Results of the profiler.
pub type Result<T, E = ProfileError> = std::result::Result<T, E>;
