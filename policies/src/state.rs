//! The scheduler's view of all clients, kept by the backend, and the context a policy acts
//! through.
//!
//! Both backends (the simulator and the real GPU) drive a policy the same way: they record what
//! happens in a [`SchedState`] (requests begin, hosts issue ops, ops complete) and, after every
//! change, call [`Policy::schedule`](crate::Policy::schedule) with a [`SchedContext`]. The policy
//! reads the queues and submits ops; each submission is applied to the state at once (so the
//! policy sees its own decisions) and recorded as an [`Action`] that the backend carries out.

use crate::client::{ClientId, ClientInfo, ClientState, InFlightOp, ProfileRef, QueuedOp};
use orion_traces::{OpRecord, Role};

/// Facts about the device a policy may use.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// Device name.
    pub name: String,
    /// Number of SMs.
    pub sm_count: u32,
}

/// Something the backend must do because the policy decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Submit the op to the client's stream.
    Submit {
        /// The client.
        client: ClientId,
        /// The op's sequence number.
        seq: u64,
    },
    /// Kill the client's running and queued GPU work, which the state has already returned to
    /// the host queue (reset-based preemption; simulator only).
    Preempt {
        /// The client.
        client: ClientId,
    },
}

/// A completed op, as reported to the policy.
#[derive(Debug, Clone, Copy)]
pub struct Completion<'a> {
    /// The client.
    pub client: ClientId,
    /// The op.
    pub op: QueuedOp,
    /// Its profile.
    pub record: &'a OpRecord,
    /// When it was submitted, ns.
    pub submitted_at: u64,
    /// When it completed, ns.
    pub completed_at: u64,
}

/// A completed request (iteration), as reported to the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestDone {
    /// The client.
    pub client: ClientId,
    /// Request number, from 0.
    pub request: u64,
    /// When it was due to start (scheduled arrival; for closed loop, when it started), ns.
    pub arrival: u64,
    /// When its last op completed, ns.
    pub completed_at: u64,
    /// Whether it was a warm-up request.
    pub warmup: bool,
}

impl RequestDone {
    /// Latency: completion minus scheduled arrival.
    pub fn latency_ns(&self) -> u64 {
        self.completed_at.saturating_sub(self.arrival)
    }
}

/// All clients' queues: the one view every backend maintains and every policy reads.
#[derive(Debug, Clone)]
pub struct SchedState {
    clients: Vec<ClientState>,
    hp: Option<ClientId>,
    device: DeviceInfo,
}

impl SchedState {
    /// A state for these clients; client `i` must have id `i`.
    pub fn new(clients: Vec<ClientState>, device: DeviceInfo) -> Self {
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(c.info.id, i, "client ids must be their indices");
        }
        let hp = clients.iter().position(|c| c.info.role == Role::Hp);
        SchedState { clients, hp, device }
    }

    /// The device.
    pub fn device(&self) -> &DeviceInfo {
        &self.device
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are no clients.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// One client's state.
    pub fn client(&self, c: ClientId) -> &ClientState {
        &self.clients[c]
    }

    /// All clients' states.
    pub fn clients(&self) -> &[ClientState] {
        &self.clients
    }

    /// The HP client, if any.
    pub fn hp(&self) -> Option<ClientId> {
        self.hp
    }

    /// Static facts of all clients.
    pub fn infos(&self) -> Vec<ClientInfo> {
        self.clients.iter().map(|c| c.info.clone()).collect()
    }

    // ----- backend side: record what happened -----

    /// A request (iteration) of client `c` begins.
    pub fn begin_request(&mut self, c: ClientId) {
        let s = &mut self.clients[c];
        debug_assert!(!s.request_active, "request already active");
        s.request_active = true;
        s.completed_in_request = 0;
    }

    /// The host of client `c` issued op number `index` of its current request; returns the
    /// op's sequence number.
    pub fn issue(&mut self, c: ClientId, index: usize, profile: ProfileRef, now: u64) -> u64 {
        let s = &mut self.clients[c];
        let seq = s.next_seq;
        s.next_seq += 1;
        let is_kernel = s.record(profile).kind.is_kernel();
        s.pending.push_back(QueuedOp { seq, index, request: s.request, issued_at: now, profile, is_kernel });
        seq
    }

    /// The oldest in-flight op of client `c` completed (ops of a client complete in order).
    /// Returns it.
    pub fn complete(&mut self, c: ClientId) -> InFlightOp {
        let s = &mut self.clients[c];
        let done = s.in_flight.pop_front().expect("completion without an op in flight");
        if done.op.is_kernel {
            s.in_flight_kernels -= 1;
        }
        s.completed_in_request += 1;
        done
    }

    /// Client `c`'s ops in flight completed, and `n` more were issued, submitted and completed
    /// (a backend replaying a request; see [`Driver::skip_request`](crate::Driver::skip_request));
    /// it has nothing queued.
    pub fn skip_ops(&mut self, c: ClientId, n: u64) {
        let s = &mut self.clients[c];
        debug_assert!(s.pending.is_empty());
        s.completed_in_request += s.in_flight.len() + n as usize;
        s.in_flight.clear();
        s.in_flight_kernels = 0;
        s.next_seq += n;
    }

    /// The current request of client `c` completed.
    pub fn end_request(&mut self, c: ClientId) {
        let s = &mut self.clients[c];
        debug_assert!(s.request_active, "no active request");
        s.request_active = false;
        s.requests_completed += 1;
        s.request += 1;
    }

    /// Return every in-flight op of client `c` to the front of its host queue, in order (after
    /// a preemption killed them). Returns how many were returned.
    pub fn requeue_in_flight(&mut self, c: ClientId) -> usize {
        let s = &mut self.clients[c];
        let n = s.in_flight.len();
        while let Some(f) = s.in_flight.pop_back() {
            s.pending.push_front(f.op);
        }
        s.in_flight_kernels = 0;
        n
    }

    /// A context through which a policy reads this state and submits ops at time `now`.
    pub fn context<'a>(&'a mut self, now: u64, actions: &'a mut Vec<Action>) -> SchedContext<'a> {
        SchedContext { now, state: self, actions, wake: None }
    }
}

