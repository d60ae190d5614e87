//! Data of orion-rs: op records and traces, their file formats, devices, workloads and arrival
//! processes. Everything here is plain data and parsing; no scheduling, no simulation.
#![warn(missing_docs)]

pub mod analytic;
pub mod arrival;
pub mod builtin;
pub mod cli;
pub mod config;
pub mod device;
pub mod error;
pub mod format;
pub mod occupancy;
pub mod op;
pub mod scenario;
pub mod trace;
pub mod units;
pub mod workload;

pub use arrival::{ArrivalProcess, Arrivals};
pub use device::{BuiltinTraces, DeviceSpec, SubmitterSpec};
pub use error::{Location, Result, TraceError};
pub use op::{Dim3, KernelClass, OpKind, OpRecord};
pub use scenario::{ClientSpec, Scenario, Stop};
pub use trace::{Trace, TraceMeta, TraceSource};
pub use workload::{Model, Pair, Role, WorkKind};
