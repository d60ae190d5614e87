//! Calibration of the simulator's device parameters against microbenchmarks on the real GPU
//! (issue 7): [`plan`] writes the benchmarks, which `run.sh` replays on the GPU machine.
//!
//! Hold-out: the parameters are fitted only to these microbenchmarks; the validation
//! scenarios (`orion-validate run`) are never used for fitting.

pub mod plan;
