//! The executor: the shared host model ([`Driver`]) driven by the wall clock, with the real GPU
//! (through an [`OpRunner`]) in place of the simulator's GPU model.
//!
//! One thread runs the loop: it polls the completion event of each client's oldest in-flight
//! op (ops of a client complete in order, on its stream) and reports completions to the
//! driver, lets the driver process the host events that are due (arrivals, op issues after
//! their host gaps, syncs, policy wake-ups), calls the policy when anything changed, and
//! launches what the policy submitted on the client's stream, recording an event after each
//! op. Between events it polls (while ops are in flight) or waits for the next host event:
//! sleeping when it is more than a millisecond away, yielding when more than 50 us, spinning
//! otherwise.
//!
//! The time from the start of the `schedule` call that submitted an op (the moment the op was
//! found admissible) to the return of its launch call is recorded per op, as is the time from
//! the op's issue by its host to that return (pure overhead for policies that submit at once).
//!
//! When asked ([`ExecInput::timeline`]), it also records every op for a timeline
//! ([`OpTimeline`]): its client, profile, request, host issue, admission, submission and observed
//! completion, and its start and end on the GPU, taken from events when the runner can time
//! them ([`OpRunner::enable_timing`]), else from the host's observations. When not asked,
//! nothing per op is kept or allocated.

use crate::cuda::{Event, Gpu, Stream, WorkBuffers};
use crate::error::{RealError, Result};
use crate::plan::PreparedOp;
use crate::stats::{Histogram, Summary};
use orion_policies::driver::NEVER;
use orion_policies::report::ClientRecorder;
use orion_policies::timeline::Window;
use orion_policies::{
    Backend, ClientInfo, Command, DeviceInfo, Driver, DriverClient, Policy, ProfileRef, StreamPriority,
};
use orion_traces::{ClientSpec, Stop};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What the executor needs from a GPU: submit an op to a client's stream (with its completion
/// event), tell whether a client's oldest in-flight op completed, and wait for everything.
pub trait OpRunner {
    /// Submits `op` to `client`'s stream, followed by its completion event.
    fn submit(&mut self, client: usize, op: &PreparedOp) -> Result<()>;
    /// How many of `client`'s oldest in-flight ops have completed (ops of a client complete in
    /// order); they are forgotten.
    fn completed(&mut self, client: usize) -> Result<usize>;
    /// Waits for all submitted work and forgets it.
    fn drain(&mut self) -> Result<()>;
    /// Device memory in use, bytes, if known.
    fn memory_used(&self) -> Option<u64> {
        None
    }
    /// Completion queries made so far (`cuEventQuery` calls).
    fn queries(&self) -> u64 {
        0
    }
    /// Times every op submitted from now on on the GPU (called before any submission, for
    /// timelines). Returns the host instant that time 0 of [`take_times`](Self::take_times)
    /// corresponds to and the uncertainty of that match, ns; `None` if the runner cannot time
    /// ops (the executor then uses what the host observes).
    fn enable_timing(&mut self) -> Result<Option<(Instant, u64)>> {
        Ok(None)
    }
    /// Appends the (start, end) of `client`'s ops that [`completed`](Self::completed) reported
    /// since the last call, oldest first, ns since the time base of
    /// [`enable_timing`](Self::enable_timing). Nothing unless timing is on.
    fn take_times(&mut self, _client: usize, _out: &mut Vec<(f64, f64)>) {}
}

/// The real GPU as an [`OpRunner`]: one stream per client at the priority the policy asked
/// for, one event per op.
///
/// With timing on ([`OpRunner::enable_timing`]), its events time (`CU_EVENT_DEFAULT`), an event
/// is also recorded just before each op, and each completed op's start and end are read with
/// `cuEventElapsedTime` from the end event of the previous op of its stream (whose time is
/// known), back to a base event recorded at the start: chaining keeps every interval short, so
/// the `f32` milliseconds the driver returns stay precise over long runs.
pub struct GpuRunner<'g> {
    gpu: &'g Gpu,
    lanes: Vec<Lane>,
    pool: Vec<Event>,
    queries: u64,
    /// The base event of timing, when on.
    base: Option<Event>,
}

struct Lane {
    stream: Stream,
    work: WorkBuffers,
    in_flight: VecDeque<Event>,
    /// Timing: the events recorded before each in-flight op.
    starts: VecDeque<Event>,
    /// Timing: (start, end) of completed ops not yet taken, ns since the base.
    times: VecDeque<(f64, f64)>,
    /// Timing: the end event of the lane's last completed op, and its time.
    anchor: Option<(Event, f64)>,
}

fn take_event(pool: &mut Vec<Event>, gpu: &Gpu, timing: bool) -> Result<Event> {
    match pool.pop() {
        Some(e) => Ok(e),
        None => gpu.event(timing),
    }
}

