//! `temporal`: time-slicing, one client's request (iteration) at a time owns the GPU.

use crate::client::{ClientId, ClientInfo};
use crate::policy::{Policy, StreamPriority};
use crate::state::{RequestDone, SchedContext, SchedState};

/// One client's request (or training iteration) at a time owns the GPU and runs to completion
/// before any other client's work is submitted. At each boundary the HP client goes next if it
/// has a request waiting; otherwise the BE clients take turns round-robin.
#[derive(Debug, Default)]
pub struct Temporal {
    owner: Option<ClientId>,
    /// Round-robin cursor over client indices for BE turns.
    next_turn: usize,
}

impl Temporal {
    fn pick_owner(&mut self, cx: &SchedContext<'_>) -> Option<ClientId> {
        if let Some(hp) = cx.hp()
            && cx.client(hp).request_active()
        {
            return Some(hp);
        }
        let n = cx.num_clients();
        for k in 0..n {
            let c = (self.next_turn + k) % n;
            if Some(c) != cx.hp() && cx.client(c).request_active() {
                self.next_turn = (c + 1) % n;
                return Some(c);
            }
        }
        None
    }
}

impl Policy for Temporal {
    fn name(&self) -> &'static str {
        "temporal"
    }

    fn stream_priority(&self, _client: &ClientInfo) -> StreamPriority {
        StreamPriority::Low
    }

    fn on_request_complete(&mut self, done: &RequestDone) {
        if self.owner == Some(done.client) {
            self.owner = None;
        }
    }

    fn schedule(&mut self, cx: &mut SchedContext<'_>) {
        if self.owner.is_none() {
            self.owner = self.pick_owner(cx);
        }
        if let Some(owner) = self.owner {
            cx.submit_all(owner);
        }
    }

    fn ignores_op_completions(&self) -> bool {
        true
    }

    fn lone_client_submits_at_once(&self, client: ClientId, state: &SchedState) -> bool {
        // With every other client idle, the owner is `client` or nobody (an owner is released
        // when its request completes), and a call makes `client` the owner again if its request
        // is under way (`next_turn` then becomes `client + 1` whatever it was): the state after
        // a call depends only on the clients' states, and the call submits all of `client`'s ops.
        self.owner.is_none_or(|o| o == client) && state.client(client).request_active()
    }
}
