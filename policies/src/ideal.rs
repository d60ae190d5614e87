//! `ideal`: each client alone on a dedicated GPU, the reference every other policy is compared with.

use crate::client::ClientInfo;
use crate::policy::{Policy, Sharing, StreamPriority};
use crate::state::SchedContext;

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
}
