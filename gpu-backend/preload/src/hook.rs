//! What every hook does around the real call: decide the mode on first use, tell the
//! application's own calls from nested ones, count, and never let the interposer's logic
//! take the application down.

use crate::config;
use crate::ffi::{SUCCESS, Status};
use crate::guard::{self, Mode};
use crate::stats::{self, Entry};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by `ORION_PRELOAD_FAULT=panic-hook`: the next counted call panics inside the
/// interposer's logic (to test that a panic passes everything through).
pub static INJECT_PANIC: AtomicBool = AtomicBool::new(false);

/// The mode, decided on first use.
pub fn mode() -> Mode {
    guard::mode_or_init(config::decide)
}

/// Calls `call` (the real function) and counts it as `entry`, unless the interposer passes
/// everything through.
#[inline]
pub fn counted(entry: Entry, call: impl FnOnce() -> Status) -> Status {
    if mode() == Mode::PassThrough {
        return call();
    }
    let outer = guard::enter();
    let r = call();
    guard::leave();
    guard::guarded("counting", || {
        if outer && INJECT_PANIC.swap(false, Ordering::AcqRel) {
            panic!("injected fault (ORION_PRELOAD_FAULT=panic-hook) in {}", entry.name());
        }
        stats::count(entry, outer, r == SUCCESS);
        if outer {
            stats::waited(entry, crate::schedule::take_waited());
        }
    });
    r
}

/// The real function could not be found: say so (once) and return an error.
pub fn missing(name: &str) -> Status {
    guard::fail(&format!("the real `{name}` was not found in libcudart.so.13"));
    crate::ffi::ERROR_UNKNOWN
}
