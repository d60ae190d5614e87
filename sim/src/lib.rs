//! `orion-sim`: a discrete-event simulator of a GPU shared by several deep-learning jobs, driven
//! by the same policy objects as the real GPU backend.
//!
//! * [`shape`]: what the GPU model needs to know about each op on a device.
//! * [`gpu`]: the simulated GPU (streams, block dispatch, contention, copy engines).
//! * [`engine`]: the event loop and host model of the clients.
//! * [`run`]: a scenario under a policy, with the ideal reference, to a report.
//! * [`experiment`]: the seed paper's fig7 and fig10 experiments.
//! * [`cli`]: the `orion-sim` command line.
#![warn(missing_docs)]

pub mod cli;
pub mod engine;
pub mod experiment;
pub mod gpu;
pub mod plot;
pub mod run;
pub mod shape;
pub mod sweep;
pub mod table;
pub mod timeline;

pub use run::{IdealReference, RunError, RunResult, run};