/// The CUDA stream priority of a policy's priority: `High` is the device's greatest priority,
/// `Low` its least (`range` is `(least, greatest)` as `cuCtxGetStreamPriorityRange` gives it).
pub fn cuda_priority(p: StreamPriority, range: (i32, i32)) -> i32 {
    match p {
        StreamPriority::High => range.1,
        StreamPriority::Low => range.0,
    }
}

impl<'g> GpuRunner<'g> {
    /// Streams at `priorities` and buffers for copies up to `max_copy[c]` bytes, per client.
    pub fn new(gpu: &'g Gpu, priorities: &[StreamPriority], max_copy: &[u64]) -> Result<GpuRunner<'g>> {
        let range = gpu.props().stream_priority_range;
        let lanes = priorities
            .iter()
            .zip(max_copy)
            .map(|(&p, &m)| {
                Ok(Lane {
                    stream: gpu.stream(cuda_priority(p, range))?,
                    work: WorkBuffers::new(gpu, m)?,
                    in_flight: VecDeque::new(),
                    starts: VecDeque::new(),
                    times: VecDeque::new(),
                    anchor: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pool = (0..64).map(|_| gpu.event(false)).collect::<Result<Vec<_>>>()?;
        Ok(GpuRunner { gpu, lanes, pool, queries: 0, base: None })
    }

    /// The CUDA priority of each client's stream.
    pub fn stream_priorities(&self) -> Vec<i32> {
        self.lanes.iter().map(|l| l.stream.priority()).collect()
    }
}

impl OpRunner for GpuRunner<'_> {
    fn submit(&mut self, client: usize, op: &PreparedOp) -> Result<()> {
        let lane = &mut self.lanes[client];
        let timing = self.base.is_some();
        if timing {
            let ev = take_event(&mut self.pool, self.gpu, true)?;
            ev.record(&lane.stream)?;
            lane.starts.push_back(ev);
        }
        match op {
            PreparedOp::Kernel(k) => lane.work.launch(self.gpu, &lane.stream, k)?,
            PreparedOp::Copy { kind, bytes } => self.gpu.copy(&lane.stream, *kind, *bytes, &lane.work)?,
            PreparedOp::Marker => {}
        }
        let ev = take_event(&mut self.pool, self.gpu, timing)?;
        ev.record(&lane.stream)?;
        lane.in_flight.push_back(ev);
        Ok(())
    }

    /// Completions form a prefix of the client's in-flight ops, so a binary search over their
    /// events finds it with O(log n) `cuEventQuery` calls: one while the oldest op still runs,
    /// two when all are done.
    fn completed(&mut self, client: usize) -> Result<usize> {
        let lane = &mut self.lanes[client];
        let queries = &mut self.queries;
        let mut done_at = |i: usize| {
            *queries += 1;
            lane.in_flight[i].is_complete()
        };
        let n = lane.in_flight.len();
        if n == 0 || !done_at(0)? {
            return Ok(0);
        }
        let done = if n == 1 || done_at(n - 1)? {
            n
        } else {
            // in_flight[lo] is complete, in_flight[hi] is not.
            let (mut lo, mut hi) = (0, n - 1);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if done_at(mid)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo + 1
        };
        match &self.base {
            None => self.pool.extend(lane.in_flight.drain(..done)),
            Some(base) => {
                for end in lane.in_flight.drain(..done) {
                    let start = lane.starts.pop_front().expect("timing records a start event per op");
                    // Both come after the anchor on its stream, and are complete.
                    let (from, t) = lane.anchor.as_ref().map_or((base, 0.0), |(e, t)| (e, *t));
                    let s = t + from.elapsed_complete_ns(&start)?;
                    let e = t + from.elapsed_complete_ns(&end)?;
                    lane.times.push_back((s, e));
                    self.pool.push(start);
                    if let Some((old, _)) = lane.anchor.replace((end, e)) {
                        self.pool.push(old);
                    }
                }
            }
        }
        Ok(done)
    }

    fn drain(&mut self) -> Result<()> {
        for lane in &mut self.lanes {
            lane.stream.synchronize()?;
            self.pool.extend(lane.in_flight.drain(..));
            self.pool.extend(lane.starts.drain(..));
            lane.times.clear();
        }
        Ok(())
    }

    fn memory_used(&self) -> Option<u64> {
        self.gpu.mem_info().ok().map(|(free, total)| total - free)
    }

    fn queries(&self) -> u64 {
        self.queries
    }

    /// Replaces the event pool with timing events and records the base event on the first
    /// client's (idle) stream; time 0 is the midpoint of the record call and the base's
    /// completion as the host saw them.
    fn enable_timing(&mut self) -> Result<Option<(Instant, u64)>> {
        if self.lanes.iter().any(|l| !l.in_flight.is_empty()) {
            return Err(RealError::Unsupported("timing can only be enabled before any op is submitted".into()));
        }
        let Some(lane) = self.lanes.first() else { return Ok(None) };
        self.pool = (0..64).map(|_| self.gpu.event(true)).collect::<Result<Vec<_>>>()?;
        let base = self.gpu.event(true)?;
        let t0 = Instant::now();
        base.record(&lane.stream)?;
        base.synchronize()?;
        let t1 = Instant::now();
        self.base = Some(base);
        let half = (t1 - t0) / 2;
        Ok(Some((t0 + half, half.as_nanos() as u64)))
    }

    fn take_times(&mut self, client: usize, out: &mut Vec<(f64, f64)>) {
        out.extend(self.lanes[client].times.drain(..));
    }
}

/// One client of an execution.
#[derive(Debug, Clone)]
pub struct ExecClient<'a> {
    /// Index in the scenario (seeds its arrivals).
    pub scenario_id: usize,
    /// The spec.
    pub spec: &'a ClientSpec,
    /// Static facts the policy sees (its `id` must be its index in this execution).
    pub info: ClientInfo,
    /// Prepared ops per profile table (0: the trace, 1: the first-request trace).
    pub ops: &'a [Vec<PreparedOp>],
}

/// Inputs of one execution.
#[derive(Debug, Clone)]
pub struct ExecInput<'a> {
    /// What the policy knows of the device.
    pub device: DeviceInfo,
    /// Clients, in order.
    pub clients: Vec<ExecClient<'a>>,
    /// Seed of the arrival processes.
    pub seed: u64,
    /// Warm-up requests per client.
    pub warmup: u32,
    /// When to stop.
    pub stop: Stop,
    /// Set from outside (Ctrl-C) to stop early.
    pub interrupt: Option<&'a AtomicBool>,
    /// Record the ops that overlap this part of the run for a timeline (`None`: nothing is
    /// recorded, at no cost per op).
    pub timeline: Option<Window>,
}

/// How the start and end of a timeline's ops were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// On the GPU: `cuEventElapsedTime` of events recorded on the op's stream just before and
    /// just after it, against a base event recorded at the start (see [`GpuRunner`]), shifted to
    /// the host clock by when the host saw the base event.
    GpuEvents,
    /// On the host: the end is the first completion poll that saw the op complete (an upper
    /// bound), the start the later of the op's submission (its launch call's return) and the
    /// end of the previous op of its stream (a stream runs its ops in order).
    HostPolling,
}

impl TimeSource {
    /// Its name in timelines.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::GpuEvents => "gpu_events",
            TimeSource::HostPolling => "host_polling",
        }
    }

    /// How it obtains times, in words (for a timeline's metadata).
    pub fn description(self) -> &'static str {
        match self {
            TimeSource::GpuEvents => {
                "start and end on the GPU: cuEventElapsedTime of events recorded on the op's stream just before and \
                 just after it, chained per stream back to a base event recorded at the start, shifted to the host \
                 clock by when the host saw the base event (resolution about 0.5 us); the start is when the stream \
                 reached the op, so a slice includes any wait for free SMs, and slowdown is against the trace's \
                 record; issue, admission, submission and observed completion are host times"
            }
            TimeSource::HostPolling => {
                "host observations: end = the first completion poll (cuEventQuery) that saw the op complete, an \
                 upper bound; start = the later of the op's submission (return of its launch call) and the end of \
                 the previous op of its stream, since a stream runs its ops in order"
            }
        }
    }
}

