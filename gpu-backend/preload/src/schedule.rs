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
use std::collections::{HashMap, VecDeque};
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
        // A launch with more dynamic shared memory than the default 48 KiB needs the kernel's
        // maximum raised first; the application did so before it launched, but may have
        // lowered it again (for a smaller launch of the same kernel) before this one is
        // submitted: raise it to what this launch needs.
        match self {
            Work::RtLaunch { func, shared_mem, .. } | Work::RtLaunchEx { func, shared_mem, .. }
                if *shared_mem > DEFAULT_MAX_DYNAMIC_SMEM =>
            {
                ensure_dynamic_smem(Handle::Stub(*func), *shared_mem);
            }
            Work::DrvLaunch { f, shared_mem, .. } | Work::DrvLaunchEx { f, shared_mem, .. }
                if *shared_mem as usize > DEFAULT_MAX_DYNAMIC_SMEM =>
            {
                ensure_dynamic_smem(Handle::Function(*f), *shared_mem as usize);
            }
            _ => {}
        }
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

/// Dynamic shared memory a kernel may use without raising its maximum.
const DEFAULT_MAX_DYNAMIC_SMEM: usize = 48 * 1024;
/// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` (= `cudaFuncAttributeMaxDynamicSharedMemorySize`).
pub const ATTR_MAX_DYNAMIC_SMEM: i32 = 8;

/// The largest maximum dynamic shared memory asked for each kernel handle so far.
static MAX_DYNAMIC_SMEM: Mutex<Option<HashMap<usize, i32>>> = Mutex::new(None);

/// The maximum dynamic shared memory to set on kernel `handle` when `asked` is asked for: the
/// largest asked so far (it never decreases while launches may be queued).
pub fn monotonic_dynamic_smem(handle: usize, asked: i32) -> i32 {
    let mut g = MAX_DYNAMIC_SMEM.lock().unwrap_or_else(|e| e.into_inner());
    let m = g.get_or_insert_with(HashMap::new).entry(handle).or_insert(asked);
    *m = (*m).max(asked);
    *m
}

type FuncSetAttrFn = unsafe extern "C" fn(*mut c_void, i32, i32) -> Status;
type KernelSetAttrFn = unsafe extern "C" fn(i32, i32, *mut c_void, i32) -> Status;
type RtFuncSetAttrFn = unsafe extern "C" fn(*const c_void, i32, i32) -> Status;
type GetDeviceFn = unsafe extern "C" fn(*mut i32) -> Status;

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
    /// Messages pushed into `inbox` so far (the scheduler locks the inbox only when it grew).
    pushed: AtomicU64,
    /// Threads waiting for this client's queued ops now (its completions are then looked for
    /// on every turn of the scheduler's loop, not every `poll_ns`).
    waiters: AtomicU64,
    /// When the longest current wait for this client's queue began (ns; 0: nobody waits).
    wait_since: AtomicU64,
    issued: AtomicU64,
    completed: AtomicU64,
    in_request: AtomicBool,
}

struct Shared {
    config: Config,
    clients: Vec<ClientShared>,
    scheduler: OnceLock<std::thread::Thread>,
    stats: Mutex<Value>,
    /// Which client launches on each stream (by handle; [`AMBIGUOUS`] when several do).
    streams: Mutex<HashMap<usize, i32>>,
    /// Ops captured from threads that are not registered clients, per client they went to.
    adopted: Vec<AtomicU64>,
    /// Calls of unregistered threads passed through after waiting for every client's queue.
    drained_for_unregistered: AtomicU64,
    /// Latency of each request after warm-up (scheduled arrival to the completion of its last
    /// op), ns, per client; at most [`MAX_LATENCIES`] kept.
    latencies: Vec<Mutex<Vec<u64>>>,
}

/// A stream that more than one client launched on.
const AMBIGUOUS: i32 = -2;

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

thread_local! {
    static CLIENT: Cell<i32> = const { Cell::new(-1) };
    /// Time this thread spent waiting for queued work since [`take_waited`] last read it, ns.
    static WAITED: Cell<u64> = const { Cell::new(0) };
    /// The last stream this (client) thread was noted as launching on, plus one (0: none).
    static LAST_STREAM: Cell<usize> = const { Cell::new(0) };
    /// For a thread that is not a registered client (PyTorch's autograd thread): the client
    /// whose queue it last put an op into (-1: none). Its waits that cannot name a stream are
    /// for that client's queue, not for every client's: another client's queued ops may be
    /// held back by the policy until this one's request completes (`temporal` holds every
    /// other client's), and that request may be waiting for this very thread.
    static LAST_QUEUED: Cell<i32> = const { Cell::new(-1) };
}

/// Starts the scheduler from the configuration file at `path`.
pub fn start(path: &str) -> Result<(), String> {
    let config = read_config(path)?;
    let clients = config
        .clients
        .iter()
        .map(|_| ClientShared {
            inbox: Mutex::new(VecDeque::new()),
            pushed: AtomicU64::new(0),
            waiters: AtomicU64::new(0),
            wait_since: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            in_request: AtomicBool::new(false),
        })
        .collect();
    let n = config.clients.len();
    let shared = Arc::new(Shared {
        config,
        clients,
        scheduler: OnceLock::new(),
        stats: Mutex::new(json!({})),
        streams: Mutex::new(HashMap::new()),
        adopted: (0..n).map(|_| AtomicU64::new(0)).collect(),
        drained_for_unregistered: AtomicU64::new(0),
        latencies: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
    });
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
    take_waited();
    c.in_request.store(true, Ordering::Release);
    push(s, id as usize, Msg::Begin(scheduled_arrival_ns));
}

