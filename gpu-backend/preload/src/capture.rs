//! What happens to a captured launch or operation. In counting mode it is counted and passed
//! on. In scheduling mode, an op of a registered client inside a request is copied (kernel
//! arguments by the kernel's parameter sizes, host sources of copies staged) into the client's
//! queue and the call returns success at once; a call that must see the client's earlier work
//! (a sync, `cudaFree`, an op this mode does not capture) first waits for the client's queue.
//! An op that cannot be captured is counted as `uncaptured` and takes that second path.

// The raw pointers are the application's, handed on to CUDA unchanged or copied as the CUDA
// API defines them.
#![allow(clippy::not_unsafe_ptr_arg_deref, clippy::too_many_arguments)]

use crate::ffi::*;
use crate::guard::{self, Mode};
use crate::hook;
use crate::matching::OpKey;
use crate::schedule::{self, Captured, Handle, Scope, Work};
use crate::stats::{self, Category, Entry};
use orion_traces::OpKind;
use std::ffi::c_void;

/// The client whose op this is, when it is to be captured (scheduling mode, the
/// application's own call, and a client to give it to: see [`schedule::capture_target`]).
/// `stream`: the stream the application issues it on.
fn capturing(entry: Entry, stream: Stream) -> Option<usize> {
    if hook::mode() != Mode::Schedule || !guard::is_outer() || !schedule::alive() {
        return None;
    }
    schedule::capture_target(stream_key(entry, stream))
}

fn stream_key(entry: Entry, stream: Stream) -> Option<usize> {
    schedule::stream_key(stream, entry.name().ends_with("_ptsz"))
}

/// Queues `op` for client `c`, or (when it cannot be captured) waits for the client's queue
/// and returns `None` so that the caller passes the call through.
fn queue(entry: Entry, c: usize, op: impl FnOnce() -> Result<Captured, String>) -> Option<Status> {
    let t0 = schedule::now_ns();
    match guard::guarded("capture", op) {
        Some(Ok(op)) => {
            schedule::enqueue(c, op);
            stats::count(entry, true, true);
            stats::capture_time(entry, schedule::now_ns().saturating_sub(t0));
            Some(SUCCESS)
        }
        Some(Err(reason)) => {
            stats::uncaptured(entry, &reason);
            schedule::wait_client(c);
            None
        }
        None => {
            schedule::wait_client(c);
            None
        }
    }
}

/// Waits for the queued work a call of `scope` must see (scheduling mode, the application's
/// own calls).
fn wait(scope: Scope) {
    if hook::mode() == Mode::Schedule && guard::is_outer() {
        schedule::wait_for(scope);
    }
}

fn key_kernel(name: String, grid: [u32; 3]) -> OpKey {
    OpKey {
        kind: OpKind::Kernel,
        name,
        grid: Some(orion_traces::Dim3 { x: grid[0], y: grid[1], z: grid[2] }),
        blocks: grid.iter().map(|&g| g as u64).product(),
    }
}

fn key_other(kind: OpKind) -> OpKey {
    OpKey { kind, name: String::new(), grid: None, blocks: 0 }
}

