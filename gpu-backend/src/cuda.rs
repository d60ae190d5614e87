//! The CUDA layer: the only module of the crate with `unsafe` code.
//!
//! CUDA is loaded at run time (cudarc's dynamic loading): the crate builds and its CPU tests run
//! on machines without CUDA, and [`Gpu::open`] fails with [`RealError::NoCuda`] there instead of
//! panicking. cudarc's safe layer does the context, streams with priorities, events, NVRTC,
//! module loading and the occupancy queries; the raw driver API (`cudarc::driver::sys`) does
//! what sits on the executor's hot path, where the safe layer would add work per call (binding
//! the context, tracking events on buffers): kernel launches, copies, memsets, event records
//! and event polls, and the device and host allocations of fixed size that the synthetic work
//! uses.
//!
//! # Why the `unsafe` blocks are sound
//!
//! * **Library loading.** `is_culib_present` only `dlopen`s candidate names and closes them
//!   again; loading a CUDA library by absolute path runs its initialisers, which is what any
//!   CUDA program does. The libraries are never unloaded (a `'static` handle), so the function
//!   pointers cudarc takes from them stay valid.
//! * **Threads.** A [`Gpu`] binds its (primary) context to the thread that opens it, and all
//!   work goes through `&Gpu`/`&mut` objects on that thread: [`Gpu`] is `!Sync` through its
//!   `PhantomData<*const ()>`, so the raw calls always run with the right context current.
//! * **Handles.** Every raw handle passed to the driver (function, stream, event, device
//!   pointer, pinned host pointer) is owned by a live object of this module: [`Gpu`] owns the
//!   module and its functions, [`Stream`], [`Event`], [`DeviceBuffer`] and [`PinnedBuffer`] own
//!   theirs and hold an `Arc` of the context, so a handle is never used after it is freed, and
//!   each is freed exactly once, in `Drop`.
//! * **Kernel launches.** The parameter array matches the kernels' signature in
//!   [`kernels::SOURCE`] exactly (`u32, u64, u64, u64, f32` for the synthetic kernels, `u64` for
//!   the spin kernel) and points at locals that live until `cuLaunchKernel` returns (the driver
//!   copies parameters at the call). The kernels only access `buf[0..n4)`, the buffer passed
//!   with its true length; the grid and block come from a record and are checked against the
//!   device limits before launch ([`Gpu::check_launch`]).
//! * **NVRTC programs** ([`ptxas_report`]): the program is created, compiled with options that
//!   are valid C strings, its log read, and destroyed exactly once, all within one function.
//! * **Copies and memsets.** Sizes are clamped to the buffers they address ([`WorkBuffers`]),
//!   and the host side of asynchronous copies is pinned memory owned by the same
//!   [`WorkBuffers`], which outlives every copy on its stream (streams are synchronised before
//!   buffers are dropped: [`WorkBuffers`] is dropped only after [`Stream::synchronize`]; its
//!   `Drop` synchronises the context first anyway).

use crate::error::{MIN_DRIVER_VERSION, RealError, Result};
use crate::kernels;
use crate::plan::{CopyKind, KernelLaunch};
use cudarc::driver::{CudaContext, CudaEvent, CudaFunction, CudaModule, CudaStream, DriverError, result, sys};
use std::ffi::c_void;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

fn cuda(call: &'static str) -> impl FnOnce(DriverError) -> RealError {
    move |e| RealError::Cuda { call, message: driver_message(e) }
}

fn driver_message(e: DriverError) -> String {
    let name = e.error_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| format!("{:?}", e.0));
    let text = e.error_string().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if text.is_empty() { name } else { format!("{name}: {text}") }
}

/// Directories searched for `libnvrtc` when the dynamic loader does not find it by name.
fn nvrtc_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT", "CUDA_TOOLKIT_ROOT_DIR"] {
        if let Ok(v) = std::env::var(var) {
            dirs.push(std::path::Path::new(&v).join("lib64"));
            dirs.push(std::path::Path::new(&v).join("lib"));
        }
    }
    dirs.push("/usr/local/cuda/lib64".into());
    dirs.push("/usr/local/cuda/targets/x86_64-linux/lib".into());
    if let Ok(entries) = std::fs::read_dir("/usr/local") {
        let mut versioned: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("cuda-")))
            .collect();
        versioned.sort();
        dirs.extend(versioned.into_iter().rev().map(|p| p.join("lib64")));
    }
    dirs
}

