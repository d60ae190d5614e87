//! Measurements of the backend itself: the fidelity of the synthetic kernels over traces, the
//! end-to-end overhead of the executor against launching the same ops back to back, and a
//! check that the high-priority stream is really preferred.

use crate::calibrate::{Calibrator, FidelitySummary, OpCalibration};
use crate::cuda::{DeviceProps, Event, Gpu, Stream, WorkBuffers};
use crate::error::{RealError, Result};
use crate::executor::{ExecClient, ExecInput, GpuRunner, OverheadSummary, execute};
use crate::meta;
use crate::plan::{KernelLaunch, PreparedOp, Shape, SynthKind};
use orion_policies::{ClientInfo, DeviceInfo, ParamMap, registry};
use orion_traces::{ArrivalProcess, ClientSpec, DeviceSpec, Dim3, OpKind, Stop, Trace};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fidelity of the synthetic kernels of one trace.
#[derive(Debug, Clone, Serialize)]
pub struct TraceFidelity {
    /// Trace name.
    pub trace: String,
    /// Ops in the trace.
    pub ops: usize,
    /// Distinct kernel launches (shape, duration) in the trace.
    pub unique_kernels: usize,
    /// The summary over every kernel of the trace.
    pub summary: FidelitySummary,
    /// Whether >= 95% of its kernels > 10 us are within 5% and every reproducible occupancy
    /// matches.
    pub criterion_met: bool,
    /// Wall time of its calibration, s.
    pub seconds: f64,
}

/// The fidelity sweep over a set of traces.
#[derive(Debug, Clone, Serialize)]
pub struct FidelityReport {
    /// Format identifier.
    pub format: &'static str,
    /// When.
    pub date: String,
    /// Built from.
    pub commit: &'static str,
    /// The GPU.
    pub gpu: DeviceProps,
    /// The device preset the traces were generated for.
    pub device_preset: String,
    /// Per trace.
    pub traces: Vec<TraceFidelity>,
    /// Over all traces.
    pub overall: FidelitySummary,
    /// Whether the criterion holds over all traces.
    pub criterion_met: bool,
    /// Whether Ctrl-C stopped the sweep (the traces listed are those completed).
    pub interrupted: bool,
    /// Timed launches.
    pub measurements: u64,
    /// Wall time, s.
    pub seconds: f64,
}

/// Whether a summary meets the acceptance criterion: at least 95% of kernels longer than 10 us
/// within 5% of their record, and every checked occupancy equal to the record's.
pub fn criterion_met(s: &FidelitySummary) -> bool {
    s.fraction_within_5pct_over_10us >= 0.95 && s.occupancy_match == s.occupancy_checked
}

