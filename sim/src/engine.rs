//! The discrete-event engine: a binary heap of timestamped host events (request arrivals, op
//! issues), the GPU model's own events, and the policy called after every change.
//!
//! # Host model
//! Each client is one host thread. A request (iteration) starts when it has arrived and the
//! previous one has completed; the thread then issues the request's ops in program order, each
//! after its host gap, into the client's host-side queue, where the policy picks them up. A
//! `sync` op blocks the thread until every earlier op of the client has completed; so does the
//! end of a request (its output is read back). A policy may bound the host queue, blocking the
//! thread while it is full. Allocations and frees go through the queue like GPU ops and take no
//! GPU time.

use crate::gpu::{Done, GpuModel, GpuStats, NEVER};
use crate::shape::{Exec, shape_of};
use orion_policies::report::ClientRecorder;
use orion_policies::{
    Action, Backend, ClientInfo, ClientState, Completion, DeviceInfo, Policy, PolicyError,
    PolicySetup, ProfileRef, RequestDone, SchedState, StreamPriority,
};
use orion_traces::{Arrivals, ClientSpec, DeviceSpec, OpKind, OpRecord, Stop};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// One client of a simulation: its spec and its index in the scenario (which seeds its arrivals).
#[derive(Debug, Clone, Copy)]
pub struct SimClient<'a> {
    /// Index in the scenario.
    pub scenario_id: usize,
    /// The spec.
    pub spec: &'a ClientSpec,
    /// Static facts the policy sees (its `id` must be the client's index in this simulation).
    pub info: &'a ClientInfo,
}

/// Inputs of one simulation.
#[derive(Debug, Clone)]
pub struct SimInput<'a> {
    /// Device.
    pub device: &'a DeviceSpec,
    /// Clients, in order.
    pub clients: Vec<SimClient<'a>>,
    /// Seed of the arrival processes.
    pub seed: u64,
    /// Warm-up requests per client.
    pub warmup: u32,
    /// When to stop.
    pub stop: Stop,
}

/// What a simulation produced.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    /// Simulated time at the end, ns.
    pub end_ns: u64,
    /// Per client, in input order.
    pub recorders: Vec<ClientRecorder>,
    /// GPU counters.
    pub gpu: GpuStats,
    /// Host and timer events processed.
    pub host_events: u64,
    /// Policy invocations.
    pub policy_calls: u64,
}

impl SimOutcome {
    /// All events: host events plus GPU-internal events.
    pub fn events(&self) -> u64 {
        self.host_events + self.gpu.events
    }
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
    table: u16,
    next: usize,
    len: usize,
}

struct Host {
    shapes: Vec<Vec<Exec>>,
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
}

struct Sim<'p> {
    policy: &'p mut dyn Policy,
    state: SchedState,
    gpu: GpuModel,
    hosts: Vec<Host>,
    recorders: Vec<ClientRecorder>,
    heap: BinaryHeap<Reverse<(u64, u64, u8, u32)>>,
    heap_seq: u64,
    wake_at: u64,
    launch_latency: u64,
    warmup: u32,
    end: u64,
    stop_requests: Option<(usize, u64)>,
    stopped: bool,
    dirty: bool,
    actions: Vec<Action>,
    done: Vec<Done>,
    host_events: u64,
    policy_calls: u64,
}

/// Priority value of the simulated stream for a policy's priority.
fn stream_priority(p: StreamPriority) -> u8 {
    match p {
        StreamPriority::Low => 0,
        StreamPriority::High => 1,
    }
}

