//! Errors of the real backend.

use orion_policies::PolicyError;

/// The driver version this crate is built against (CUDA 13.0, driver branch 580).
pub const MIN_DRIVER_VERSION: i32 = 13000;

/// What can go wrong on the real backend.
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// CUDA (the driver library, NVRTC, or a device) cannot be used on this machine.
    #[error("orion-real needs an NVIDIA GPU with driver >= 580 (CUDA 13.0) and NVRTC: {0}")]
    NoCuda(String),
    /// A CUDA driver call failed.
    #[error("CUDA call {call} failed: {message}")]
    Cuda {
        /// The call.
        call: &'static str,
        /// The driver's error name and description.
        message: String,
    },
    /// NVRTC failed to compile the synthetic kernels.
    #[error("NVRTC failed to compile the synthetic kernels: {0}")]
    Nvrtc(String),
    /// The policy could not be built or set up.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The scenario is inconsistent.
    #[error("scenario `{name}`: {message}")]
    Scenario {
        /// Scenario name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Something the real backend cannot do (e.g. reset-based preemption).
    #[error("not supported on the real backend: {0}")]
    Unsupported(String),
    /// The run was interrupted before anything could be reported.
    #[error("interrupted {0}")]
    Interrupted(&'static str),
}

/// Result with [`RealError`].
pub type Result<T, E = RealError> = std::result::Result<T, E>;
