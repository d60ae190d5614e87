//! The host side of a run, shared by every backend: request arrivals, each client's host thread
//! issuing ops after their host gaps, syncs, request boundaries, statistics, and the policy
//! called after every change.
//!
//! A backend owns the clock and the GPU. It asks the driver when the next host event is due
//! ([`Driver::next_time`]), tells it what completed ([`Driver::op_done`]), lets it process due
//! host events ([`Driver::process_host_events`]), and carries out what the policy decided
//! ([`Driver::schedule`]). The simulator jumps its clock from event to event; the real backend
//! follows the wall clock. Either way the same host model and the same policy code run.
//!
//! # Host model
//! Each client is one host thread. A request (iteration) starts when it has arrived and the
//! previous one has completed; the thread then issues the request's ops in program order, each
//! after its host gap, into the client's host-side queue, where the policy picks them up. A
//! `sync` op blocks the thread until every earlier op of the client has completed; so does the
//! end of a request (its output is read back). A policy may bound the host queue, blocking the
//! thread while it is full. Allocations and frees go through the queue like GPU ops; their
//! recorded duration is host time added to their host gap.

use crate::client::{ClientInfo, ClientState, ProfileRef};
use crate::policy::{Backend, Policy, PolicyError, PolicySetup, StreamPriority};
use crate::report::ClientRecorder;
use crate::state::{Action, Completion, DeviceInfo, RequestDone, SchedState};
use orion_traces::{Arrivals, ClientSpec, OpKind, OpRecord, Stop};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// Time in ns meaning "never".
pub const NEVER: u64 = u64::MAX;

/// One client of a run: its spec, the facts the policy sees, and its index in the scenario
/// (which seeds its arrivals, so a client alone sees the same arrivals as in company).
#[derive(Debug, Clone)]
pub struct DriverClient<'a> {
    /// Index in the scenario.
    pub scenario_id: usize,
    /// The spec.
    pub spec: &'a ClientSpec,
    /// Static facts (its `id` must be the client's index in this run).
    pub info: ClientInfo,
}

/// What the backend must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Submit an op to the client's stream.
    Submit {
        /// The client.
        client: usize,
        /// The op's sequence number (ops complete in this order per client).
        seq: u64,
        /// Its profile (table 0: the steady-state trace, 1: the first-request trace).
        profile: ProfileRef,
    },
    /// Kill everything of the client on the GPU; the scheduler state has already returned those
    /// ops to the host queue.
    Preempt {
        /// The client.
        client: usize,
    },
}

/// What a run produced on the host side.
#[derive(Debug, Clone)]
pub struct DriverOutcome {
    /// Per client, in run order.
    pub recorders: Vec<ClientRecorder>,
    /// Host and timer events processed.
    pub host_events: u64,
    /// Policy invocations.
    pub policy_calls: u64,
}

/// How a backend may fast-forward a client alone (see [`Driver::lone_client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoneMode {
    /// Submit each op as it is issued, without calling the policy
    /// ([`Driver::submit_lone`]).
    AtOnce,
    /// Call the policy as usual ([`Driver::schedule`]); only the GPU side is fast-forwarded.
    Scheduled,
}

const EV_ARRIVAL: u8 = 0;
const EV_ISSUE: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    No,
    Sync,
    QueueFull,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    arrival: u64,
    /// When it began.
    began: u64,
    table: u16,
    next: usize,
    len: usize,
}

#[derive(Debug)]
struct Host {
    gaps: Vec<Vec<u64>>,
    kinds: Vec<Vec<OpKind>>,
    has_first: bool,
    arrivals: Option<Arrivals>,
    backlog: VecDeque<u64>,
    generated: u64,
    max_requests: Option<u64>,
    started: u64,
    current: Option<Current>,
    blocked: Blocked,
    queue_limit: Option<usize>,
    /// The last request that ended: its number, when, and the host events processed by then.
    last_end: Option<(u64, u64, u64)>,
}

/// The host side of a run driving one policy.
pub struct Driver<'p> {
    policy: &'p mut dyn Policy,
    state: SchedState,
    hosts: Vec<Host>,
    priorities: Vec<StreamPriority>,
    recorders: Vec<ClientRecorder>,
    heap: BinaryHeap<Reverse<(u64, u64, u8, u32)>>,
    heap_seq: u64,
    wake_at: u64,
    warmup: u32,
    end: u64,
    stop_requests: Option<(usize, u64)>,
    stopped: bool,
    dirty: bool,
    actions: Vec<Action>,
    host_events: u64,
    policy_calls: u64,
}