/// Makes sure cudarc's loader will find NVRTC (loading it by absolute path from CUDA's usual
/// directories when the dynamic loader does not find it by name); idempotent.
pub fn ensure_nvrtc() -> Result<()> {
    static NVRTC: OnceLock<Option<libloading::Library>> = OnceLock::new();
    // SAFETY: see the module documentation (library loading).
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Ok(());
    }
    // Not on the loader's path: load it by absolute path, globally, so that cudarc's dlopen by
    // soname finds the already-loaded library.
    let loaded = NVRTC.get_or_init(|| {
        for dir in nvrtc_dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut names: Vec<_> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().is_some_and(|n| {
                        let n = n.to_string_lossy();
                        n.starts_with("libnvrtc.so.") && !n.contains("builtins")
                    })
                })
                .collect();
            names.sort();
            for path in names {
                // SAFETY: see the module documentation (library loading).
                let lib = unsafe {
                    libloading::os::unix::Library::open(
                        Some(&path),
                        libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
                    )
                };
                if let Ok(lib) = lib {
                    return Some(libloading::Library::from(lib));
                }
            }
        }
        None
    });
    // SAFETY: as above.
    if loaded.is_some() && unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(RealError::NoCuda(
            "NVRTC (libnvrtc.so.13) cannot be loaded: put CUDA's lib64 on LD_LIBRARY_PATH or set CUDA_HOME".into(),
        ))
    }
}

/// Makes sure cudarc's loader will find the driver library and NVRTC; describes what is
/// missing otherwise.
fn load_libraries() -> Result<()> {
    // SAFETY: see the module documentation (library loading).
    if !unsafe { sys::is_culib_present() } {
        return Err(RealError::NoCuda("the NVIDIA driver library (libcuda.so.1) cannot be loaded".into()));
    }
    ensure_nvrtc()
}

/// The NVRTC version (major, minor); NVRTC must be loaded ([`ensure_nvrtc`]).
fn nvrtc_version() -> (i32, i32) {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: writes two ints; NVRTC is loaded.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (major, minor)
}

/// Compiles the synthetic kernels to PTX for `arch` (e.g. `compute_90`). Needs NVRTC only, no
/// GPU.
pub fn compile_synthetic(arch: &'static str) -> Result<cudarc::nvrtc::Ptx> {
    ensure_nvrtc()?;
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some(arch),
        maxrregcount: Some(kernels::MAX_REGISTERS as usize),
        name: Some("orion_synth.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(kernels::SOURCE, opts).map_err(|e| RealError::Nvrtc(e.to_string()))
}

/// Facts about the device, read from the driver.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceProps {
    /// Device name.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Multiprocessors.
    pub sm_count: u32,
    /// L2 cache, bytes.
    pub l2_bytes: u64,
    /// Global memory, bytes.
    pub total_mem: u64,
    /// Shared memory per SM, bytes.
    pub smem_per_sm: u32,
    /// Largest dynamic shared memory a block may opt in to, bytes.
    pub smem_per_block_optin: u32,
    /// Maximum grid extents.
    pub max_grid: [u32; 3],
    /// Maximum threads per block.
    pub max_threads_per_block: u32,
    /// CUDA driver version (e.g. 13000).
    pub driver_version: i32,
    /// NVRTC version (major, minor).
    pub nvrtc_version: (i32, i32),
    /// Stream priorities: (least, greatest); numerically smaller is higher.
    pub stream_priority_range: (i32, i32),
}

/// An open GPU: its context, the compiled synthetic kernels, and the device's facts.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    _module: Arc<CudaModule>,
    synth: [CudaFunction; 3],
    spin: CudaFunction,
    props: DeviceProps,
    _not_sync: PhantomData<*const ()>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("props", &self.props).finish_non_exhaustive()
    }
}