/// The current request of client `id` ended.
pub fn request_end(id: i32) {
    let Some(s) = shared() else { return };
    let Some(c) = s.clients.get(id as usize) else { return };
    wait_client(id as usize);
    take_waited();
    c.in_request.store(false, Ordering::Release);
    push(s, id as usize, Msg::End);
}

fn push(s: &Shared, c: usize, m: Msg) {
    let mut q = s.clients[c].inbox.lock().unwrap_or_else(|e| e.into_inner());
    q.push_back(m);
    s.clients[c].pushed.fetch_add(1, Ordering::Release);
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

/// A stream as the scheduler tells streams apart: `None` for a stream that means something
/// different on every thread (the per-thread default stream), else its handle (the legacy
/// default stream, `0` or `CU_STREAM_LEGACY`, as `0`).
pub fn stream_key(stream: Stream, per_thread: bool) -> Option<usize> {
    match stream as usize {
        0 if per_thread => None,
        0 | 1 => Some(0),
        2 => None,
        h => Some(h),
    }
}

fn note_stream(s: &Shared, key: usize, id: i32) {
    if LAST_STREAM.with(Cell::get) == key + 1 {
        return;
    }
    LAST_STREAM.with(|l| l.set(key + 1));
    let mut m = s.streams.lock().unwrap_or_else(|e| e.into_inner());
    let e = m.entry(key).or_insert(id);
    if *e != id {
        *e = AMBIGUOUS;
    }
}

/// The client that launches on stream `key`, if exactly one does.
fn stream_owner(s: &Shared, key: Option<usize>) -> Option<usize> {
    let k = key?;
    let m = s.streams.lock().unwrap_or_else(|e| e.into_inner());
    m.get(&k).copied().filter(|&o| o >= 0).map(|o| o as usize)
}

/// Where an op the application issues now on stream `key` goes: `Some(c)`: into client
/// `c`'s queue; `None`: straight to CUDA (after waiting for whatever queued work it must
/// follow).
///
/// * A registered client's thread inside a request: its own queue (and the stream is noted
///   as the client's).
/// * Any other thread (PyTorch's autograd thread runs `backward()` there): the queue of the
///   client that launches on the same stream, if one does and its request is open (so that
///   the order of every stream is kept: its ops all go through one queue); else, with an
///   unknown or shared stream, the one client whose request is open, if exactly one is;
///   else the call waits for every client's queued ops and passes through.
pub fn capture_target(key: Option<usize>) -> Option<usize> {
    let s = shared()?;
    let id = CLIENT.with(Cell::get);
    let open = |c: usize| s.clients.get(c).is_some_and(|c| c.in_request.load(Ordering::Acquire));
    if id >= 0 {
        if (id as usize) < s.clients.len()
            && open(id as usize)
            && let Some(k) = key
        {
            note_stream(s, k, id);
        }
        return open(id as usize).then_some(id as usize);
    }
    let owner = stream_owner(s, key);
    let open_clients: Vec<usize> = (0..s.clients.len()).filter(|&c| open(c)).collect();
    let last = LAST_QUEUED.with(Cell::get);
    let last = (last >= 0).then_some(last as usize);
    match route_unregistered(owner.map(|o| (o, open(o))), &open_clients, last) {
        Route::Queue(c) => {
            s.adopted[c].fetch_add(1, Ordering::Relaxed);
            LAST_QUEUED.with(|l| l.set(c as i32));
            Some(c)
        }
        Route::AfterClient(c) => {
            wait_client(c);
            None
        }
        Route::AfterAll => {
            if open_clients.len() > 1 {
                s.drained_for_unregistered.fetch_add(1, Ordering::Relaxed);
            }
            wait_all();
            None
        }
    }
}

/// Where an unregistered thread's op goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Into this client's queue.
    Queue(usize),
    /// To CUDA, after this client's queued ops.
    AfterClient(usize),
    /// To CUDA, after every client's queued ops.
    AfterAll,
}

/// The rule for an unregistered thread's op: `owner` is the client that launches on the op's
/// stream (and whether its request is open), `open` the clients whose request is open, `last`
/// the client whose queue the thread last put an op into. With no stream to go by and several
/// clients open, the op follows the thread's own earlier work (`last`) rather than every
/// queue: waiting for a client whose ops the policy holds back until the thread's client
/// finishes would never end.
pub fn route_unregistered(owner: Option<(usize, bool)>, open: &[usize], last: Option<usize>) -> Route {
    match (owner, open) {
        (Some((o, true)), _) => Route::Queue(o),
        (Some((o, false)), _) => Route::AfterClient(o),
        (None, [only]) => Route::Queue(*only),
        (None, _) => match last {
            Some(l) => Route::AfterClient(l),
            None => Route::AfterAll,
        },
    }
}

/// Queues a captured op of client `c`.
pub fn enqueue(c: usize, op: Captured) {
    if let Some(s) = shared() {
        s.clients[c].issued.fetch_add(1, Ordering::AcqRel);
        push(s, c, Msg::Op(Box::new(op)));
    }
}