impl<'p> Driver<'p> {
    /// Sets up `policy` for `clients` and schedules the first arrivals (open loop) or starts the
    /// first requests (closed loop) at time 0.
    pub fn new(
        clients: &[DriverClient<'_>],
        device: DeviceInfo,
        backend: Backend,
        seed: u64,
        warmup: u32,
        stop: Stop,
        policy: &'p mut dyn Policy,
    ) -> Result<Self, PolicyError> {
        let infos: Vec<ClientInfo> = clients.iter().map(|c| c.info.clone()).collect();
        for (i, info) in infos.iter().enumerate() {
            assert_eq!(info.id, i, "client ids must be their indices in the run");
        }
        policy.setup(&PolicySetup { clients: &infos, device: &device, backend })?;
        let mut states = Vec::new();
        let mut hosts = Vec::new();
        let mut priorities = Vec::new();
        for c in clients {
            let mut tables: Vec<Arc<[OpRecord]>> = vec![Arc::from(c.spec.trace.ops.as_slice())];
            if let Some(first) = &c.spec.first_trace {
                tables.push(Arc::from(first.ops.as_slice()));
            }
            let gaps = tables
                .iter()
                .map(|t| {
                    t.iter()
                        .map(|r| {
                            let host_cost =
                                if matches!(r.kind, OpKind::Malloc | OpKind::Free) { r.duration_ns } else { 0 };
                            r.host_gap() + host_cost
                        })
                        .collect()
                })
                .collect();
            let kinds = tables.iter().map(|t| t.iter().map(|r| r.kind).collect()).collect();
            priorities.push(policy.stream_priority(&c.info));
            hosts.push(Host {
                gaps,
                kinds,
                has_first: c.spec.first_trace.is_some(),
                arrivals: c.spec.arrival.is_open_loop().then(|| c.spec.arrival.generator(seed, c.scenario_id as u64)),
                backlog: VecDeque::new(),
                generated: 0,
                max_requests: c.spec.max_requests,
                started: 0,
                current: None,
                blocked: Blocked::No,
                queue_limit: policy.host_queue_limit(&c.info),
                last_end: None,
            });
            states.push(ClientState::new(c.info.clone(), tables));
        }
        let stop_client = infos.iter().position(ClientInfo::is_hp).unwrap_or(0);
        let mut d = Driver {
            policy,
            state: SchedState::new(states, device),
            hosts,
            priorities,
            recorders: vec![ClientRecorder::default(); clients.len()],
            heap: BinaryHeap::new(),
            heap_seq: 0,
            wake_at: NEVER,
            warmup,
            end: stop.duration_ns.unwrap_or(NEVER),
            stop_requests: stop.requests.map(|n| (stop_client, n)),
            stopped: false,
            dirty: true,
            actions: Vec::new(),
            host_events: 0,
            policy_calls: 0,
        };
        for c in 0..d.hosts.len() {
            if d.hosts[c].arrivals.is_some() {
                d.schedule_next_arrival(c);
            } else {
                d.start_request(c, 0, 0);
            }
        }
        Ok(d)
    }

    /// The priority of each client's stream, as the policy wants it.
    pub fn stream_priorities(&self) -> &[StreamPriority] {
        &self.priorities
    }

    /// The scheduler state (for backends that need profiles of in-flight ops).
    pub fn state(&self) -> &SchedState {
        &self.state
    }

    /// The profile of an op.
    pub fn record(&self, client: usize, profile: ProfileRef) -> &OpRecord {
        self.state.client(client).record(profile)
    }

    /// When the run ends at the latest (the duration limit), ns.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether the run's stop condition (HP request count) was reached.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Time of the next host event or policy wake-up ([`NEVER`] if none).
    pub fn next_time(&self) -> u64 {
        self.heap.peek().map_or(NEVER, |e| e.0.0).min(self.wake_at)
    }

    /// Whether the policy must be called (something changed since its last call).
    pub fn needs_schedule(&self) -> bool {
        self.dirty
    }

    /// Processes every host event due at or before `now`, in time order.
    pub fn process_host_events(&mut self, now: u64) {
        while let Some(&Reverse((te, _, kind, client))) = self.heap.peek() {
            if te > now {
                break;
            }
            self.heap.pop();
            self.host_events += 1;
            match kind {
                EV_ARRIVAL => self.on_arrival(client as usize, te),
                _ => self.on_issue(client as usize, te),
            }
        }
        if self.wake_at <= now {
            self.wake_at = NEVER;
            self.dirty = true;
            self.host_events += 1;
        }
    }

    /// The oldest in-flight op of `client` (sequence number `seq`) completed at `now`.
    pub fn op_done(&mut self, client: usize, seq: u64, now: u64) {
        let c = client;
        let done = self.state.complete(c);
        debug_assert_eq!(done.op.seq, seq, "ops of a client complete in order");
        let record = self.state.client(c).record(done.op.profile);
        self.policy.on_op_complete(&Completion {
            client: c,
            op: done.op,
            record,
            submitted_at: done.submitted_at,
            completed_at: now,
        });
        self.dirty = true;
        if self.hosts[c].blocked == Blocked::Sync && !self.state.client(c).has_work() {
            self.hosts[c].blocked = Blocked::No;
            self.advance_cursor(c);
            self.continue_issue(c, now);
        } else {
            self.maybe_end_request(c, now);
        }
    }

    /// Calls the policy if anything changed and appends what the backend must do to `out`.
    pub fn schedule(&mut self, now: u64, out: &mut Vec<Command>) {
        while self.dirty && !self.stopped {
            self.dirty = false;
            self.policy_calls += 1;
            let mut actions = std::mem::take(&mut self.actions);
            let wake = {
                let mut cx = self.state.context(now, &mut actions);
                self.policy.schedule(&mut cx);
                cx.wake()
            };
            if let Some(w) = wake {
                self.wake_at = self.wake_at.min(w);
            }
            for a in actions.drain(..) {
                match a {
                    Action::Submit { client, seq } => {
                        let op = self.state.client(client).in_flight().iter().rev().find(|f| f.op.seq == seq);
                        let op = op.expect("submitted op is in flight").op;
                        out.push(Command::Submit { client, seq, profile: op.profile });
                    }
                    Action::Preempt { client } => {
                        out.push(Command::Preempt { client });
                        self.dirty = true;
                    }
                }
            }
            self.actions = actions;
            // Submissions drain host queues: resume hosts blocked on a full queue.
            for c in 0..self.hosts.len() {
                if self.hosts[c].blocked == Blocked::QueueFull && !self.queue_full(c) {
                    self.hosts[c].blocked = Blocked::No;
                    self.continue_issue(c, now);
                }
            }
        }
    }

    /// The client a backend may fast-forward alone from here, if any, and how: the only client
    /// with anything to do (every other client has no request under way and nothing queued or
    /// in flight), with a request under way, when the policy has just been called (nothing
    /// changed since). A client whose request count stops the run is never fast-forwarded.
    ///
    /// [`LoneMode::AtOnce`]: nothing is queued on its host, its host never blocks on a full
    /// queue, and the policy says it would submit the client's ops as soon as they are issued
    /// ([`Policy::lone_client_submits_at_once`]). Otherwise [`LoneMode::Scheduled`] if the
    /// policy only submits while the client is alone ([`Policy::lone_client_only_submits`]).
    pub fn lone_client(&self) -> Option<(usize, LoneMode)> {
        if self.dirty || self.stopped {
            return None;
        }
        let mut lone = None;
        for (c, h) in self.hosts.iter().enumerate() {
            if h.current.is_some() || !h.backlog.is_empty() || self.state.client(c).has_work() {
                if lone.is_some() {
                    return None;
                }
                lone = Some(c);
            }
        }
        let c = lone?;
        let h = &self.hosts[c];
        if h.current.is_none() || self.stop_requests.is_some_and(|(sc, _)| sc == c) {
            return None;
        }
        if h.queue_limit.is_none()
            && h.blocked != Blocked::QueueFull
            && self.state.client(c).pending().is_empty()
            && self.policy.lone_client_submits_at_once(c, &self.state)
        {
            Some((c, LoneMode::AtOnce))
        } else if self.policy.lone_client_only_submits(c, &self.state) {
            Some((c, LoneMode::Scheduled))
        } else {
            None
        }
    }

    /// Time of the next host event that is not an op issue of `client`, or of the next policy
    /// wake-up unless the policy is called as usual (`mode` [`LoneMode::Scheduled`]): with
    /// [`lone_client`](Self::lone_client), the earliest time anything but that client can
    /// happen; [`NEVER`] if none.
    pub fn next_time_besides(&self, client: usize, mode: LoneMode) -> u64 {
        let t = self
            .heap
            .iter()
            .filter(|e| !(e.0.2 == EV_ISSUE && e.0.3 as usize == client))
            .map(|e| e.0.0)
            .min()
            .unwrap_or(NEVER);
        match mode {
            LoneMode::AtOnce => t.min(self.wake_at),
            LoneMode::Scheduled => t,
        }
    }

    /// Submits every queued op of `client` at `now` without calling the policy (the fast path
    /// of a client alone, see [`lone_client`](Self::lone_client)), appending the submissions to
    /// `out`. The policy is still due a call ([`needs_schedule`](Self::needs_schedule)) for
    /// whatever changed.
    pub fn submit_lone(&mut self, client: usize, now: u64, out: &mut Vec<Command>) {
        if self.state.client(client).pending().is_empty() {
            return;
        }
        let mut actions = std::mem::take(&mut self.actions);
        let n = self.state.context(now, &mut actions).submit_all(client);
        let in_flight = self.state.client(client).in_flight();
        for (a, f) in actions.drain(..).zip(in_flight.range(in_flight.len() - n..)) {
            debug_assert_eq!(a, Action::Submit { client, seq: f.op.seq });
            out.push(Command::Submit { client, seq: f.op.seq, profile: f.op.profile });
        }
        self.actions = actions;
    }

    /// Host and timer events processed so far.
    pub fn host_events(&self) -> u64 {
        self.host_events
    }

    /// The last request of `client` that ended: its number, when, and how many host events
    /// ([`host_events`](Self::host_events)) were processed by then (the one that ended it
    /// included).
    pub fn last_request_end(&self, client: usize) -> Option<(u64, u64, u64)> {
        self.hosts[client].last_end
    }

    /// Whether the policy ignores op completions ([`Policy::ignores_op_completions`]).
    pub fn ignores_op_completions(&self) -> bool {
        self.policy.ignores_op_completions()
    }

    /// If a request of `client` began at `now` and none of its ops has completed, with nothing
    /// of it left unsubmitted: when it began and which profile table it runs. Once every
    /// event at `now` is processed, what follows (the host issuing its other ops after their
    /// host gaps, its ops running) depends only on these and on when the GPU could start an op
    /// of the client after its previous request.
    pub fn fresh_request(&self, client: usize, now: u64) -> Option<(u64, u16)> {
        let cur = self.hosts[client].current?;
        let s = self.state.client(client);
        (cur.began == now && s.completed_in_request() == 0 && s.pending().is_empty()).then_some((cur.began, cur.table))
    }

    /// Completes the [fresh](Self::fresh_request) request of `client` at `end` without
    /// processing its events, because the backend replays an identical request it saw the
    /// driver process (a client alone, [`LoneMode::AtOnce`], whose policy
    /// [ignores op completions](Self::ignores_op_completions)): its ops in flight and `issued`
    /// more that its host issues in `host_events` host events complete by `end`, each submitted
    /// as soon as issued, and the request ends at `end` (at the completion of its last op or at
    /// a host event). It then ends as usual (statistics, policy hooks, the next request), and
    /// the policy is due a call.
    pub fn skip_request(&mut self, client: usize, end: u64, issued: u64, host_events: u64) {
        let h = &mut self.hosts[client];
        let cur = h.current.as_mut().expect("a request under way");
        cur.next = cur.len;
        h.blocked = Blocked::No;
        self.heap.retain(|e| !(e.0.2 == EV_ISSUE && e.0.3 as usize == client));
        self.state.skip_ops(client, issued);
        self.host_events += host_events;
        self.dirty = true;
        self.maybe_end_request(client, end);
        debug_assert!(self.hosts[client].current.is_none_or(|c| c.began == end), "the request ended");
    }

    /// Ends the run: the statistics.
    pub fn finish(self) -> DriverOutcome {
        DriverOutcome { recorders: self.recorders, host_events: self.host_events, policy_calls: self.policy_calls }
    }

    fn push(&mut self, t: u64, kind: u8, client: usize) {
        self.heap_seq += 1;
        self.heap.push(Reverse((t, self.heap_seq, kind, client as u32)));
    }

    fn queue_full(&self, c: usize) -> bool {
        self.hosts[c].queue_limit.is_some_and(|l| self.state.client(c).pending().len() >= l)
    }

    fn schedule_next_arrival(&mut self, c: usize) {
        let h = &mut self.hosts[c];
        if h.max_requests.is_some_and(|m| h.generated >= m) {
            return;
        }
        if let Some(t) = h.arrivals.as_mut().and_then(Arrivals::next_ns) {
            h.generated += 1;
            if t <= self.end {
                self.push(t, EV_ARRIVAL, c);
            }
        }
    }

    fn on_arrival(&mut self, c: usize, now: u64) {
        self.hosts[c].backlog.push_back(now);
        self.schedule_next_arrival(c);
        if self.hosts[c].current.is_none()
            && let Some(arrival) = self.hosts[c].backlog.pop_front()
        {
            self.start_request(c, now, arrival);
        }
    }

    fn start_request(&mut self, c: usize, now: u64, arrival: u64) {
        let h = &mut self.hosts[c];
        let table = usize::from(h.started == 0 && h.has_first);
        let len = h.gaps[table].len();
        h.started += 1;
        h.current = Some(Current { arrival, began: now, table: table as u16, next: 0, len });
        let gap = h.gaps[table][0];
        self.state.begin_request(c);
        self.policy.on_request_begin(c, now);
        self.dirty = true;
        self.push(now + gap, EV_ISSUE, c);
    }

    fn advance_cursor(&mut self, c: usize) {
        if let Some(cur) = self.hosts[c].current.as_mut() {
            cur.next += 1;
        }
    }

    fn on_issue(&mut self, c: usize, now: u64) {
        let Some(cur) = self.hosts[c].current else {
            return;
        };
        let kind = self.hosts[c].kinds[cur.table as usize][cur.next];
        if kind == OpKind::Sync {
            if self.state.client(c).has_work() {
                self.hosts[c].blocked = Blocked::Sync;
                return;
            }
        } else {
            self.state.issue(c, cur.next, ProfileRef { table: cur.table, row: cur.next as u32 }, now);
            self.dirty = true;
        }
        self.advance_cursor(c);
        if kind != OpKind::Sync && self.queue_full(c) {
            self.hosts[c].blocked = Blocked::QueueFull;
            return;
        }
        self.continue_issue(c, now);
    }

    /// Schedules the next issue of client `c`, or ends its request if everything is issued.
    fn continue_issue(&mut self, c: usize, now: u64) {
        let Some(cur) = self.hosts[c].current else {
            return;
        };
        if cur.next < cur.len {
            let gap = self.hosts[c].gaps[cur.table as usize][cur.next];
            self.push(now + gap, EV_ISSUE, c);
        } else {
            self.maybe_end_request(c, now);
        }
    }

    fn maybe_end_request(&mut self, c: usize, now: u64) {
        let Some(cur) = self.hosts[c].current else {
            return;
        };
        if cur.next < cur.len || self.hosts[c].blocked != Blocked::No || self.state.client(c).has_work() {
            return;
        }
        let request = self.state.client(c).request();
        self.hosts[c].last_end = Some((request, now, self.host_events));
        self.state.end_request(c);
        let done = RequestDone {
            client: c,
            request,
            arrival: cur.arrival,
            completed_at: now,
            warmup: request < self.warmup as u64,
        };
        self.recorders[c].record(&done, self.warmup);
        self.policy.on_request_complete(&done);
        self.hosts[c].current = None;
        self.dirty = true;
        if let Some((sc, n)) = self.stop_requests
            && sc == c
            && self.recorders[c].completed() >= n
        {
            self.stopped = true;
            return;
        }
        let h = &mut self.hosts[c];
        if h.max_requests.is_some_and(|m| h.started >= m) {
            return;
        }
        if h.arrivals.is_none() {
            self.start_request(c, now, now);
        } else if let Some(arrival) = h.backlog.pop_front() {
            self.start_request(c, now, arrival);
        }
    }
}
