//! `dlsym`, interposed: cuBLAS, cuDNN and the runtime find the driver's functions with
//! `dlsym(handle_of_libcuda, ...)` (first of all `cuGetProcAddress_v2`), which the dynamic
//! linker never routes through LD_PRELOAD. The pointers returned for the driver symbols the
//! interposer cares about are replaced by wrappers (`driver.rs`); the runtime's own symbols,
//! when looked up in `libcudart.so.13`, are replaced by this library's exports.
//!
//! `dlsym(RTLD_NEXT, ...)` finds "the next definition after the caller's object", which the
//! real `dlsym` learns from its return address: a call from here would find the one after
//! this library instead. So the entry point is a small assembly stub: for `RTLD_NEXT` it jumps
//! (a tail call, return address untouched) straight into the real `dlsym`; for every other
//! handle it jumps to [`dlsym_hook`]. For the default handle the real `dlsym` then searches
//! this library's scope (the global one) rather than the caller's, which differs only for
//! symbols private to a library opened `RTLD_LOCAL`, looked up through `RTLD_DEFAULT` by that
//! same library.

use crate::driver;
use crate::guard::{self, Mode};
use crate::hook;
use crate::real;
use std::ffi::{CStr, c_char, c_void};

/// The `dlsym` entry point (see the module documentation).
///
/// # Safety
/// Called as glibc's `dlsym`.
#[cfg(not(test))]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "cmp rdi, -1",
        "jne {hook}",
        "mov rax, qword ptr [rip + {slot}]",
        "test rax, rax",
        "jnz 2f",
        // Not resolved yet: resolve, keeping the arguments (and the stack 16-byte aligned).
        "push rdi",
        "push rsi",
        "sub rsp, 8",
        "call {resolve}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "test rax, rax",
        "jz {hook}",
        "2:",
        "jmp rax",
        hook = sym dlsym_hook,
        slot = sym real::REAL_DLSYM,
        resolve = sym real::resolve_real_dlsym,
    )
}

/// `dlsym` for every handle but `RTLD_NEXT`.
///
/// # Safety
/// Called by the dynamic linker's clients with a valid handle and C string.
pub unsafe extern "C" fn dlsym_hook(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    let Some(real_dlsym) = real::real_dlsym() else {
        return std::ptr::null_mut();
    };
    // SAFETY: forwarded unchanged.
    let p = unsafe { real_dlsym(handle, name) };
    if p.is_null() || name.is_null() {
        return p;
    }
    // SAFETY: a C string from the caller.
    let cname = unsafe { CStr::from_ptr(name) };
    let bytes = cname.to_bytes();
    if !(bytes.starts_with(b"cu") || bytes.starts_with(b"__cuda")) {
        return p;
    }
    if hook::mode() == Mode::PassThrough {
        return p;
    }
    guard::guarded("dlsym", || redirect(cname, p)).unwrap_or(p)
}

fn redirect(name: &CStr, found: *mut c_void) -> *mut c_void {
    let bytes = name.to_bytes();
    if bytes.starts_with(b"cuda") || bytes.starts_with(b"__cuda") {
        // Only the CUDA 13 runtime's symbols: a library may bring its own runtime.
        return match crate::runtime::hook_for(bytes) {
            Some(h) if real::in_cudart(found) => h,
            _ => found,
        };
    }
    driver::wrap(name, false, 0, found, false)
}