/// One op of a run as a timeline shows it; times are ns since the start of the run (the
/// executor's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpTiming {
    /// The client's index in the scenario ([`ExecClient::scenario_id`]).
    pub client: usize,
    /// Per-client sequence number.
    pub seq: u64,
    /// Request (iteration) number, counting from 0.
    pub request: u64,
    /// Its profile.
    pub profile: ProfileRef,
    /// When its host issued it.
    pub issued_ns: u64,
    /// When the policy submitted it (the time of the scheduling round).
    pub admitted_ns: u64,
    /// When its launch call (with its completion event) returned.
    pub submitted_ns: u64,
    /// The first completion poll that saw it complete.
    pub observed_ns: u64,
    /// Start (see [`OpTimeline::source`]).
    pub start_ns: u64,
    /// End (see [`OpTimeline::source`]).
    pub end_ns: u64,
}

/// The ops of a run, recorded for a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct OpTimeline {
    /// How starts and ends were obtained.
    pub source: TimeSource,
    /// With GPU times: the uncertainty of their match with the host clock, ns.
    pub clock_alignment_ns: Option<u64>,
    /// Completed ops overlapping the window, in completion order per client; starts and ends of
    /// a client's ops never go back in time (its stream runs them in order).
    pub ops: Vec<OpTiming>,
}

/// Host-side facts of an in-flight op kept for a timeline.
#[derive(Debug, Clone, Copy)]
struct PendingTiming {
    request: u64,
    issued_ns: u64,
    admitted_ns: u64,
    submitted_ns: u64,
}

