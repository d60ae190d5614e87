//! The discrete-event engine: the shared host model ([`Driver`]) and the simulated GPU, with
//! the clock jumping from one event to the next.
//!
//! Host events (arrivals, op issues, policy wake-ups) sit in the driver's binary heap; the GPU
//! model keeps its own next event (an op start, a cohort or transfer completion). At each step
//! the clock moves to the earlier of the two; GPU completions are processed first, then due
//! host events, then the policy runs once if anything changed and its submissions go to the GPU
//! after the device's launch latency (through one submitting thread when the device says so:
//! [`SubmitterSpec`]).

use crate::gpu::{Done, GpuModel, GpuStats, Lone, NEVER, OpSpan, Utilization, UtilizationWindow};
use crate::shape::{Exec, shape_of};
use orion_policies::report::ClientRecorder;
use orion_policies::{
    Backend, ClientInfo, Command, DeviceInfo, Driver, DriverClient, LoneMode, Policy, PolicyError, ProfileRef,
    StreamPriority,
};
use orion_traces::{ClientSpec, DeviceSpec, Stop, SubmitterSpec};
use std::collections::VecDeque;

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
    /// Record when every op ran ([`SimOutcome::ops`]).
    pub record_ops: bool,
}

/// What a simulation records besides its statistics, for timelines and plots. Everything is off
/// by default: recording costs time and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recording {
    /// Record when every op ran and what it was ([`SimOutcome::ops`], [`SimOutcome::op_info`]);
    /// also on when [`SimInput::record_ops`] is.
    pub ops: bool,
    /// Sample SM occupancy and DRAM bandwidth per client over this window
    /// ([`SimOutcome::utilization`]).
    pub utilization: Option<UtilizationWindow>,
    /// Process every event one by one: never fast-forward a client that has the GPU to itself
    /// (see [`simulate_with`]). The results are the same; only the engine counters differ.
    pub event_by_event: bool,
}

/// What the host and the policy did with an op of the op log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    /// Its profile (which trace row it is).
    pub profile: ProfileRef,
    /// The request (iteration) it belongs to, counting from 0, warm-up included.
    pub request: u64,
    /// When the client's host issued it, ns.
    pub issued_at: u64,
    /// When the policy submitted it (the last time, if it was preempted and resubmitted), ns;
    /// it reached the GPU a launch latency later.
    pub submitted_at: u64,
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
    /// Ops that ran in fast-forwarded stretches without policy calls (a client alone; see
    /// [`simulate_with`]).
    pub fast_forwarded_ops: u64,
    /// Ops that ran on the lone-stream model, with or without policy calls (not part of the
    /// report: the stretches with policy calls count their events as event by event).
    pub lone_ops: u64,
    /// Requests of a client alone replayed whole from an identical one (see [`simulate_with`]).
    pub replayed_requests: u64,
    /// When each op ran, in completion order (only with [`SimInput::record_ops`] or
    /// [`Recording::ops`]).
    pub ops: Vec<OpSpan>,
    /// For each entry of [`ops`](Self::ops), at the same index: what the op was and when it was
    /// issued and submitted (only with [`Recording::ops`] through [`simulate_with`]).
    pub op_info: Vec<OpInfo>,
    /// SM occupancy and DRAM bandwidth per client over time (only with
    /// [`Recording::utilization`]).
    pub utilization: Option<Utilization>,
}

impl SimOutcome {
    /// All events: host events plus GPU-internal events.
    pub fn events(&self) -> u64 {
        self.host_events + self.gpu.events
    }
}

/// Priority value of the simulated stream for a policy's priority.
fn stream_priority(p: StreamPriority) -> u8 {
    match p {
        StreamPriority::Low => 0,
        StreamPriority::High => 1,
    }
}

/// Runs one simulation of `input` under `policy` (already built; its `setup` is called here).
pub fn simulate(input: &SimInput<'_>, policy: &mut dyn Policy) -> Result<SimOutcome, PolicyError> {
    simulate_with(input, policy, &Recording::default())
}

