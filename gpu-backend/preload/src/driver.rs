//! Driver entry points, which the application reaches through `dlsym` on `libcuda.so.1` and
//! through `cuGetProcAddress*` (cuBLAS, cuDNN and the runtime itself do), never through the
//! dynamic linker: the pointer returned for each symbol the interposer cares about is replaced
//! by a wrapper that counts (or captures) the call and then calls the real function.
//!
//! Each wrapper is a fixed trampoline bound to a slot holding one real pointer, so any number
//! of distinct real pointers per symbol (versions, `_ptsz` forms, several contexts) can be
//! wrapped up to the number of slots; beyond that the real pointer is returned unwrapped and
//! counted as `unwrapped`. Launch functions have exact signatures; every other wrapped function
//! takes at most six integer or pointer arguments and is forwarded by a generic trampoline
//! that passes six registers on (see [`Generic6Fn`]).

#![allow(clippy::too_many_arguments)]

use crate::ffi::*;
use crate::guard::{self, Mode};
use crate::hook;
use crate::stats::{self, Category, Entry};
use std::ffi::{CStr, c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};

/// One wrapper slot: the real pointer it forwards to and the entry it counts as.
pub struct Slot {
    claimed: AtomicBool,
    entry: AtomicU16,
    real: AtomicUsize,
}

impl Slot {
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot { claimed: AtomicBool::new(false), entry: AtomicU16::new(0), real: AtomicUsize::new(0) };
}

/// A table of slots for one signature.
pub struct Slots<const N: usize>([Slot; N]);

impl<const N: usize> Slots<N> {
    const fn new() -> Self {
        Slots([Slot::EMPTY; N])
    }

    /// The slot already bound to (`entry`, `real`), or a fresh one bound to it.
    fn claim(&self, entry: Entry, real: usize) -> Option<usize> {
        for (i, s) in self.0.iter().enumerate() {
            if s.real.load(Ordering::Acquire) == real && s.entry.load(Ordering::Acquire) == entry as u16 {
                return Some(i);
            }
        }
        for (i, s) in self.0.iter().enumerate() {
            if !s.claimed.swap(true, Ordering::AcqRel) {
                s.entry.store(entry as u16, Ordering::Release);
                s.real.store(real, Ordering::Release);
                return Some(i);
            }
        }
        None
    }

    /// The entry and real pointer of slot `i`.
    fn get(&self, i: usize) -> (Entry, usize) {
        let s = &self.0[i];
        let real = s.real.load(Ordering::Acquire);
        let entry = Entry::from_index(s.entry.load(Ordering::Acquire) as usize).unwrap_or(Entry::CuLaunchKernel);
        (entry, real)
    }
}

static LAUNCH: Slots<8> = Slots::new();
static LAUNCH_EX: Slots<8> = Slots::new();
static COOP: Slots<4> = Slots::new();
static GETPROC_V1: Slots<4> = Slots::new();
static GETPROC_V2: Slots<4> = Slots::new();
static GENERIC: Slots<64> = Slots::new();

macro_rules! trampoline {
    ($f:ident, $i:literal, $imp:ident, ($($a:ident: $t:ty),*)) => {
        unsafe extern "C" fn $f($($a: $t),*) -> Status {
            // SAFETY: called by the application as the function it asked for.
            unsafe { $imp($i, $($a),*) }
        }
    };
}

macro_rules! trampolines {
    ($array:ident: $ty:ty = $imp:ident $args:tt [$($f:ident = $i:literal),*]) => {
        $(trampoline!($f, $i, $imp, $args);)*
        const $array: &[$ty] = &[$($f),*];
    };
}

trampolines!(LAUNCH_TRAMPOLINES: DrvLaunchFn = launch_impl (
    f: *mut c_void, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shm: u32, stream: Stream,
    params: *mut *mut c_void, extra: *mut *mut c_void) [launch0 = 0, launch1 = 1, launch2 = 2, launch3 = 3, launch4 = 4, launch5 = 5, launch6 = 6, launch7 = 7]);