/// A runtime launch (`__cudaLaunchKernel`, `cudaLaunchKernel`, their `_ptsz` forms).
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
    if let Some(c) = capturing(entry, stream) {
        let handle = match entry {
            Entry::RtLaunchInternal | Entry::RtLaunchInternalPtsz => Handle::Kernel(func as usize),
            _ => Handle::Stub(func as usize),
        };
        let captured = queue(entry, c, || {
            let info = schedule::kernel_info(handle)?;
            // SAFETY: args is the application's argument array of this kernel.
            let args = unsafe { schedule::copy_args(&info, args) }?;
            Ok(Captured {
                key: key_kernel(info.name.clone(), [grid.x, grid.y, grid.z]),
                work: Work::RtLaunch { real, func: func as usize, grid, block, shared_mem, args },
            })
        });
        if let Some(r) = captured {
            return r;
        }
    }
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
    // SAFETY: the application's launch configuration (checked for null).
    if !config.is_null()
        && let Some(c) = capturing(entry, unsafe { (*config).stream })
    {
        let captured = queue(entry, c, || {
            // SAFETY: the application's launch configuration.
            let cfg = unsafe { &*config };
            let info = schedule::kernel_info(Handle::Stub(func as usize))?;
            // SAFETY: as above.
            let args = unsafe { schedule::copy_args(&info, args) }?;
            // SAFETY: cfg.attrs holds cfg.num_attrs attributes.
            let attrs = unsafe { schedule::copy_attrs(cfg.attrs, cfg.num_attrs) };
            let (g, b) = (cfg.grid_dim, cfg.block_dim);
            Ok(Captured {
                key: key_kernel(info.name.clone(), [g.x, g.y, g.z]),
                work: Work::RtLaunchEx {
                    real,
                    func: func as usize,
                    grid: g,
                    block: b,
                    shared_mem: cfg.dynamic_smem_bytes,
                    attrs,
                    num_attrs: cfg.num_attrs,
                    args,
                },
            })
        });
        if let Some(r) = captured {
            return r;
        }
    }
    // SAFETY: as above.
    hook::counted(entry, || unsafe { real(config, func, args) })
}

/// `cuLaunchKernel` and its `_ptsz` form.
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
    if let Some(c) = capturing(entry, stream) {
        let captured = queue(entry, c, || {
            if params.is_null() && !extra.is_null() {
                return Err("cuLaunchKernel with `extra` arguments".into());
            }
            let info = schedule::kernel_info(Handle::Function(f as usize))?;
            // SAFETY: as above.
            let args = unsafe { schedule::copy_args(&info, params) }?;
            Ok(Captured {
                key: key_kernel(info.name.clone(), grid),
                work: Work::DrvLaunch { real, f: f as usize, grid, block, shared_mem, args },
            })
        });
        if let Some(r) = captured {
            return r;
        }
    }
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
    if !config.is_null()
        && let Some(c) = capturing(entry, unsafe { (*config).stream })
    {
        let captured = queue(entry, c, || {
            if params.is_null() && !extra.is_null() {
                return Err("cuLaunchKernelEx with `extra` arguments".into());
            }
            // SAFETY: the application's launch configuration.
            let cfg = unsafe { &*config };
            let info = schedule::kernel_info(Handle::Function(f as usize))?;
            // SAFETY: as above.
            let args = unsafe { schedule::copy_args(&info, params) }?;
            // SAFETY: as above.
            let attrs = unsafe { schedule::copy_attrs(cfg.attrs, cfg.num_attrs) };
            Ok(Captured {
                key: key_kernel(info.name.clone(), cfg.grid),
                work: Work::DrvLaunchEx {
                    real,
                    f: f as usize,
                    grid: cfg.grid,
                    block: cfg.block,
                    shared_mem: cfg.shared_mem_bytes,
                    attrs,
                    num_attrs: cfg.num_attrs,
                    args,
                },
            })
        });
        if let Some(r) = captured {
            return r;
        }
    }
    // SAFETY: as above.
    hook::counted(entry, || unsafe { real(config, f, params, extra) })
}

/// A cooperative launch (never queued: all its blocks must be resident at once), after the
/// queued work of its stream.
pub fn coop_launch(entry: Entry, stream: Stream, call: impl FnOnce() -> Status) -> Status {
    wait(Scope::Stream(stream_key(entry, stream)));
    hook::counted(entry, call)
}

/// `CUDA_ERROR_NOT_READY`.
const NOT_READY: Status = 600;

