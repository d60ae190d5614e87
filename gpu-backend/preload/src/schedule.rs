//! Scheduling mode: each registered client (one thread of the process) has its work captured
//! into its queue while a request is open; a scheduler thread inside the library runs the
//! same policy objects as the simulator (`orion_policies`: the registry, [`SchedState`], the
//! policy's `schedule` after every change), submits admitted ops on its own streams at the
//! priorities the policy asks for, and tracks completion with one event per op.
//!
//! The client side never blocks on the scheduler except where the program itself waits for
//! the GPU: a synchronisation call (or any call that must see the client's earlier work, such
//! as `cudaFree` or an op this mode does not capture) first waits until every op the client
//! queued has completed, then calls the real function. Work outside a request, and work of
//! unregistered threads, passes straight through.
//!
//! Configuration (`ORION_PRELOAD_CONFIG`, JSON, format `orion-rs-preload/1`):
//! `{"policy": "orion", "params": {...}, "device": {"name": "H100", "sm_count": 132},
//!   "clients": [{"name": "hp", "role": "hp", "kind": "inference", "warmup": 10,
//!                "trace": "profile.json", "standalone_latency_ns": 5000000}, ...]}`.
//! `trace` (optional) is a kernel profile in any of the project's trace formats; without one
//! every op gets the `unknown` fallback profile.

use crate::ffi::*;
use crate::guard;
use crate::matching::{MatchOutcome, Matcher, OpKey, fallback_table};
use crate::real;
use orion_policies::{
    Action, Backend, ClientInfo, ClientState, Completion, DeviceInfo, ParamMap, Policy, PolicySetup, RequestDone,
    SchedState, StreamPriority,
};
use orion_traces::{OpRecord, Role, WorkKind};
use serde_json::{Value, json};
use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::{CStr, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// One client as configured.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Display name.
    pub name: String,
    /// HP or BE.
    pub role: Role,
    /// Inference or training.
    pub kind: WorkKind,
    /// Warm-up requests.
    pub warmup: u32,
    /// Its kernel profile (may be empty).
    pub profile: Vec<OpRecord>,
    /// Standalone request latency, ns (0: the profile's summed durations).
    pub standalone_latency_ns: u64,
}

/// The scheduler's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Policy name (as the registry knows it).
    pub policy: String,
    /// Policy parameters.
    pub params: ParamMap,
    /// Device name.
    pub device_name: String,
    /// SMs of the device.
    pub sm_count: u32,
    /// Clients, by id.
    pub clients: Vec<ClientConfig>,
}

fn field<'a>(v: &'a Value, key: &str, origin: &str) -> Result<&'a Value, String> {
    v.get(key).ok_or_else(|| format!("{origin}: missing field `{key}`"))
}