/// Whether work the calling thread issues now on stream `key` would be queued
/// ([`capture_target`] without its side effects).
pub fn captures_stream(key: Option<usize>) -> bool {
    let Some(s) = shared() else { return false };
    let open = |c: usize| s.clients.get(c).is_some_and(|c| c.in_request.load(Ordering::Acquire));
    let id = CLIENT.with(Cell::get);
    if id >= 0 {
        return open(id as usize);
    }
    if let Some(o) = stream_owner(s, key) {
        return open(o);
    }
    (0..s.clients.len()).filter(|&c| open(c)).count() == 1
}

type EventSyncFn = unsafe extern "C" fn(*mut c_void) -> Status;

/// Waits on the host for event `ev` (the real `cuEventSynchronize`): before a stream wait
/// whose later work is queued, since that work is submitted on the scheduler's streams.
pub fn host_wait_event(ev: usize) {
    static SYNC: OnceLock<Option<usize>> = OnceLock::new();
    let f = *SYNC.get_or_init(|| driver_fn(c"cuEventSynchronize").ok().map(|p| p as usize));
    if let Some(f) = f {
        // SAFETY: the real cuEventSynchronize, on the application's event.
        unsafe { std::mem::transmute::<usize, EventSyncFn>(f)(ev as *mut c_void) };
    }
}