/// Compiles the synthetic kernels to machine code for `sm` (e.g. `sm_90`) with ptxas's
/// verbose output and returns NVRTC's log: registers, stack and spills per kernel. Needs
/// NVRTC only, no GPU.
pub fn ptxas_report(sm: &str) -> Result<String> {
    ensure_nvrtc()?;
    let src = std::ffi::CString::new(kernels::SOURCE).expect("no NUL in the source");
    let prog = cudarc::nvrtc::result::create_program(&src, None).map_err(|e| RealError::Nvrtc(format!("{e:?}")))?;
    let opts = [
        format!("--gpu-architecture={sm}"),
        format!("--maxrregcount={}", kernels::MAX_REGISTERS),
        "-Xptxas=-v".to_string(),
        "-Xptxas=-warn-spills".to_string(),
    ];
    // SAFETY: `prog` is a live program; the options are valid C strings (no NUL).
    let compiled = unsafe { cudarc::nvrtc::result::compile_program(prog, &opts) };
    // SAFETY: as above.
    let log = unsafe { cudarc::nvrtc::result::get_program_log(prog) };
    // SAFETY: destroyed once, not used after.
    let _ = unsafe { cudarc::nvrtc::result::destroy_program(prog) };
    let log = log.map_err(|e| RealError::Nvrtc(format!("{e:?}")))?;
    let text: Vec<u8> = log.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    let text = String::from_utf8_lossy(&text).into_owned();
    compiled.map_err(|e| RealError::Nvrtc(format!("{e:?}: {text}")))?;
    Ok(text)
}

/// The NVRTC virtual architecture for a compute capability.
pub fn nvrtc_arch(cc: (i32, i32)) -> &'static str {
    match cc {
        (7, 0) => "compute_70",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, _) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => "compute_80",
    }
}