/// Any other wrapped driver function: asynchronous memsets are captured (their stream
/// argument replaced at submission); an event record or wait comes after the queued work of
/// its stream (and a wait whose later work is queued waits for the event on the host, since
/// the queued ops go to the scheduler's streams); a stream query of a stream with queued work
/// says not ready; everything else waits for the queued work it must see first.
pub fn driver_generic(entry: Entry, real: Generic6Fn, a: [usize; 6]) -> Status {
    if entry.category() == Category::Attribute {
        return set_attribute(entry, real, a);
    }
    if entry.category() != Category::Lookup && hook::mode() == Mode::Schedule {
        let memset_stream = match entry {
            Entry::CuMemsetD8Async | Entry::CuMemsetD16Async | Entry::CuMemsetD32Async => Some(3),
            Entry::CuMemsetD2D8Async | Entry::CuMemsetD2D16Async | Entry::CuMemsetD2D32Async => Some(5),
            _ => None,
        };
        let key = |i: usize| schedule::stream_key(a[i] as Stream, false);
        if let Some(stream_arg) = memset_stream {
            if let Some(c) = capturing(entry, a[stream_arg] as Stream) {
                let captured = queue(entry, c, || {
                    Ok(Captured { key: key_other(OpKind::Memset), work: Work::Generic { real, args: a, stream_arg } })
                });
                if let Some(r) = captured {
                    return r;
                }
            } else {
                wait(Scope::Stream(key(stream_arg)));
            }
        } else if guard::is_outer() {
            match entry {
                Entry::CuEventQuery => {}
                Entry::CuStreamQuery => {
                    if schedule::stream_busy(key(0)) {
                        stats::count(entry, true, true);
                        return NOT_READY;
                    }
                }
                Entry::CuStreamWaitEvent => {
                    wait(Scope::Stream(key(0)));
                    if schedule::captures_stream(key(0)) {
                        schedule::host_wait_event(a[1]);
                    }
                }
                _ => wait(generic_scope(entry, &a)),
            }
        }
    }
    // SAFETY: as above.
    hook::counted(entry, || unsafe { real(a[0], a[1], a[2], a[3], a[4], a[5]) })
}

/// `cuFuncSetAttribute(f, attr, value)` and `cuKernelSetAttribute(attr, value, kernel, dev)`.
/// In scheduling mode a kernel's maximum dynamic shared memory never decreases: a launch
/// captured after the application raised it may still be queued when the application lowers it
/// again for a smaller launch of the same kernel (cuDNN does, from any client thread), and would
/// then fail with `CUDA_ERROR_INVALID_VALUE` when the scheduler submits it. A higher maximum only
/// permits larger launches. Never waits for queued work.
fn set_attribute(entry: Entry, real: Generic6Fn, mut a: [usize; 6]) -> Status {
    let (attr, value, handle) = if entry == Entry::CuFuncSetAttribute { (1, 2, 0) } else { (0, 1, 2) };
    if hook::mode() == Mode::Schedule && a[attr] as u32 as i32 == schedule::ATTR_MAX_DYNAMIC_SMEM {
        let kept = schedule::monotonic_dynamic_smem(a[handle], a[value] as u32 as i32);
        a[value] = kept as u32 as usize;
    }
    // SAFETY: the real function, with the application's arguments (the value possibly raised).
    hook::counted(entry, || unsafe { real(a[0], a[1], a[2], a[3], a[4], a[5]) })
}

/// What a driver call that is passed through must wait for.
fn generic_scope(entry: Entry, a: &[usize; 6]) -> Scope {
    let stream = |i: usize| Scope::Stream(schedule::stream_key(a[i] as Stream, false));
    match entry {
        Entry::CuMemcpyAsync | Entry::CuMemcpyHtoDAsync | Entry::CuMemcpyDtoHAsync | Entry::CuMemcpyDtoDAsync => {
            stream(3)
        }
        Entry::CuMemcpy2DAsync | Entry::CuMemcpy3DAsync => stream(1),
        Entry::CuMemcpyPeerAsync => stream(5),
        Entry::CuMemFreeAsync | Entry::CuGraphLaunch | Entry::CuEventRecord | Entry::CuEventRecordWithFlags => {
            stream(1)
        }
        Entry::CuStreamSynchronize => stream(0),
        Entry::CuCtxSynchronize | Entry::CuMemFree => Scope::Device,
        _ => match entry.category() {
            // Synchronous copies and memsets run on the legacy default stream.
            Category::Memcpy | Category::Memset => Scope::Stream(Some(0)),
            _ => Scope::Caller,
        },
    }
}