/// Reads the configuration file (errors name the file and the field).
pub fn read_config(path: &str) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("ORION_PRELOAD_CONFIG={path}: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))?;
    let policy = field(&v, "policy", path)?.as_str().ok_or_else(|| format!("{path}: `policy` must be a string"))?;
    let params: ParamMap = match v.get("params") {
        None | Some(Value::Null) => ParamMap::new(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(_) => return Err(format!("{path}: `params` must be an object")),
    };
    let device = field(&v, "device", path)?;
    let sm_count = field(device, "sm_count", &format!("{path}: device"))?
        .as_u64()
        .filter(|&n| (1..=10_000).contains(&n))
        .ok_or_else(|| format!("{path}: device.sm_count must be a positive integer"))? as u32;
    let device_name = device.get("name").and_then(Value::as_str).unwrap_or("gpu").to_string();
    let base = Path::new(path).parent().unwrap_or(Path::new("."));
    let mut clients = Vec::new();
    for (i, c) in field(&v, "clients", path)?
        .as_array()
        .ok_or_else(|| format!("{path}: `clients` must be a list"))?
        .iter()
        .enumerate()
    {
        let origin = format!("{path}: clients[{i}]");
        let text_field = |k: &str, default: &str| -> Result<String, String> {
            match c.get(k) {
                None | Some(Value::Null) => Ok(default.to_string()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("{origin}.{k} must be a string")),
            }
        };
        let name = text_field("name", &format!("client{i}"))?;
        let role: Role = text_field("role", "be")?.parse().map_err(|e| format!("{origin}.role: {e}"))?;
        let kind: WorkKind = text_field("kind", "inference")?.parse().map_err(|e| format!("{origin}.kind: {e}"))?;
        let warmup = c.get("warmup").and_then(Value::as_u64).unwrap_or(10) as u32;
        let profile = match c.get("trace").and_then(Value::as_str) {
            Some(t) => {
                let p = base.join(t);
                orion_traces::format::read_trace(&p).map_err(|e| format!("{origin}.trace: {e}"))?.ops
            }
            None => Vec::new(),
        };
        let standalone_latency_ns = c.get("standalone_latency_ns").and_then(Value::as_u64).unwrap_or(0);
        clients.push(ClientConfig { name, role, kind, warmup, profile, standalone_latency_ns });
    }
    if clients.is_empty() {
        return Err(format!("{path}: no clients"));
    }
    if clients.iter().filter(|c| c.role == Role::Hp).count() > 1 {
        return Err(format!("{path}: more than one client has role hp"));
    }
    orion_policies::registry::build(policy, &params).map_err(|e| format!("{path}: {e}"))?;
    Ok(Config { policy: policy.to_string(), params, device_name, sm_count, clients })
}

// ------------------------------------------------------------------------------------------
// Captured work
// ------------------------------------------------------------------------------------------

/// Kernel arguments copied out of the caller's frame: each parameter at an 8-byte aligned
/// offset of `data`.
#[derive(Debug, Default)]
pub struct ArgBuf {
    data: Vec<u64>,
    offsets: Vec<usize>,
    ptrs: Vec<*mut c_void>,
}

impl ArgBuf {
    /// Copies the parameters `args[i]` of sizes `sizes[i]`.
    ///
    /// # Safety
    /// `args` holds `sizes.len()` pointers to parameters of those sizes.
    unsafe fn copy(args: *mut *mut c_void, sizes: &[usize]) -> ArgBuf {
        let mut offsets = Vec::with_capacity(sizes.len());
        let mut total = 0usize;
        for &s in sizes {
            offsets.push(total);
            total += s.div_ceil(8) * 8;
        }
        let mut data = vec![0u64; total / 8 + 1];
        let base = data.as_mut_ptr().cast::<u8>();
        for (i, &s) in sizes.iter().enumerate() {
            // SAFETY: args[i] points to s bytes; data holds offsets[i] + s bytes.
            unsafe { std::ptr::copy_nonoverlapping((*args.add(i)).cast::<u8>(), base.add(offsets[i]), s) };
        }
        ArgBuf { data, offsets, ptrs: Vec::new() }
    }

    /// The `void **` the launch functions take (valid while `self` is not moved or changed).
    fn pointers(&mut self) -> *mut *mut c_void {
        let base = self.data.as_mut_ptr().cast::<u8>();
        // SAFETY: every offset lies inside data.
        self.ptrs = self.offsets.iter().map(|&o| unsafe { base.add(o) }.cast::<c_void>()).collect();
        if self.ptrs.is_empty() { std::ptr::null_mut() } else { self.ptrs.as_mut_ptr() }
    }
}

/// The GPU work of a captured op, ready to be submitted to another stream (the fields are the
/// CUDA call's own arguments, copied).
#[derive(Debug)]
#[allow(missing_docs)]
pub enum Work {
    /// `__cudaLaunchKernel` / `cudaLaunchKernel` (any form).
    RtLaunch { real: RtLaunchFn, func: usize, grid: Dim3, block: Dim3, shared_mem: usize, args: ArgBuf },
    /// `cudaLaunchKernelExC` (any form).
    RtLaunchEx {
        real: RtLaunchExFn,
        func: usize,
        grid: Dim3,
        block: Dim3,
        shared_mem: usize,
        attrs: Vec<u8>,
        num_attrs: u32,
        args: ArgBuf,
    },
    /// `cuLaunchKernel` (any form).
    DrvLaunch { real: DrvLaunchFn, f: usize, grid: [u32; 3], block: [u32; 3], shared_mem: u32, args: ArgBuf },
    /// `cuLaunchKernelEx` (any form).
    DrvLaunchEx {
        real: DrvLaunchExFn,
        f: usize,
        grid: [u32; 3],
        block: [u32; 3],
        shared_mem: u32,
        attrs: Vec<u8>,
        num_attrs: u32,
        args: ArgBuf,
    },
    /// `cudaMemcpyAsync`; `staged` holds the source bytes of a host-to-device copy.
    Memcpy { real: usize, dst: usize, src: usize, staged: Option<Vec<u8>>, bytes: usize, kind: i32 },
    /// `cudaMemsetAsync`.
    Memset { real: usize, dst: usize, value: i32, bytes: usize },
    /// A driver memset (`cuMemsetD*Async`), the stream at argument `stream_arg`.
    Generic { real: Generic6Fn, args: [usize; 6], stream_arg: usize },
}

// SAFETY: the pointers inside are device addresses, function handles and buffers owned by the
// op; the op moves once, from the client thread to the scheduler thread.
unsafe impl Send for Work {}

/// Size of `cudaLaunchAttribute` / `CUlaunchAttribute` (id, padding, 64-byte value union).
pub const LAUNCH_ATTRIBUTE_BYTES: usize = 72;

type MemcpyAsyncFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, i32, Stream) -> Status;
type MemsetAsyncFn = unsafe extern "C" fn(*mut c_void, i32, usize, Stream) -> Status;