/// Runs one simulation of `input` under `policy` (already built; `setup` is called here).
pub fn simulate(input: &SimInput<'_>, policy: &mut dyn Policy) -> Result<SimOutcome, PolicyError> {
    let device_info = DeviceInfo {
        name: input.device.name.clone(),
        sm_count: input.device.sm_count,
    };
    let infos: Vec<ClientInfo> = input.clients.iter().map(|c| c.info.clone()).collect();
    policy.setup(&PolicySetup {
        clients: &infos,
        device: &device_info,
        backend: Backend::Sim,
    })?;
    let mut states = Vec::new();
    let mut hosts = Vec::new();
    let mut priorities = Vec::new();
    for (i, c) in input.clients.iter().enumerate() {
        assert_eq!(c.info.id, i, "client info ids must be simulation indices");
        let mut tables: Vec<Arc<[OpRecord]>> = vec![Arc::from(c.spec.trace.ops.as_slice())];
        if let Some(first) = &c.spec.first_trace {
            tables.push(Arc::from(first.ops.as_slice()));
        }
        let shapes = tables
            .iter()
            .map(|t| t.iter().map(|r| shape_of(r, input.device)).collect())
            .collect();
        let gaps = tables
            .iter()
            .map(|t| {
                t.iter()
                    .map(|r| {
                        r.host_gap()
                            + if matches!(r.kind, OpKind::Malloc | OpKind::Free) {
                                r.duration_ns
                            } else {
                                0
                            }
                    })
                    .collect()
            })
            .collect();
        let kinds = tables
            .iter()
            .map(|t| t.iter().map(|r| r.kind).collect())
            .collect();
        priorities.push(stream_priority(policy.stream_priority(c.info)));
        hosts.push(Host {
            shapes,
            gaps,
            kinds,
            has_first: c.spec.first_trace.is_some(),
            arrivals: c
                .spec
                .arrival
                .is_open_loop()
                .then(|| c.spec.arrival.generator(input.seed, c.scenario_id as u64)),
            backlog: VecDeque::new(),
            generated: 0,
            max_requests: c.spec.max_requests,
            started: 0,
            current: None,
            blocked: Blocked::No,
            queue_limit: policy.host_queue_limit(c.info),
        });
        states.push(ClientState::new(c.info.clone(), tables));
    }
    let stop_client = infos.iter().position(|c| c.is_hp()).unwrap_or(0);
    let mut sim = Sim {
        policy,
        state: SchedState::new(states, device_info),
        gpu: GpuModel::new(input.device, &priorities),
        hosts,
        recorders: vec![ClientRecorder::default(); input.clients.len()],
        heap: BinaryHeap::new(),
        heap_seq: 0,
        wake_at: NEVER,
        launch_latency: input.device.launch_latency_ns,
        warmup: input.warmup,
        end: input.stop.duration_ns.unwrap_or(NEVER),
        stop_requests: input.stop.requests.map(|n| (stop_client, n)),
        stopped: false,
        dirty: true,
        actions: Vec::new(),
        done: Vec::new(),
        host_events: 0,
        policy_calls: 0,
    };
    for c in 0..sim.hosts.len() {
        if sim.hosts[c].arrivals.is_some() {
            sim.schedule_next_arrival(c);
        } else {
            sim.start_request(c, 0, 0);
        }
    }
    let end_ns = sim.run();
    Ok(SimOutcome {
        end_ns,
        recorders: sim.recorders,
        gpu: sim.gpu.stats(),
        host_events: sim.host_events,
        policy_calls: sim.policy_calls,
    })
}

