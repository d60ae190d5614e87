//! The real GPU backend of orion-rs: the same policies as the simulator, scheduling real kernels
//! on a real GPU.
//!
//! Replay mode turns each op of a trace into a real GPU operation with the same footprint and
//! lets a policy schedule them:
//!
//! * [`kernels`]: the synthetic kernels (CUDA C++ compiled by NVRTC at run time).
//! * [`plan`]: launch shapes and the shared memory that pins a kernel's occupancy (plain
//!   arithmetic).
//! * [`cuda`]: the CUDA layer (cudarc; CUDA is loaded at run time, so everything builds and the
//!   CPU tests run on machines without it). The crate's only `unsafe` code is there.
//! * [`calibrate`]: finding each record's synthetic launch and measuring its fidelity.
//! * [`executor`]: the shared host model ([`orion_policies::Driver`]) on the wall clock, with one
//!   stream per client.
//! * [`replay`]: a scenario under a policy to the same report as `orion-sim`.
//! * [`mod@bench`]: fidelity sweeps, the executor's overhead, the stream-priority check.
//! * [`interpose`]: unmodified PyTorch programs under the interposer (`orion-real run`).
//! * [`cli`]: the `orion-real` command line.
//! * [`profile`]: `orion-profile`, measured kernel traces of PyTorch workloads.
#![warn(missing_docs)]

pub mod bench;
pub mod calibrate;
pub mod cli;
pub mod cuda;
pub mod error;
pub mod executor;
pub mod interpose;
pub mod kernels;
pub mod meta;
pub mod plan;
pub mod profile;
pub mod replay;
pub mod stats;

pub use cuda::Gpu;
pub use error::{RealError, Result};