/// The executor's timeline recording (only when asked).
struct Recording {
    window: Window,
    /// GPU times: offset of the runner's time base from the executor's clock, ns.
    gpu_offset_ns: Option<f64>,
    pending: Vec<VecDeque<PendingTiming>>,
    last_end: Vec<u64>,
    times: Vec<(f64, f64)>,
    out: OpTimeline,
}

impl Recording {
    /// Records the ops `done` of exec client `c`, just seen complete at `seen` (host clock).
    fn complete(&mut self, c: usize, scenario_id: usize, done: &[(u64, ProfileRef)], seen: u64) {
        for (j, &(seq, profile)) in done.iter().enumerate() {
            let p = self.pending[c].pop_front().expect("a pending timing per in-flight op");
            let (start, end) = match (self.gpu_offset_ns, self.times.get(j)) {
                (Some(off), Some(&(s, e))) => ((s + off).max(0.0).round() as u64, (e + off).max(0.0).round() as u64),
                _ => (p.submitted_ns, seen),
            };
            let start = start.max(self.last_end[c]);
            let end = end.max(start);
            self.last_end[c] = end;
            if self.window.overlaps(start, end) {
                self.out.ops.push(OpTiming {
                    client: scenario_id,
                    seq,
                    request: p.request,
                    profile,
                    issued_ns: p.issued_ns,
                    admitted_ns: p.admitted_ns,
                    submitted_ns: p.submitted_ns,
                    observed_ns: seen,
                    start_ns: start,
                    end_ns: end,
                });
            }
        }
    }
}

/// Per-op scheduler overheads, ns.
#[derive(Debug, Clone, Default)]
pub struct OverheadStats {
    /// From the start of the `schedule` call that submitted an op to the return of its launch.
    pub admit_to_submit: Histogram,
    /// The launch call alone (kernel or copy, plus the event record).
    pub launch: Histogram,
    /// From the op's issue by its host to the return of its launch (includes any wait the
    /// policy imposes).
    pub issue_to_submit: Histogram,
    /// One policy call (a `schedule` call of the driver), including calls that submit nothing.
    pub policy_call: Histogram,
}

/// Summaries of [`OverheadStats`], ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OverheadSummary {
    /// See [`OverheadStats::admit_to_submit`].
    pub admit_to_submit_ns: Summary,
    /// See [`OverheadStats::launch`].
    pub launch_ns: Summary,
    /// See [`OverheadStats::issue_to_submit`].
    pub issue_to_submit_ns: Summary,
    /// See [`OverheadStats::policy_call`].
    pub policy_call_ns: Summary,
}

impl OverheadStats {
    /// Their summaries.
    pub fn summary(&self) -> OverheadSummary {
        OverheadSummary {
            admit_to_submit_ns: self.admit_to_submit.summary(),
            launch_ns: self.launch.summary(),
            issue_to_submit_ns: self.issue_to_submit.summary(),
            policy_call_ns: self.policy_call.summary(),
        }
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &OverheadStats) {
        self.admit_to_submit.merge(&other.admit_to_submit);
        self.launch.merge(&other.launch);
        self.issue_to_submit.merge(&other.issue_to_submit);
        self.policy_call.merge(&other.policy_call);
    }
}

/// Device memory in use during an execution, MiB.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryTrace {
    /// At the start (buffers allocated).
    pub start_mib: f64,
    /// Smallest sample.
    pub min_mib: f64,
    /// Largest sample.
    pub max_mib: f64,
    /// At the end, work drained (buffers still allocated).
    pub end_mib: f64,
    /// (seconds since start, MiB), every 10 s.
    pub samples: Vec<(f64, f64)>,
    /// This process's resident host memory, MiB, at the same times (Linux; empty elsewhere).
    pub host_rss_samples: Vec<(f64, f64)>,
}

/// This process's resident set size, bytes (Linux `/proc/self/statm`).
pub fn host_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

impl MemoryTrace {
    fn add(&mut self, t_s: f64, bytes: u64, keep: bool) {
        let mib = (bytes as f64 / (1 << 20) as f64 * 10.0).round() / 10.0;
        if self.samples.is_empty() && self.start_mib == 0.0 {
            self.start_mib = mib;
            self.min_mib = mib;
        }
        self.min_mib = self.min_mib.min(mib);
        self.max_mib = self.max_mib.max(mib);
        self.end_mib = mib;
        if keep {
            let t = (t_s * 10.0).round() / 10.0;
            self.samples.push((t, mib));
            if let Some(rss) = host_rss_bytes() {
                self.host_rss_samples.push((t, (rss as f64 / (1 << 20) as f64 * 10.0).round() / 10.0));
            }
        }
    }
}