/// Waits until every op client `c` had queued when called has completed (or the scheduler
/// stopped); returns how long it waited (ns; 0 when nothing was outstanding).
pub fn wait_client(c: usize) -> u64 {
    let Some(s) = shared() else { return 0 };
    let Some(cs) = s.clients.get(c) else { return 0 };
    // A snapshot: ops queued after the call (by other threads) are not waited for.
    let target = cs.issued.load(Ordering::Acquire);
    if cs.completed.load(Ordering::Acquire) >= target {
        return 0;
    }
    let t0 = now_ns();
    cs.waiters.fetch_add(1, Ordering::AcqRel);
    let _ = cs.wait_since.compare_exchange(0, t0, Ordering::AcqRel, Ordering::Acquire);
    wake_scheduler(s);
    let mut spins = 0u32;
    while cs.completed.load(Ordering::Acquire) < target {
        if SCHEDULER_DEAD.load(Ordering::Acquire) {
            break;
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
    if cs.waiters.fetch_sub(1, Ordering::AcqRel) == 1 {
        cs.wait_since.store(0, Ordering::Release);
    }
    let waited = now_ns().saturating_sub(t0).max(1);
    WAITED.with(|w| w.set(w.get() + waited));
    waited
}

/// How long the calling thread waited for queued work since the last call (ns), for the
/// per-entry wait counters.
pub fn take_waited() -> u64 {
    WAITED.with(|w| w.replace(0))
}

/// Waits for every client's queued ops; returns how long it waited (ns).
pub fn wait_all() -> u64 {
    shared().map_or(0, |s| (0..s.clients.len()).map(wait_client).sum())
}

/// Whether client `c` has queued ops that have not completed.
pub fn client_busy(c: usize) -> bool {
    shared()
        .and_then(|s| s.clients.get(c))
        .is_some_and(|cs| cs.completed.load(Ordering::Acquire) < cs.issued.load(Ordering::Acquire))
}

/// What a call that must see earlier work has to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Work on one stream (`None`: a stream the scheduler cannot tell apart).
    Stream(Option<usize>),
    /// All work of the caller (a sync on an event, or any call that must see the caller's
    /// earlier ops).
    Caller,
    /// All work on the device (`cudaDeviceSynchronize`, `cudaFree`).
    Device,
}

/// Waits for the queued work a call of scope `scope` must see, and returns how long it
/// waited (ns). A registered client waits for its own queue only; for a device-wide call (the real call
/// then waits for everything already submitted: another client's ops that the policy still
/// holds are not the caller's to wait for, and under `temporal` they wait for the caller). A
/// thread that is not a client (PyTorch's autograd thread) waits for the stream's client, else
/// for the client whose queue it last used, else (a thread that never queued anything) for
/// every client.
pub fn wait_for(scope: Scope) -> u64 {
    let Some(s) = shared() else { return 0 };
    let id = CLIENT.with(Cell::get);
    let own = (id >= 0 && (id as usize) < s.clients.len()).then_some(id as usize);
    let last = LAST_QUEUED.with(Cell::get);
    let mine = own.or((last >= 0 && (last as usize) < s.clients.len()).then_some(last as usize));
    match scope {
        Scope::Device | Scope::Caller => match mine {
            Some(c) => wait_client(c),
            None => wait_all(),
        },
        // A client's sync waits for its own queue only, whatever the stream: clients are
        // independent programs, and a client waiting for another's queue (a stream the other
        // launched on first, such as the legacy default stream) may wait for ops the policy
        // holds back until the waiter itself progresses.
        Scope::Stream(_) if own.is_some() => own.map_or(0, wait_client),
        Scope::Stream(key) => match stream_owner(s, key) {
            Some(o) => wait_client(o),
            None => match mine {
                Some(c) => wait_client(c),
                None => wait_all(),
            },
        },
    }
}

/// Whether stream `key` has queued work that has not completed (for `cuStreamQuery`).
pub fn stream_busy(key: Option<usize>) -> bool {
    let Some(s) = shared() else { return false };
    let id = CLIENT.with(Cell::get);
    if id >= 0 && client_busy(id as usize) {
        return true;
    }
    stream_owner(s, key).is_some_and(client_busy)
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
    let Some(s) = shared() else { return Value::Null };
    let mut v = s.stats.lock().map(|v| v.clone()).unwrap_or(Value::Null);
    if let Some(list) = v.get_mut("clients").and_then(Value::as_array_mut) {
        for (c, entry) in list.iter_mut().enumerate() {
            if let Some(l) = s.latencies.get(c) {
                let l = l.lock().unwrap_or_else(|e| e.into_inner());
                entry["latency"] = latency_summary(&l);
            }
        }
    }
    v
}

/// Forgets the request latencies recorded so far (`orion_stats_reset`).
pub fn reset_latencies() {
    if let Some(s) = shared() {
        for l in &s.latencies {
            l.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
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

type PointerAttributesFn = unsafe extern "C" fn(*mut c_void, *const c_void) -> Status;
/// `cudaMemoryTypeHost`: page-locked host memory (allocated or registered with CUDA).
const MEMORY_TYPE_HOST: i32 = 1;

/// Whether address `p` lies in page-locked host memory (`cudaPointerGetAttributes`; anything
/// it does not know, or an error, counts as pageable).
pub fn host_pinned(p: usize) -> bool {
    let Ok(get) = rt!(c"cudaPointerGetAttributes", PointerAttributesFn) else { return false };
    // `cudaPointerAttributes`: the memory type (an int) first; room for the rest.
    let mut attrs = [0u64; 8];
    // SAFETY: an out-buffer larger than the structure; the pointer is only looked up.
    let r = unsafe { get(attrs.as_mut_ptr().cast(), p as *const c_void) };
    r == SUCCESS && (attrs[0] & 0xffff_ffff) as u32 as i32 == MEMORY_TYPE_HOST
}

/// Raises kernel `h`'s maximum dynamic shared memory to `bytes` (errors ignored: the launch
/// then reports its own).
fn ensure_dynamic_smem(h: Handle, bytes: usize) {
    let Ok(bytes) = i32::try_from(bytes) else { return };
    match h {
        Handle::Stub(func) => {
            if let Ok(set) = rt!(c"cudaFuncSetAttribute", RtFuncSetAttrFn) {
                // SAFETY: the application's kernel handle, a documented attribute.
                unsafe { set(func as *const c_void, ATTR_MAX_DYNAMIC_SMEM, bytes) };
            }
        }
        Handle::Function(f) | Handle::Kernel(f) => {
            static FNS: OnceLock<Option<(usize, usize)>> = OnceLock::new();
            let Some((func_set, kernel_set)) = *FNS.get_or_init(|| {
                Some((
                    driver_fn(c"cuFuncSetAttribute").ok()? as usize,
                    driver_fn(c"cuKernelSetAttribute").ok()? as usize,
                ))
            }) else {
                return;
            };
            // SAFETY: the real driver functions; the application's kernel handle (a
            // `CUfunction`, or a `CUkernel` passed as one).
            unsafe {
                let r = std::mem::transmute::<usize, FuncSetAttrFn>(func_set)(
                    f as *mut c_void,
                    ATTR_MAX_DYNAMIC_SMEM,
                    bytes,
                );
                if r != SUCCESS {
                    let mut dev = 0;
                    if let Ok(get) = rt!(c"cudaGetDevice", GetDeviceFn) {
                        get(&mut dev);
                    }
                    std::mem::transmute::<usize, KernelSetAttrFn>(kernel_set)(
                        ATTR_MAX_DYNAMIC_SMEM,
                        bytes,
                        f as *mut c_void,
                        dev,
                    );
                }
            }
        }
    }
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

/// `CUDA_ERROR_INVALID_VALUE`: what the parameter queries return past the last parameter.
const CUDA_ERROR_INVALID_VALUE: Status = 1;

type CtxGetCurrentFn = unsafe extern "C" fn(*mut *mut c_void) -> Status;
type SetDeviceFn = unsafe extern "C" fn(i32) -> Status;

/// Makes the calling thread's device's primary context current when the thread has no
/// context: a thread whose CUDA work is all queued (PyTorch's autograd thread) never made a
/// call that would, and the driver's kernel queries need one. (`cudaSetDevice` makes the
/// primary context current, as PyTorch itself does when it finds none.)
fn ensure_context() {
    static GET: OnceLock<Option<usize>> = OnceLock::new();
    let Some(get) = *GET.get_or_init(|| driver_fn(c"cuCtxGetCurrent").ok().map(|p| p as usize)) else { return };
    let mut ctx = std::ptr::null_mut();
    // SAFETY: the real cuCtxGetCurrent with an out-pointer to a local.
    let r = unsafe { std::mem::transmute::<usize, CtxGetCurrentFn>(get)(&mut ctx) };
    if r == SUCCESS && !ctx.is_null() {
        return;
    }
    let (Ok(get_device), Ok(set_device)) = (rt!(c"cudaGetDevice", GetDeviceFn), rt!(c"cudaSetDevice", SetDeviceFn))
    else {
        return;
    };
    let mut dev = 0;
    // SAFETY: the runtime's own functions, an out-pointer to a local.
    unsafe {
        get_device(&mut dev);
        set_device(dev);
    }
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
    /// The kernel's name: demangled (as profiles have it) where the process has a C++
    /// demangler, else as the driver gives it.
    pub name: String,
}

type DemangleFn =
    unsafe extern "C" fn(*const libc::c_char, *mut libc::c_char, *mut usize, *mut i32) -> *mut libc::c_char;

/// `name` demangled by the process's `__cxa_demangle` (libstdc++, which PyTorch loads), if
/// there is one and `name` is a mangled C++ name.
pub fn demangle(name: &CStr) -> Option<String> {
    static F: OnceLock<Option<usize>> = OnceLock::new();
    let f = (*F.get_or_init(|| {
        let dlsym = real::real_dlsym()?;
        // SAFETY: a lookup of a C symbol in the global scope, else in the loaded libstdc++
        // (Python loads PyTorch, and with it libstdc++, with RTLD_LOCAL).
        let mut p = unsafe { dlsym(libc::RTLD_DEFAULT, c"__cxa_demangle".as_ptr()) };
        if p.is_null() {
            // SAFETY: RTLD_NOLOAD only returns an already loaded library.
            let h = unsafe { libc::dlopen(c"libstdc++.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
            if !h.is_null() {
                // SAFETY: as above.
                p = unsafe { dlsym(h, c"__cxa_demangle".as_ptr()) };
            }
        }
        (!p.is_null()).then_some(p as usize)
    }))?;
    if !name.to_bytes().starts_with(b"_Z") {
        return None;
    }
    let mut status = -1;
    // SAFETY: the documented __cxa_demangle contract: a NUL-terminated name, no buffer, the
    // result malloc'ed (freed here).
    unsafe {
        let out = std::mem::transmute::<usize, DemangleFn>(f)(
            name.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut status,
        );
        if out.is_null() {
            return None;
        }
        let s = (status == 0).then(|| CStr::from_ptr(out).to_string_lossy().into_owned());
        libc::free(out.cast());
        s
    }
}

/// The parameter sizes and name of a kernel, from the driver's parameter info.
pub fn kernel_info(h: Handle) -> Result<Arc<KernelInfo>, String> {
    static CACHE: OnceLock<Mutex<std::collections::HashMap<Handle, Arc<KernelInfo>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(k) = cache.lock().map_err(|e| e.to_string())?.get(&h) {
        return Ok(k.clone());
    }
    let d = driver_fns()?;
    ensure_context();
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
        let raw = unsafe { CStr::from_ptr(name_ptr) };
        let name = demangle(raw).unwrap_or_else(|| raw.to_string_lossy().into_owned());
        found = Some((ptr, info_fn, name));
        break;
    }
    let Some((ptr, info_fn, name)) = found else { return Err(last_error) };
    let mut param_sizes = Vec::new();
    for i in 0..4096 {
        let (mut offset, mut size) = (0usize, 0usize);
        // SAFETY: a valid handle; out-pointers to locals.
        let r = unsafe { info_fn(ptr as *mut c_void, i, &mut offset, &mut size) };
        if r == CUDA_ERROR_INVALID_VALUE {
            break; // past the last parameter
        }
        if r != SUCCESS {
            // Not an answer about the parameters (no context yet, say): nothing is cached and
            // this launch is passed through instead of being queued with no arguments.
            return Err(format!("cannot read the parameters of {name} ({r})"));
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

/// CLOCK_MONOTONIC, ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(Default, Clone)]
struct ClientCounters {
    position: u64,
    position_loose: u64,
    lookup: u64,
    unknown: u64,
    submitted: u64,
    completed: u64,
    requests: u64,
    /// Ops submitted without the policy to end a wait that could never end otherwise.
    forced: u64,
    /// The first few ops whose profile was not found at their position: (request, index,
    /// op name).
    mismatches: Vec<(u64, usize, String)>,
}

/// How long a client thread may wait for its own queued ops while the policy holds some of
/// them back before they are submitted without the policy (see the scheduler loop), ns.
const FORCE_AFTER_NS: u64 = 2_000_000_000;

/// How often the scheduler looks for completions of a client nobody waits for, ns
/// (`ORION_PRELOAD_POLL_US`, microseconds, default 20; 0: on every turn of its loop).
fn poll_interval_ns() -> u64 {
    std::env::var("ORION_PRELOAD_POLL_US")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map_or(20_000, |us| (us * 1000.0) as u64)
}

/// The scheduler thread's counters: its policy calls and submission errors, and where its time
/// goes (ns in all), to tell its cost from the GPU's.
#[derive(Default)]
struct LoopTimes {
    policy_calls: u64,
    submit_errors: u64,
    /// The first submission that failed, and how.
    first_error: String,
    /// The completion polling interval (see [`poll_interval_ns`]).
    poll_ns: u64,
    loops: u64,
    /// Reading the clients' messages: matching ops to profiles, telling the state.
    drain_ns: u64,
    /// Event queries and completions (with the policy's completion callbacks).
    complete_ns: u64,
    queries: u64,
    /// The policy's `schedule` calls.
    policy_ns: u64,
    /// Submitting admitted ops (the real launch and copy calls).
    submit_ns: u64,
    /// Recording one event per client after each batch of submitted ops.
    record_ns: u64,
    batches: u64,
}

impl LoopTimes {
    /// `submitted`: the ops submitted so far (every client's).
    fn to_json(&self, submitted: u64) -> Value {
        let per = |ns: u64, n: u64| if n == 0 { 0.0 } else { ns as f64 / n as f64 };
        json!({
            "poll_us": self.poll_ns as f64 / 1e3,
            "loops": self.loops,
            "drain_ms": self.drain_ns as f64 / 1e6,
            "complete_ms": self.complete_ns as f64 / 1e6,
            "event_queries": self.queries,
            "policy_ms": self.policy_ns as f64 / 1e6,
            "submit_ms": self.submit_ns as f64 / 1e6,
            "submitted": submitted,
            "submit_ns_per_op": per(self.submit_ns, submitted),
            "record_ms": self.record_ns as f64 / 1e6,
            "batches": self.batches,
            "ops_per_batch": per(submitted, self.batches),
        })
    }
}

/// Request latencies kept per client for the report.
const MAX_LATENCIES: usize = 100_000;
/// Mismatched ops listed per client in the report.
const MAX_MISMATCHES_LISTED: usize = 20;

fn scheduler_main(shared: &Shared) {
    // Sleeps of a few microseconds (see the end of the loop) instead of the default 50-us
    // timer slack.
    // SAFETY: PR_SET_TIMERSLACK on the calling thread, a plain integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
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
    // Per client: the events recorded after each batch of submitted ops, with the batch's size.
    let mut in_flight: Vec<VecDeque<(*mut c_void, usize)>> = (0..n).map(|_| VecDeque::new()).collect();
    let mut batch = vec![0usize; n];
    let mut msgs: VecDeque<Msg> = VecDeque::new();
    let mut seen = vec![0u64; n];
    let mut forced_wait = vec![0u64; n];
    let mut forced_logged = false;
    let mut last_poll = vec![0u64; n];
    let poll_ns = poll_interval_ns();
    let mut times = LoopTimes { poll_ns, ..LoopTimes::default() };
    let mut arrival = vec![0u64; n];
    let mut index = vec![0usize; n];
    let mut end_pending = vec![false; n];
    let mut counters = vec![ClientCounters::default(); n];
    let mut actions: Vec<Action> = Vec::new();
    let mut wake_at = u64::MAX;
    let mut idle_since = now_ns();
    let mut last_stats = 0u64;
    // When each client's last op completed (a request ends there).
    let mut last_done = vec![0u64; n];
    // Ends client `c`'s current request if its end was marked and its work is done: the
    // request completed when its last op did (or when the end was seen, for a request of no
    // ops).
    macro_rules! finish_request {
        ($c:expr, $dirty:ident) => {{
            let c = $c;
            if !state.client(c).request_active() {
                end_pending[c] = false;
            } else if !state.client(c).has_work() {
                end_pending[c] = false;
                let request = state.client(c).request();
                let completed_at = if last_done[c] > arrival[c] { last_done[c] } else { now_ns() };
                state.end_request(c);
                counters[c].requests += 1;
                if request >= infos[c].warmup as u64 {
                    let mut l = shared.latencies[c].lock().unwrap_or_else(|e| e.into_inner());
                    if l.len() < MAX_LATENCIES {
                        l.push(completed_at.saturating_sub(arrival[c]));
                    }
                }
                policy.on_request_complete(&RequestDone {
                    client: c,
                    request,
                    arrival: arrival[c],
                    completed_at,
                    warmup: request < infos[c].warmup as u64,
                });
                $dirty = true;
            }
        }};
    }
    loop {
        let mut dirty = false;
        let now = now_ns();
        // 1. What the clients did, in program order.
        let t_start = now;
        for c in 0..n {
            let pushed = shared.clients[c].pushed.load(Ordering::Acquire);
            if pushed == seen[c] {
                continue;
            }
            {
                let mut q = shared.clients[c].inbox.lock().unwrap_or_else(|e| e.into_inner());
                seen[c] = shared.clients[c].pushed.load(Ordering::Acquire);
                std::mem::swap(&mut *q, &mut msgs);
            }
            for m in msgs.drain(..) {
                dirty = true;
                match m {
                    Msg::Begin(t) => {
                        // The previous request's end, if the scheduler had not seen it yet
                        // (its ops have all completed: `orion_request_end` waited for them).
                        if end_pending[c] {
                            finish_request!(c, dirty);
                        }
                        state.begin_request(c);
                        policy.on_request_begin(c, now);
                        arrival[c] = t;
                        index[c] = 0;
                    }
                    Msg::Op(op) => {
                        let (profile, outcome) = matchers[c].find(index[c], &op.key);
                        match outcome {
                            MatchOutcome::Position => counters[c].position += 1,
                            MatchOutcome::PositionLoose => counters[c].position_loose += 1,
                            MatchOutcome::Lookup => counters[c].lookup += 1,
                            MatchOutcome::Unknown => counters[c].unknown += 1,
                        }
                        if !matches!(outcome, MatchOutcome::Position | MatchOutcome::PositionLoose)
                            && !matchers[c].profile().is_empty()
                            && counters[c].mismatches.len() < MAX_MISMATCHES_LISTED
                        {
                            let what = if op.key.kind.is_kernel() {
                                format!("{} grid {:?}", op.key.name, op.key.grid)
                            } else {
                                op.key.kind.as_str().to_string()
                            };
                            let request = state.client(c).request();
                            counters[c].mismatches.push((request, index[c], what));
                        }
                        let seq = state.issue(c, index[c], profile, now);
                        index[c] += 1;
                        pending[c].push_back((seq, *op));
                    }
                    Msg::End => end_pending[c] = true,
                }
            }
        }
        // 2. Completions. The ops of a client complete in order, on its stream, and one event
        // follows the last op of each batch submitted together: when it has completed, so has
        // every op of the batch.
        let t_drained = now_ns();
        times.drain_ns += t_drained - t_start;
        // Each event query is a driver call, which contends with the application's own CUDA
        // calls (the threads issuing the work): completions are looked for every `poll_ns`,
        // and on every turn only for a client someone waits for, or while the policy holds
        // back ops (it may be waiting for a completion to admit them).
        let holding = pending.iter().any(|p| !p.is_empty());
        if let Some(g) = gpu.as_mut() {
            for c in 0..n {
                let due = holding
                    || shared.clients[c].waiters.load(Ordering::Acquire) > 0
                    || now.saturating_sub(last_poll[c]) >= poll_ns;
                if !due || in_flight[c].is_empty() {
                    continue;
                }
                last_poll[c] = now;
                while let Some(&(ev, ops)) = in_flight[c].front() {
                    times.queries += 1;
                    // SAFETY: an event this thread created and recorded.
                    if unsafe { (g.event_query)(ev) } != SUCCESS {
                        break;
                    }
                    in_flight[c].pop_front();
                    g.pool.push(ev);
                    for _ in 0..ops {
                        let done = state.complete(c);
                        policy.on_op_complete(&Completion {
                            client: c,
                            op: done.op,
                            record: state.client(c).record(done.op.profile),
                            submitted_at: done.submitted_at,
                            completed_at: now,
                        });
                    }
                    counters[c].completed += ops as u64;
                    last_done[c] = now;
                    shared.clients[c].completed.fetch_add(ops as u64, Ordering::AcqRel);
                    dirty = true;
                }
            }
        }
        times.complete_ns += now_ns() - t_drained;
        // 3. Requests whose end was marked and whose work is done.
        for c in 0..n {
            if end_pending[c] {
                finish_request!(c, dirty);
            }
        }
        // A client thread that has waited for its queue for longer than FORCE_AFTER_NS while
        // the policy holds some of its ops back may hold a lock the client the policy waits
        // for needs (a library's, inside the call that waits): its ops are submitted without
        // the policy, once per wait, counted and reported, so that the program never hangs.
        let mut forced: Option<usize> = None;
        for c in 0..n {
            let since = shared.clients[c].wait_since.load(Ordering::Acquire);
            if since != 0
                && !pending[c].is_empty()
                && now.saturating_sub(since) > FORCE_AFTER_NS
                && forced_wait[c] != since
            {
                forced_wait[c] = since;
                forced = Some(c);
                break;
            }
        }
        // 4. The policy.
        if dirty || now >= wake_at || forced.is_some() {
            wake_at = u64::MAX;
            times.policy_calls += 1;
            let t_policy = now_ns();
            let wake = {
                let mut cx = state.context(now, &mut actions);
                policy.schedule(&mut cx);
                if let Some(c) = forced {
                    let k = cx.submit_all(c) as u64;
                    counters[c].forced += k;
                    if k > 0 && !forced_logged {
                        forced_logged = true;
                        guard::write_stderr(&format!(
                            "orion-preload: client {} waited {} ms for its own ops while the {} policy held {k} of them \
                             back; they were submitted without the policy (counted as `forced` in the report)\n",
                            config.clients[c].name,
                            now.saturating_sub(forced_wait[c]) / 1_000_000,
                            config.policy,
                        ));
                    }
                }
                cx.wake()
            };
            if let Some(w) = wake {
                wake_at = w;
            }
            let t_submit = now_ns();
            times.policy_ns += t_submit - t_policy;
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
                // SAFETY: a captured op of this process, submitted in its client's order.
                let r = unsafe { op.work.submit(g.streams[client]) };
                if r != SUCCESS {
                    times.submit_errors += 1;
                    if times.first_error.is_empty() {
                        times.first_error = format!("{:?} {} returned {r}", op.key.kind, op.key.name);
                    }
                }
                batch[client] += 1;
                counters[client].submitted += 1;
            }
            let t_record = now_ns();
            times.submit_ns += t_record - t_submit;
            if let Some(g) = gpu.as_mut() {
                for (client, ops) in batch.iter_mut().enumerate().filter(|(_, ops)| **ops > 0) {
                    let ev = match g.event() {
                        Ok(e) => e,
                        Err(e) => return fatal(&e),
                    };
                    // SAFETY: an event of this thread on its own stream.
                    unsafe { (g.event_record)(ev, g.streams[client]) };
                    in_flight[client].push_back((ev, std::mem::take(ops)));
                    times.batches += 1;
                }
            }
            times.record_ns += now_ns() - t_record;
        }
        times.loops += 1;
        // 5. Stats now and then; wait when idle.
        if now - last_stats > 20_000_000 {
            last_stats = now;
            publish(shared, &*policy, &counters, gpu.as_ref(), &times);
        }
        // Spinning costs the application CPU time it needs to issue its work (a CPU-bound
        // training job ran at half speed beside a spinning scheduler): spin only while
        // something happens or someone waits for a completion (a client thread in a sync,
        // or the policy holding ops back); else sleep until a client pushes work (which
        // wakes this thread), the next completion poll, or the policy's wake-up time.
        let waited_for = pending.iter().any(|p| !p.is_empty())
            || shared.clients.iter().any(|c| c.waiters.load(Ordering::Acquire) > 0);
        if dirty {
            idle_since = now;
        } else if waited_for {
            std::hint::spin_loop();
        } else if now - idle_since < 20_000 {
            std::thread::yield_now();
        } else {
            let in_flight_any = in_flight.iter().any(|q| !q.is_empty());
            let mut timeout = if wake_at == u64::MAX { 1_000_000 } else { wake_at.saturating_sub(now) };
            if in_flight_any {
                timeout = timeout.min(poll_ns.max(2_000));
            }
            std::thread::park_timeout(Duration::from_nanos(timeout.clamp(1_000, 1_000_000)));
        }
    }
}

fn publish(shared: &Shared, policy: &dyn Policy, counters: &[ClientCounters], gpu: Option<&Gpu>, times: &LoopTimes) {
    let clients: Vec<Value> = counters
        .iter()
        .zip(&shared.config.clients)
        .zip(&shared.adopted)
        .map(|((k, c), adopted)| {
            json!({"name": c.name, "matched_position": k.position, "matched_position_loose": k.position_loose, "matched_lookup": k.lookup,
                   "unknown": k.unknown, "submitted": k.submitted, "completed": k.completed,
                   "requests": k.requests, "forced": k.forced, "profile_ops": c.profile.len(),
                   "ops_from_other_threads": adopted.load(Ordering::Relaxed),
                   "first_mismatches": k.mismatches.iter().map(|(r, i, w)| json!({"request": r, "index": i, "op": w})).collect::<Vec<_>>()})
        })
        .collect();
    let v = json!({
        "policy": policy.name(),
        "params": policy.params(),
        "counters": policy.counters(),
        "policy_calls": times.policy_calls,
        "submit_errors": times.submit_errors,
        "first_submit_error": times.first_error,
        "stream_priorities": gpu.map(|g| g.cuda_priorities.clone()),
        "unregistered_calls_drained": shared.drained_for_unregistered.load(Ordering::Relaxed),
        "scheduler_thread": times.to_json(counters.iter().map(|k| k.submitted).sum()),
        "clients": clients,
    });
    if let Ok(mut s) = shared.stats.lock() {
        *s = v;
    }
}

/// Count, mean and percentiles (nearest rank) of request latencies, ns, and the latencies
/// themselves (the report's per-request part).
pub fn latency_summary(lat: &[u64]) -> Value {
    if lat.is_empty() {
        return json!({"count": 0});
    }
    let mut v = lat.to_vec();
    v.sort_unstable();
    let pct = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    json!({"count": v.len(), "mean_ns": mean, "p50_ns": pct(50.0), "p95_ns": pct(95.0), "p99_ns": pct(99.0),
           "max_ns": v[v.len() - 1], "requests_ns": lat})
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

    #[test]
    fn a_kernels_maximum_dynamic_shared_memory_never_decreases() {
        // Distinct handles (far from any real one) keep the test independent of the others.
        assert_eq!(monotonic_dynamic_smem(0xdead_0001, 96 * 1024), 96 * 1024);
        assert_eq!(monotonic_dynamic_smem(0xdead_0001, 48 * 1024), 96 * 1024, "lowering is refused");
        assert_eq!(monotonic_dynamic_smem(0xdead_0001, 128 * 1024), 128 * 1024, "raising goes through");
        assert_eq!(monotonic_dynamic_smem(0xdead_0002, 16 * 1024), 16 * 1024, "per kernel");
    }

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
    fn unregistered_threads_follow_their_stream_then_the_one_open_client() {
        // Autograd's thread on client 1's stream, client 1 inside a request: client 1's queue,
        // even with client 0 open too.
        assert_eq!(route_unregistered(Some((1, true)), &[0, 1], None), Route::Queue(1));
        // Its client between requests: to CUDA after that client's queue.
        assert_eq!(route_unregistered(Some((1, false)), &[0], None), Route::AfterClient(1));
        // An unknown or shared stream: the one open client, else after every queue.
        assert_eq!(route_unregistered(None, &[2], None), Route::Queue(2));
        assert_eq!(route_unregistered(None, &[0, 2], None), Route::AfterAll);
        assert_eq!(route_unregistered(None, &[], None), Route::AfterAll);
        // ... unless the thread has put work into a client's queue before: then after that
        // client's queue only (the other's may be held back until that client's request ends).
        assert_eq!(route_unregistered(None, &[0, 2], Some(2)), Route::AfterClient(2));
        assert_eq!(route_unregistered(None, &[0], Some(2)), Route::Queue(0));
    }

    #[test]
    fn stream_keys() {
        let s = |v: usize| v as Stream;
        assert_eq!(stream_key(s(0), false), Some(0));
        assert_eq!(stream_key(s(1), false), Some(0));
        assert_eq!(stream_key(s(0), true), None);
        assert_eq!(stream_key(s(2), false), None);
        assert_eq!(stream_key(s(0x5000), true), Some(0x5000));
    }

    #[test]
    fn latency_summary_uses_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        let j = latency_summary(&v);
        assert_eq!(j["count"], 100);
        assert_eq!(j["p50_ns"], 50);
        assert_eq!(j["p95_ns"], 95);
        assert_eq!(j["p99_ns"], 99);
        assert_eq!(latency_summary(&[])["count"], 0);
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
