//! Finding the real functions behind the hooks, once and lazily, without locks: each pointer is
//! cached in an atomic (two threads racing resolve the same value twice, harmlessly).
//!
//! * `dlsym` itself: `dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34")`, falling back to the version
//!   `GLIBC_2.2.5` of older glibc (`dlvsym` is not hooked, so this never recurses).
//! * The runtime's functions: from the already loaded `libcudart.so.13` (a `RTLD_NOLOAD` handle:
//!   PyTorch loads it as a dependency of a library opened `RTLD_LOCAL`, where `RTLD_NEXT` from
//!   this library would not look), at the version `libcudart.so.13`.
//! * The driver's functions: whatever pointer `dlsym` or `cuGetProcAddress*` returned to the
//!   application, kept in the wrapper's slot (`driver.rs`).

use crate::ffi::DlsymFn;
use std::ffi::{CStr, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The real `dlsym` (0 until resolved). Read by the `dlsym` entry stub in `dl.rs`.
pub static REAL_DLSYM: AtomicUsize = AtomicUsize::new(0);
static CUDART: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// Resolves the real `dlsym`; returns it (null if glibc has neither version).
pub extern "C" fn resolve_real_dlsym() -> *mut c_void {
    let cached = REAL_DLSYM.load(Ordering::Acquire);
    if cached != 0 {
        return cached as *mut c_void;
    }
    let mut p = null_mut();
    for version in [c"GLIBC_2.34", c"GLIBC_2.2.5"] {
        // SAFETY: dlvsym with valid C strings; RTLD_NEXT finds libc's definition.
        p = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"dlsym".as_ptr(), version.as_ptr()) };
        if !p.is_null() {
            break;
        }
    }
    REAL_DLSYM.store(p as usize, Ordering::Release);
    p
}

/// The real `dlsym`, if found.
pub fn real_dlsym() -> Option<DlsymFn> {
    let p = resolve_real_dlsym();
    // SAFETY: a non-null result is glibc's dlsym, of this signature.
    (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, DlsymFn>(p) })
}

/// A handle of the loaded CUDA runtime (null if it is not loaded yet).
fn cudart() -> *mut c_void {
    let h = CUDART.load(Ordering::Acquire);
    if !h.is_null() {
        return h;
    }
    // SAFETY: dlopen of a soname with RTLD_NOLOAD only returns an already loaded object.
    let h = unsafe { libc::dlopen(c"libcudart.so.13".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if !h.is_null() {
        CUDART.store(h, Ordering::Release);
    }
    h
}

/// The runtime's own `name` (cached in `slot`), or null if the runtime is not loaded or lacks it.
pub fn cudart_symbol(slot: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    let h = cudart();
    let handle = if h.is_null() { libc::RTLD_NEXT } else { h };
    // SAFETY: dlvsym with valid C strings and a valid handle.
    let mut p = unsafe { libc::dlvsym(handle, name.as_ptr(), c"libcudart.so.13".as_ptr()) };
    if p.is_null()
        && let Some(dlsym) = real_dlsym()
    {
        // SAFETY: glibc's dlsym with a valid handle and name.
        p = unsafe { dlsym(handle, name.as_ptr()) };
    }
    if !p.is_null() {
        slot.store(p, Ordering::Release);
    }
    p
}

/// Whether `p` lies in the CUDA 13 runtime (`libcudart.so.13*`). (`p` is only looked up, never
/// dereferenced.)
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn in_cudart(p: *mut c_void) -> bool {
    // SAFETY: dladdr fills a zeroed Dl_info for any address.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(p, &mut info) == 0 || info.dli_fname.is_null() {
            return false;
        }
        let file = CStr::from_ptr(info.dli_fname).to_bytes();
        let base = file.rsplit(|&b| b == b'/').next().unwrap_or(file);
        base.starts_with(b"libcudart.so.13")
    }
}
