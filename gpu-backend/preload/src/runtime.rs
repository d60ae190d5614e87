//! The CUDA runtime's entry points, exported by this library under the symbol version
//! `libcudart.so.13` so that they win the binding of programs and libraries linked against the
//! CUDA 13 runtime (PyTorch's own kernels call `__cudaLaunchKernel`, which nvcc 13's launch
//! stubs use). Each one finds the real function in the loaded `libcudart.so.13` on first use.
//!
//! Each versioned name is a `.symver` alias of a one-instruction stub (`orion_v_<name>`, a tail
//! jump into the Rust function `orion_rt_<name>`) defined in the same assembly block, which
//! `.symver` requires; build.rs declares the version node from `runtime_exports.txt`, which
//! must list exactly these symbols.

use crate::capture;
use crate::ffi::*;
use crate::hook;
use crate::schedule::{self, Scope};
use crate::stats::Entry;
use std::ffi::{CStr, c_void};

macro_rules! runtime_exports {
    ($($entry:ident: $export:ident = $sym:literal ($($a:ident: $t:ty),*) as $real_ty:ty => |$real:ident| $body:expr;)*) => {
        $(
            #[cfg(not(test))]
            #[doc = concat!("`", $sym, "`, interposed.")]
            ///
            /// # Safety
            /// Called by the application with the arguments of the real function.
            #[allow(non_snake_case)]
            pub unsafe extern "C" fn $export($($a: $t),*) -> Status {
                static REAL: std::sync::atomic::AtomicPtr<c_void> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
                const NAME: &CStr = match CStr::from_bytes_with_nul(concat!($sym, "\0").as_bytes()) {
                    Ok(c) => c,
                    Err(_) => panic!("symbol name"),
                };
                let p = crate::real::cudart_symbol(&REAL, NAME);
                if p.is_null() {
                    return hook::missing($sym);
                }
                // SAFETY: the runtime's function of this name has this signature.
                let $real: $real_ty = unsafe { std::mem::transmute::<*mut c_void, $real_ty>(p) };
                let entry = Entry::$entry;
                $body(entry)
            }
            #[cfg(not(test))]
            core::arch::global_asm!(
                concat!(".globl orion_v_", $sym),
                concat!(".type orion_v_", $sym, ",@function"),
                concat!("orion_v_", $sym, ":"),
                "  jmp {imp}",
                concat!(".size orion_v_", $sym, ", .-orion_v_", $sym),
                concat!(".symver orion_v_", $sym, ", ", $sym, "@@libcudart.so.13"),
                imp = sym $export,
            );
        )*

        /// This library's export for runtime symbol `name`, if it has one.
        #[cfg(not(test))]
        pub fn hook_for(name: &[u8]) -> Option<*mut c_void> {
            $(if name == $sym.as_bytes() {
                return Some($export as *mut c_void);
            })*
            None
        }

        /// This library's export for runtime symbol `name`, if it has one.
        #[cfg(test)]
        pub fn hook_for(_name: &[u8]) -> Option<*mut c_void> {
            None
        }
    };
}

type Memcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize, i32) -> Status;
type MemcpyAsync = unsafe extern "C" fn(*mut c_void, *const c_void, usize, i32, Stream) -> Status;
type Memset = unsafe extern "C" fn(*mut c_void, i32, usize) -> Status;
type MemsetAsync = unsafe extern "C" fn(*mut c_void, i32, usize, Stream) -> Status;
type Malloc = unsafe extern "C" fn(*mut *mut c_void, usize) -> Status;
type Free = unsafe extern "C" fn(*mut c_void) -> Status;
type StreamSync = unsafe extern "C" fn(Stream) -> Status;
type DeviceSync = unsafe extern "C" fn() -> Status;
type EventSync = unsafe extern "C" fn(*mut c_void) -> Status;