/// `cudaMemcpy` (`stream: None`) and `cudaMemcpyAsync` (`real_async`: the runtime's
/// `cudaMemcpyAsync`). Asynchronous copies with an explicit direction are captured; the
/// source of a host-to-device copy from pageable memory is staged (the caller may reuse its
/// buffer at once).
pub fn runtime_memcpy(
    entry: Entry,
    dst: *mut c_void,
    src: *const c_void,
    bytes: usize,
    kind: i32,
    real_async: Option<(usize, Stream)>,
    call: impl FnOnce() -> Status,
) -> Status {
    use crate::ffi::memcpy_kind::*;
    let stream = real_async.map_or(std::ptr::null_mut(), |(_, s)| s);
    if let Some((real, _)) = real_async
        && matches!(kind, HOST_TO_DEVICE | DEVICE_TO_HOST | DEVICE_TO_DEVICE)
        && let Some(c) = capturing(entry, stream)
    {
        let captured = queue(entry, c, || {
            // A pageable source may be reused as soon as the call returns (the real call copies
            // it out first), so it is copied here; a pinned one is read by the copy itself, when
            // it runs, in CUDA's own semantics (PyTorch's `non_blocking` uploads are), so it is
            // not: staging a training batch cost more than the rest of the interposer.
            let staged = (kind == HOST_TO_DEVICE && bytes > 0 && !schedule::host_pinned(src as usize))
                // SAFETY: the application's source of `bytes` bytes.
                .then(|| unsafe { std::slice::from_raw_parts(src.cast::<u8>(), bytes) }.to_vec());
            let op_kind = match kind {
                HOST_TO_DEVICE => OpKind::CopyH2D,
                DEVICE_TO_HOST => OpKind::CopyD2H,
                _ => OpKind::CopyD2D,
            };
            Ok(Captured {
                key: key_other(op_kind),
                work: Work::Memcpy { real, dst: dst as usize, src: src as usize, staged, bytes, kind },
            })
        });
        if let Some(r) = captured {
            return r;
        }
    } else {
        wait(Scope::Stream(stream_key(entry, stream)));
    }
    hook::counted(entry, call)
}

/// `cudaMemset` (`real_async: None`) and `cudaMemsetAsync`.
pub fn runtime_memset(
    entry: Entry,
    dst: *mut c_void,
    value: i32,
    bytes: usize,
    real_async: Option<(usize, Stream)>,
    call: impl FnOnce() -> Status,
) -> Status {
    let stream = real_async.map_or(std::ptr::null_mut(), |(_, s)| s);
    if let Some((real, _)) = real_async
        && let Some(c) = capturing(entry, stream)
    {
        let captured = queue(entry, c, || {
            Ok(Captured {
                key: key_other(OpKind::Memset),
                work: Work::Memset { real, dst: dst as usize, value, bytes },
            })
        });
        if let Some(r) = captured {
            return r;
        }
    } else {
        wait(Scope::Stream(stream_key(entry, stream)));
    }
    hook::counted(entry, call)
}

/// Calls that wait for queued work first: syncs (`scope`: what they wait for) and `cudaFree`
/// (which synchronises the device).
pub fn runtime_sync(entry: Entry, scope: Scope, call: impl FnOnce() -> Status) -> Status {
    wait(scope);
    hook::counted(entry, call)
}

/// Calls passed on at once in every mode (`cudaMalloc`).
pub fn runtime_other(entry: Entry, call: impl FnOnce() -> Status) -> Status {
    hook::counted(entry, call)
}
