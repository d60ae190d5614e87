//! What the interposer saw: every entry point it hooks, counted per call, and the symbols it
//! was asked for. Counters are plain atomics, so counting costs a few nanoseconds and no lock.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What kind of GPU work an entry point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// A kernel launch.
    Kernel,
    /// A memory copy.
    Memcpy,
    /// A memset.
    Memset,
    /// A device allocation.
    Malloc,
    /// A device free.
    Free,
    /// A synchronisation call.
    Sync,
    /// A CUDA graph launch (kernels inside it are not seen one by one).
    Graph,
    /// The driver's symbol lookup.
    Lookup,
    /// Event records and waits, event and stream queries.
    Event,
    /// Kernel attributes set (the maximum dynamic shared memory is kept from decreasing while
    /// launches are queued).
    Attribute,
}

impl Category {
    /// Name in the stats JSON.
    pub fn name(self) -> &'static str {
        match self {
            Category::Kernel => "kernels",
            Category::Memcpy => "memcpy",
            Category::Memset => "memset",
            Category::Malloc => "malloc",
            Category::Free => "free",
            Category::Sync => "sync",
            Category::Graph => "graph_launch",
            Category::Lookup => "lookup",
            Category::Event => "event",
            Category::Attribute => "attribute",
        }
    }

    const ALL: [Category; 10] = [
        Category::Kernel,
        Category::Memcpy,
        Category::Memset,
        Category::Malloc,
        Category::Free,
        Category::Sync,
        Category::Graph,
        Category::Lookup,
        Category::Event,
        Category::Attribute,
    ];
}

macro_rules! entries {
    ($($id:ident = $name:literal : $cat:ident),* $(,)?) => {
        /// Every entry point the interposer hooks (runtime exports and wrapped driver functions).
        #[repr(u16)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types, missing_docs)]
        pub enum Entry { $($id),* }

        /// `(entry, symbol name, category)` of every entry, in `Entry` order.
        pub const ENTRIES: &[(Entry, &str, Category)] = &[$((Entry::$id, $name, Category::$cat)),*];
    };
}

entries! {
    RtLaunchInternal = "__cudaLaunchKernel": Kernel,
    RtLaunchInternalPtsz = "__cudaLaunchKernel_ptsz": Kernel,
    RtLaunch = "cudaLaunchKernel": Kernel,
    RtLaunchPtsz = "cudaLaunchKernel_ptsz": Kernel,
    RtLaunchEx = "cudaLaunchKernelExC": Kernel,
    RtLaunchExPtsz = "cudaLaunchKernelExC_ptsz": Kernel,
    RtMemcpy = "cudaMemcpy": Memcpy,
    RtMemcpyAsync = "cudaMemcpyAsync": Memcpy,
    RtMemset = "cudaMemset": Memset,
    RtMemsetAsync = "cudaMemsetAsync": Memset,
    RtMalloc = "cudaMalloc": Malloc,
    RtFree = "cudaFree": Free,
    RtStreamSync = "cudaStreamSynchronize": Sync,
    RtDeviceSync = "cudaDeviceSynchronize": Sync,
    RtEventSync = "cudaEventSynchronize": Sync,
    CuLaunchKernel = "cuLaunchKernel": Kernel,
    CuLaunchKernelPtsz = "cuLaunchKernel_ptsz": Kernel,
    CuLaunchKernelEx = "cuLaunchKernelEx": Kernel,
    CuLaunchKernelExPtsz = "cuLaunchKernelEx_ptsz": Kernel,
    CuLaunchCooperativeKernel = "cuLaunchCooperativeKernel": Kernel,
    CuLaunchCooperativeKernelPtsz = "cuLaunchCooperativeKernel_ptsz": Kernel,
    CuGetProcAddress = "cuGetProcAddress": Lookup,
    CuGetProcAddressV2 = "cuGetProcAddress_v2": Lookup,
    CuMemcpy = "cuMemcpy": Memcpy,
    CuMemcpyAsync = "cuMemcpyAsync": Memcpy,
    CuMemcpyHtoD = "cuMemcpyHtoD": Memcpy,
    CuMemcpyHtoDAsync = "cuMemcpyHtoDAsync": Memcpy,
    CuMemcpyDtoH = "cuMemcpyDtoH": Memcpy,
    CuMemcpyDtoHAsync = "cuMemcpyDtoHAsync": Memcpy,
    CuMemcpyDtoD = "cuMemcpyDtoD": Memcpy,
    CuMemcpyDtoDAsync = "cuMemcpyDtoDAsync": Memcpy,
    CuMemcpy2D = "cuMemcpy2D": Memcpy,
    CuMemcpy2DAsync = "cuMemcpy2DAsync": Memcpy,
    CuMemcpy2DUnaligned = "cuMemcpy2DUnaligned": Memcpy,
    CuMemcpy3D = "cuMemcpy3D": Memcpy,
    CuMemcpy3DAsync = "cuMemcpy3DAsync": Memcpy,
    CuMemcpyPeer = "cuMemcpyPeer": Memcpy,
    CuMemcpyPeerAsync = "cuMemcpyPeerAsync": Memcpy,
    CuMemsetD8 = "cuMemsetD8": Memset,
    CuMemsetD8Async = "cuMemsetD8Async": Memset,
    CuMemsetD16 = "cuMemsetD16": Memset,
    CuMemsetD16Async = "cuMemsetD16Async": Memset,
    CuMemsetD32 = "cuMemsetD32": Memset,
    CuMemsetD32Async = "cuMemsetD32Async": Memset,
    CuMemsetD2D8 = "cuMemsetD2D8": Memset,
    CuMemsetD2D8Async = "cuMemsetD2D8Async": Memset,
    CuMemsetD2D16 = "cuMemsetD2D16": Memset,
    CuMemsetD2D16Async = "cuMemsetD2D16Async": Memset,
    CuMemsetD2D32 = "cuMemsetD2D32": Memset,
    CuMemsetD2D32Async = "cuMemsetD2D32Async": Memset,
    CuMemAlloc = "cuMemAlloc": Malloc,
    CuMemAllocAsync = "cuMemAllocAsync": Malloc,
    CuMemAllocPitch = "cuMemAllocPitch": Malloc,
    CuMemAllocFromPoolAsync = "cuMemAllocFromPoolAsync": Malloc,
    CuMemFree = "cuMemFree": Free,
    CuMemFreeAsync = "cuMemFreeAsync": Free,
    CuStreamSynchronize = "cuStreamSynchronize": Sync,
    CuCtxSynchronize = "cuCtxSynchronize": Sync,
    CuEventSynchronize = "cuEventSynchronize": Sync,
    CuGraphLaunch = "cuGraphLaunch": Graph,
    CuEventRecord = "cuEventRecord": Event,
    CuEventRecordWithFlags = "cuEventRecordWithFlags": Event,
    CuStreamWaitEvent = "cuStreamWaitEvent": Event,
    CuEventQuery = "cuEventQuery": Event,
    CuStreamQuery = "cuStreamQuery": Event,
    CuFuncSetAttribute = "cuFuncSetAttribute": Attribute,
    CuKernelSetAttribute = "cuKernelSetAttribute": Attribute,
}