runtime_exports! {
    RtLaunchInternal: orion_rt___cudaLaunchKernel = "__cudaLaunchKernel"
        (f: *const c_void, g: Dim3, b: Dim3, args: *mut *mut c_void, shm: usize, s: Stream) as RtLaunchFn
        => |real| |e| capture::runtime_launch(e, real, f, g, b, args, shm, s);
    RtLaunchInternalPtsz: orion_rt___cudaLaunchKernel_ptsz = "__cudaLaunchKernel_ptsz"
        (f: *const c_void, g: Dim3, b: Dim3, args: *mut *mut c_void, shm: usize, s: Stream) as RtLaunchFn
        => |real| |e| capture::runtime_launch(e, real, f, g, b, args, shm, s);
    RtLaunch: orion_rt_cudaLaunchKernel = "cudaLaunchKernel"
        (f: *const c_void, g: Dim3, b: Dim3, args: *mut *mut c_void, shm: usize, s: Stream) as RtLaunchFn
        => |real| |e| capture::runtime_launch(e, real, f, g, b, args, shm, s);
    RtLaunchPtsz: orion_rt_cudaLaunchKernel_ptsz = "cudaLaunchKernel_ptsz"
        (f: *const c_void, g: Dim3, b: Dim3, args: *mut *mut c_void, shm: usize, s: Stream) as RtLaunchFn
        => |real| |e| capture::runtime_launch(e, real, f, g, b, args, shm, s);
    RtLaunchEx: orion_rt_cudaLaunchKernelExC = "cudaLaunchKernelExC"
        (c: *const RtLaunchConfig, f: *const c_void, args: *mut *mut c_void) as RtLaunchExFn
        => |real| |e| capture::runtime_launch_ex(e, real, c, f, args);
    RtLaunchExPtsz: orion_rt_cudaLaunchKernelExC_ptsz = "cudaLaunchKernelExC_ptsz"
        (c: *const RtLaunchConfig, f: *const c_void, args: *mut *mut c_void) as RtLaunchExFn
        => |real| |e| capture::runtime_launch_ex(e, real, c, f, args);
    RtMemcpy: orion_rt_cudaMemcpy = "cudaMemcpy"
        (dst: *mut c_void, src: *const c_void, n: usize, kind: i32) as Memcpy
        => |real| |e| capture::runtime_memcpy(e, dst, src, n, kind, None, || unsafe { real(dst, src, n, kind) });
    RtMemcpyAsync: orion_rt_cudaMemcpyAsync = "cudaMemcpyAsync"
        (dst: *mut c_void, src: *const c_void, n: usize, kind: i32, s: Stream) as MemcpyAsync
        => |real| |e| capture::runtime_memcpy(e, dst, src, n, kind, Some((real as usize, s)), || unsafe { real(dst, src, n, kind, s) });
    RtMemset: orion_rt_cudaMemset = "cudaMemset"
        (dst: *mut c_void, value: i32, n: usize) as Memset
        => |real| |e| capture::runtime_memset(e, dst, value, n, None, || unsafe { real(dst, value, n) });
    RtMemsetAsync: orion_rt_cudaMemsetAsync = "cudaMemsetAsync"
        (dst: *mut c_void, value: i32, n: usize, s: Stream) as MemsetAsync
        => |real| |e| capture::runtime_memset(e, dst, value, n, Some((real as usize, s)), || unsafe { real(dst, value, n, s) });
    RtMalloc: orion_rt_cudaMalloc = "cudaMalloc"
        (p: *mut *mut c_void, n: usize) as Malloc
        => |real| |e| capture::runtime_other(e, || unsafe { real(p, n) });
    RtFree: orion_rt_cudaFree = "cudaFree"
        (p: *mut c_void) as Free
        => |real| |e| capture::runtime_sync(e, Scope::Device, || unsafe { real(p) });
    RtStreamSync: orion_rt_cudaStreamSynchronize = "cudaStreamSynchronize"
        (s: Stream) as StreamSync
        => |real| |e| capture::runtime_sync(e, Scope::Stream(schedule::stream_key(s, false)), || unsafe { real(s) });
    RtDeviceSync: orion_rt_cudaDeviceSynchronize = "cudaDeviceSynchronize"
        () as DeviceSync
        => |real| |e| capture::runtime_sync(e, Scope::Device, || unsafe { real() });
    RtEventSync: orion_rt_cudaEventSynchronize = "cudaEventSynchronize"
        (ev: *mut c_void) as EventSync
        => |real| |e| capture::runtime_sync(e, Scope::Caller, || unsafe { real(ev) });
}
