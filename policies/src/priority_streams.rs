//! `priority-streams`: as `streams`, but the HP client's stream has the highest priority.

use crate::client::{ClientId, ClientInfo};
use crate::policy::{Policy, StreamPriority};
use crate::state::{SchedContext, SchedState};

/// Every op is submitted at once; the HP stream gets the highest priority, BE streams the
/// lowest, so the block dispatcher prefers HP blocks when a slot frees (running blocks are
/// never evicted).
#[derive(Debug, Default)]
pub struct PriorityStreams;

impl Policy for PriorityStreams {
    fn name(&self) -> &'static str {
        "priority-streams"
    }

    fn stream_priority(&self, client: &ClientInfo) -> StreamPriority {
        if client.is_hp() { StreamPriority::High } else { StreamPriority::Low }
    }

    fn schedule(&mut self, cx: &mut SchedContext<'_>) {
        for c in 0..cx.num_clients() {
            cx.submit_all(c);
        }
    }

    fn ignores_op_completions(&self) -> bool {
        true
    }

    fn lone_client_submits_at_once(&self, _client: ClientId, _state: &SchedState) -> bool {
        // Every call submits everything queued and keeps no state.
        true
    }
}
