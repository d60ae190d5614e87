//! `ideal`: each client alone on a dedicated GPU, the reference every other policy is compared with.

use crate::client::{ClientId, ClientInfo};
use crate::policy::{Policy, Sharing, StreamPriority};
use crate::state::{SchedContext, SchedState};

/// Each client runs alone on its own GPU; ops are submitted as soon as they are issued.
#[derive(Debug, Default)]
pub struct Ideal;

impl Policy for Ideal {
    fn name(&self) -> &'static str {
        "ideal"
    }

    fn stream_priority(&self, _client: &ClientInfo) -> StreamPriority {
        StreamPriority::Low
    }

    fn sharing(&self) -> Sharing {
        Sharing::Dedicated
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