impl Sim<'_> {
    fn push(&mut self, t: u64, kind: u8, client: usize) {
        self.heap_seq += 1;
        self.heap
            .push(Reverse((t, self.heap_seq, kind, client as u32)));
    }

    fn run(&mut self) -> u64 {
        let mut now = 0;
        loop {
            let t_heap = self.heap.peek().map_or(NEVER, |e| e.0.0);
            let t = t_heap.min(self.gpu.next_time()).min(self.wake_at);
            if t == NEVER {
                return now;
            }
            if t > self.end {
                return self.end;
            }
            now = t;
            if self.gpu.next_time() <= now {
                self.gpu.advance(now, &mut self.done);
                let mut done = std::mem::take(&mut self.done);
                for &(client, seq) in &done {
                    self.on_op_done(client, seq, now);
                }
                done.clear();
                self.done = done;
            }
            while let Some(&Reverse((te, _, kind, client))) = self.heap.peek() {
                if te != now {
                    break;
                }
                self.heap.pop();
                self.host_events += 1;
                match kind {
                    EV_ARRIVAL => self.on_arrival(client as usize, now),
                    _ => self.on_issue(client as usize, now),
                }
            }
            if self.wake_at <= now {
                self.wake_at = NEVER;
                self.dirty = true;
                self.host_events += 1;
            }
            if self.stopped {
                return now;
            }
            if self.dirty {
                self.call_policy(now);
            }
        }
    }

    fn call_policy(&mut self, now: u64) {
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
                    let st = self.state.client(client);
                    let op = st
                        .in_flight()
                        .iter()
                        .rev()
                        .find(|f| f.op.seq == seq)
                        .expect("submitted op is in flight")
                        .op;
                    let exec = self.hosts[client].shapes[op.profile.table as usize]
                        [op.profile.row as usize];
                    self.gpu
                        .submit(client, seq, exec, now + self.launch_latency);
                }
                Action::Preempt { client } => {
                    self.gpu.preempt(client, now);
                    self.state.requeue_in_flight(client);
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

    fn queue_full(&self, c: usize) -> bool {
        self.hosts[c]
            .queue_limit
            .is_some_and(|l| self.state.client(c).pending().len() >= l)
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
        let table = if h.started == 0 && h.has_first { 1 } else { 0 };
        let len = h.shapes[table].len();
        h.started += 1;
        h.current = Some(Current {
            arrival,
            table: table as u16,
            next: 0,
            len,
        });
        let gap = h.gaps[table][0];
        self.state.begin_request(c);
        self.policy.on_request_begin(c, now);
        self.dirty = true;
        self.push(now + gap, EV_ISSUE, c);
    }

    fn on_issue(&mut self, c: usize, now: u64) {
        let cur = self.hosts[c].current.expect("issue without a request");
        let kind = self.hosts[c].kinds[cur.table as usize][cur.next];
        if kind == OpKind::Sync {
            if self.state.client(c).has_work() {
                self.hosts[c].blocked = Blocked::Sync;
                return;
            }
        } else {
            self.state.issue(
                c,
                cur.next,
                ProfileRef {
                    table: cur.table,
                    row: cur.next as u32,
                },
                now,
            );
            self.dirty = true;
        }
        self.hosts[c].current.as_mut().unwrap().next += 1;
        if kind != OpKind::Sync && self.queue_full(c) {
            self.hosts[c].blocked = Blocked::QueueFull;
            return;
        }
        self.continue_issue(c, now);
    }

    /// Schedules the next issue of client `c`, or ends its request if everything is issued.
    fn continue_issue(&mut self, c: usize, now: u64) {
        let cur = self.hosts[c].current.expect("active request");
        if cur.next < cur.len {
            let gap = self.hosts[c].gaps[cur.table as usize][cur.next];
            self.push(now + gap, EV_ISSUE, c);
        } else {
            self.maybe_end_request(c, now);
        }
    }

    fn on_op_done(&mut self, c: usize, seq: u64, now: u64) {
        let done = self.state.complete(c);
        debug_assert_eq!(done.op.seq, seq, "ops of a client complete in order");
        {
            let record = self.state.client(c).record(done.op.profile);
            self.policy.on_op_complete(&Completion {
                client: c,
                op: done.op,
                record,
                submitted_at: done.submitted_at,
                completed_at: now,
            });
        }
        self.dirty = true;
        if self.hosts[c].blocked == Blocked::Sync && !self.state.client(c).has_work() {
            self.hosts[c].blocked = Blocked::No;
            self.hosts[c].current.as_mut().unwrap().next += 1;
            self.continue_issue(c, now);
        } else {
            self.maybe_end_request(c, now);
        }
    }

    fn maybe_end_request(&mut self, c: usize, now: u64) {
        let Some(cur) = self.hosts[c].current else {
            return;
        };
        if cur.next < cur.len
            || self.hosts[c].blocked != Blocked::No
            || self.state.client(c).has_work()
        {
            return;
        }
        let request = self.state.client(c).request();
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
