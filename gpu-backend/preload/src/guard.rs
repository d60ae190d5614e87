//! The interposer's safety rails: its mode (decided once, lazily, on the first hooked call),
//! the per-thread nesting depth that tells the application's calls from the calls the CUDA
//! libraries make to each other, panics kept from crossing the FFI boundary, and the one log
//! line written when something goes wrong.
//!
//! Nothing here runs in a constructor, and nothing takes a lock that symbol resolution could
//! need: the mode is an atomic; while it is being decided, other calls (on other threads, or
//! re-entrant ones from the deciding thread) simply pass through.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// What the interposer does with the calls it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Calls go straight to CUDA, uncounted (also the state after any internal failure).
    PassThrough,
    /// Calls go straight to CUDA and are counted (`ORION_PRELOAD_MODE=count`, the default
    /// without a scheduler configuration).
    Count,
    /// Registered clients' work is queued and the policy submits it.
    Schedule,
}

const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
const PASS: u8 = 2;
const COUNT: u8 = 3;
const SCHEDULE: u8 = 4;

static MODE: AtomicU8 = AtomicU8::new(UNINIT);
static LOGGED: AtomicBool = AtomicBool::new(false);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static INTERNAL: Cell<bool> = const { Cell::new(false) };
}

fn decode(v: u8) -> Mode {
    match v {
        COUNT => Mode::Count,
        SCHEDULE => Mode::Schedule,
        _ => Mode::PassThrough,
    }
}

/// The current mode, deciding it on the first call with `decide` (which reads the
/// environment and starts whatever the mode needs). A panic or an error in `decide` leaves the
/// interposer passing everything through, with one log line.
pub fn mode_or_init(decide: fn() -> Result<Mode, String>) -> Mode {
    match MODE.load(Ordering::Acquire) {
        UNINIT => {}
        v => return decode(v),
    }
    if MODE.compare_exchange(UNINIT, INITIALIZING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return decode(MODE.load(Ordering::Acquire));
    }
    install_panic_hook();
    let decided = match catch_unwind(decide) {
        Ok(Ok(m)) => m,
        Ok(Err(reason)) => {
            log_failure(&reason);
            Mode::PassThrough
        }
        Err(_) => {
            log_failure(&format!("internal panic while starting: {}", last_panic()));
            Mode::PassThrough
        }
    };
    let v = match decided {
        Mode::PassThrough => PASS,
        Mode::Count => COUNT,
        Mode::Schedule => SCHEDULE,
    };
    // A failure reported while deciding (by another thread) wins.
    let _ = MODE.compare_exchange(INITIALIZING, v, Ordering::AcqRel, Ordering::Acquire);
    decode(MODE.load(Ordering::Acquire))
}

/// The mode if decided, else pass-through (for calls that must not start anything).
pub fn mode_now() -> Mode {
    decode(MODE.load(Ordering::Acquire))
}

/// Gives up: from now on every call passes straight through. Logs `reason` (the first
/// failure only: one line in all).
pub fn fail(reason: &str) {
    MODE.store(PASS, Ordering::Release);
    log_failure(reason);
}

/// Runs `f`, turning a panic into [`fail`] (and `None`). Use around every piece of the
/// interposer's own logic inside a hook; never around the call of the real CUDA function.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            fail(&format!("internal panic in {what}: {}", last_panic()));
            None
        }
    }
}

/// Writes `orion-preload: <reason>; passing every CUDA call through` to stderr, once per
/// process, in one `write` call.
fn log_failure(reason: &str) {
    if LOGGED.swap(true, Ordering::AcqRel) {
        return;
    }
    let line = format!("orion-preload: {}; passing every CUDA call through\n", reason.replace('\n', " "));
    write_stderr(&line);
}

/// Writes a line to stderr in one `write` call (no locks, no buffering).
pub fn write_stderr(line: &str) {
    // SAFETY: writing a valid buffer of its own length to fd 2.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
    }
}

/// Whether the failure line was written.
pub fn failure_logged() -> bool {
    LOGGED.load(Ordering::Acquire)
}

fn install_panic_hook() {
    // The process is not a Rust program: this library's panics are the only ones. Keep the
    // message for the one log line instead of printing the default multi-line report.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        if let Ok(mut last) = LAST_PANIC.try_lock() {
            *last = msg;
        }
    }));
}

fn last_panic() -> String {
    LAST_PANIC.try_lock().map(|s| s.clone()).unwrap_or_default()
}

/// Enters a hooked call on this thread; returns whether it is the outermost one (made by the
/// application, not by a CUDA library on behalf of another hooked call) and not made by the
/// interposer's own threads.
pub fn enter() -> bool {
    let internal = INTERNAL.with(Cell::get);
    DEPTH.with(|d| {
        let v = d.get();
        d.set(v + 1);
        v == 0 && !internal
    })
}

/// Whether a hooked call made now would be the outermost one of an application thread.
pub fn is_outer() -> bool {
    DEPTH.with(Cell::get) == 0 && !INTERNAL.with(Cell::get)
}

/// Leaves a hooked call entered with [`enter`].
pub fn leave() {
    DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
}

/// Marks the current thread as the interposer's own (its CUDA calls are never captured).
pub fn mark_internal() {
    INTERNAL.with(|i| i.set(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_tells_outer_from_nested() {
        assert!(enter());
        assert!(!enter());
        leave();
        leave();
        assert!(enter());
        leave();
        std::thread::spawn(|| {
            mark_internal();
            assert!(!enter());
            leave();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn guarded_turns_a_panic_into_pass_through() {
        install_panic_hook();
        let r: Option<u32> = guarded("test", || panic!("boom"));
        assert_eq!(r, None);
        assert_eq!(mode_now(), Mode::PassThrough);
        assert!(failure_logged());
        assert!(last_panic().contains("boom"));
    }
}
