//! Scheduling mode: registered clients' work queued and submitted by a policy.

/// Starts the scheduler from the configuration file at `path`.
pub fn start(path: &str) -> Result<(), String> {
    Err(format!("ORION_PRELOAD_CONFIG={path}: scheduling mode is not available in this build"))
}

/// Registers the calling thread as client `id`.
pub fn register(id: i32) -> Option<()> {
    let _ = id;
    None
}

/// A request of client `id` begins.
pub fn request_begin(id: i32, scheduled_arrival_ns: u64) {
    let _ = (id, scheduled_arrival_ns);
}

/// The current request of client `id` ended.
pub fn request_end(id: i32) {
    let _ = id;
}