impl Gpu {
    /// Loads CUDA, opens device `ordinal` (its primary context, bound to this thread), compiles
    /// the synthetic kernels with NVRTC and loads them. Fails with [`RealError::NoCuda`] when
    /// there is no usable driver, device or NVRTC.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        load_libraries()?;
        result::init().map_err(|e| RealError::NoCuda(format!("cuInit: {}", driver_message(e))))?;
        let mut driver_version = 0;
        // SAFETY: writes one int.
        unsafe { sys::cuDriverGetVersion(&mut driver_version) }.result().map_err(cuda("cuDriverGetVersion"))?;
        if driver_version < MIN_DRIVER_VERSION {
            return Err(RealError::NoCuda(format!(
                "the driver supports CUDA {}.{}",
                driver_version / 1000,
                driver_version % 1000 / 10
            )));
        }
        let count = CudaContext::device_count().map_err(|e| RealError::NoCuda(driver_message(e)))?;
        if ordinal as i32 >= count {
            return Err(RealError::NoCuda(format!("device {ordinal} requested, {count} present")));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| RealError::NoCuda(driver_message(e)))?;
        // SAFETY: this crate never uses cudarc's tracked buffers (CudaSlice), so the events that
        // tracking would record protect nothing.
        unsafe { ctx.disable_event_tracking() };
        let attr = |a: sys::CUdevice_attribute| ctx.attribute(a).map_err(cuda("cuDeviceGetAttribute"));
        use sys::CUdevice_attribute as A;
        let cc = (
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        );
        let priority_range = result::stream::get_priority_range().map_err(cuda("cuCtxGetStreamPriorityRange"))?;
        let props = DeviceProps {
            name: ctx.name().map_err(cuda("cuDeviceGetName"))?,
            compute_capability: cc,
            sm_count: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
            l2_bytes: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as u64,
            total_mem: ctx.total_mem().map_err(cuda("cuDeviceTotalMem"))? as u64,
            smem_per_sm: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR)? as u32,
            smem_per_block_optin: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)? as u32,
            max_grid: [
                attr(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)? as u32,
                attr(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)? as u32,
                attr(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)? as u32,
            ],
            max_threads_per_block: attr(A::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)? as u32,
            driver_version,
            nvrtc_version: nvrtc_version(),
            stream_priority_range: priority_range,
        };
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(nvrtc_arch(cc)),
            maxrregcount: Some(kernels::MAX_REGISTERS as usize),
            name: Some("orion_synth.cu".into()),
            ..Default::default()
        };
        let ptx =
            cudarc::nvrtc::compile_ptx_with_opts(kernels::SOURCE, opts).map_err(|e| RealError::Nvrtc(e.to_string()))?;
        let module = ctx.load_module(ptx).map_err(cuda("cuModuleLoadData"))?;
        let load = |name: &str| module.load_function(name).map_err(cuda("cuModuleGetFunction"));
        let synth = [load(kernels::KERNEL_NAMES[0])?, load(kernels::KERNEL_NAMES[1])?, load(kernels::KERNEL_NAMES[2])?];
        let spin = load(kernels::SPIN_KERNEL)?;
        use sys::CUfunction_attribute as F;
        for f in &synth {
            // Let any dynamic shared memory up to the device's opt-in limit be requested, and
            // give every synthetic kernel the same carveout (all shared memory), so that the
            // occupancy calculator's answer is the one the hardware applies and co-resident
            // synthetic kernels never wait for an SM to be reconfigured.
            let static_smem = f.shared_size_bytes().map_err(cuda("cuFuncGetAttribute"))?;
            f.set_attribute(
                F::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                props.smem_per_block_optin as i32 - static_smem,
            )
            .map_err(cuda("cuFuncSetAttribute"))?;
            f.set_attribute(F::CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100)
                .map_err(cuda("cuFuncSetAttribute"))?;
        }
        Ok(Gpu { ctx, _module: module, synth, spin, props, _not_sync: PhantomData })
    }

    /// The device's facts.
    pub fn props(&self) -> &DeviceProps {
        &self.props
    }

    /// Registers per thread of each synthetic kernel (compute, memory, mixed).
    pub fn registers(&self) -> Result<[u32; 3]> {
        let mut out = [0; 3];
        for (o, f) in out.iter_mut().zip(&self.synth) {
            *o = f.num_regs().map_err(cuda("cuFuncGetAttribute"))? as u32;
        }
        Ok(out)
    }

    /// Blocks of synthetic kernel `kind` that one SM holds with `threads` threads per block and
    /// `smem` bytes of dynamic shared memory (`cuOccupancyMaxActiveBlocksPerMultiprocessor`).
    pub fn occupancy(&self, kind: usize, threads: u32, smem: u32) -> Result<u32> {
        self.synth[kind]
            .occupancy_max_active_blocks_per_multiprocessor(threads, smem as usize, None)
            .map_err(cuda("cuOccupancyMaxActiveBlocksPerMultiprocessor"))
    }

    /// The most dynamic shared memory per block with which `blocks` blocks of `threads` threads
    /// of kernel `kind` still fit on one SM (`cuOccupancyAvailableDynamicSMemPerBlock`).
    pub fn available_smem(&self, kind: usize, blocks: u32, threads: u32) -> Result<u32> {
        self.synth[kind]
            .occupancy_available_dynamic_smem_per_block(blocks, threads)
            .map(|s| s.min(u32::MAX as usize) as u32)
            .map_err(cuda("cuOccupancyAvailableDynamicSMemPerBlock"))
    }

    /// Free and total device memory, bytes.
    pub fn mem_info(&self) -> Result<(u64, u64)> {
        self.ctx.mem_get_info().map(|(f, t)| (f as u64, t as u64)).map_err(cuda("cuMemGetInfo"))
    }

    /// A non-blocking stream at `priority` (see [`DeviceProps::stream_priority_range`]).
    pub fn stream(&self, priority: i32) -> Result<Stream> {
        let s = self.ctx.new_stream_with_priority(priority).map_err(cuda("cuStreamCreateWithPriority"))?;
        Ok(Stream { inner: s, priority })
    }

    /// An event; `timing` enables elapsed-time queries (slower to record).
    pub fn event(&self, timing: bool) -> Result<Event> {
        let flags =
            if timing { sys::CUevent_flags::CU_EVENT_DEFAULT } else { sys::CUevent_flags::CU_EVENT_DISABLE_TIMING };
        Ok(Event { inner: self.ctx.new_event(Some(flags)).map_err(cuda("cuEventCreate"))? })
    }

    /// Device memory of `bytes` bytes (zeroed).
    pub fn alloc(&self, bytes: u64) -> Result<DeviceBuffer> {
        let bytes = bytes.max(16);
        // SAFETY: a fresh allocation, freed once in Drop.
        let ptr = unsafe { result::malloc_sync(bytes as usize) }.map_err(cuda("cuMemAlloc"))?;
        let buf = DeviceBuffer { ptr, bytes, ctx: self.ctx.clone() };
        // SAFETY: the range is the allocation just made.
        unsafe { result::memset_d8_sync(ptr, 0, bytes as usize) }.map_err(cuda("cuMemsetD8"))?;
        Ok(buf)
    }

    /// Page-locked host memory of `bytes` bytes.
    pub fn alloc_pinned(&self, bytes: u64) -> Result<PinnedBuffer> {
        let bytes = bytes.max(16);
        // SAFETY: a fresh allocation, freed once in Drop.
        let ptr = unsafe { result::malloc_host(bytes as usize, 0) }.map_err(cuda("cuMemHostAlloc"))?;
        Ok(PinnedBuffer { ptr, bytes, ctx: self.ctx.clone() })
    }

    /// Checks a launch shape against the device's limits (so that a bad record gives an error,
    /// not a failed launch later).
    pub fn check_launch(&self, k: &KernelLaunch) -> Result<()> {
        let g = k.shape.grid;
        let b = k.shape.block;
        let p = &self.props;
        if g.x > p.max_grid[0] || g.y > p.max_grid[1] || g.z > p.max_grid[2] || g.count() == 0 {
            return Err(RealError::Unsupported(format!("grid {g} exceeds the device's limits")));
        }
        if b.count() > p.max_threads_per_block as u64 || b.count() == 0 || b.z > 64 {
            return Err(RealError::Unsupported(format!("block {b} exceeds the device's limits")));
        }
        if k.shape.smem > p.smem_per_block_optin {
            return Err(RealError::Unsupported(format!("{} bytes of shared memory per block", k.shape.smem)));
        }
        Ok(())
    }

    /// Launches a synthetic kernel on `stream` over `buf`, starting at element `offset`.
    pub fn launch(&self, stream: &Stream, k: &KernelLaunch, buf: &DeviceBuffer, offset: u64) -> Result<()> {
        let mut q: u32 = k.q;
        let mut ptr: u64 = buf.ptr;
        let mut n4: u64 = buf.bytes / 16;
        let mut off: u64 = offset;
        let mut s: f32 = 0.999;
        let mut params: [*mut c_void; 5] = [
            (&raw mut q).cast(),
            (&raw mut ptr).cast(),
            (&raw mut n4).cast(),
            (&raw mut off).cast(),
            (&raw mut s).cast(),
        ];
        let g = k.shape.grid;
        let b = k.shape.block;
        // SAFETY: see the module documentation (kernel launches).
        unsafe {
            sys::cuLaunchKernel(
                self.synth[k.shape.kind.index()].cu_function(),
                g.x,
                g.y,
                g.z,
                b.x,
                b.y,
                b.z,
                k.shape.smem,
                stream.raw(),
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()
        .map_err(cuda("cuLaunchKernel"))
    }

    /// Launches the gate kernel: one thread sleeping `ns` nanoseconds of GPU time.
    pub fn spin(&self, stream: &Stream, ns: u64) -> Result<()> {
        let mut ns = ns;
        let mut params: [*mut c_void; 1] = [(&raw mut ns).cast()];
        // SAFETY: see the module documentation (kernel launches).
        unsafe {
            sys::cuLaunchKernel(
                self.spin.cu_function(),
                1,
                1,
                1,
                1,
                1,
                1,
                0,
                stream.raw(),
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()
        .map_err(cuda("cuLaunchKernel"))
    }

    /// Enqueues a copy or memset of `bytes` bytes on `stream` within `work`'s buffers (clamped
    /// to their sizes).
    pub fn copy(&self, stream: &Stream, kind: CopyKind, bytes: u64, work: &WorkBuffers) -> Result<()> {
        let dev = &work.copy_dev;
        let half = dev.bytes / 2;
        let s = stream.raw();
        // SAFETY: see the module documentation (copies and memsets): each range lies within
        // the buffer it addresses.
        unsafe {
            match kind {
                CopyKind::HostToDevice => {
                    let n = bytes.min(work.host.bytes).min(dev.bytes);
                    sys::cuMemcpyHtoDAsync_v2(dev.ptr, work.host.ptr.cast_const(), n as usize, s)
                        .result()
                        .map_err(cuda("cuMemcpyHtoDAsync"))
                }
                CopyKind::DeviceToHost => {
                    let n = bytes.min(work.host.bytes).min(dev.bytes);
                    sys::cuMemcpyDtoHAsync_v2(work.host.ptr, dev.ptr, n as usize, s)
                        .result()
                        .map_err(cuda("cuMemcpyDtoHAsync"))
                }
                CopyKind::DeviceToDevice => {
                    let n = bytes.min(half);
                    sys::cuMemcpyDtoDAsync_v2(dev.ptr + half, dev.ptr, n as usize, s)
                        .result()
                        .map_err(cuda("cuMemcpyDtoDAsync"))
                }
                CopyKind::Memset => {
                    let n = bytes.min(dev.bytes);
                    if n.is_multiple_of(4) {
                        sys::cuMemsetD32Async(dev.ptr, 0, (n / 4) as usize, s)
                            .result()
                            .map_err(cuda("cuMemsetD32Async"))
                    } else {
                        sys::cuMemsetD8Async(dev.ptr, 0, n as usize, s).result().map_err(cuda("cuMemsetD8Async"))
                    }
                }
            }
        }
    }

    /// Waits for all work of the context.
    pub fn synchronize(&self) -> Result<()> {
        self.ctx.synchronize().map_err(cuda("cuCtxSynchronize"))
    }
}

/// A stream with its priority.
#[derive(Debug)]
pub struct Stream {
    inner: Arc<CudaStream>,
    priority: i32,
}

impl Stream {
    fn raw(&self) -> sys::CUstream {
        self.inner.cu_stream()
    }

    /// Its priority.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// Waits for all its work.
    pub fn synchronize(&self) -> Result<()> {
        self.inner.synchronize().map_err(cuda("cuStreamSynchronize"))
    }
}

/// An event.
#[derive(Debug)]
pub struct Event {
    inner: CudaEvent,
}

impl Event {
    /// Records it on `stream` (after all work queued there so far).
    pub fn record(&self, stream: &Stream) -> Result<()> {
        // SAFETY: both handles are owned by live objects of this module.
        unsafe { sys::cuEventRecord(self.inner.cu_event(), stream.raw()) }.result().map_err(cuda("cuEventRecord"))
    }

    /// Whether the work before it has completed (`cuEventQuery`); errors of that work surface
    /// here.
    pub fn is_complete(&self) -> Result<bool> {
        // SAFETY: the handle is owned by this object.
        match unsafe { sys::cuEventQuery(self.inner.cu_event()) } {
            sys::CUresult::CUDA_SUCCESS => Ok(true),
            sys::CUresult::CUDA_ERROR_NOT_READY => Ok(false),
            e => Err(cuda("cuEventQuery")(DriverError(e))),
        }
    }

    /// Waits for it.
    pub fn synchronize(&self) -> Result<()> {
        self.inner.synchronize().map_err(cuda("cuEventSynchronize"))
    }

    /// Nanoseconds from `self` to `end` (both timing events, both complete).
    pub fn elapsed_ns(&self, end: &Event) -> Result<f64> {
        self.inner.elapsed_ms(&end.inner).map(|ms| ms as f64 * 1e6).map_err(cuda("cuEventElapsedTime"))
    }

    /// Nanoseconds from `self` to `end` (both timing events of this context, both known to be
    /// complete): one `cuEventElapsedTime` call, without the synchronisation
    /// [`elapsed_ns`](Self::elapsed_ns) does first. The driver's resolution is about 0.5 us and
    /// the result an `f32` of milliseconds, so it is precise for short intervals.
    pub fn elapsed_complete_ns(&self, end: &Event) -> Result<f64> {
        // SAFETY: both handles are owned by live objects of this module; the caller's context
        // is current on this thread (it recorded them).
        unsafe { result::event::elapsed(self.inner.cu_event(), end.inner.cu_event()) }
            .map(|ms| ms as f64 * 1e6)
            .map_err(cuda("cuEventElapsedTime"))
    }
}

/// Device memory, freed on drop.
#[derive(Debug)]
pub struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    bytes: u64,
    ctx: Arc<CudaContext>,
}

impl DeviceBuffer {
    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Length in `float4` elements.
    pub fn elements(&self) -> u64 {
        self.bytes / 16
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // Errors cannot be returned from Drop; the context records them.
        self.ctx.record_err(self.ctx.bind_to_thread());
        // SAFETY: allocated by Gpu::alloc, freed only here; cuMemFree waits for work using it.
        self.ctx.record_err(unsafe { result::free_sync(self.ptr) });
    }
}

/// Page-locked host memory, freed on drop.
#[derive(Debug)]
pub struct PinnedBuffer {
    ptr: *mut c_void,
    bytes: u64,
    ctx: Arc<CudaContext>,
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        self.ctx.record_err(self.ctx.bind_to_thread());
        // Asynchronous copies may still read or write it: wait for them first.
        self.ctx.record_err(self.ctx.synchronize());
        // SAFETY: allocated by Gpu::alloc_pinned, freed only here, no copy in flight.
        self.ctx.record_err(unsafe { result::free_host(self.ptr) });
    }
}

/// The memory one client's synthetic work uses: the streaming buffer of its kernels, and the
/// device and pinned host buffers of its copies.
#[derive(Debug)]
pub struct WorkBuffers {
    /// Buffer the synthetic kernels stream through (>= 4x L2 per half).
    pub stream: DeviceBuffer,
    /// Device side of copies (and both sides of device-to-device copies, one per half).
    pub copy_dev: DeviceBuffer,
    /// Host side of copies.
    pub host: PinnedBuffer,
    /// Next element a streaming kernel starts at.
    pub offset: u64,
}

impl WorkBuffers {
    /// Buffers for a client whose largest copy is `max_copy` bytes.
    pub fn new(gpu: &Gpu, max_copy: u64) -> Result<WorkBuffers> {
        let max_copy = max_copy.clamp(16, 1 << 31);
        Ok(WorkBuffers {
            stream: gpu.alloc(stream_buffer_bytes(gpu.props().l2_bytes))?,
            copy_dev: gpu.alloc(2 * max_copy)?,
            host: gpu.alloc_pinned(max_copy)?,
            offset: 0,
        })
    }

    /// Launches `k` on `stream` at this client's current offset and moves the offset on.
    pub fn launch(&mut self, gpu: &Gpu, stream: &Stream, k: &KernelLaunch) -> Result<()> {
        gpu.launch(stream, k, &self.stream, self.offset)?;
        let half = (self.stream.elements() / 2).max(1);
        self.offset = (self.offset + k.elements() % half) % half;
        Ok(())
    }
}

impl Drop for WorkBuffers {
    fn drop(&mut self) {
        // The buffers free themselves; make sure no kernel or copy still uses them.
        self.stream.ctx.record_err(self.stream.ctx.synchronize());
    }
}

/// Bytes of a streaming buffer: each half (read, written) at least four times the L2 and at
/// least 256 MiB.
pub fn stream_buffer_bytes(l2_bytes: u64) -> u64 {
    let half = (4 * l2_bytes).max(256 << 20);
    2 * half.div_ceil(1 << 20) * (1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles the kernels when NVRTC can be loaded (it needs no GPU); skipped otherwise.
    #[test]
    fn the_synthetic_kernels_compile_with_nvrtc() {
        if ensure_nvrtc().is_err() {
            eprintln!("skipped: NVRTC cannot be loaded");
            return;
        }
        let ptx = compile_synthetic("compute_90").expect("the kernels compile").to_src();
        for name in kernels::KERNEL_NAMES.iter().chain([&kernels::SPIN_KERNEL]) {
            assert!(ptx.contains(&format!(".entry {name}(")), "{name} missing");
        }
        assert!(ptx.contains(".maxnreg 32"), "register cap missing");
    }

    /// ptxas keeps every synthetic kernel within 32 registers without spilling (a spill would
    /// add local-memory traffic to the kernels' footprint).
    #[test]
    fn the_synthetic_kernels_do_not_spill() {
        if ensure_nvrtc().is_err() {
            eprintln!("skipped: NVRTC cannot be loaded");
            return;
        }
        let log = ptxas_report("sm_90").expect("compiles");
        eprintln!("{log}");
        assert!(!log.contains("spilled"), "{log}");
        for l in log.lines().filter(|l| l.contains("Used ")) {
            let regs: u32 =
                l.split("Used ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
            assert!(regs <= kernels::MAX_REGISTERS, "{l}");
        }
    }

    #[test]
    fn stream_buffers_are_at_least_four_l2s_per_half() {
        let b = stream_buffer_bytes(50 << 20);
        assert!(b / 2 >= 256 << 20);
        assert!(stream_buffer_bytes(100 << 20) / 2 >= 400 << 20);
        assert_eq!(b % (1 << 20), 0);
    }
}