/// What an execution produced.
#[derive(Debug, Clone)]
pub struct ExecOutcome {
    /// Wall time at the end of the run (the duration limit, the stop condition, the
    /// interruption, or when nothing was left to do), ns since the start.
    pub end_ns: u64,
    /// Per client, in input order.
    pub recorders: Vec<ClientRecorder>,
    /// Host and timer events processed.
    pub host_events: u64,
    /// Policy invocations.
    pub policy_calls: u64,
    /// Ops submitted.
    pub ops_submitted: u64,
    /// Ops whose completion was seen before the end.
    pub ops_completed: u64,
    /// Sum over completed kernels of (SMs they need, at most all) x (recorded duration), SM-ns:
    /// the estimate of SM busy time.
    pub busy_sm_ns: f64,
    /// Whether the interrupt flag stopped it.
    pub interrupted: bool,
    /// Per-op overheads.
    pub overhead: OverheadStats,
    /// Device memory in use over the run.
    pub memory: MemoryTrace,
    /// The priority each client's stream was given.
    pub stream_priorities: Vec<StreamPriority>,
    /// Completion queries made (`cuEventQuery` calls).
    pub completion_queries: u64,
    /// The recorded ops, if [`ExecInput::timeline`] asked for them.
    pub timeline: Option<OpTimeline>,
}