impl Work {
    /// Submits the op to `stream`.
    ///
    /// # Safety
    /// The op's handles and addresses are valid in the current context.
    unsafe fn submit(&mut self, stream: Stream) -> Status {
        unsafe {
            match self {
                Work::RtLaunch { real, func, grid, block, shared_mem, args } => {
                    real(*func as *const c_void, *grid, *block, args.pointers(), *shared_mem, stream)
                }
                Work::RtLaunchEx { real, func, grid, block, shared_mem, attrs, num_attrs, args } => {
                    let config = RtLaunchConfig {
                        grid_dim: *grid,
                        block_dim: *block,
                        dynamic_smem_bytes: *shared_mem,
                        stream,
                        attrs: if attrs.is_empty() { std::ptr::null_mut() } else { attrs.as_mut_ptr().cast() },
                        num_attrs: *num_attrs,
                    };
                    real(&config, *func as *const c_void, args.pointers())
                }
                Work::DrvLaunch { real, f, grid, block, shared_mem, args } => real(
                    *f as *mut c_void,
                    grid[0],
                    grid[1],
                    grid[2],
                    block[0],
                    block[1],
                    block[2],
                    *shared_mem,
                    stream,
                    args.pointers(),
                    std::ptr::null_mut(),
                ),
                Work::DrvLaunchEx { real, f, grid, block, shared_mem, attrs, num_attrs, args } => {
                    let config = DrvLaunchConfig {
                        grid: *grid,
                        block: *block,
                        shared_mem_bytes: *shared_mem,
                        stream,
                        attrs: if attrs.is_empty() { std::ptr::null_mut() } else { attrs.as_mut_ptr().cast() },
                        num_attrs: *num_attrs,
                    };
                    real(&config, *f as *mut c_void, args.pointers(), std::ptr::null_mut())
                }
                Work::Memcpy { real, dst, src, staged, bytes, kind } => {
                    let f = std::mem::transmute::<usize, MemcpyAsyncFn>(*real);
                    let src = staged.as_ref().map_or(*src as *const c_void, |v| v.as_ptr().cast());
                    f(*dst as *mut c_void, src, *bytes, *kind, stream)
                }
                Work::Memset { real, dst, value, bytes } => {
                    let f = std::mem::transmute::<usize, MemsetAsyncFn>(*real);
                    f(*dst as *mut c_void, *value, *bytes, stream)
                }
                Work::Generic { real, args, stream_arg } => {
                    let mut a = *args;
                    a[*stream_arg] = stream as usize;
                    real(a[0], a[1], a[2], a[3], a[4], a[5])
                }
            }
        }
    }
}

/// A captured op: what it is (for matching) and its work.
#[derive(Debug)]
pub struct Captured {
    /// Kind, name and grid.
    pub key: OpKey,
    /// The GPU work.
    pub work: Work,
}

enum Msg {
    Begin(u64),
    Op(Box<Captured>),
    End,
}

// ------------------------------------------------------------------------------------------
// Shared state
// ------------------------------------------------------------------------------------------

struct ClientShared {
    inbox: Mutex<VecDeque<Msg>>,
    issued: AtomicU64,
    completed: AtomicU64,
    in_request: AtomicBool,
}

struct Shared {
    config: Config,
    clients: Vec<ClientShared>,
    scheduler: OnceLock<std::thread::Thread>,
    stats: Mutex<Value>,
}

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

thread_local! {
    static CLIENT: Cell<i32> = const { Cell::new(-1) };
}

/// Starts the scheduler from the configuration file at `path`.
pub fn start(path: &str) -> Result<(), String> {
    let config = read_config(path)?;
    let clients = config
        .clients
        .iter()
        .map(|_| ClientShared {
            inbox: Mutex::new(VecDeque::new()),
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            in_request: AtomicBool::new(false),
        })
        .collect();
    let shared = Arc::new(Shared { config, clients, scheduler: OnceLock::new(), stats: Mutex::new(json!({})) });
    SHARED.set(shared.clone()).map_err(|_| "scheduler started twice".to_string())?;
    let handle = std::thread::Builder::new()
        .name("orion-scheduler".into())
        .spawn(move || {
            guard::mark_internal();
            if guard::guarded("the scheduler thread", || scheduler_main(&shared)).is_none() {
                // guarded already logged and switched to pass-through.
            }
        })
        .map_err(|e| format!("cannot start the scheduler thread: {e}"))?;
    let _ = SHARED.get().map(|s| s.scheduler.set(handle.thread().clone()));
    Ok(())
}

fn shared() -> Option<&'static Arc<Shared>> {
    SHARED.get()
}

fn wake_scheduler(s: &Shared) {
    if let Some(t) = s.scheduler.get() {
        t.unpark();
    }
}

/// Registers the calling thread as client `id`.
pub fn register(id: i32) -> Option<()> {
    let s = shared()?;
    if id < 0 || id as usize >= s.clients.len() {
        return None;
    }
    CLIENT.with(|c| c.set(id));
    Some(())
}

