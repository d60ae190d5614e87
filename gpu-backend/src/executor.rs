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

use crate::cuda::{Event, Gpu, Stream, WorkBuffers};
use crate::error::{RealError, Result};
use crate::plan::PreparedOp;
use crate::stats::{Histogram, Summary};
use orion_policies::driver::NEVER;
use orion_policies::report::ClientRecorder;
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
}

/// The real GPU as an [`OpRunner`]: one stream per client at the priority the policy asked
/// for, one event per op.
pub struct GpuRunner<'g> {
    gpu: &'g Gpu,
    lanes: Vec<Lane>,
    pool: Vec<Event>,
    queries: u64,
}

struct Lane {
    stream: Stream,
    work: WorkBuffers,
    in_flight: VecDeque<Event>,
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
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pool = (0..64).map(|_| gpu.event(false)).collect::<Result<Vec<_>>>()?;
        Ok(GpuRunner { gpu, lanes, pool, queries: 0 })
    }

    /// The CUDA priority of each client's stream.
    pub fn stream_priorities(&self) -> Vec<i32> {
        self.lanes.iter().map(|l| l.stream.priority()).collect()
    }
}

impl OpRunner for GpuRunner<'_> {
    fn submit(&mut self, client: usize, op: &PreparedOp) -> Result<()> {
        let lane = &mut self.lanes[client];
        match op {
            PreparedOp::Kernel(k) => lane.work.launch(self.gpu, &lane.stream, k)?,
            PreparedOp::Copy { kind, bytes } => self.gpu.copy(&lane.stream, *kind, *bytes, &lane.work)?,
            PreparedOp::Marker => {}
        }
        let ev = match self.pool.pop() {
            Some(e) => e,
            None => self.gpu.event(false)?,
        };
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
        self.pool.extend(lane.in_flight.drain(..done));
        Ok(done)
    }

    fn drain(&mut self) -> Result<()> {
        for lane in &mut self.lanes {
            lane.stream.synchronize()?;
            self.pool.extend(lane.in_flight.drain(..));
        }
        Ok(())
    }

    fn memory_used(&self) -> Option<u64> {
        self.gpu.mem_info().ok().map(|(free, total)| total - free)
    }

    fn queries(&self) -> u64 {
        self.queries
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
                for _ in 0..runner.completed(c)? {
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
                        if let Some(f) = state.in_flight().iter().rev().find(|f| f.op.seq == seq) {
                            stats.issue_to_submit.add(tr.saturating_sub(f.op.issued_at));
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
    pub(crate) struct FakeRunner {
        start: Instant,
        lanes: Vec<VecDeque<u64>>,
        free_at: Vec<u64>,
    }

    impl FakeRunner {
        pub(crate) fn new(n: usize) -> FakeRunner {
            FakeRunner { start: Instant::now(), lanes: vec![VecDeque::new(); n], free_at: vec![0; n] }
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
            self.lanes[client].push_back(start + d);
            Ok(())
        }
        fn completed(&mut self, client: usize) -> Result<usize> {
            let now = self.now();
            let lane = &mut self.lanes[client];
            let done = lane.iter().take_while(|&&t| t <= now).count();
            lane.drain(..done);
            Ok(done)
        }
        fn drain(&mut self) -> Result<()> {
            for l in &mut self.lanes {
                l.clear();
            }
            Ok(())
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
        };
        let mut p = registry::build(policy, &Default::default()).unwrap();
        execute(&input, p.as_mut(), 132, |prio| Ok(FakeRunner::new(prio.len()))).unwrap()
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