/// As [`simulate`], also recording what `recording` asks for.
///
/// # Fast-forwarding a client alone
/// While one client is the only one with anything to do and the policy says it would submit
/// that client's ops as soon as they are issued
/// ([`Policy::lone_client_submits_at_once`](orion_policies::Policy::lone_client_submits_at_once)),
/// the stretch up to the next time anything else can happen (another client's arrival, a
/// policy wake-up, the end of the run) is fast-forwarded: the host model runs as usual, each
/// issued op is submitted without calling the policy, and the GPU runs each op from a
/// measurement of how it runs alone ([`Lone`]), one event per op instead of its start and
/// cohorts. The stretch ends before the first op that would still run when something else can
/// happen, so the GPU model takes over with no op under way; the policy is then called once.
/// The results are those of the event-by-event path ([`Recording::event_by_event`]), which
/// recording ops or utilisation also selects.
pub fn simulate_with(
    input: &SimInput<'_>,
    policy: &mut dyn Policy,
    recording: &Recording,
) -> Result<SimOutcome, PolicyError> {
    let device = DeviceInfo { name: input.device.name.clone(), sm_count: input.device.sm_count };
    let central = input.device.submitter.filter(|_| !policy.clients_submit_separately());
    let clients: Vec<DriverClient<'_>> = input
        .clients
        .iter()
        .map(|c| DriverClient { scenario_id: c.scenario_id, spec: c.spec, info: c.info.clone() })
        .collect();
    let mut driver = Driver::new(&clients, device, Backend::Sim, input.seed, input.warmup, input.stop, policy)?;
    // Each op's GPU-model shape, per client and profile table, computed once.
    let shapes: Vec<Vec<Vec<Exec>>> = input
        .clients
        .iter()
        .map(|c| {
            std::iter::once(&c.spec.trace)
                .chain(&c.spec.first_trace)
                .map(|t| t.ops.iter().map(|r| shape_of(r, input.device)).collect())
                .collect()
        })
        .collect();
    let priorities: Vec<u8> = driver.stream_priorities().iter().map(|&p| stream_priority(p)).collect();
    let mut gpu = GpuModel::new(input.device, &priorities);
    let detail = recording.ops;
    if input.record_ops || detail {
        gpu.record_ops();
    }
    if let Some(window) = recording.utilization {
        gpu.record_utilization(window);
    }
    // With a detailed op log: per client, indexed by sequence number, what each op was.
    let mut submitted: Vec<Vec<Option<OpInfo>>> = vec![Vec::new(); if detail { input.clients.len() } else { 0 }];
    let launch_latency = input.device.launch_latency_ns;
    let end = driver.end();
    let mut done: Vec<Done> = Vec::new();
    let mut commands: Vec<Command> = Vec::new();
    let fast = !recording.event_by_event
        && !detail
        && !input.record_ops
        && recording.utilization.is_none()
        && launch_latency > 0
        && input.device.kernel_gap_ns > 0
        && central.is_none();
    let mut submitter = central.map(Submitter::new);
    let mut lone = fast.then(|| {
        let sizes: Vec<Vec<usize>> = shapes.iter().map(|t| t.iter().map(Vec::len).collect()).collect();
        Lone::new(input.device, &sizes)
    });
    let mut fast_forwarded_ops = 0;
    let mut lone_ops = 0;
    let mut replayed_requests = 0;
    // No stretch can be fast-forwarded before this time.
    let mut lone_retry = 0;
    let mut now = 0;
    // After a fast-forwarded stretch: its events are processed, the policy is due.
    let mut resume = false;
    let end_ns = loop {
        if !resume {
            let t = driver.next_time().min(gpu.next_time());
            if t == NEVER && !driver.needs_schedule() {
                break now;
            }
            if t > end && !driver.needs_schedule() {
                break end;
            }
            if t != NEVER {
                now = now.max(t);
            }
            if gpu.next_time() <= now {
                gpu.advance(now, &mut done);
                for (client, seq) in done.drain(..) {
                    driver.op_done(client, seq, now);
                }
            }
            driver.process_host_events(now);
            if driver.stopped() {
                break now;
            }
        }
        resume = false;
        driver.schedule(now, &mut commands);
        for cmd in commands.drain(..) {
            match cmd {
                Command::Submit { client, seq, profile } => {
                    let exec = shapes[client][profile.table as usize][profile.row as usize];
                    match submitter.as_mut() {
                        Some(s) => s.queue.push_back((client, seq, exec)),
                        None => gpu.submit(client, seq, exec, now + launch_latency),
                    }
                    if detail {
                        note_submission(&mut submitted[client], &driver, client, seq, profile, now);
                    }
                }
                Command::Preempt { client } => {
                    if let Some(s) = submitter.as_mut() {
                        s.queue.retain(|&(c, _, _)| c != client);
                    }
                    gpu.preempt(client, now);
                }
            }
        }
        if let Some(s) = submitter.as_mut() {
            s.launch(&mut gpu, now, launch_latency);
        }
        if let Some(lone) = lone.as_mut()
            && now >= lone_retry
            && let Some((c, mode)) = driver.lone_client()
            && gpu.alone(c)
            && let Some(t) = {
                let last = fast_forward(
                    c,
                    now,
                    mode,
                    lone,
                    &mut driver,
                    &mut gpu,
                    &shapes,
                    launch_latency,
                    end,
                    &mut commands,
                    &mut replayed_requests,
                );
                // The stretch ended before an op that runs until something else can happen, or
                // at the horizon: no new stretch can begin before then.
                lone_retry = lone.bound();
                last
            }
        {
            if mode == LoneMode::AtOnce {
                fast_forwarded_ops += lone.completed();
            }
            lone_ops += lone.completed();
            now = t;
            if driver.stopped() {
                break now;
            }
            resume = true;
        }
    };
    let out = driver.finish();
    let utilization = gpu.take_utilization(end_ns);
    let ops = gpu.take_log();
    let op_info = if detail {
        ops.iter()
            .map(|o| submitted[o.stream].get(o.seq as usize).copied().flatten().expect("a completed op was submitted"))
            .collect()
    } else {
        Vec::new()
    };
    Ok(SimOutcome {
        end_ns,
        recorders: out.recorders,
        gpu: gpu.stats(),
        host_events: out.host_events,
        policy_calls: out.policy_calls,
        fast_forwarded_ops,
        lone_ops,
        replayed_requests,
        ops,
        op_info,
        utilization,
    })
}