trampolines!(LAUNCH_EX_TRAMPOLINES: DrvLaunchExFn = launch_ex_impl (
    config: *const DrvLaunchConfig, f: *mut c_void, params: *mut *mut c_void, extra: *mut *mut c_void) [launch_ex0 = 0, launch_ex1 = 1, launch_ex2 = 2, launch_ex3 = 3, launch_ex4 = 4, launch_ex5 = 5, launch_ex6 = 6, launch_ex7 = 7]);
trampolines!(COOP_TRAMPOLINES: DrvCoopLaunchFn = coop_impl (
    f: *mut c_void, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shm: u32, stream: Stream,
    params: *mut *mut c_void) [coop0 = 0, coop1 = 1, coop2 = 2, coop3 = 3]);
trampolines!(GETPROC_V1_TRAMPOLINES: GetProcV1Fn = getproc_v1_impl (
    symbol: *const c_char, pfn: *mut *mut c_void, version: i32, flags: u64) [getproc_v1_0 = 0, getproc_v1_1 = 1, getproc_v1_2 = 2, getproc_v1_3 = 3]);
trampolines!(GETPROC_V2_TRAMPOLINES: GetProcV2Fn = getproc_v2_impl (
    symbol: *const c_char, pfn: *mut *mut c_void, version: i32, flags: u64, status: *mut i32) [getproc_v2_0 = 0, getproc_v2_1 = 1, getproc_v2_2 = 2, getproc_v2_3 = 3]);
trampolines!(GENERIC_TRAMPOLINES: Generic6Fn = generic_impl (
    a0: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) [generic0 = 0, generic1 = 1, generic2 = 2, generic3 = 3, generic4 = 4, generic5 = 5, generic6 = 6, generic7 = 7, generic8 = 8, generic9 = 9, generic10 = 10, generic11 = 11, generic12 = 12, generic13 = 13, generic14 = 14, generic15 = 15, generic16 = 16, generic17 = 17, generic18 = 18, generic19 = 19, generic20 = 20, generic21 = 21, generic22 = 22, generic23 = 23, generic24 = 24, generic25 = 25, generic26 = 26, generic27 = 27, generic28 = 28, generic29 = 29, generic30 = 30, generic31 = 31, generic32 = 32, generic33 = 33, generic34 = 34, generic35 = 35, generic36 = 36, generic37 = 37, generic38 = 38, generic39 = 39, generic40 = 40, generic41 = 41, generic42 = 42, generic43 = 43, generic44 = 44, generic45 = 45, generic46 = 46, generic47 = 47, generic48 = 48, generic49 = 49, generic50 = 50, generic51 = 51, generic52 = 52, generic53 = 53, generic54 = 54, generic55 = 55, generic56 = 56, generic57 = 57, generic58 = 58, generic59 = 59, generic60 = 60, generic61 = 61, generic62 = 62, generic63 = 63]);

