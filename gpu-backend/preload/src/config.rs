//! The interposer's configuration, read from the environment on the first hooked call.
//!
//! * `ORION_PRELOAD_MODE`: `passthrough` (or `off`), `count`, `schedule`. Default: `schedule`
//!   when `ORION_PRELOAD_CONFIG` is set, else `count`.
//! * `ORION_PRELOAD_CONFIG`: the scheduler's configuration file (schedule mode).
//! * `ORION_PRELOAD_REPORT`: a file the stats (what `orion_stats_json` returns: counts per
//!   entry point, and in schedule mode each client's matching counts and request latencies)
//!   are written to when the process exits (counting and schedule modes), if it launched, copied,
//!   set or synchronised anything (a child process that inherited the variable does not
//!   overwrite the report).
//! * `ORION_PRELOAD_POLL_US`: how often the scheduler looks for the completions of a client
//!   nobody is waiting for, in microseconds (default 20; 0: continuously). Each look is a
//!   driver call, which contends with the application's own CUDA calls.
//! * `ORION_PRELOAD_FAULT`: test hooks, `panic-init` (panic while starting) or `panic-hook`
//!   (panic inside the first counted call).
//!
//! Any error here makes the interposer log one line and pass every call through.

use crate::guard::Mode;
use crate::hook::INJECT_PANIC;
use std::sync::atomic::Ordering;

fn var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().trim().to_string()).filter(|v| !v.is_empty())
}

static REPORT_PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

extern "C" fn write_report_at_exit() {
    let _ = crate::guard::guarded("ORION_PRELOAD_REPORT", || {
        let Some(path) = REPORT_PATH.get() else { return };
        // A child process inherits the environment (the driver runs `nvidia-smi` and `git`):
        // one that never launched or copied anything must not overwrite the report of the
        // process the report is for.
        use crate::stats::{Category, captured};
        if [Category::Kernel, Category::Memcpy, Category::Memset, Category::Sync].into_iter().all(|c| captured(c) == 0)
        {
            return;
        }
        let text = crate::abi::stats_text();
        if let Err(e) = std::fs::write(path, text) {
            crate::guard::write_stderr(&format!("orion-preload: ORION_PRELOAD_REPORT={path}: {e}\n"));
        }
    });
}

/// Decides the mode from the environment and starts what it needs.
pub fn decide() -> Result<Mode, String> {
    if let Some(fault) = var("ORION_PRELOAD_FAULT") {
        match fault.as_str() {
            "panic-init" => panic!("injected fault (ORION_PRELOAD_FAULT=panic-init)"),
            "panic-hook" => INJECT_PANIC.store(true, Ordering::Release),
            other => return Err(format!("ORION_PRELOAD_FAULT=`{other}`: expected panic-init or panic-hook")),
        }
    }
    let config = var("ORION_PRELOAD_CONFIG");
    let mode = var("ORION_PRELOAD_MODE");
    if let Some(path) = var("ORION_PRELOAD_REPORT") {
        let _ = REPORT_PATH.set(path);
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(write_report_at_exit) };
    }
    match mode.as_deref() {
        Some("passthrough" | "off") => Ok(Mode::PassThrough),
        Some("count") => Ok(Mode::Count),
        Some("schedule") | None if config.is_some() || mode.is_some() => match config {
            Some(path) => crate::schedule::start(&path).map(|()| Mode::Schedule),
            None => {
                Err("ORION_PRELOAD_MODE=schedule needs ORION_PRELOAD_CONFIG (the scheduler's configuration file)"
                    .into())
            }
        },
        None => Ok(Mode::Count),
        Some(other) => Err(format!("ORION_PRELOAD_MODE=`{other}`: expected passthrough, count or schedule")),
    }
}
