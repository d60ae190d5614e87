//! `orion-profile`: measured kernel traces of one request or training iteration.
//!
//! The pipeline (one command, `orion-profile --model resnet50 --mode inference`):
//!
//! 1. **Capture** ([`run::capture`]): `workloads/capture.py` builds the workload (a model of
//!    the workload driver, or any Python program that marks its steps with
//!    `torch.cuda.profiler.start()/stop()`), warms it up, times unprofiled steps, then runs
//!    several steps each in its own torch.profiler (Kineto/CUPTI) session. Each step's chrome
//!    trace gives every GPU op in issue order with its GPU duration, launch shape, registers,
//!    shared memory, copy sizes and direction, and the CUDA API calls that issued it (host
//!    gaps) — [`kineto`].
//! 2. **Metrics** ([`run::ncu_metrics`]): Nsight Compute (`ncu --clock-control none
//!    --profile-from-start off`, a handful of metrics) on one step of the same workload in a
//!    new process: % of peak SM and DRAM throughput, FLOPs, DRAM bytes and the occupancy
//!    limits of each kernel — [`ncu`]. A kernel ncu could not measure is marked, not dropped.
//! 3. **Convert** ([`convert`]): medians over the steps, host gaps, `sm_needed`, Orion's class;
//!    written as the project's CSV trace and Orion's kernel CSV ([`run::convert`]).

pub mod cli;
pub mod convert;
pub mod error;
pub mod kineto;
pub mod ncu;
pub mod run;

pub use convert::{ConvertOptions, ConvertSummary, HostGapScale, build_trace};
pub use error::{ProfileError, Result};
pub use run::{ProfileJob, Target};