/// Calibrates every op of each trace and summarises the fidelity; `per_kernel` receives every
/// trace's calibrated ops.
pub fn fidelity_sweep(
    cal: &mut Calibrator<'_>,
    gpu: &Gpu,
    device: &DeviceSpec,
    traces: &[Trace],
    mut per_kernel: impl FnMut(&Trace, &[OpCalibration]),
    verbose: bool,
) -> Result<FidelityReport> {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut all = Vec::new();
    let mut interrupted = false;
    for t in traces {
        let t1 = Instant::now();
        let mut cals = Vec::with_capacity(t.ops.len());
        let mut unique = std::collections::HashSet::new();
        let mut stopped = false;
        for rec in &t.ops {
            let (op, c) = match cal.op(rec, device) {
                Ok(x) => x,
                Err(RealError::Interrupted(_)) => {
                    stopped = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            if let PreparedOp::Kernel(k) = op {
                unique.insert((k.shape, rec.duration_ns));
            }
            cals.push(c);
        }
        if stopped {
            interrupted = true;
            break;
        }
        let summary = FidelitySummary::of(&cals);
        let tf = TraceFidelity {
            trace: t.meta.name.clone(),
            ops: t.ops.len(),
            unique_kernels: unique.len(),
            criterion_met: criterion_met(&summary),
            summary,
            seconds: (t1.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        };
        if verbose {
            eprintln!(
                "orion-real: {:<36} {:>5} kernels, {:>4} > 10 us, {:>6.2}% within 5%, occupancy {}/{}, {:.1} s",
                tf.trace,
                tf.summary.kernels,
                tf.summary.kernels_over_10us,
                100.0 * tf.summary.fraction_within_5pct_over_10us,
                tf.summary.occupancy_match,
                tf.summary.occupancy_checked,
                tf.seconds
            );
        }
        per_kernel(t, &cals);
        all.extend(cals);
        out.push(tf);
    }
    let overall = FidelitySummary::of(&all);
    Ok(FidelityReport {
        format: "orion-rs-fidelity/1",
        date: meta::utc_now(),
        commit: meta::COMMIT,
        gpu: gpu.props().clone(),
        device_preset: device.name.clone(),
        criterion_met: !interrupted && criterion_met(&overall) && out.iter().all(|t| t.criterion_met),
        interrupted,
        traces: out,
        overall,
        measurements: cal.measurements(),
        seconds: (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

/// One variant of the end-to-end overhead measurement.
#[derive(Debug, Clone, Serialize)]
pub struct OverheadVariant {
    /// `recorded` (the calibrated kernels) or `launch-bound` (every kernel doing no work, so
    /// that the host's cost per op is what is measured).
    pub variant: String,
    /// GPU ops per request (syncs excluded).
    pub ops_per_request: usize,
    /// Measured requests.
    pub requests: u64,
    /// Time of the measured requests through the executor, ms.
    pub executor_ms: f64,
    /// Time of the same requests launched back to back on one stream, ms.
    pub back_to_back_ms: f64,
    /// The same with an event recorded after each op (as the executor does), ms.
    pub back_to_back_events_ms: f64,
    /// (executor - back to back) / ops, ns: the end-to-end overhead per op.
    pub overhead_per_op_ns: f64,
    /// (executor - back to back with events) / ops, ns: the overhead beyond the events.
    pub overhead_vs_events_per_op_ns: f64,
    /// Executor time per op, ns.
    pub executor_per_op_ns: f64,
    /// Back-to-back time per op, ns.
    pub back_to_back_per_op_ns: f64,
    /// Back-to-back time with events per op, ns.
    pub back_to_back_events_per_op_ns: f64,
    /// `cuEventQuery` calls per op in the executor.
    pub completion_queries_per_op: f64,
    /// The executor's per-op overheads during the run.
    pub overhead: OverheadSummary,
}

/// The end-to-end overhead measurement of one client.
#[derive(Debug, Clone, Serialize)]
pub struct OverheadReport {
    /// Format identifier.
    pub format: &'static str,
    /// When.
    pub date: String,
    /// Built from.
    pub commit: &'static str,
    /// The GPU.
    pub gpu: DeviceProps,
    /// The trace.
    pub trace: String,
    /// The policy the executor ran.
    pub policy: String,
    /// The variants.
    pub variants: Vec<OverheadVariant>,
}

/// The client's trace with no host gaps and host-only ops costing nothing: what is left is
/// the GPU and the scheduler.
fn gapless(trace: &Trace) -> Trace {
    let mut t = trace.clone();
    for r in &mut t.ops {
        r.host_gap_ns = Some(0);
        if matches!(r.kind, OpKind::Malloc | OpKind::Free) {
            r.duration_ns = 0;
        }
    }
    t
}

/// The ops of `requests` requests (after 3 unmeasured ones) launched back to back on one
/// stream, synchronising where the trace syncs and at the end of each request; with `events`,
/// an event is also recorded after each op (and never queried). Returns the measured ns.
fn back_to_back(
    gpu: &Gpu,
    stream: &Stream,
    work: &mut WorkBuffers,
    trace: &Trace,
    ops: &[PreparedOp],
    requests: u64,
    events: Option<&[Event]>,
) -> Result<u64> {
    let mut t0 = Instant::now();
    let mut next_event = 0;
    for r in 0..requests + 3 {
        if r == 3 {
            t0 = Instant::now();
        }
        for (rec, op) in trace.ops.iter().zip(ops) {
            match (rec.kind, op) {
                (OpKind::Sync, _) => {
                    stream.synchronize()?;
                    continue;
                }
                (_, PreparedOp::Kernel(k)) => work.launch(gpu, stream, k)?,
                (_, PreparedOp::Copy { kind, bytes }) => gpu.copy(stream, *kind, *bytes, work)?,
                (_, PreparedOp::Marker) => {}
            }
            if let Some(evs) = events {
                evs[next_event % evs.len()].record(stream)?;
                next_event += 1;
            }
        }
        stream.synchronize()?;
    }
    Ok(t0.elapsed().as_nanos() as u64)
}

/// Runs `client` alone through the executor under `policy` (closed loop, no host gaps) for
/// `requests` measured requests, and the same ops back to back on one stream, with the
/// calibrated kernels and with kernels doing no work.
pub fn overhead(
    gpu: &Gpu,
    cal: &mut Calibrator<'_>,
    device: &DeviceSpec,
    client: &ClientSpec,
    policy: &str,
    requests: u64,
) -> Result<OverheadReport> {
    let trace = gapless(&client.trace);
    let spec = ClientSpec {
        trace: Arc::new(trace.clone()),
        first_trace: None,
        arrival: ArrivalProcess::ClosedLoop,
        max_requests: None,
        ..client.clone()
    };
    let mut recorded = Vec::new();
    let mut max_copy = 16;
    for rec in &trace.ops {
        let (op, _) = cal.op(rec, device)?;
        if let PreparedOp::Copy { bytes, .. } = op {
            max_copy = max_copy.max(bytes);
        }
        recorded.push(op);
    }
    let launch_bound: Vec<PreparedOp> = recorded
        .iter()
        .map(|op| match op {
            PreparedOp::Kernel(k) => PreparedOp::Kernel(KernelLaunch { q: 0, ..*k }),
            other => *other,
        })
        .collect();
    let gpu_ops = trace.ops.iter().filter(|r| r.kind != OpKind::Sync).count();
    let mut variants = Vec::new();
    for (name, ops) in [("recorded", recorded), ("launch-bound", launch_bound)] {
        let tables = vec![ops.clone()];
        let info = ClientInfo {
            id: 0,
            name: spec.name.clone(),
            role: spec.role,
            kind: spec.kind,
            warmup: 3,
            ops_per_request: trace.ops.len(),
            standalone_latency_ns: 1_000_000,
            max_sm_needed: trace.max_sm_needed(),
            update_start: trace.meta.update_start,
        };
        let input = ExecInput {
            device: DeviceInfo { name: device.name.clone(), sm_count: gpu.props().sm_count },
            clients: vec![ExecClient { scenario_id: 0, spec: &spec, info, ops: &tables }],
            seed: 1,
            warmup: 3,
            stop: Stop { duration_ns: Some(600_000_000_000), requests: Some(requests) },
            interrupt: None,
            timeline: None,
        };
        let mut p = registry::build(policy, &ParamMap::new())?;
        let out = execute(&input, p.as_mut(), gpu.props().sm_count, |prio| GpuRunner::new(gpu, prio, &[max_copy]))?;
        let since = out.recorders[0].measured_since.unwrap_or(0);
        let exec_ns = out.end_ns.saturating_sub(since);
        let stream = gpu.stream(gpu.props().stream_priority_range.0)?;
        let mut work = WorkBuffers::new(gpu, max_copy)?;
        let b2b_ns = back_to_back(gpu, &stream, &mut work, &trace, &ops, requests, None)?;
        let events = (0..gpu_ops.max(1)).map(|_| gpu.event(false)).collect::<Result<Vec<_>>>()?;
        let b2b_ev_ns = back_to_back(gpu, &stream, &mut work, &trace, &ops, requests, Some(&events))?;
        let n = (requests as usize * gpu_ops).max(1) as f64;
        let per_op = |ns: f64| (ns / n * 10.0).round() / 10.0;
        variants.push(OverheadVariant {
            variant: name.into(),
            ops_per_request: gpu_ops,
            requests,
            executor_ms: exec_ns as f64 / 1e6,
            back_to_back_ms: b2b_ns as f64 / 1e6,
            back_to_back_events_ms: b2b_ev_ns as f64 / 1e6,
            overhead_per_op_ns: per_op(exec_ns as f64 - b2b_ns as f64),
            overhead_vs_events_per_op_ns: per_op(exec_ns as f64 - b2b_ev_ns as f64),
            executor_per_op_ns: per_op(exec_ns as f64),
            back_to_back_per_op_ns: per_op(b2b_ns as f64),
            back_to_back_events_per_op_ns: per_op(b2b_ev_ns as f64),
            completion_queries_per_op: ((out.completion_queries as f64 / out.ops_submitted.max(1) as f64) * 1000.0)
                .round()
                / 1000.0,
            overhead: out.overhead.summary(),
        });
    }
    Ok(OverheadReport {
        format: "orion-rs-overhead/1",
        date: meta::utc_now(),
        commit: meta::COMMIT,
        gpu: gpu.props().clone(),
        trace: trace.meta.name.clone(),
        policy: policy.into(),
        variants,
    })
}

/// How long a short high-priority kernel waits behind a long low-priority one.
#[derive(Debug, Clone, Serialize)]
pub struct PriorityCheck {
    /// The long kernel alone, us.
    pub be_kernel_us: f64,
    /// The short kernel alone, us.
    pub hp_alone_us: f64,
    /// The short kernel launched while the long one runs, both streams at the least priority:
    /// from its launch to its completion, us.
    pub hp_equal_priority_us: f64,
    /// The same with the short kernel's stream at the greatest priority, us.
    pub hp_high_priority_us: f64,
    /// The priorities used (least, greatest).
    pub priority_range: (i32, i32),
}

impl PriorityCheck {
    /// Whether the high-priority stream was clearly preferred.
    pub fn preferred(&self) -> bool {
        self.hp_high_priority_us < 0.5 * self.hp_equal_priority_us
    }
}

/// Measures [`PriorityCheck`]: a low-priority kernel filling every SM for ~2 ms in waves of
/// ~100 us blocks, and a short kernel launched 300 us into it.
pub fn priority_check(gpu: &Gpu, cal: &mut Calibrator<'_>) -> Result<PriorityCheck> {
    let sms = gpu.props().sm_count;
    let (least, greatest) = gpu.props().stream_priority_range;
    // 8 blocks of 256 threads fill an SM's 2048 threads: a later block must wait for one.
    let be_shape =
        Shape { kind: SynthKind::Compute, grid: Dim3::linear(sms * 8 * 20), block: Dim3::linear(256), smem: 0 };
    let hp_shape = Shape { kind: SynthKind::Compute, grid: Dim3::linear(sms), block: Dim3::linear(256), smem: 0 };
    let scale = |cal: &mut Calibrator<'_>, shape: Shape, target_ns: f64| -> Result<(u32, f64)> {
        let q0 = 256 * 64;
        let d0 = cal.time_op(&PreparedOp::Kernel(KernelLaunch { shape, q: q0 }), 3)?;
        let q = ((q0 as f64) * target_ns / d0.max(1.0)).clamp(256.0, (1u64 << 30) as f64) as u32;
        let d = cal.time_op(&PreparedOp::Kernel(KernelLaunch { shape, q }), 3)?;
        Ok((q, d))
    };
    let (be_q, be_ns) = scale(cal, be_shape, 2_000_000.0)?;
    let (hp_q, hp_ns) = scale(cal, hp_shape, 20_000.0)?;
    let be_stream = gpu.stream(least)?;
    let mut be_work = WorkBuffers::new(gpu, 16)?;
    let mut hp_work = WorkBuffers::new(gpu, 16)?;
    let (start, end) = (gpu.event(true)?, gpu.event(true)?);
    let mut measure = |priority: i32| -> Result<f64> {
        let hp_stream = gpu.stream(priority)?;
        let mut best = Vec::new();
        for _ in 0..3 {
            be_work.launch(gpu, &be_stream, &KernelLaunch { shape: be_shape, q: be_q })?;
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(300) {
                std::hint::spin_loop();
            }
            start.record(&hp_stream)?;
            hp_work.launch(gpu, &hp_stream, &KernelLaunch { shape: hp_shape, q: hp_q })?;
            end.record(&hp_stream)?;
            end.synchronize()?;
            best.push(start.elapsed_ns(&end)?);
            be_stream.synchronize()?;
        }
        Ok(crate::stats::median(&best))
    };
    let equal = measure(least)?;
    let high = measure(greatest)?;
    if least == greatest {
        return Err(RealError::Unsupported("the device has a single stream priority".into()));
    }
    Ok(PriorityCheck {
        be_kernel_us: be_ns / 1e3,
        hp_alone_us: hp_ns / 1e3,
        hp_equal_priority_us: equal / 1e3,
        hp_high_priority_us: high / 1e3,
        priority_range: (least, greatest),
    })
}