unsafe fn launch_impl(
    slot: usize,
    f: *mut c_void,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    shm: u32,
    stream: Stream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Status {
    let (entry, real) = LAUNCH.get(slot);
    // SAFETY: the slot holds the real function of this signature.
    let real: DrvLaunchFn = unsafe { std::mem::transmute::<usize, DrvLaunchFn>(real) };
    crate::capture::driver_launch(entry, real, f, [gx, gy, gz], [bx, by, bz], shm, stream, params, extra)
}

unsafe fn launch_ex_impl(
    slot: usize,
    config: *const DrvLaunchConfig,
    f: *mut c_void,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Status {
    let (entry, real) = LAUNCH_EX.get(slot);
    // SAFETY: as above.
    let real: DrvLaunchExFn = unsafe { std::mem::transmute::<usize, DrvLaunchExFn>(real) };
    crate::capture::driver_launch_ex(entry, real, config, f, params, extra)
}

unsafe fn coop_impl(
    slot: usize,
    f: *mut c_void,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    shm: u32,
    stream: Stream,
    params: *mut *mut c_void,
) -> Status {
    let (entry, real) = COOP.get(slot);
    // SAFETY: as above.
    let real: DrvCoopLaunchFn = unsafe { std::mem::transmute::<usize, DrvCoopLaunchFn>(real) };
    // Cooperative launches need all their blocks resident at once: never queued, only counted
    // (after the queued work of their stream).
    crate::capture::coop_launch(entry, stream, || unsafe { real(f, gx, gy, gz, bx, by, bz, shm, stream, params) })
}

unsafe fn generic_impl(slot: usize, a0: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> Status {
    let (entry, real) = GENERIC.get(slot);
    // SAFETY: as above; the real function takes at most six register arguments.
    let real: Generic6Fn = unsafe { std::mem::transmute::<usize, Generic6Fn>(real) };
    crate::capture::driver_generic(entry, real, [a0, a1, a2, a3, a4, a5])
}

unsafe fn getproc_v1_impl(
    slot: usize,
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    version: i32,
    flags: u64,
) -> Status {
    let (entry, real) = GETPROC_V1.get(slot);
    // SAFETY: as above.
    let real: GetProcV1Fn = unsafe { std::mem::transmute::<usize, GetProcV1Fn>(real) };
    let r = hook::counted(entry, || unsafe { real(symbol, pfn, version, flags) });
    unsafe { after_getproc(r, symbol, pfn, version, flags) };
    r
}

unsafe fn getproc_v2_impl(
    slot: usize,
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    version: i32,
    flags: u64,
    status: *mut i32,
) -> Status {
    let (entry, real) = GETPROC_V2.get(slot);
    // SAFETY: as above.
    let real: GetProcV2Fn = unsafe { std::mem::transmute::<usize, GetProcV2Fn>(real) };
    let r = hook::counted(entry, || unsafe { real(symbol, pfn, version, flags, status) });
    unsafe { after_getproc(r, symbol, pfn, version, flags) };
    r
}

/// Replaces the pointer `cuGetProcAddress*` found by its wrapper.
unsafe fn after_getproc(r: Status, symbol: *const c_char, pfn: *mut *mut c_void, version: i32, flags: u64) {
    if r != SUCCESS || symbol.is_null() || pfn.is_null() || guard::mode_now() == Mode::PassThrough {
        return;
    }
    // SAFETY: the driver wrote a pointer to *pfn; symbol is the caller's C string.
    unsafe {
        let found = *pfn;
        if found.is_null() {
            return;
        }
        let name = CStr::from_ptr(symbol);
        let ptsz = flags & GET_PROC_PER_THREAD_DEFAULT_STREAM != 0;
        if let Some(w) = guard::guarded("cuGetProcAddress", || wrap(name, ptsz, version, found, true)) {
            *pfn = w;
        }
    }
}

/// `name` without its `_v2`/`_v3`/`_ptsz`/`_ptds` suffixes.
pub fn base_name(name: &str) -> &str {
    let mut s = name;
    loop {
        let t = ["_ptsz", "_ptds", "_v2", "_v3"].iter().find_map(|suf| s.strip_suffix(suf));
        match t {
            Some(t) => s = t,
            None => return s,
        }
    }
}

/// What the wrapper of a driver symbol is: its slot table and entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cuLaunchKernel` form.
    Launch(Entry),
    /// `cuLaunchKernelEx` form.
    LaunchEx(Entry),
    /// `cuLaunchCooperativeKernel` form.
    Coop(Entry),
    /// `cuGetProcAddress` (v1 signature).
    GetProcV1,
    /// `cuGetProcAddress_v2`.
    GetProcV2,
    /// Anything else forwarded with six registers.
    Generic(Entry),
}

/// Which wrapper a driver symbol gets (`None`: not wrapped). `ptsz`: the per-thread default
/// stream form was asked for; `getproc_version`: the CUDA version passed to
/// `cuGetProcAddress*` (0 for `dlsym`, whose names are exact).
pub fn classify(name: &str, ptsz: bool, getproc_version: i32) -> Option<Kind> {
    let base = base_name(name);
    let ptsz = ptsz || name.ends_with("_ptsz") || name.ends_with("_ptds");
    let pick = |plain: Entry, per_thread: Entry| if ptsz { per_thread } else { plain };
    Some(match base {
        "cuGetProcAddress" => {
            if name == "cuGetProcAddress_v2" || (getproc_version >= 12000 && name == "cuGetProcAddress") {
                Kind::GetProcV2
            } else if name == "cuGetProcAddress" {
                Kind::GetProcV1
            } else {
                return None;
            }
        }
        "cuLaunchKernel" => Kind::Launch(pick(Entry::CuLaunchKernel, Entry::CuLaunchKernelPtsz)),
        "cuLaunchKernelEx" => Kind::LaunchEx(pick(Entry::CuLaunchKernelEx, Entry::CuLaunchKernelExPtsz)),
        "cuLaunchCooperativeKernel" => {
            Kind::Coop(pick(Entry::CuLaunchCooperativeKernel, Entry::CuLaunchCooperativeKernelPtsz))
        }
        other => {
            let e = Entry::by_name(other)?;
            if matches!(e.category(), Category::Kernel | Category::Lookup) || e.name().starts_with("cuda") {
                return None;
            }
            Kind::Generic(e)
        }
    })
}

fn bind<const N: usize, T: Copy>(
    table: &Slots<N>,
    tramps: &[T],
    entry: Entry,
    real: *mut c_void,
    to_ptr: fn(T) -> *mut c_void,
) -> *mut c_void {
    match table.claim(entry, real as usize) {
        Some(i) => to_ptr(tramps[i]),
        None => {
            stats::unwrapped();
            real
        }
    }
}

/// The pointer to hand the application for driver symbol `name`, whose real function is
/// `real`: its wrapper, or `real` itself when it is not wrapped.
pub fn wrap(name: &CStr, ptsz: bool, getproc_version: i32, real: *mut c_void, via_getproc: bool) -> *mut c_void {
    let Ok(name) = name.to_str() else { return real };
    stats::lookup(name, if via_getproc { "getproc" } else { "dlsym" });
    let Some(kind) = classify(name, ptsz, getproc_version) else { return real };
    let entry = match kind {
        Kind::Launch(e) | Kind::LaunchEx(e) | Kind::Coop(e) | Kind::Generic(e) => e,
        Kind::GetProcV1 => Entry::CuGetProcAddress,
        Kind::GetProcV2 => Entry::CuGetProcAddressV2,
    };
    // A pointer that already is one of the wrappers (asked for twice) stays as it is.
    if is_wrapper(real) {
        return real;
    }
    stats::wrapped(entry, via_getproc);
    match kind {
        Kind::Launch(e) => bind(&LAUNCH, LAUNCH_TRAMPOLINES, e, real, |f| f as *mut c_void),
        Kind::LaunchEx(e) => bind(&LAUNCH_EX, LAUNCH_EX_TRAMPOLINES, e, real, |f| f as *mut c_void),
        Kind::Coop(e) => bind(&COOP, COOP_TRAMPOLINES, e, real, |f| f as *mut c_void),
        Kind::GetProcV1 => bind(&GETPROC_V1, GETPROC_V1_TRAMPOLINES, entry, real, |f| f as *mut c_void),
        Kind::GetProcV2 => bind(&GETPROC_V2, GETPROC_V2_TRAMPOLINES, entry, real, |f| f as *mut c_void),
        Kind::Generic(e) => bind(&GENERIC, GENERIC_TRAMPOLINES, e, real, |f| f as *mut c_void),
    }
}

fn is_wrapper(p: *mut c_void) -> bool {
    let p = p as usize;
    LAUNCH_TRAMPOLINES.iter().any(|&f| f as usize == p)
        || LAUNCH_EX_TRAMPOLINES.iter().any(|&f| f as usize == p)
        || COOP_TRAMPOLINES.iter().any(|&f| f as usize == p)
        || GETPROC_V1_TRAMPOLINES.iter().any(|&f| f as usize == p)
        || GETPROC_V2_TRAMPOLINES.iter().any(|&f| f as usize == p)
        || GENERIC_TRAMPOLINES.iter().any(|&f| f as usize == p)
}

/// The real `cuGetProcAddress_v2` the application was given, if any (the scheduler resolves
/// the driver functions it needs through it).
pub fn real_getproc_v2() -> Option<GetProcV2Fn> {
    let (_, real) = GETPROC_V2.get(0);
    // SAFETY: slot 0, when bound, holds the real cuGetProcAddress_v2.
    (real != 0).then(|| unsafe { std::mem::transmute::<usize, GetProcV2Fn>(real) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_drop_version_and_stream_suffixes() {
        assert_eq!(base_name("cuMemcpyHtoDAsync_v2"), "cuMemcpyHtoDAsync");
        assert_eq!(base_name("cuMemcpyHtoD_v2_ptds"), "cuMemcpyHtoD");
        assert_eq!(base_name("cuLaunchKernel_ptsz"), "cuLaunchKernel");
        assert_eq!(base_name("cuInit"), "cuInit");
    }

    #[test]
    fn classification() {
        assert_eq!(classify("cuFuncSetAttribute", false, 12000), Some(Kind::Generic(Entry::CuFuncSetAttribute)));
        assert_eq!(classify("cuKernelSetAttribute", false, 0), Some(Kind::Generic(Entry::CuKernelSetAttribute)));
        assert_eq!(classify("cuLaunchKernel", false, 0), Some(Kind::Launch(Entry::CuLaunchKernel)));
        assert_eq!(classify("cuLaunchKernel", true, 13000), Some(Kind::Launch(Entry::CuLaunchKernelPtsz)));
        assert_eq!(classify("cuLaunchKernel_ptsz", false, 0), Some(Kind::Launch(Entry::CuLaunchKernelPtsz)));
        assert_eq!(classify("cuLaunchKernelEx", false, 12000), Some(Kind::LaunchEx(Entry::CuLaunchKernelEx)));
        assert_eq!(classify("cuGetProcAddress", false, 13000), Some(Kind::GetProcV2));
        assert_eq!(classify("cuGetProcAddress", false, 0), Some(Kind::GetProcV1));
        assert_eq!(classify("cuGetProcAddress_v2", false, 0), Some(Kind::GetProcV2));
        assert_eq!(classify("cuMemcpyDtoHAsync_v2", false, 0), Some(Kind::Generic(Entry::CuMemcpyDtoHAsync)));
        assert_eq!(classify("cuStreamSynchronize", false, 0), Some(Kind::Generic(Entry::CuStreamSynchronize)));
        assert_eq!(classify("cuInit", false, 0), None);
        assert_eq!(classify("cudaMemcpy", false, 0), None);
    }

    #[test]
    fn slots_are_shared_per_pointer_and_run_out() {
        let t: Slots<2> = Slots::new();
        assert_eq!(t.claim(Entry::CuMemFree, 10), Some(0));
        assert_eq!(t.claim(Entry::CuMemFree, 10), Some(0));
        assert_eq!(t.claim(Entry::CuMemAlloc, 10), Some(1));
        assert_eq!(t.claim(Entry::CuMemAlloc, 11), None);
        assert_eq!(t.get(1), (Entry::CuMemAlloc, 10));
    }
}
