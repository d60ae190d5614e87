//! The CUDA runtime and driver types and signatures the interposer needs, declared here (the
//! build machine has no CUDA headers). Both `CUresult` and `cudaError_t` are C enums: `i32`.

use std::ffi::{c_char, c_void};

/// `cudaError_t` / `CUresult`.
pub type Status = i32;
/// `cudaSuccess` / `CUDA_SUCCESS`.
pub const SUCCESS: Status = 0;
/// `cudaErrorUnknown` (returned when the real function cannot be found at all).
pub const ERROR_UNKNOWN: Status = 999;
/// `cudaStream_t` / `CUstream`.
pub type Stream = *mut c_void;

/// `dim3` (passed by value, as the runtime's launch functions take it).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dim3 {
    /// x.
    pub x: u32,
    /// y.
    pub y: u32,
    /// z.
    pub z: u32,
}

/// `cudaLaunchConfig_t`.
#[repr(C)]
#[derive(Debug)]
pub struct RtLaunchConfig {
    /// Grid.
    pub grid_dim: Dim3,
    /// Block.
    pub block_dim: Dim3,
    /// Dynamic shared memory, bytes.
    pub dynamic_smem_bytes: usize,
    /// Stream.
    pub stream: Stream,
    /// `cudaLaunchAttribute *`.
    pub attrs: *mut c_void,
    /// Number of attributes.
    pub num_attrs: u32,
}

/// `CUlaunchConfig`.
#[repr(C)]
#[derive(Debug)]
pub struct DrvLaunchConfig {
    /// Grid x, y, z.
    pub grid: [u32; 3],
    /// Block x, y, z.
    pub block: [u32; 3],
    /// Dynamic shared memory, bytes.
    pub shared_mem_bytes: u32,
    /// Stream.
    pub stream: Stream,
    /// `CUlaunchAttribute *`.
    pub attrs: *mut c_void,
    /// Number of attributes.
    pub num_attrs: u32,
}

/// `__cudaLaunchKernel`, `cudaLaunchKernel` and their `_ptsz` forms. (Under CUDA 13 the first
/// argument of `__cudaLaunchKernel` is a `cudaKernel_t`, of `cudaLaunchKernel` the host stub:
/// both are pointers.)
pub type RtLaunchFn = unsafe extern "C" fn(*const c_void, Dim3, Dim3, *mut *mut c_void, usize, Stream) -> Status;
/// `cudaLaunchKernelExC`.
pub type RtLaunchExFn = unsafe extern "C" fn(*const RtLaunchConfig, *const c_void, *mut *mut c_void) -> Status;
/// `cuLaunchKernel` (and `_ptsz`).
pub type DrvLaunchFn = unsafe extern "C" fn(
    *mut c_void,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    u32,
    Stream,
    *mut *mut c_void,
    *mut *mut c_void,
) -> Status;
/// `cuLaunchKernelEx` (and `_ptsz`).
pub type DrvLaunchExFn =
    unsafe extern "C" fn(*const DrvLaunchConfig, *mut c_void, *mut *mut c_void, *mut *mut c_void) -> Status;
/// `cuLaunchCooperativeKernel` (and `_ptsz`).
pub type DrvCoopLaunchFn =
    unsafe extern "C" fn(*mut c_void, u32, u32, u32, u32, u32, u32, u32, Stream, *mut *mut c_void) -> Status;
/// `cuGetProcAddress` (CUDA 11.3 to 11.8 form).
pub type GetProcV1Fn = unsafe extern "C" fn(*const c_char, *mut *mut c_void, i32, u64) -> Status;
/// `cuGetProcAddress_v2` (CUDA 12+).
pub type GetProcV2Fn = unsafe extern "C" fn(*const c_char, *mut *mut c_void, i32, u64, *mut i32) -> Status;
/// Any driver function of at most six integer or pointer arguments, forwarded untouched: on
/// x86-64 System V they all travel in registers, so a wrapper that passes six registers on
/// calls every such function correctly whatever its real arity (extra registers are ignored).
pub type Generic6Fn = unsafe extern "C" fn(usize, usize, usize, usize, usize, usize) -> Status;
/// `dlsym`.
pub type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

/// `CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM`: the `_ptsz` form is asked for.
pub const GET_PROC_PER_THREAD_DEFAULT_STREAM: u64 = 1 << 1;

/// `cudaMemcpyKind`.
pub mod memcpy_kind {
    /// Host to host.
    pub const HOST_TO_HOST: i32 = 0;
    /// Host to device.
    pub const HOST_TO_DEVICE: i32 = 1;
    /// Device to host.
    pub const DEVICE_TO_HOST: i32 = 2;
    /// Device to device.
    pub const DEVICE_TO_DEVICE: i32 = 3;
    /// Inferred from the pointers (unified addressing).
    pub const DEFAULT: i32 = 4;
}