const MAX: usize = 80;

impl Entry {
    /// Its symbol name.
    pub fn name(self) -> &'static str {
        ENTRIES[self as usize].1
    }

    /// Its category.
    pub fn category(self) -> Category {
        ENTRIES[self as usize].2
    }

    /// The entry with this index.
    pub fn from_index(i: usize) -> Option<Entry> {
        ENTRIES.get(i).map(|e| e.0)
    }

    /// The entry whose symbol name is `name` exactly.
    pub fn by_name(name: &str) -> Option<Entry> {
        ENTRIES.iter().find(|e| e.1 == name).map(|e| e.0)
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

/// Calls made by the application (the outermost hooked call of a thread), per entry.
static OUTER: [AtomicU64; MAX] = [ZERO; MAX];
/// Calls made from inside another hooked call (e.g. the runtime calling the driver), per entry.
static NESTED: [AtomicU64; MAX] = [ZERO; MAX];
/// Outermost calls that returned an error, per entry.
static FAILED: [AtomicU64; MAX] = [ZERO; MAX];
/// Pointers wrapped because `dlsym` returned them, per entry.
static WRAPPED_DLSYM: [AtomicU64; MAX] = [ZERO; MAX];
/// Pointers wrapped because `cuGetProcAddress*` returned them, per entry.
static WRAPPED_GETPROC: [AtomicU64; MAX] = [ZERO; MAX];
/// Pointers that could not be wrapped because every wrapper slot was taken.
static UNWRAPPED: AtomicU64 = AtomicU64::new(0);
/// Symbols asked of `cuGetProcAddress*` and of `dlsym` (names starting with `cu`).
static LOOKUPS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Counts one completed call of `entry`: `outer` when the application made it, `ok` when it
/// succeeded.
pub fn count(entry: Entry, outer: bool, ok: bool) {
    let i = entry as usize;
    if !outer {
        NESTED[i].fetch_add(1, Ordering::Relaxed);
    } else if ok {
        OUTER[i].fetch_add(1, Ordering::Relaxed);
    } else {
        FAILED[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Outermost calls that first waited for queued work (scheduling mode), per entry, and the
/// time they waited, ns.
static WAITS: [AtomicU64; MAX] = [ZERO; MAX];
static WAIT_NS: [AtomicU64; MAX] = [ZERO; MAX];

/// Counts a call of `entry` that waited `ns` for queued work first (nothing when `ns` is 0).
pub fn waited(entry: Entry, ns: u64) {
    if ns > 0 {
        WAITS[entry as usize].fetch_add(1, Ordering::Relaxed);
        WAIT_NS[entry as usize].fetch_add(ns, Ordering::Relaxed);
    }
}

/// Time spent capturing ops into the queues (copying them, on the application's thread), ns,
/// per entry.
static CAPTURE_NS: [AtomicU64; MAX] = [ZERO; MAX];

/// Adds `ns` to the capture time of `entry`.
pub fn capture_time(entry: Entry, ns: u64) {
    CAPTURE_NS[entry as usize].fetch_add(ns, Ordering::Relaxed);
}

fn waits_json() -> Value {
    let mut m = Map::new();
    for (e, name, _) in ENTRIES {
        let n = WAITS[*e as usize].load(Ordering::Relaxed);
        if n > 0 {
            let ms = WAIT_NS[*e as usize].load(Ordering::Relaxed) as f64 / 1e6;
            m.insert((*name).to_string(), json!({"calls": n, "ms": ms}));
        }
    }
    Value::Object(m)
}

static UNCAPTURED: [AtomicU64; MAX] = [ZERO; MAX];
static UNCAPTURED_REASON: Mutex<String> = Mutex::new(String::new());

/// Counts an op the scheduling mode could not capture (passed through after its client's
/// queue drained), keeping the first reason.
pub fn uncaptured(entry: Entry, reason: &str) {
    UNCAPTURED[entry as usize].fetch_add(1, Ordering::Relaxed);
    if let Ok(mut r) = UNCAPTURED_REASON.try_lock()
        && r.is_empty()
    {
        *r = format!("{}: {reason}", entry.name());
    }
}

/// Counts a wrapped pointer.
pub fn wrapped(entry: Entry, via_getproc: bool) {
    let table = if via_getproc { &WRAPPED_GETPROC } else { &WRAPPED_DLSYM };
    table[entry as usize].fetch_add(1, Ordering::Relaxed);
}

/// Counts a pointer left unwrapped (no free slot).
pub fn unwrapped() {
    UNWRAPPED.fetch_add(1, Ordering::Relaxed);
}

/// Remembers a looked-up symbol name (skipped if another thread holds the set).
pub fn lookup(name: &str, via: &str) {
    if let Ok(mut set) = LOOKUPS.try_lock()
        && set.len() < 4096
    {
        set.insert(format!("{via}:{name}"));
    }
}

/// Successful outermost calls of `category` so far.
pub fn captured(category: Category) -> u64 {
    ENTRIES.iter().filter(|e| e.2 == category).map(|e| OUTER[e.0 as usize].load(Ordering::Relaxed)).sum()
}

/// Sets the call counters (not the wrapping facts) back to zero.
pub fn reset() {
    for t in [&OUTER, &NESTED, &FAILED, &UNCAPTURED, &WAITS, &WAIT_NS, &CAPTURE_NS] {
        for c in t.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

fn nonzero(table: &[AtomicU64; MAX]) -> Value {
    let mut m = Map::new();
    for (e, name, _) in ENTRIES {
        let v = table[*e as usize].load(Ordering::Relaxed);
        if v > 0 {
            m.insert((*name).to_string(), json!(v));
        }
    }
    Value::Object(m)
}

/// Everything counted, as JSON: `captured` (successful outermost calls per category), and per
/// entry `calls`, `nested`, `failed`, `wrapped_dlsym`, `wrapped_getproc`, `waits` (calls that
/// first waited for queued work, and how long in all), `capture_ns` (time spent queueing ops), plus `unwrapped` and the `lookups` seen.
pub fn to_json() -> Value {
    let mut captured_map = Map::new();
    for c in Category::ALL {
        captured_map.insert(c.name().to_string(), json!(captured(c)));
    }
    let lookups: Vec<String> = LOOKUPS.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default();
    json!({
        "captured": captured_map,
        "calls": nonzero(&OUTER),
        "nested": nonzero(&NESTED),
        "failed": nonzero(&FAILED),
        "wrapped_dlsym": nonzero(&WRAPPED_DLSYM),
        "wrapped_getproc": nonzero(&WRAPPED_GETPROC),
        "unwrapped": UNWRAPPED.load(Ordering::Relaxed),
        "uncaptured": nonzero(&UNCAPTURED),
        "waits": waits_json(),
        "capture_ns": nonzero(&CAPTURE_NS),
        "uncaptured_first_reason": UNCAPTURED_REASON.lock().map(|s| s.clone()).unwrap_or_default(),
        "lookups": lookups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_in_order_and_fit() {
        assert!(ENTRIES.len() <= MAX);
        for (i, e) in ENTRIES.iter().enumerate() {
            assert_eq!(e.0 as usize, i, "{}", e.1);
            assert_eq!(Entry::by_name(e.1), Some(e.0));
        }
    }

    #[test]
    fn runtime_exports_are_entries() {
        // Every symbol the version script exports is a counted runtime entry.
        let list = include_str!("runtime_exports.txt");
        let names: Vec<&str> = list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert_eq!(names.len(), 15);
        for n in names {
            assert!(Entry::by_name(n).is_some(), "{n}");
        }
    }

    #[test]
    fn counting_separates_outer_nested_and_failed() {
        let before = captured(Category::Graph);
        count(Entry::CuGraphLaunch, true, true);
        count(Entry::CuGraphLaunch, false, true);
        count(Entry::CuGraphLaunch, true, false);
        assert_eq!(captured(Category::Graph), before + 1);
        let j = to_json();
        assert!(j["nested"]["cuGraphLaunch"].as_u64().unwrap() >= 1);
        assert!(j["failed"]["cuGraphLaunch"].as_u64().unwrap() >= 1);
    }
}