/// The one host thread that makes every launch call ([`SubmitterSpec`]): the policy's
/// submissions wait in `queue`, in the order it made them, and are launched one after another.
#[derive(Debug)]
struct Submitter {
    spec: SubmitterSpec,
    /// (client, sequence number, shape) of each submission not launched yet.
    queue: VecDeque<(usize, u64, Exec)>,
    /// When the thread has made the calls already launched.
    free_at: u64,
}

impl Submitter {
    fn new(spec: SubmitterSpec) -> Self {
        Submitter { spec, queue: VecDeque::new(), free_at: 0 }
    }

    /// Launches the waiting submissions at `now`, in order, each call starting when the previous
    /// one returned, until one would go to a stream holding `queue_depth` pending ops: that
    /// call blocks the thread (and every call behind it) until the stream completes an op, when
    /// this runs again. A call's op becomes visible to the GPU `launch_latency` after the call
    /// starts.
    fn launch(&mut self, gpu: &mut GpuModel, now: u64, launch_latency: u64) {
        while let Some(&(client, seq, exec)) = self.queue.front() {
            if gpu.pending(client) >= self.spec.queue_depth as usize {
                break;
            }
            let start = self.free_at.max(now);
            gpu.submit(client, seq, exec, start + launch_latency);
            self.free_at = start + self.spec.launch_call_ns;
            self.queue.pop_front();
        }
    }
}

