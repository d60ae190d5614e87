//! The small C ABI the workload driver (and tests) call:
//!
//! ```c
//! int    orion_register_client(int client_id);   /* the calling thread is this client */
//! void   orion_request_begin(int client_id, uint64_t scheduled_arrival_ns);  /* CLOCK_MONOTONIC */
//! void   orion_request_end(int client_id);
//! int    orion_mode(void);                        /* 0 pass-through, 1 count, 2 schedule */
//! size_t orion_stats_json(char *buf, size_t cap); /* what was captured, as JSON */
//! void   orion_stats_reset(void);                 /* call counters back to zero */
//! ```
//!
//! None of them ever fails the caller: in pass-through mode they do nothing.

use crate::guard::{self, Mode};
use crate::hook;
use crate::stats;
use std::ffi::c_char;

fn mode_code(m: Mode) -> i32 {
    match m {
        Mode::PassThrough => 0,
        Mode::Count => 1,
        Mode::Schedule => 2,
    }
}

/// The interposer's mode: 0 pass-through, 1 counting, 2 scheduling.
#[unsafe(no_mangle)]
pub extern "C" fn orion_mode() -> i32 {
    mode_code(hook::mode())
}

/// Registers the calling thread as client `client_id`; returns the mode (as [`orion_mode`]),
/// or -1 if the id is refused (then the thread's work passes through).
#[unsafe(no_mangle)]
pub extern "C" fn orion_register_client(client_id: i32) -> i32 {
    let m = hook::mode();
    if m != Mode::Schedule {
        return mode_code(m);
    }
    guard::guarded("orion_register_client", || crate::schedule::register(client_id))
        .flatten()
        .map_or(-1, |()| mode_code(guard::mode_now()))
}

/// A request of client `client_id` begins (its scheduled arrival, CLOCK_MONOTONIC ns).
#[unsafe(no_mangle)]
pub extern "C" fn orion_request_begin(client_id: i32, scheduled_arrival_ns: u64) {
    if guard::mode_now() == Mode::Schedule {
        guard::guarded("orion_request_begin", || crate::schedule::request_begin(client_id, scheduled_arrival_ns));
    }
}

/// The current request of client `client_id` ended (its output is on the host).
#[unsafe(no_mangle)]
pub extern "C" fn orion_request_end(client_id: i32) {
    if guard::mode_now() == Mode::Schedule {
        guard::guarded("orion_request_end", || crate::schedule::request_end(client_id));
    }
}

/// Writes the stats as JSON (NUL-terminated) into `buf` if `cap` is large enough; returns
/// the length without the NUL (call again with a larger buffer if it is >= `cap`).
///
/// # Safety
/// `buf` must be valid for `cap` bytes (or null with `cap` 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn orion_stats_json(buf: *mut c_char, cap: usize) -> usize {
    let text = stats_text();
    let n = text.len();
    if !buf.is_null() && cap > n {
        // SAFETY: buf holds cap > n bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast(), n);
            *buf.add(n) = 0;
        }
    }
    n
}

/// The stats as JSON text (`{}` if building them failed).
pub fn stats_text() -> String {
    guard::guarded("orion_stats_json", || {
        let mut v = stats::to_json();
        v["mode"] = serde_json::json!(mode_code(guard::mode_now()));
        v["failure_logged"] = serde_json::json!(guard::failure_logged());
        v["schedule"] = crate::schedule::stats_json();
        v.to_string()
    })
    .unwrap_or_else(|| "{}".to_string())
}

/// Sets the call counters back to zero.
#[unsafe(no_mangle)]
pub extern "C" fn orion_stats_reset() {
    stats::reset();
    let _ = guard::guarded("orion_stats_reset", crate::schedule::reset_latencies);
}