/// Runs `input` under `policy` (set up here) on the runner `make_runner` builds for the stream
/// priorities the policy asks for.
pub fn execute<R: OpRunner>(
    input: &ExecInput<'_>,
    policy: &mut dyn Policy,
    sm_count: u32,
    make_runner: impl FnOnce(&[StreamPriority]) -> Result<R>,
) -> Result<ExecOutcome> {
    let dclients: Vec<DriverClient<'_>> = input
        .clients
        .iter()
        .map(|c| DriverClient { scenario_id: c.scenario_id, spec: c.spec, info: c.info.clone() })
        .collect();
    let mut driver =
        Driver::new(&dclients, input.device.clone(), Backend::Real, input.seed, input.warmup, input.stop, policy)?;
    let priorities = driver.stream_priorities().to_vec();
    let mut runner = make_runner(&priorities)?;
    let n = input.clients.len();
    let recording = match input.timeline {
        None => None,
        Some(window) => {
            let base = runner.enable_timing()?;
            Some((
                Recording {
                    window,
                    gpu_offset_ns: None,
                    pending: vec![VecDeque::new(); n],
                    last_end: vec![0; n],
                    times: Vec::new(),
                    out: OpTimeline {
                        source: if base.is_some() { TimeSource::GpuEvents } else { TimeSource::HostPolling },
                        clock_alignment_ns: base.map(|b| b.1),
                        ops: Vec::new(),
                    },
                },
                base.map(|b| b.0),
            ))
        }
    };
    let mut done_ops: Vec<(u64, ProfileRef)> = Vec::new();
    let ops: Vec<&[Vec<PreparedOp>]> = input.clients.iter().map(|c| c.ops).collect();
    let mut in_flight: Vec<VecDeque<(u64, ProfileRef)>> = vec![VecDeque::new(); n];
    let mut in_flight_total = 0usize;
    let mut cmds: Vec<Command> = Vec::new();
    let mut stats = OverheadStats::default();
    let mut memory = MemoryTrace::default();
    let (mut submitted, mut completed) = (0u64, 0u64);
    let mut busy_sm_ns = 0.0;
    let end = driver.end();
    let interrupt = input.interrupt;
    let start = Instant::now();
    let clock = || start.elapsed().as_nanos() as u64;
    let mut recording = recording.map(|(mut r, base)| {
        // The base was seen before `start`: GPU times shift back by the difference.
        r.gpu_offset_ns = base.map(|b| -(start.saturating_duration_since(b).as_nanos() as f64));
        r
    });
    if let Some(m) = runner.memory_used() {
        memory.add(0.0, m, true);
    }
    let mut next_sample = 1_000_000_000u64;
    let mut samples_taken = 0u64;
    let (end_ns, interrupted) = loop {
        if interrupt.is_some_and(|f| f.load(Ordering::Relaxed)) {
            break (clock(), true);
        }
        let now = clock();
        if in_flight_total > 0 {
            for (c, queue) in in_flight.iter_mut().enumerate() {
                if queue.is_empty() {
                    continue;
                }
                let k = runner.completed(c)?;
                if k > 0
                    && let Some(r) = recording.as_mut()
                {
                    let seen = clock();
                    r.times.clear();
                    runner.take_times(c, &mut r.times);
                    done_ops.clear();
                    done_ops.extend(queue.iter().take(k));
                    r.complete(c, input.clients[c].scenario_id, &done_ops, seen);
                }
                for _ in 0..k {
                    let (seq, profile) = queue.pop_front().expect("the runner completes only submitted ops");
                    in_flight_total -= 1;
                    completed += 1;
                    let rec = driver.record(c, profile);
                    if rec.kind.is_kernel() {
                        busy_sm_ns += rec.sm_needed.min(sm_count) as f64 * rec.duration_ns as f64;
                    }
                    driver.op_done(c, seq, now);
                }
            }
        }
        if now >= end {
            break (end, false);
        }
        driver.process_host_events(now);
        if driver.stopped() {
            break (now, false);
        }
        if driver.needs_schedule() {
            let t0 = clock();
            driver.schedule(now, &mut cmds);
            stats.policy_call.add(clock() - t0);
            for cmd in cmds.drain(..) {
                match cmd {
                    Command::Submit { client, seq, profile } => {
                        let op = &ops[client][profile.table as usize][profile.row as usize];
                        let tl = clock();
                        runner.submit(client, op)?;
                        let tr = clock();
                        in_flight[client].push_back((seq, profile));
                        in_flight_total += 1;
                        submitted += 1;
                        stats.admit_to_submit.add(tr - t0);
                        stats.launch.add(tr - tl);
                        let state = driver.state().client(client);
                        let f = state.in_flight().iter().rev().find(|f| f.op.seq == seq);
                        if let Some(f) = f {
                            stats.issue_to_submit.add(tr.saturating_sub(f.op.issued_at));
                        }
                        if let Some(r) = recording.as_mut() {
                            r.pending[client].push_back(PendingTiming {
                                request: f.map_or(0, |f| f.op.request),
                                issued_ns: f.map_or(t0, |f| f.op.issued_at),
                                admitted_ns: f.map_or(now, |f| f.submitted_at),
                                submitted_ns: tr,
                            });
                        }
                    }
                    Command::Preempt { client } => {
                        runner.drain()?;
                        return Err(RealError::Unsupported(format!(
                            "the policy preempted client {client} (reset-based preemption exists only in the simulator)"
                        )));
                    }
                }
            }
        }
        if now >= next_sample {
            if let Some(m) = runner.memory_used() {
                samples_taken += 1;
                memory.add(now as f64 / 1e9, m, samples_taken.is_multiple_of(10));
            }
            next_sample += 1_000_000_000;
        }
        let next = driver.next_time();
        if next == NEVER && in_flight_total == 0 && !driver.needs_schedule() {
            break (clock(), false); // nothing will ever happen again
        }
        if in_flight_total > 0 || driver.needs_schedule() {
            std::hint::spin_loop();
            continue;
        }
        let wake = next.min(end).min(next_sample);
        let t = clock();
        if wake > t {
            let rest = wake - t;
            if rest > 1_000_000 {
                std::thread::sleep(Duration::from_nanos(rest - 500_000));
            } else if rest > 50_000 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    };
    // Stop submitting; let what is on the GPU finish (it is not reported: the run has ended).
    runner.drain()?;
    if let Some(m) = runner.memory_used() {
        memory.add(end_ns as f64 / 1e9, m, true);
    }
    let completion_queries = runner.queries();
    drop(runner);
    let out = driver.finish();
    Ok(ExecOutcome {
        end_ns,
        recorders: out.recorders,
        host_events: out.host_events,
        policy_calls: out.policy_calls,
        ops_submitted: submitted,
        ops_completed: completed,
        busy_sm_ns,
        interrupted,
        overhead: stats,
        memory,
        stream_priorities: priorities,
        completion_queries,
        timeline: recording.map(|r| r.out),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use orion_policies::registry;
    use orion_traces::{ArrivalProcess, KernelClass, OpKind, OpRecord, Role, Trace, TraceMeta, WorkKind};
    use std::sync::Arc;

    /// A GPU stand-in for CPU tests: each client's ops run one after another on the wall clock
    /// for their recorded durations (no sharing model: enough to test the loop).
    /// `timed`: it reports each op's (start, end) as GPU times, as [`GpuRunner`] does with events.
    pub(crate) struct FakeRunner {
        start: Instant,
        lanes: Vec<VecDeque<(u64, u64)>>,
        free_at: Vec<u64>,
        timed: bool,
        timing: bool,
        times: Vec<VecDeque<(f64, f64)>>,
    }

    impl FakeRunner {
        pub(crate) fn new(n: usize) -> FakeRunner {
            FakeRunner {
                start: Instant::now(),
                lanes: vec![VecDeque::new(); n],
                free_at: vec![0; n],
                timed: false,
                timing: false,
                times: vec![VecDeque::new(); n],
            }
        }
        pub(crate) fn timed(n: usize) -> FakeRunner {
            FakeRunner { timed: true, ..FakeRunner::new(n) }
        }
        fn now(&self) -> u64 {
            self.start.elapsed().as_nanos() as u64
        }
    }

    impl OpRunner for FakeRunner {
        fn submit(&mut self, client: usize, op: &PreparedOp) -> Result<()> {
            let d = match op {
                PreparedOp::Kernel(k) => k.q as u64, // tests put the duration in q
                PreparedOp::Copy { bytes, .. } => *bytes,
                PreparedOp::Marker => 0,
            };
            let start = self.free_at[client].max(self.now());
            self.free_at[client] = start + d;
            self.lanes[client].push_back((start, start + d));
            Ok(())
        }
        fn completed(&mut self, client: usize) -> Result<usize> {
            let now = self.now();
            let lane = &mut self.lanes[client];
            let done = lane.iter().take_while(|&&(_, t)| t <= now).count();
            for (s, e) in lane.drain(..done) {
                if self.timing {
                    self.times[client].push_back((s as f64, e as f64));
                }
            }
            Ok(done)
        }
        fn drain(&mut self) -> Result<()> {
            for l in &mut self.lanes {
                l.clear();
            }
            Ok(())
        }
        fn enable_timing(&mut self) -> Result<Option<(Instant, u64)>> {
            self.timing = self.timed;
            Ok(self.timed.then_some((self.start, 0)))
        }
        fn take_times(&mut self, client: usize, out: &mut Vec<(f64, f64)>) {
            out.extend(self.times[client].drain(..));
        }
    }

    pub(crate) fn small_trace(name: &str, kernels: usize, dur_ns: u64, gap_ns: u64) -> Trace {
        let mut ops = Vec::new();
        for i in 0..kernels {
            let mut r = OpRecord::kernel(format!("k{i}"), dur_ns, 20, KernelClass::Compute);
            r.host_gap_ns = Some(gap_ns);
            ops.push(r);
        }
        ops.push(OpRecord::new(OpKind::Sync, "sync", 0, 0, KernelClass::Unknown));
        Trace::new(TraceMeta { name: name.into(), ..Default::default() }, ops)
    }

    pub(crate) fn fake_ops(trace: &Trace) -> Vec<Vec<PreparedOp>> {
        use crate::plan::{KernelLaunch, Shape, SynthKind};
        use orion_traces::Dim3;
        let shape = Shape { kind: SynthKind::Compute, grid: Dim3::linear(1), block: Dim3::linear(32), smem: 0 };
        vec![
            trace
                .ops
                .iter()
                .map(|r| {
                    if r.kind.is_kernel() {
                        PreparedOp::Kernel(KernelLaunch { shape, q: r.duration_ns as u32 })
                    } else {
                        PreparedOp::Marker
                    }
                })
                .collect(),
        ]
    }

    fn spec(name: &str, role: Role, kind: WorkKind, trace: Trace, arrival: ArrivalProcess) -> ClientSpec {
        ClientSpec {
            name: name.into(),
            role,
            kind,
            trace: Arc::new(trace),
            first_trace: None,
            arrival,
            max_requests: None,
        }
    }

    fn info(id: usize, s: &ClientSpec) -> ClientInfo {
        ClientInfo {
            id,
            name: s.name.clone(),
            role: s.role,
            kind: s.kind,
            warmup: 0,
            ops_per_request: s.trace.ops.len(),
            standalone_latency_ns: 200_000,
            max_sm_needed: s.trace.max_sm_needed(),
            update_start: None,
        }
    }

    fn run_pair(policy: &str, stop: Stop, interrupt: Option<&AtomicBool>) -> ExecOutcome {
        run_pair_with(policy, stop, interrupt, None, false)
    }

    fn run_pair_with(
        policy: &str,
        stop: Stop,
        interrupt: Option<&AtomicBool>,
        timeline: Option<Window>,
        timed: bool,
    ) -> ExecOutcome {
        let hp = spec(
            "hp",
            Role::Hp,
            WorkKind::Inference,
            small_trace("hp", 5, 20_000, 5_000),
            ArrivalProcess::Poisson { rate: 200.0 },
        );
        let be =
            spec("be", Role::Be, WorkKind::Training, small_trace("be", 10, 50_000, 2_000), ArrivalProcess::ClosedLoop);
        let hp_ops = fake_ops(&hp.trace);
        let be_ops = fake_ops(&be.trace);
        let input = ExecInput {
            device: DeviceInfo { name: "fake".into(), sm_count: 132 },
            clients: vec![
                ExecClient { scenario_id: 0, spec: &hp, info: info(0, &hp), ops: &hp_ops },
                ExecClient { scenario_id: 1, spec: &be, info: info(1, &be), ops: &be_ops },
            ],
            seed: 1,
            warmup: 0,
            stop,
            interrupt,
            timeline,
        };
        let mut p = registry::build(policy, &Default::default()).unwrap();
        let make = |n| if timed { FakeRunner::timed(n) } else { FakeRunner::new(n) };
        execute(&input, p.as_mut(), 132, |prio| Ok(make(prio.len()))).unwrap()
    }

    /// Checks the recorded ops of a run: per client, in stream order, each op's host times in
    /// order (issued <= admitted <= submitted <= seen) and its slice after the previous one.
    fn check_recorded(t: &OpTimeline, out: &ExecOutcome) {
        assert!(!t.ops.is_empty());
        for c in 0..2 {
            let ops: Vec<&OpTiming> = t.ops.iter().filter(|o| o.client == c).collect();
            assert!(ops.len() > 10, "client {c}: {} ops", ops.len());
            for w in ops.windows(2) {
                assert!(w[1].seq > w[0].seq, "{:?}", w);
                assert!(w[1].start_ns >= w[0].end_ns, "client {c}: slices overlap: {w:?}");
            }
            for o in &ops {
                assert!(o.issued_ns <= o.admitted_ns && o.admitted_ns <= o.submitted_ns, "{o:?}");
                assert!(o.submitted_ns <= o.observed_ns && o.start_ns <= o.end_ns, "{o:?}");
                assert!(o.end_ns <= out.end_ns + 50_000_000, "{o:?} ends after the run {}", out.end_ns);
            }
        }
        assert_eq!(t.ops.len() as u64, out.ops_completed);
    }

    #[test]
    fn ops_are_recorded_for_a_timeline_only_when_asked() {
        let stop = Stop { duration_ns: Some(100_000_000), requests: None };
        assert!(run_pair("orion", stop, None).timeline.is_none());

        // The fake GPU's own (start, end), as GpuRunner reads them from events.
        let out = run_pair_with("orion", stop, None, Some(Window::ALL), true);
        let t = out.timeline.as_ref().unwrap();
        assert_eq!(t.source, TimeSource::GpuEvents);
        assert_eq!(t.clock_alignment_ns, Some(0));
        check_recorded(t, &out);
        // The fake runs each kernel for its recorded duration (hp 20 us, be 50 us) from no
        // earlier than its submission, and sees its completion no earlier than its end.
        for o in &t.ops {
            let d = o.end_ns - o.start_ns;
            assert!(d == 0 || d == 20_000 || d == 50_000, "{o:?}");
            assert!(o.start_ns + 1_000_000 >= o.submitted_ns, "{o:?}");
            assert!(o.observed_ns >= o.end_ns, "{o:?}");
        }

        // Without GPU times: what the host saw.
        let out = run_pair_with("orion", stop, None, Some(Window::ALL), false);
        let t = out.timeline.as_ref().unwrap();
        assert_eq!(t.source, TimeSource::HostPolling);
        assert_eq!(t.clock_alignment_ns, None);
        check_recorded(t, &out);
        for o in &t.ops {
            assert!(o.start_ns >= o.submitted_ns && o.end_ns == o.observed_ns, "{o:?}");
        }
    }

    #[test]
    fn a_window_keeps_the_ops_that_overlap_it() {
        let stop = Stop { duration_ns: Some(100_000_000), requests: None };
        let w = Window { from_ns: 40_000_000, to_ns: 60_000_000 };
        let out = run_pair_with("streams", stop, None, Some(w), true);
        let ops = &out.timeline.as_ref().unwrap().ops;
        assert!(!ops.is_empty() && (ops.len() as u64) < out.ops_completed);
        assert!(ops.iter().all(|o| w.overlaps(o.start_ns, o.end_ns)));
    }

    #[test]
    fn every_policy_runs_a_pair_on_the_wall_clock() {
        for policy in ["streams", "priority-streams", "temporal", "orion", "reef", "mps"] {
            let out = run_pair(policy, Stop { duration_ns: Some(200_000_000), requests: None }, None);
            assert!(!out.interrupted);
            assert!(out.recorders[0].completed() > 5, "{policy}: hp {}", out.recorders[0].completed());
            assert!(out.recorders[1].completed() > 5, "{policy}: be {}", out.recorders[1].completed());
            assert!(out.ops_submitted >= out.ops_completed);
            assert!(out.overhead.admit_to_submit.len() == out.ops_submitted);
            assert!(out.end_ns >= 200_000_000 && out.end_ns < 400_000_000, "{}", out.end_ns);
        }
    }

    #[test]
    fn priority_streams_ask_for_a_high_priority_hp_stream() {
        let out = run_pair("priority-streams", Stop { duration_ns: Some(20_000_000), requests: None }, None);
        assert_eq!(out.stream_priorities, vec![StreamPriority::High, StreamPriority::Low]);
        assert_eq!(cuda_priority(StreamPriority::High, (0, -5)), -5);
        assert_eq!(cuda_priority(StreamPriority::Low, (0, -5)), 0);
    }

    #[test]
    fn a_request_count_stops_the_run() {
        let out = run_pair("streams", Stop { duration_ns: None, requests: Some(5) }, None);
        assert_eq!(out.recorders[0].completed(), 5);
    }

    #[test]
    fn an_interrupt_ends_the_run_with_what_completed() {
        let flag = AtomicBool::new(false);
        let out = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                flag.store(true, Ordering::Relaxed);
            });
            run_pair("orion", Stop { duration_ns: Some(60_000_000_000), requests: None }, Some(&flag))
        });
        assert!(out.interrupted);
        assert!(out.end_ns < 5_000_000_000);
        assert!(out.recorders[1].completed() > 0);
    }
}