/// A request of client `id` begins.
pub fn request_begin(id: i32, scheduled_arrival_ns: u64) {
    let Some(s) = shared() else { return };
    let Some(c) = s.clients.get(id as usize) else { return };
    wait_client(id as usize);
    c.in_request.store(true, Ordering::Release);
    push(s, id as usize, Msg::Begin(scheduled_arrival_ns));
}

/// The current request of client `id` ended.
pub fn request_end(id: i32) {
    let Some(s) = shared() else { return };
    let Some(c) = s.clients.get(id as usize) else { return };
    wait_client(id as usize);
    c.in_request.store(false, Ordering::Release);
    push(s, id as usize, Msg::End);
}

fn push(s: &Shared, c: usize, m: Msg) {
    let mut q = s.clients[c].inbox.lock().unwrap_or_else(|e| e.into_inner());
    q.push_back(m);
    drop(q);
    wake_scheduler(s);
}

/// The calling thread's client, if it is registered and inside a request.
pub fn current_client() -> Option<usize> {
    let id = CLIENT.with(Cell::get);
    if id < 0 {
        return None;
    }
    let s = shared()?;
    let c = s.clients.get(id as usize)?;
    c.in_request.load(Ordering::Acquire).then_some(id as usize)
}

/// Queues a captured op of client `c`.
pub fn enqueue(c: usize, op: Captured) {
    if let Some(s) = shared() {
        s.clients[c].issued.fetch_add(1, Ordering::AcqRel);
        push(s, c, Msg::Op(Box::new(op)));
    }
}