/// What a policy sees and does in one call of [`Policy::schedule`](crate::Policy::schedule).
pub struct SchedContext<'a> {
    now: u64,
    state: &'a mut SchedState,
    actions: &'a mut Vec<Action>,
    wake: Option<u64>,
}

impl<'a> SchedContext<'a> {
    /// Current time, ns.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The state (all clients' queues).
    pub fn state(&self) -> &SchedState {
        self.state
    }

    /// One client's state.
    pub fn client(&self, c: ClientId) -> &ClientState {
        &self.state.clients[c]
    }

    /// Number of clients.
    pub fn num_clients(&self) -> usize {
        self.state.clients.len()
    }

    /// The HP client, if any.
    pub fn hp(&self) -> Option<ClientId> {
        self.state.hp
    }

    /// Number of SMs of the device.
    pub fn sm_count(&self) -> u32 {
        self.state.device.sm_count
    }

    /// The oldest queued op of client `c` and its profile.
    pub fn head(&self, c: ClientId) -> Option<(QueuedOp, &OpRecord)> {
        let s = &self.state.clients[c];
        s.pending.front().map(|op| (*op, s.record(op.profile)))
    }

    /// Whether client `c` has any op queued or running (Orion's "request in flight" for the HP).
    pub fn has_work(&self, c: ClientId) -> bool {
        self.state.clients[c].has_work()
    }

    /// Submits the oldest queued op of client `c` to its stream; returns its profile, or `None`
    /// when the queue is empty.
    pub fn submit(&mut self, c: ClientId) -> Option<&OpRecord> {
        let now = self.now;
        let s = &mut self.state.clients[c];
        let op = s.pending.pop_front()?;
        if op.is_kernel {
            s.in_flight_kernels += 1;
        }
        s.in_flight.push_back(InFlightOp { op, submitted_at: now });
        self.actions.push(Action::Submit { client: c, seq: op.seq });
        Some(s.record(op.profile))
    }

    /// Submits every queued op of client `c`; returns how many.
    pub fn submit_all(&mut self, c: ClientId) -> usize {
        let mut n = 0;
        while self.submit(c).is_some() {
            n += 1;
        }
        n
    }

    /// Kills client `c`'s GPU work (reset-based preemption): its in-flight ops return to the
    /// front of its host queue at once, and the backend is told to kill them.
    pub fn preempt(&mut self, c: ClientId) {
        self.state.requeue_in_flight(c);
        self.actions.push(Action::Preempt { client: c });
    }

    /// Asks to be called again no later than `t` (ns) even if nothing else happens.
    pub fn wake_at(&mut self, t: u64) {
        let t = t.max(self.now + 1);
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }

    /// The wake-up time the policy asked for, if any.
    pub fn wake(&self) -> Option<u64> {
        self.wake
    }
}
