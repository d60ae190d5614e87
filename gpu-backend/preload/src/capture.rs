//! What happens to a captured launch or operation: in counting mode it is counted and passed
//! on; in scheduling mode a registered client's work goes to its queue (`schedule.rs`).

// The raw pointers are the application's, handed on to CUDA unchanged, never dereferenced here.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use crate::ffi::*;
use crate::hook;
use crate::stats::Entry;
use std::ffi::c_void;

/// A runtime launch (`__cudaLaunchKernel`, `cudaLaunchKernel`, their `_ptsz` forms).
#[allow(clippy::too_many_arguments)]
pub fn runtime_launch(
    entry: Entry,
    real: RtLaunchFn,
    func: *const c_void,
    grid: Dim3,
    block: Dim3,
    args: *mut *mut c_void,
    shared_mem: usize,
    stream: Stream,
) -> Status {
    // SAFETY: the application's arguments, forwarded unchanged.
    hook::counted(entry, || unsafe { real(func, grid, block, args, shared_mem, stream) })
}

/// `cudaLaunchKernelExC` and its `_ptsz` form.
pub fn runtime_launch_ex(
    entry: Entry,
    real: RtLaunchExFn,
    config: *const RtLaunchConfig,
    func: *const c_void,
    args: *mut *mut c_void,
) -> Status {
    // SAFETY: as above.
    hook::counted(entry, || unsafe { real(config, func, args) })
}

/// `cuLaunchKernel` and its `_ptsz` form.
#[allow(clippy::too_many_arguments)]
pub fn driver_launch(
    entry: Entry,
    real: DrvLaunchFn,
    f: *mut c_void,
    grid: [u32; 3],
    block: [u32; 3],
    shared_mem: u32,
    stream: Stream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Status {
    // SAFETY: as above.
    hook::counted(entry, || unsafe {
        real(f, grid[0], grid[1], grid[2], block[0], block[1], block[2], shared_mem, stream, params, extra)
    })
}

/// `cuLaunchKernelEx` and its `_ptsz` form.
pub fn driver_launch_ex(
    entry: Entry,
    real: DrvLaunchExFn,
    config: *const DrvLaunchConfig,
    f: *mut c_void,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Status {
    // SAFETY: as above.
    hook::counted(entry, || unsafe { real(config, f, params, extra) })
}

/// Any other wrapped driver function (copies, memsets, allocations, frees, syncs, graphs).
pub fn driver_generic(entry: Entry, real: Generic6Fn, a: [usize; 6]) -> Status {
    // SAFETY: as above.
    hook::counted(entry, || unsafe { real(a[0], a[1], a[2], a[3], a[4], a[5]) })
}

/// `cudaMemcpy` (`stream: None`) and `cudaMemcpyAsync`.
pub fn runtime_memcpy(
    entry: Entry,
    _dst: *mut c_void,
    _src: *const c_void,
    _bytes: usize,
    _kind: i32,
    _stream: Option<Stream>,
    call: impl FnOnce() -> Status,
) -> Status {
    hook::counted(entry, call)
}

/// `cudaMemset` (`stream: None`) and `cudaMemsetAsync`.
pub fn runtime_memset(
    entry: Entry,
    _dst: *mut c_void,
    _value: i32,
    _bytes: usize,
    _stream: Option<Stream>,
    call: impl FnOnce() -> Status,
) -> Status {
    hook::counted(entry, call)
}

/// Calls that wait for the caller's work: syncs and `cudaFree` (which synchronises the
/// device).
pub fn runtime_sync(entry: Entry, _stream: Option<Stream>, call: impl FnOnce() -> Status) -> Status {
    hook::counted(entry, call)
}

/// Calls passed on at once in every mode (`cudaMalloc`).
pub fn runtime_other(entry: Entry, call: impl FnOnce() -> Status) -> Status {
    hook::counted(entry, call)
}