/// Waits until every op client `c` queued has completed (or the scheduler stopped).
pub fn wait_client(c: usize) {
    let Some(s) = shared() else { return };
    let cs = &s.clients[c];
    let mut spins = 0u32;
    while cs.completed.load(Ordering::Acquire) < cs.issued.load(Ordering::Acquire) {
        if SCHEDULER_DEAD.load(Ordering::Acquire) {
            return;
        }
        spins += 1;
        if spins < 2000 {
            std::hint::spin_loop();
        } else if spins < 4000 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Waits for the calling thread's queued work, if it is a client (before a call that must
/// see it: a sync, `cudaFree`, an op this mode does not capture).
pub fn wait_current() {
    let id = CLIENT.with(Cell::get);
    if id >= 0 && shared().is_some_and(|s| (id as usize) < s.clients.len()) {
        wait_client(id as usize);
    }
}

static SCHEDULER_DEAD: AtomicBool = AtomicBool::new(false);

/// The scheduler's counters, as JSON (for `orion_stats_json`).
pub fn stats_json() -> Value {
    shared().map_or(Value::Null, |s| s.stats.lock().map(|v| v.clone()).unwrap_or(Value::Null))
}

// ------------------------------------------------------------------------------------------
// Driver and runtime functions the scheduler needs
// ------------------------------------------------------------------------------------------

fn cudart<F: Copy>(slot: &AtomicPtr<c_void>, name: &CStr) -> Result<F, String> {
    let p = real::cudart_symbol(slot, name);
    if p.is_null() {
        return Err(format!("the runtime lacks {}", name.to_string_lossy()));
    }
    // SAFETY: F is the function-pointer type of `name`.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

macro_rules! rt {
    ($name:literal, $ty:ty) => {{
        static SLOT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
        cudart::<$ty>(&SLOT, $name)
    }};
}

fn driver_fn(name: &CStr) -> Result<*mut c_void, String> {
    static LIBCUDA: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
    let mut h = LIBCUDA.load(Ordering::Acquire);
    if h.is_null() {
        // SAFETY: RTLD_NOLOAD only returns an already loaded libcuda.
        h = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        LIBCUDA.store(h, Ordering::Release);
    }
    let dlsym = real::real_dlsym().ok_or("no real dlsym")?;
    if h.is_null() {
        return Err("libcuda.so.1 is not loaded".into());
    }
    // SAFETY: a valid handle and name.
    let p = unsafe { dlsym(h, name.as_ptr()) };
    if p.is_null() { Err(format!("libcuda lacks {}", name.to_string_lossy())) } else { Ok(p) }
}

type ParamInfoFn = unsafe extern "C" fn(*mut c_void, usize, *mut usize, *mut usize) -> Status;
type GetNameFn = unsafe extern "C" fn(*mut *const libc::c_char, *mut c_void) -> Status;
type FuncBySymbolFn = unsafe extern "C" fn(*mut *mut c_void, *const c_void) -> Status;

struct DriverFns {
    func_param_info: ParamInfoFn,
    kernel_param_info: ParamInfoFn,
    func_name: GetNameFn,
    kernel_name: GetNameFn,
}

fn driver_fns() -> Result<&'static DriverFns, String> {
    static FNS: OnceLock<Result<DriverFns, String>> = OnceLock::new();
    FNS.get_or_init(|| {
        // SAFETY: the signatures of these driver functions.
        unsafe {
            Ok(DriverFns {
                func_param_info: std::mem::transmute::<*mut c_void, ParamInfoFn>(driver_fn(c"cuFuncGetParamInfo")?),
                kernel_param_info: std::mem::transmute::<*mut c_void, ParamInfoFn>(driver_fn(c"cuKernelGetParamInfo")?),
                func_name: std::mem::transmute::<*mut c_void, GetNameFn>(driver_fn(c"cuFuncGetName")?),
                kernel_name: std::mem::transmute::<*mut c_void, GetNameFn>(driver_fn(c"cuKernelGetName")?),
            })
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// What a kernel handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handle {
    /// A `CUfunction`.
    Function(usize),
    /// A `CUkernel` / `cudaKernel_t` (`__cudaLaunchKernel` under CUDA 13).
    Kernel(usize),
    /// A host launch stub (`cudaLaunchKernel`, `cudaLaunchKernelExC`).
    Stub(usize),
}

/// A kernel's parameter sizes and name (cached per handle).
#[derive(Debug)]
pub struct KernelInfo {
    /// Sizes of the parameters, in order.
    pub param_sizes: Vec<usize>,
    /// The kernel's (mangled) name.
    pub name: String,
}

/// The parameter sizes and name of a kernel, from the driver's parameter info.
pub fn kernel_info(h: Handle) -> Result<Arc<KernelInfo>, String> {
    static CACHE: OnceLock<Mutex<std::collections::HashMap<Handle, Arc<KernelInfo>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(k) = cache.lock().map_err(|e| e.to_string())?.get(&h) {
        return Ok(k.clone());
    }
    let d = driver_fns()?;
    // Try the handle as what its launch path says it is, then as the other kind a launch of
    // that path may carry (a `CUkernel` passed to `cuLaunchKernel`, a stub to
    // `__cudaLaunchKernel`): the first under which the driver knows the kernel's name wins.
    let candidates = match h {
        Handle::Function(v) => [Handle::Function(v), Handle::Kernel(v)],
        Handle::Kernel(v) => [Handle::Kernel(v), Handle::Stub(v)],
        Handle::Stub(v) => [Handle::Stub(v), Handle::Kernel(v)],
    };
    let mut last_error = String::new();
    let mut found = None;
    for cand in candidates {
        let (ptr, info_fn, name_fn) = match cand {
            Handle::Function(f) => (f, d.func_param_info, d.func_name),
            Handle::Kernel(k) => (k, d.kernel_param_info, d.kernel_name),
            Handle::Stub(s) => {
                let by_symbol: FuncBySymbolFn = rt!(c"cudaGetFuncBySymbol", FuncBySymbolFn)?;
                let mut f = std::ptr::null_mut();
                // SAFETY: a host stub the application launched.
                let r = unsafe { by_symbol(&mut f, s as *const c_void) };
                if r != SUCCESS || f.is_null() {
                    last_error = format!("cudaGetFuncBySymbol failed ({r})");
                    continue;
                }
                (f as usize, d.func_param_info, d.func_name)
            }
        };
        let mut name_ptr: *const libc::c_char = std::ptr::null();
        // SAFETY: out-pointer to a local; the driver checks the handle.
        let r = unsafe { name_fn(&mut name_ptr, ptr as *mut c_void) };
        if r != SUCCESS || name_ptr.is_null() {
            last_error = format!("the driver does not know the kernel {cand:?} ({r})");
            continue;
        }
        // SAFETY: the driver returns a NUL-terminated name it owns.
        let name = unsafe { CStr::from_ptr(name_ptr) }.to_string_lossy().into_owned();
        found = Some((ptr, info_fn, name));
        break;
    }
    let Some((ptr, info_fn, name)) = found else { return Err(last_error) };
    let mut param_sizes = Vec::new();
    for i in 0..4096 {
        let (mut offset, mut size) = (0usize, 0usize);
        // SAFETY: a valid handle; out-pointers to locals.
        let r = unsafe { info_fn(ptr as *mut c_void, i, &mut offset, &mut size) };
        if r != SUCCESS {
            break;
        }
        param_sizes.push(size);
    }
    let info = Arc::new(KernelInfo { param_sizes, name });
    cache.lock().map_err(|e| e.to_string())?.insert(h, info.clone());
    Ok(info)
}

/// Copies a launch's arguments: `params` by the kernel's parameter sizes.
///
/// # Safety
/// `params` is the application's argument array for this kernel.
pub unsafe fn copy_args(info: &KernelInfo, params: *mut *mut c_void) -> Result<ArgBuf, String> {
    if info.param_sizes.is_empty() {
        return Ok(ArgBuf::default());
    }
    if params.is_null() {
        return Err("a launch with `extra` instead of kernel parameters".into());
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { ArgBuf::copy(params, &info.param_sizes) })
}

/// Copies `n` launch attributes.
///
/// # Safety
/// `attrs` points to `n` attributes (or is null with `n` 0).
pub unsafe fn copy_attrs(attrs: *const c_void, n: u32) -> Vec<u8> {
    if attrs.is_null() || n == 0 {
        return Vec::new();
    }
    let len = n as usize * LAUNCH_ATTRIBUTE_BYTES;
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(attrs.cast::<u8>(), len) }.to_vec()
}

// ------------------------------------------------------------------------------------------
// The scheduler thread
// ------------------------------------------------------------------------------------------

type StreamCreateFn = unsafe extern "C" fn(*mut Stream, u32, i32) -> Status;
type PriorityRangeFn = unsafe extern "C" fn(*mut i32, *mut i32) -> Status;
type EventCreateFn = unsafe extern "C" fn(*mut *mut c_void, u32) -> Status;
type EventRecordFn = unsafe extern "C" fn(*mut c_void, Stream) -> Status;
type EventQueryFn = unsafe extern "C" fn(*mut c_void) -> Status;

const STREAM_NON_BLOCKING: u32 = 1;
const EVENT_DISABLE_TIMING: u32 = 2;

struct Gpu {
    streams: Vec<Stream>,
    cuda_priorities: Vec<i32>,
    event_create: EventCreateFn,
    event_record: EventRecordFn,
    event_query: EventQueryFn,
    pool: Vec<*mut c_void>,
}

impl Gpu {
    fn new(priorities: &[StreamPriority]) -> Result<Gpu, String> {
        let range: PriorityRangeFn = rt!(c"cudaDeviceGetStreamPriorityRange", PriorityRangeFn)?;
        let create: StreamCreateFn = rt!(c"cudaStreamCreateWithPriority", StreamCreateFn)?;
        let (mut least, mut greatest) = (0, 0);
        // SAFETY: out-pointers to locals.
        let r = unsafe { range(&mut least, &mut greatest) };
        if r != SUCCESS {
            return Err(format!("cudaDeviceGetStreamPriorityRange failed ({r})"));
        }
        let mut streams = Vec::new();
        let mut cuda_priorities = Vec::new();
        for p in priorities {
            let prio = if *p == StreamPriority::High { greatest } else { least };
            let mut s: Stream = std::ptr::null_mut();
            // SAFETY: as above.
            let r = unsafe { create(&mut s, STREAM_NON_BLOCKING, prio) };
            if r != SUCCESS {
                return Err(format!("cudaStreamCreateWithPriority failed ({r})"));
            }
            streams.push(s);
            cuda_priorities.push(prio);
        }
        Ok(Gpu {
            streams,
            cuda_priorities,
            event_create: rt!(c"cudaEventCreateWithFlags", EventCreateFn)?,
            event_record: rt!(c"cudaEventRecord", EventRecordFn)?,
            event_query: rt!(c"cudaEventQuery", EventQueryFn)?,
            pool: Vec::new(),
        })
    }

    fn event(&mut self) -> Result<*mut c_void, String> {
        if let Some(e) = self.pool.pop() {
            return Ok(e);
        }
        let mut e = std::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        let r = unsafe { (self.event_create)(&mut e, EVENT_DISABLE_TIMING) };
        if r != SUCCESS { Err(format!("cudaEventCreateWithFlags failed ({r})")) } else { Ok(e) }
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(Default, Clone, Copy)]
struct ClientCounters {
    position: u64,
    lookup: u64,
    unknown: u64,
    submitted: u64,
    completed: u64,
    requests: u64,
}

fn scheduler_main(shared: &Shared) {
    let config = &shared.config;
    let mut policy: Box<dyn Policy> = match orion_policies::registry::build(&config.policy, &config.params) {
        Ok(p) => p,
        Err(e) => return fatal(&e.to_string()),
    };
    let device = DeviceInfo { name: config.device_name.clone(), sm_count: config.sm_count };
    let matchers: Vec<Matcher> =
        config.clients.iter().map(|c| Matcher::new(c.profile.clone(), config.sm_count)).collect();
    let fallback: Arc<[OpRecord]> = Arc::from(fallback_table(config.sm_count));
    let infos: Vec<ClientInfo> = config
        .clients
        .iter()
        .enumerate()
        .map(|(id, c)| ClientInfo {
            id,
            name: c.name.clone(),
            role: c.role,
            kind: c.kind,
            warmup: c.warmup,
            ops_per_request: c.profile.len(),
            standalone_latency_ns: if c.standalone_latency_ns > 0 {
                c.standalone_latency_ns
            } else {
                c.profile.iter().map(|r| r.duration_ns + r.host_gap()).sum()
            },
            max_sm_needed: c.profile.iter().map(|r| r.sm_needed).max().unwrap_or(config.sm_count),
            update_start: None,
        })
        .collect();
    if let Err(e) = policy.setup(&PolicySetup { clients: &infos, device: &device, backend: Backend::Real }) {
        return fatal(&e.to_string());
    }
    let priorities: Vec<StreamPriority> = infos.iter().map(|i| policy.stream_priority(i)).collect();
    let states = infos
        .iter()
        .zip(&matchers)
        .map(|(i, m)| ClientState::new(i.clone(), vec![Arc::from(m.profile()), fallback.clone()]))
        .collect();
    let mut state = SchedState::new(states, device);
    let n = infos.len();
    let mut gpu: Option<Gpu> = None;
    let mut pending: Vec<VecDeque<(u64, Captured)>> = (0..n).map(|_| VecDeque::new()).collect();
    let mut in_flight: Vec<VecDeque<*mut c_void>> = (0..n).map(|_| VecDeque::new()).collect();
    let mut arrival = vec![0u64; n];
    let mut index = vec![0usize; n];
    let mut end_pending = vec![false; n];
    let mut counters = vec![ClientCounters::default(); n];
    let mut actions: Vec<Action> = Vec::new();
    let mut wake_at = u64::MAX;
    let mut policy_calls = 0u64;
    let mut submit_errors = 0u64;
    let mut first_error = String::new();
    let mut idle_since = now_ns();
    let mut last_stats = 0u64;
    loop {
        let mut dirty = false;
        let now = now_ns();
        // 1. What the clients did, in program order.
        for c in 0..n {
            let msgs: Vec<Msg> = {
                let mut q = shared.clients[c].inbox.lock().unwrap_or_else(|e| e.into_inner());
                q.drain(..).collect()
            };
            for m in msgs {
                dirty = true;
                match m {
                    Msg::Begin(t) => {
                        state.begin_request(c);
                        policy.on_request_begin(c, now);
                        arrival[c] = t;
                        index[c] = 0;
                    }
                    Msg::Op(op) => {
                        let (profile, outcome) = matchers[c].find(index[c], &op.key);
                        match outcome {
                            MatchOutcome::Position => counters[c].position += 1,
                            MatchOutcome::Lookup => counters[c].lookup += 1,
                            MatchOutcome::Unknown => counters[c].unknown += 1,
                        }
                        let seq = state.issue(c, index[c], profile, now);
                        index[c] += 1;
                        pending[c].push_back((seq, *op));
                    }
                    Msg::End => end_pending[c] = true,
                }
            }
        }
        // 2. Completions (ops of a client complete in order).
        if let Some(g) = gpu.as_mut() {
            for c in 0..n {
                while let Some(&ev) = in_flight[c].front() {
                    // SAFETY: an event this thread created and recorded.
                    if unsafe { (g.event_query)(ev) } != SUCCESS {
                        break;
                    }
                    in_flight[c].pop_front();
                    g.pool.push(ev);
                    let done = state.complete(c);
                    let record = state.client(c).record(done.op.profile).clone();
                    policy.on_op_complete(&Completion {
                        client: c,
                        op: done.op,
                        record: &record,
                        submitted_at: done.submitted_at,
                        completed_at: now,
                    });
                    counters[c].completed += 1;
                    shared.clients[c].completed.fetch_add(1, Ordering::AcqRel);
                    dirty = true;
                }
            }
        }
        // 3. Requests whose end was marked and whose work is done.
        for c in 0..n {
            if end_pending[c] && !state.client(c).has_work() && state.client(c).request_active() {
                end_pending[c] = false;
                let request = state.client(c).request();
                state.end_request(c);
                counters[c].requests += 1;
                policy.on_request_complete(&RequestDone {
                    client: c,
                    request,
                    arrival: arrival[c],
                    completed_at: now,
                    warmup: request < infos[c].warmup as u64,
                });
                dirty = true;
            } else if end_pending[c] && !state.client(c).request_active() {
                end_pending[c] = false;
            }
        }
        // 4. The policy.
        if dirty || now >= wake_at {
            wake_at = u64::MAX;
            policy_calls += 1;
            let wake = {
                let mut cx = state.context(now, &mut actions);
                policy.schedule(&mut cx);
                cx.wake()
            };
            if let Some(w) = wake {
                wake_at = w;
            }
            for a in actions.drain(..) {
                let Action::Submit { client, seq } = a else { continue };
                if gpu.is_none() {
                    match Gpu::new(&priorities) {
                        Ok(g) => gpu = Some(g),
                        Err(e) => return fatal(&e),
                    }
                }
                let g = gpu.as_mut().expect("created above");
                let Some((s, mut op)) = pending[client].pop_front() else { continue };
                debug_assert_eq!(s, seq);
                let stream = g.streams[client];
                // SAFETY: a captured op of this process, submitted in its client's order.
                let r = unsafe { op.work.submit(stream) };
                if r != SUCCESS {
                    submit_errors += 1;
                    if first_error.is_empty() {
                        first_error = format!("{:?} {} returned {r}", op.key.kind, op.key.name);
                    }
                }
                let ev = match g.event() {
                    Ok(e) => e,
                    Err(e) => return fatal(&e),
                };
                // SAFETY: an event of this thread on its own stream.
                unsafe { (g.event_record)(ev, stream) };
                in_flight[client].push_back(ev);
                counters[client].submitted += 1;
            }
        }
        // 5. Stats now and then; wait when idle.
        if now - last_stats > 20_000_000 {
            last_stats = now;
            publish(shared, &*policy, &counters, policy_calls, submit_errors, &first_error, gpu.as_ref());
        }
        let busy = dirty || in_flight.iter().any(|q| !q.is_empty());
        if busy {
            idle_since = now;
            std::hint::spin_loop();
        } else if now - idle_since < 200_000 {
            std::thread::yield_now();
        } else {
            let timeout = if wake_at == u64::MAX { 1_000_000 } else { wake_at.saturating_sub(now).min(1_000_000) };
            std::thread::park_timeout(Duration::from_nanos(timeout.max(1_000)));
        }
    }
}

fn publish(
    shared: &Shared,
    policy: &dyn Policy,
    counters: &[ClientCounters],
    policy_calls: u64,
    submit_errors: u64,
    first_error: &str,
    gpu: Option<&Gpu>,
) {
    let clients: Vec<Value> = counters
        .iter()
        .zip(&shared.config.clients)
        .map(|(k, c)| {
            json!({"name": c.name, "matched_position": k.position, "matched_lookup": k.lookup,
                   "unknown": k.unknown, "submitted": k.submitted, "completed": k.completed,
                   "requests": k.requests})
        })
        .collect();
    let v = json!({
        "policy": policy.name(),
        "params": policy.params(),
        "counters": policy.counters(),
        "policy_calls": policy_calls,
        "submit_errors": submit_errors,
        "first_submit_error": first_error,
        "stream_priorities": gpu.map(|g| g.cuda_priorities.clone()),
        "clients": clients,
    });
    if let Ok(mut s) = shared.stats.lock() {
        *s = v;
    }
}

fn fatal(reason: &str) {
    SCHEDULER_DEAD.store(true, Ordering::Release);
    guard::fail(&format!("scheduler: {reason}"));
}

/// Whether the scheduler is running (not failed).
pub fn alive() -> bool {
    shared().is_some() && !SCHEDULER_DEAD.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn config_errors_name_the_file_and_field() {
        let dir = std::env::temp_dir().join(format!("orion-preload-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = read_config(&dir.join("none.json").to_string_lossy()).unwrap_err();
        assert!(e.contains("none.json"), "{e}");
        let p = write(&dir, "a.json", r#"{"device": {"sm_count": 132}, "clients": [{}]}"#);
        assert!(read_config(&p).unwrap_err().contains("missing field `policy`"));
        let p = write(&dir, "b.json", r#"{"policy": "orion", "device": {"sm_count": 0}, "clients": [{}]}"#);
        assert!(read_config(&p).unwrap_err().contains("device.sm_count"));
        let p = write(&dir, "c.json", r#"{"policy": "nope", "device": {"sm_count": 132}, "clients": [{}]}"#);
        assert!(read_config(&p).unwrap_err().contains("unknown policy"));
        let p =
            write(&dir, "d.json", r#"{"policy": "orion", "device": {"sm_count": 132}, "clients": [{"role": "xx"}]}"#);
        assert!(read_config(&p).unwrap_err().contains("clients[0].role"));
        let p = write(
            &dir,
            "e.json",
            r#"{"policy": "orion", "device": {"sm_count": 132}, "clients": [{"role": "hp"}, {"trace": "missing.json"}]}"#,
        );
        assert!(read_config(&p).unwrap_err().contains("clients[1].trace"));
        let p = write(
            &dir,
            "f.json",
            r#"{"policy": "streams", "device": {"sm_count": 132}, "clients": [{"role": "hp"}, {}]}"#,
        );
        let c = read_config(&p).unwrap();
        assert_eq!(c.clients.len(), 2);
        assert_eq!(c.clients[0].role, Role::Hp);
        assert_eq!(c.clients[1].warmup, 10);
    }

    #[test]
    fn arguments_are_copied_by_size() {
        let a: u32 = 7;
        let b: [u8; 3] = [1, 2, 3];
        let c: u64 = 0xdead_beef;
        let mut ptrs = [
            (&a as *const u32).cast_mut().cast::<c_void>(),
            b.as_ptr().cast_mut().cast(),
            (&c as *const u64).cast_mut().cast(),
        ];
        let mut buf = unsafe { ArgBuf::copy(ptrs.as_mut_ptr(), &[4, 3, 8]) };
        let p = buf.pointers();
        unsafe {
            assert_eq!(*(*p).cast::<u32>(), 7);
            assert_eq!(std::slice::from_raw_parts((*p.add(1)).cast::<u8>(), 3), &[1, 2, 3]);
            assert_eq!(*(*p.add(2)).cast::<u64>(), 0xdead_beef);
        }
    }
}