/// Fast-forwards client `c`, alone on the GPU, from now up to the next time anything else can
/// happen (see [`simulate_with`]); with `mode` [`LoneMode::Scheduled`] the policy is called as
/// usual and only the GPU side runs on the lone-stream model. Returns the time of the last
/// event processed, `None` if there was none; the policy is then due a call at that time.
#[allow(clippy::too_many_arguments)]
fn fast_forward(
    c: usize,
    now: u64,
    mode: LoneMode,
    lone: &mut Lone,
    driver: &mut Driver<'_>,
    gpu: &mut GpuModel,
    shapes: &[Vec<Vec<Exec>>],
    launch_latency: u64,
    end: u64,
    commands: &mut Vec<Command>,
    replayed: &mut u64,
) -> Option<u64> {
    let horizon = driver.next_time_besides(c, mode).min(end.saturating_add(1));
    let queued = driver.state().client(c).in_flight().iter().map(|f| (f.op.profile.table, f.op.profile.row));
    let scheduled = mode == LoneMode::Scheduled;
    lone.begin(gpu, c, horizon, queued, scheduled);
    // Whole requests are replayed when the policy is not called (and ignores op completions).
    let replays = !scheduled && driver.ignores_op_completions();
    let mut last = None;
    if replays {
        *replayed += replay_requests(c, now, lone, driver, &mut last);
    }
    loop {
        // Only this client's op issues, its GPU ops and (when the policy is called) the policy's
        // wake-ups can come before the bound.
        let t = lone.next_completion().min(driver.next_time());
        if t >= lone.bound() {
            break;
        }
        while let Some(seq) = lone.complete(t) {
            driver.op_done(c, seq, t);
        }
        driver.process_host_events(t);
        if replays && let Some(r) = lone.recording() {
            // The request recorded ends at the completion of its last op or at a host event
            // (a sync issued after it), and another may begin and end (without ops) at once.
            if let Some((ended, end, events)) = driver.last_request_end(c)
                && ended >= r
            {
                let next = driver.state().client(c).request();
                lone.finish_recording((ended == r && next == r + 1).then_some((end, events)));
            }
        }
        last = Some(last.map_or(t, |l: u64| l.max(t)));
        if driver.stopped() {
            break;
        }
        if scheduled {
            driver.schedule(t, commands);
        } else {
            driver.submit_lone(c, t, commands);
        }
        for cmd in commands.drain(..) {
            let Command::Submit { client, seq, profile } = cmd else {
                unreachable!("the lone path only submits");
            };
            debug_assert_eq!(client, c, "only the lone client has ops to submit");
            let exec = shapes[client][profile.table as usize][profile.row as usize];
            lone.submit(client, seq, exec, profile.table, profile.row, t + launch_latency);
        }
        if replays {
            *replayed += replay_requests(c, t, lone, driver, &mut last);
        }
    }
    lone.end(gpu);
    last
}

/// At the end of instant `now` (every event at `now` processed): while a request of client `c`
/// began at `now` (see [`Driver::fresh_request`]) and an identical one was recorded that ends
/// before the stretch's bound, replays it: its ops complete at once, as the fast path completed
/// them before, and the request ends (the next may begin, and is replayed in turn once the
/// instant of its beginning is over). A request not recorded yet is recorded as the fast path
/// processes it. `last` becomes the time of the last event replayed. Returns how many requests
/// were replayed.
fn replay_requests(c: usize, now: u64, lone: &mut Lone, driver: &mut Driver<'_>, last: &mut Option<u64>) -> u64 {
    let mut now = now;
    let mut replayed = 0;
    while let Some((began, table)) = driver.fresh_request(c, now) {
        let key = lone.replay_key(c, table, began);
        match lone.replay(key) {
            Some(Some(r)) if began + r.duration < lone.bound() => {
                lone.apply(&r, began);
                let end = began + r.duration;
                driver.skip_request(c, end, r.issued, r.host_events);
                *last = Some(end);
                replayed += 1;
                if driver.next_time() <= end {
                    // The instant the next request begins is not over: its first ops are issued
                    // then, in the next step.
                    break;
                }
                now = end;
            }
            Some(_) => break,
            None => {
                let request = driver.state().client(c).request();
                lone.record(key, began, request, driver.host_events());
                break;
            }
        }
    }
    replayed
}

/// Remembers what op `seq` of `client` is, as it is submitted at `now`.
fn note_submission(
    log: &mut Vec<Option<OpInfo>>,
    driver: &Driver<'_>,
    client: usize,
    seq: u64,
    profile: ProfileRef,
    now: u64,
) {
    let queued = driver.state().client(client).in_flight().iter().rev().find(|f| f.op.seq == seq).map(|f| f.op);
    let info = OpInfo {
        profile,
        request: queued.map_or(0, |q| q.request),
        issued_at: queued.map_or(now, |q| q.issued_at),
        submitted_at: now,
    };
    let i = seq as usize;
    if log.len() <= i {
        log.resize(i + 1, None);
    }
    log[i] = Some(info);
}
