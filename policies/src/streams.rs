//! `streams` and `mps`: uncontrolled spatial sharing, every op submitted at once on
//! equal-priority streams; the hardware decides.

use crate::client::{ClientId, ClientInfo};
use crate::policy::{Policy, StreamPriority};
use crate::state::{SchedContext, SchedState};

/// Every client's ops are submitted as soon as the client issues them, all streams at equal
/// priority. Named `streams` (threads of one process) or `mps` (one process per client under
/// the MPS daemon); the simulator models both the same way, but for who makes the launch calls:
/// under `mps` each client's own process ([`Policy::clients_submit_separately`]).
#[derive(Debug)]
pub struct Streams {
    name: &'static str,
}

impl Streams {
    /// The `streams` policy (threads of one process on equal-priority streams).
    pub fn equal_priority() -> Self {
        Streams { name: "streams" }
    }

    /// The `mps` policy.
    pub fn mps() -> Self {
        Streams { name: "mps" }
    }
}

impl Policy for Streams {
    fn name(&self) -> &'static str {
        self.name
    }

    fn stream_priority(&self, _client: &ClientInfo) -> StreamPriority {
        StreamPriority::Low
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

    fn clients_submit_separately(&self) -> bool {
        self.name == "mps"
    }
}
