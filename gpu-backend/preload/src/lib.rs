//! `liborion_preload.so`: the interposer that captures an unmodified PyTorch program's CUDA
//! work (`LD_PRELOAD`), on every path PyTorch, cuBLAS and cuDNN use under CUDA 13.
//!
//! * [`runtime`]: the runtime's launch, copy, memset, allocation and sync entry points,
//!   exported under the symbol version `libcudart.so.13`.
//! * [`dl`]: `dlsym`, interposed, so that driver functions looked up by name get wrapped.
//! * [`driver`]: the wrappers of driver functions (also those returned by `cuGetProcAddress*`).
//! * [`capture`]: what happens to a captured call in each mode.
//! * [`hook`], [`guard`], [`config`]: mode, nesting, panics, the one failure line.
//! * [`stats`]: what was seen, per entry point; [`abi`]: the C ABI for the workload driver.
//! * [`real`]: finding the real functions; [`ffi`]: the CUDA types.
//! * [`schedule`]: the scheduler (clients, queues, the policy); [`matching`]: profiles of
//!   captured ops.
//!
//! No constructor runs: everything starts on the first hooked call. Any internal failure
//! (a bad configuration, a missing profile, a panic) logs one line and from then on passes
//! every call straight through.
#![warn(missing_docs)]
// The unit tests build without the exported hooks (a test binary must not interpose its own
// `dlsym`), which leaves some of their helpers unused there.
#![cfg_attr(test, allow(dead_code, unused_imports))]

pub mod abi;
pub mod capture;
pub mod config;
pub mod dl;
pub mod driver;
pub mod ffi;
pub mod guard;
pub mod hook;
pub mod matching;
pub mod real;
pub mod runtime;
pub mod schedule;
pub mod stats;
