//! Calibration of the simulator's device parameters against microbenchmarks on the real GPU
//! (issue 7): [`plan`] writes the benchmarks, which `run.sh` replays on the GPU machine;
//! [`fit`] fits the device file to their results.
//!
//! Hold-out: the parameters are fitted only to these microbenchmarks; the validation
//! scenarios (`orion-validate run`) are never used for fitting.

pub mod fit;
pub mod plan;
