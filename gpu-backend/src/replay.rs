//! Replay mode: a scenario under a policy on the real GPU, to the same report as `orion-sim`.
//!
//! 1. Every op of every client's traces is prepared ([`prepare`]): kernels become calibrated
//!    synthetic kernels, copies and memsets real transfers of the recorded size, allocations
//!    and frees completion markers; each is measured standalone.
//! 2. Each client's standalone request latency (what policies such as Orion derive thresholds
//!    from) is measured for real: the client alone, one warm-up and one measured request.
//! 3. The scenario runs under the policy ([`execute`]): all clients sharing the GPU, or, for
//!    `ideal`, each alone in turn.
//! 4. Unless skipped, the ideal reference runs: each client alone for as long as the shared run
//!    lasted, for real.
//! 5. The report is assembled with the shared code (`orion_policies::report`); real-backend
//!    facts (device, overheads, fidelity, memory, provenance) go into its `engine` section.
//! 6. When asked, the policy's run (3) becomes a timeline in the same Chrome trace-event format
//!    as `orion-sim --timeline` ([`timeline_of`], `orion_policies::timeline`).

use crate::calibrate::{Calibrator, FidelitySummary, OpCalibration};
use crate::cuda::{DeviceProps, Gpu};
use crate::error::{RealError, Result};
use crate::executor::{
    ExecClient, ExecInput, ExecOutcome, GpuRunner, OverheadStats, TimeSource, cuda_priority, execute,
};
use crate::meta;
use crate::plan::PreparedOp;
use orion_policies::report::{client_report, round6};
use orion_policies::timeline::{Timeline, Window, client_names, op_span, report_metadata, us};
use orion_policies::{ClientInfo, DeviceInfo, ParamMap, Policy, Report, Sharing, StreamPriority, registry};
use orion_traces::{ArrivalProcess, ClientSpec, Scenario, Stop};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// The ops of a scenario made ready for the GPU, with their calibration.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Per client, per profile table (0: the trace, 1: the first-request trace), per row.
    pub ops: Vec<Vec<Vec<PreparedOp>>>,
    /// Per client, per profile table, per row: what calibration made of it.
    pub calibrations: Vec<Vec<Vec<OpCalibration>>>,
    /// Per client, the largest copy, bytes.
    pub max_copy: Vec<u64>,
    /// Wall time of the preparation, s.
    pub seconds: f64,
}

impl Prepared {
    /// Fidelity of every op of every table of client `c` (`None`: all clients).
    pub fn fidelity(&self, c: Option<usize>) -> FidelitySummary {
        let clients: Vec<usize> = c.map_or_else(|| (0..self.calibrations.len()).collect(), |c| vec![c]);
        FidelitySummary::of(clients.iter().flat_map(|&c| self.calibrations[c].iter().flatten()))
    }
}

/// Calibrates every op of every client of `scenario`.
pub fn prepare(cal: &mut Calibrator<'_>, scenario: &Scenario) -> Result<Prepared> {
    let t0 = Instant::now();
    let mut ops = Vec::new();
    let mut calibrations = Vec::new();
    let mut max_copy = Vec::new();
    for c in &scenario.clients {
        let mut c_ops = Vec::new();
        let mut c_cal = Vec::new();
        let mut biggest = 0u64;
        for trace in std::iter::once(&c.trace).chain(&c.first_trace) {
            let mut t_ops = Vec::with_capacity(trace.ops.len());
            let mut t_cal = Vec::with_capacity(trace.ops.len());
            for rec in &trace.ops {
                let (op, calib) = cal.op(rec, &scenario.device)?;
                if let PreparedOp::Copy { bytes, .. } = op {
                    biggest = biggest.max(bytes);
                }
                t_ops.push(op);
                t_cal.push(calib);
            }
            c_ops.push(t_ops);
            c_cal.push(t_cal);
        }
        ops.push(c_ops);
        calibrations.push(c_cal);
        max_copy.push(biggest);
    }
    Ok(Prepared { ops, calibrations, max_copy, seconds: t0.elapsed().as_secs_f64() })
}

/// Options of a replay.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions<'a> {
    /// Run the ideal reference (each client alone, for real) for the overhead vs ideal and
    /// the normalised throughput.
    pub ideal: bool,
    /// Set from outside (Ctrl-C) to stop: the report covers what completed.
    pub interrupt: Option<&'a AtomicBool>,
    /// Progress messages on stderr.
    pub verbose: bool,
    /// A report of the same scenario under `ideal` to take the reference from instead of
    /// running it (a matrix of policies shares one).
    pub given_ideal: Option<&'a Report>,
    /// Record the policy's run for a timeline, the part that overlaps this window
    /// ([`ReplayResult::timeline`]).
    pub timeline: Option<Window>,
}

/// A finished replay.
#[derive(Debug, Clone)]
pub struct ReplayResult {
    /// The report.
    pub report: Report,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// The policy's run as a timeline, if [`ReplayOptions::timeline`] asked for it.
    pub timeline: Option<Timeline>,
}

/// The device facts a policy sees on this GPU.
pub fn device_info(gpu: &Gpu, scenario: &Scenario) -> DeviceInfo {
    DeviceInfo { name: scenario.device.name.clone(), sm_count: gpu.props().sm_count }
}

fn solo_spec(c: &ClientSpec) -> ClientSpec {
    ClientSpec { first_trace: None, arrival: ArrivalProcess::ClosedLoop, max_requests: Some(2), ..c.clone() }
}

/// Static facts of every client; the standalone latency is measured on the GPU (the client
/// alone, closed loop, the latency of its second request).
pub fn client_infos(
    gpu: &Gpu,
    scenario: &Scenario,
    prepared: &Prepared,
    opts: &ReplayOptions<'_>,
) -> Result<Vec<ClientInfo>> {
    let device = device_info(gpu, scenario);
    let mut infos = Vec::new();
    for (i, c) in scenario.clients.iter().enumerate() {
        let spec = solo_spec(c);
        let info = ClientInfo {
            id: 0,
            name: c.name.clone(),
            role: c.role,
            kind: c.kind,
            warmup: 1,
            ops_per_request: c.trace.ops.len(),
            standalone_latency_ns: 0,
            max_sm_needed: c.trace.max_sm_needed(),
            update_start: c.trace.meta.update_start,
        };
        let input = ExecInput {
            device: device.clone(),
            clients: vec![ExecClient { scenario_id: i, spec: &spec, info, ops: &prepared.ops[i][..1] }],
            seed: scenario.seed,
            warmup: 1,
            stop: Stop { duration_ns: Some(120_000_000_000), requests: Some(1) },
            interrupt: opts.interrupt,
            timeline: None,
        };
        let mut ideal = orion_policies::ideal::Ideal;
        let out = execute(&input, &mut ideal, device.sm_count, |p| GpuRunner::new(gpu, p, &prepared.max_copy[i..=i]))?;
        if out.interrupted {
            return Err(RealError::Interrupted("while measuring standalone latencies"));
        }
        let latency = out.recorders[0].latencies_ns.first().copied().unwrap_or(0);
        infos.push(ClientInfo {
            id: i,
            warmup: scenario.warmup,
            standalone_latency_ns: latency,
            ..input.clients[0].info.clone()
        });
    }
    Ok(infos)
}

fn run_shared(
    gpu: &Gpu,
    scenario: &Scenario,
    infos: &[ClientInfo],
    prepared: &Prepared,
    policy: &mut dyn Policy,
    stop: Stop,
    opts: &ReplayOptions<'_>,
) -> Result<ExecOutcome> {
    let input = ExecInput {
        device: device_info(gpu, scenario),
        clients: scenario
            .clients
            .iter()
            .zip(infos)
            .enumerate()
            .map(|(i, (spec, info))| ExecClient { scenario_id: i, spec, info: info.clone(), ops: &prepared.ops[i] })
            .collect(),
        seed: scenario.seed,
        warmup: scenario.warmup,
        stop,
        interrupt: opts.interrupt,
        timeline: opts.timeline,
    };
    execute(&input, policy, gpu.props().sm_count, |p| GpuRunner::new(gpu, p, &prepared.max_copy))
}

/// Each client alone under `policy` (set up afresh for each), each with `stop` (a request-count
/// stop applies to the HP client only; the others run for its duration if given).
fn solo_runs(
    gpu: &Gpu,
    scenario: &Scenario,
    infos: &[ClientInfo],
    prepared: &Prepared,
    policy: &mut dyn Policy,
    stop: Stop,
    opts: &ReplayOptions<'_>,
) -> Result<Vec<ExecOutcome>> {
    let hp = scenario.hp_client();
    let mut outs = Vec::new();
    for (i, spec) in scenario.clients.iter().enumerate() {
        let info = ClientInfo { id: 0, ..infos[i].clone() };
        let stop = match (stop.requests, hp) {
            (Some(_), Some(h)) if h != i => Stop { requests: None, ..stop },
            _ => stop,
        };
        let input = ExecInput {
            device: device_info(gpu, scenario),
            clients: vec![ExecClient { scenario_id: i, spec, info, ops: &prepared.ops[i] }],
            seed: scenario.seed,
            warmup: scenario.warmup,
            stop,
            interrupt: opts.interrupt,
            timeline: opts.timeline,
        };
        let out = execute(&input, policy, gpu.props().sm_count, |p| GpuRunner::new(gpu, p, &prepared.max_copy[i..=i]))?;
        let stop_now = out.interrupted;
        outs.push(out);
        if stop_now {
            break;
        }
    }
    Ok(outs)
}

/// What the policy's run produced.
enum Parts {
    Shared(Box<ExecOutcome>),
    Dedicated(Vec<ExecOutcome>),
}

impl Parts {
    fn outcomes(&self) -> Vec<&ExecOutcome> {
        match self {
            Parts::Shared(o) => vec![o],
            Parts::Dedicated(v) => v.iter().collect(),
        }
    }

    fn interrupted(&self) -> bool {
        self.outcomes().iter().any(|o| o.interrupted)
    }

    fn end_ns(&self) -> u64 {
        self.outcomes().iter().map(|o| o.end_ns).max().unwrap_or(0)
    }
}

fn build_report(scenario: &Scenario, policy: &dyn Policy, parts: &Parts, engine: BTreeMap<String, Value>) -> Report {
    let sm = scenario.device.sm_count as f64;
    let (clients, duration_ns, busy, span) = match parts {
        Parts::Shared(o) => (
            o.recorders.iter().enumerate().map(|(i, r)| client_report(i, &scenario.clients[i], r, o.end_ns)).collect(),
            o.end_ns,
            o.busy_sm_ns,
            o.end_ns as f64,
        ),
        Parts::Dedicated(outs) => (
            outs.iter()
                .enumerate()
                .map(|(i, o)| client_report(i, &scenario.clients[i], &o.recorders[0], o.end_ns))
                .collect::<Vec<_>>(),
            outs.iter().map(|o| o.end_ns).max().unwrap_or(0),
            outs.iter().map(|o| o.busy_sm_ns).sum(),
            outs.iter().map(|o| o.end_ns as f64).sum(),
        ),
    };
    let utilization = if span > 0.0 { (busy / (sm * span)).min(1.0) } else { 0.0 };
    Report::new(scenario, policy, "real", clients, duration_ns, utilization, engine)
}

/// Engine facts common to every real-backend report.
pub fn provenance(props: &DeviceProps) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    m.insert("date".into(), json!(meta::utc_now()));
    m.insert("commit".into(), json!(meta::COMMIT));
    m.insert("gpu".into(), serde_json::to_value(props).expect("props serialise"));
    m
}

#[derive(Serialize)]
struct PriorityReport {
    client: String,
    policy: &'static str,
    cuda: i32,
}

/// Runs `scenario` under `policy_name` with `params` on `gpu`, calibrating with `cal`.
pub fn replay(
    gpu: &Gpu,
    cal: &mut Calibrator<'_>,
    scenario: &Scenario,
    policy_name: &str,
    params: &ParamMap,
    opts: &ReplayOptions<'_>,
) -> Result<(ReplayResult, Prepared)> {
    scenario.validate().map_err(|message| RealError::Scenario { name: scenario.name.clone(), message })?;
    // Build the policy first: a bad name or parameter fails before any GPU time is spent.
    let mut policy = registry::build(policy_name, params)?;
    let log = |m: String| {
        if opts.verbose {
            eprintln!("orion-real: {m}");
        }
    };
    let (free_before, _) = gpu.mem_info()?;
    log(format!("calibrating {} clients' traces on {}", scenario.clients.len(), gpu.props().name));
    let prepared = prepare(cal, scenario)?;
    let fidelity = prepared.fidelity(None);
    log(format!(
        "calibrated in {:.1} s: {}/{} kernels > 10 us within 5%, occupancy {}/{}",
        prepared.seconds,
        fidelity.within_5pct_over_10us,
        fidelity.kernels_over_10us,
        fidelity.occupancy_match,
        fidelity.occupancy_checked
    ));
    let infos = client_infos(gpu, scenario, &prepared, opts)?;
    for i in &infos {
        log(format!("{}: standalone latency {:.3} ms", i.name, i.standalone_latency_ns as f64 / 1e6));
    }
    log(format!("running {} under {policy_name}", scenario.name));
    let parts = match policy.sharing() {
        Sharing::Shared => {
            Parts::Shared(Box::new(run_shared(gpu, scenario, &infos, &prepared, policy.as_mut(), scenario.stop, opts)?))
        }
        Sharing::Dedicated => {
            let mut outs = solo_runs(gpu, scenario, &infos, &prepared, policy.as_mut(), scenario.stop, opts)?;
            if scenario.stop.requests.is_some()
                && let Some(h) = scenario.hp_client()
                && outs.len() == scenario.clients.len()
                && !outs[h].interrupted
            {
                let stop = Stop { duration_ns: Some(outs[h].end_ns.max(1)), requests: None };
                let others = solo_runs(gpu, scenario, &infos, &prepared, policy.as_mut(), stop, opts)?;
                for (i, o) in others.into_iter().enumerate() {
                    if i != h {
                        outs[i] = o;
                    }
                }
            }
            Parts::Dedicated(outs)
        }
    };
    let interrupted = parts.interrupted();
    if let Parts::Dedicated(outs) = &parts
        && outs.len() < scenario.clients.len()
    {
        // Interrupted before every client ran: report what there is.
        let mut engine = provenance(gpu.props());
        engine.insert("interrupted".into(), json!(true));
        let mut report = Report::new(scenario, policy.as_ref(), "real", Vec::new(), parts.end_ns(), 0.0, engine);
        report.clients = outs
            .iter()
            .enumerate()
            .map(|(i, o)| client_report(i, &scenario.clients[i], &o.recorders[0], o.end_ns))
            .collect();
        let timeline = opts.timeline.map(|w| timeline_of(scenario, &report, &parts, w, &gpu.props().name));
        return Ok((ReplayResult { report, interrupted: true, timeline }, prepared));
    }
    // The ideal reference: each client alone for as long as the run lasted.
    let mut ideal_status = "skipped";
    let mut ideal_report = None;
    if let Some(given) = opts.given_ideal {
        ideal_status = "given";
        ideal_report = Some(given.clone());
    } else if opts.ideal && !interrupted {
        match &parts {
            Parts::Dedicated(_) => ideal_status = "this run",
            Parts::Shared(o) => {
                log("ideal reference: each client alone, for real".into());
                let mut ideal = registry::build("ideal", &ParamMap::new())?;
                let stop = Stop { duration_ns: Some(o.end_ns.max(1)), requests: None };
                // Not part of the timeline: that shows the policy's run.
                let ideal_opts = ReplayOptions { timeline: None, ..*opts };
                let outs = solo_runs(gpu, scenario, &infos, &prepared, ideal.as_mut(), stop, &ideal_opts)?;
                let ideal_parts = Parts::Dedicated(outs);
                if ideal_parts.interrupted() || ideal_parts.outcomes().len() < scenario.clients.len() {
                    ideal_status = "interrupted";
                } else {
                    ideal_status = "measured";
                    ideal_report = Some(build_report(scenario, ideal.as_ref(), &ideal_parts, BTreeMap::new()));
                }
            }
        }
    }
    let (free_after, _) = gpu.mem_info()?;
    let mut engine = provenance(gpu.props());
    engine.insert("interrupted".into(), json!(interrupted || ideal_status == "interrupted"));
    engine.insert("ideal_reference".into(), json!(ideal_status));
    let outs = parts.outcomes();
    let sum = |f: fn(&ExecOutcome) -> u64| outs.iter().map(|o| f(o)).sum::<u64>();
    engine.insert("policy_calls".into(), json!(sum(|o| o.policy_calls)));
    engine.insert("host_events".into(), json!(sum(|o| o.host_events)));
    engine.insert("ops_submitted".into(), json!(sum(|o| o.ops_submitted)));
    engine.insert("ops_completed".into(), json!(sum(|o| o.ops_completed)));
    let mut overhead = OverheadStats::default();
    for o in &outs {
        overhead.merge(&o.overhead);
    }
    engine.insert("overhead".into(), serde_json::to_value(overhead.summary()).expect("serialises"));
    engine.insert("fidelity".into(), serde_json::to_value(&fidelity).expect("serialises"));
    engine.insert(
        "fidelity_per_client".into(),
        json!(
            scenario
                .clients
                .iter()
                .enumerate()
                .map(|(i, c)| json!({ "client": c.name, "trace": c.trace.meta.name, "summary": prepared.fidelity(Some(i)) }))
                .collect::<Vec<_>>()
        ),
    );
    engine.insert("calibration_s".into(), json!(round6(prepared.seconds)));
    engine.insert(
        "standalone_latency_ms".into(),
        json!(infos.iter().map(|i| round6(i.standalone_latency_ns as f64 / 1e6)).collect::<Vec<_>>()),
    );
    let range = gpu.props().stream_priority_range;
    let priorities: Vec<PriorityReport> = outs
        .first()
        .map(|o| o.stream_priorities.clone())
        .unwrap_or_default()
        .iter()
        .zip(&scenario.clients)
        .map(|(&p, c)| PriorityReport {
            client: c.name.clone(),
            policy: if p == StreamPriority::High { "high" } else { "low" },
            cuda: cuda_priority(p, range),
        })
        .collect();
    engine.insert("stream_priorities".into(), serde_json::to_value(priorities).expect("serialises"));
    let mem: Vec<_> = outs.iter().map(|o| o.memory.clone()).collect();
    engine.insert(
        "gpu_memory_mib".into(),
        json!({
            "free_before_run": round6(free_before as f64 / (1u64 << 20) as f64),
            "free_after_release": round6(free_after as f64 / (1u64 << 20) as f64),
            "in_use_during_run": mem,
        }),
    );
    engine
        .insert("sm_utilization_source".into(), json!("estimate: recorded duration x SMs needed of completed kernels"));
    let mut report = build_report(scenario, policy.as_ref(), &parts, engine);
    if let Some(ideal) = &ideal_report {
        report.attach_ideal(ideal);
    }
    let timeline = opts.timeline.map(|w| timeline_of(scenario, &report, &parts, w, &gpu.props().name));
    Ok((ReplayResult { report, interrupted: interrupted || ideal_status == "interrupted", timeline }, prepared))
}

/// The policy's run of a replay as a timeline, in the format of `orion-sim --timeline`: one
/// process per client (`NAME (hp)`), one track (its stream) with one slice per completed op that
/// used the GPU (kernels, copies, memsets), its profile record and host times in `args`. The
/// metadata holds the report's provenance (tool, scenario, policy, profiles' device, traces and
/// their sources, seed), the GPU, the commit and how times were obtained.
fn timeline_of(scenario: &Scenario, report: &Report, parts: &Parts, window: Window, gpu: &str) -> Timeline {
    let names = client_names(scenario);
    let mut metadata = report_metadata(report);
    metadata.insert("gpu".into(), json!(gpu));
    metadata.insert("commit".into(), json!(meta::COMMIT));
    metadata.insert("date".into(), json!(meta::utc_now()));
    let outs = parts.outcomes();
    let recorded: Vec<_> = outs.iter().filter_map(|o| o.timeline.as_ref()).collect();
    let source = recorded.first().map_or(TimeSource::HostPolling, |t| t.source);
    metadata.insert("time_source".into(), json!(source.as_str()));
    metadata.insert("timing".into(), json!(source.description()));
    let alignment = recorded.iter().filter_map(|t| t.clock_alignment_ns).max();
    if let Some(a) = alignment {
        metadata.insert("gpu_clock_alignment_ns".into(), json!(a));
    }
    metadata.insert(
        "note_overheads".into(),
        json!("recording a timeline adds an event record per op (GPU times) and host work per completion"),
    );
    if matches!(parts, Parts::Dedicated(_)) {
        metadata.insert(
            "note".into(),
            json!("ideal: each client ran alone on the GPU, one after another; each run's times start at 0"),
        );
    }
    window.note_in(&mut metadata);
    let mut spans = Vec::new();
    for op in recorded.iter().flat_map(|t| &t.ops) {
        let client = &scenario.clients[op.client];
        let Some(mut span) =
            op_span(client, &names[op.client], op.profile, (op.start_ns, op.end_ns), op.seq, op.request)
        else {
            continue;
        };
        for (key, ns) in [
            ("issued_us", op.issued_ns),
            ("admitted_us", op.admitted_ns),
            ("submitted_us", op.submitted_ns),
            ("completion_seen_us", op.observed_ns),
        ] {
            span.args.insert(key.into(), json!(us(ns)));
        }
        spans.push(span);
    }
    Timeline { metadata, clients: names, spans, counters: Vec::new() }
}

/// The per-kernel measured-vs-record list of a replay (`--kernels-out`).
pub fn kernels_json(scenario: &Scenario, prepared: &Prepared) -> Value {
    json!({
        "format": "orion-rs-kernels/1",
        "scenario": scenario.name,
        "clients": scenario.clients.iter().enumerate().map(|(i, c)| json!({
            "client": c.name,
            "tables": prepared.calibrations[i].iter().enumerate().map(|(t, ops)| json!({
                "table": t,
                "trace": if t == 0 { c.trace.meta.name.clone() } else {
                    c.first_trace.as_ref().map_or_else(String::new, |f| f.meta.name.clone())
                },
                "ops": ops,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::{FakeRunner, fake_ops, small_trace};
    use orion_traces::{DeviceSpec, Role, WorkKind};
    use std::sync::Arc;

    fn scenario() -> Scenario {
        let hp = ClientSpec {
            name: "hp".into(),
            role: Role::Hp,
            kind: WorkKind::Inference,
            trace: Arc::new(small_trace("hp", 5, 20_000, 5_000)),
            first_trace: None,
            arrival: ArrivalProcess::Poisson { rate: 200.0 },
            max_requests: None,
        };
        let be = ClientSpec {
            name: "be".into(),
            role: Role::Be,
            kind: WorkKind::Training,
            trace: Arc::new(small_trace("be", 10, 50_000, 2_000)),
            first_trace: None,
            arrival: ArrivalProcess::ClosedLoop,
            max_requests: None,
        };
        Scenario {
            name: "fake_pair".into(),
            clients: vec![hp, be],
            device: DeviceSpec::preset("h100").unwrap(),
            device_source: "builtin:h100".into(),
            seed: 3,
            stop: Stop { duration_ns: Some(150_000_000), requests: None },
            warmup: 2,
            policy: None,
            policy_params: ParamMap::new(),
        }
    }

    fn infos(s: &Scenario) -> Vec<ClientInfo> {
        s.clients
            .iter()
            .enumerate()
            .map(|(i, c)| ClientInfo {
                id: i,
                name: c.name.clone(),
                role: c.role,
                kind: c.kind,
                warmup: s.warmup,
                ops_per_request: c.trace.ops.len(),
                standalone_latency_ns: 150_000,
                max_sm_needed: c.trace.max_sm_needed(),
                update_start: None,
            })
            .collect()
    }

    fn run(
        s: &Scenario,
        ops: &[Vec<Vec<PreparedOp>>],
        policy: &mut dyn Policy,
        clients: &[usize],
        stop: Stop,
    ) -> ExecOutcome {
        run_timed(s, ops, policy, clients, stop, None)
    }

    fn run_timed(
        s: &Scenario,
        ops: &[Vec<Vec<PreparedOp>>],
        policy: &mut dyn Policy,
        clients: &[usize],
        stop: Stop,
        timeline: Option<Window>,
    ) -> ExecOutcome {
        let infos = infos(s);
        let input = ExecInput {
            device: DeviceInfo { name: "h100".into(), sm_count: 132 },
            clients: clients
                .iter()
                .enumerate()
                .map(|(k, &i)| ExecClient {
                    scenario_id: i,
                    spec: &s.clients[i],
                    info: ClientInfo { id: k, ..infos[i].clone() },
                    ops: &ops[i],
                })
                .collect(),
            seed: s.seed,
            warmup: s.warmup,
            stop,
            interrupt: None,
            timeline,
        };
        execute(&input, policy, 132, |p| Ok(FakeRunner::timed(p.len()))).unwrap()
    }

    #[test]
    fn reports_have_the_shared_shape_and_take_an_ideal_reference() {
        let s = scenario();
        let ops: Vec<Vec<Vec<PreparedOp>>> = s.clients.iter().map(|c| fake_ops(&c.trace)).collect();
        let mut policy = registry::build("orion", &ParamMap::new()).unwrap();
        let shared = run(&s, &ops, policy.as_mut(), &[0, 1], s.stop);
        let mut engine = BTreeMap::new();
        engine.insert("interrupted".to_string(), json!(false));
        let mut report = build_report(&s, policy.as_ref(), &Parts::Shared(Box::new(shared)), engine);
        assert_eq!(report.backend, "real");
        assert_eq!(report.scenario, "fake_pair");
        assert_eq!(report.policy.name, "orion");
        assert_eq!(report.clients.len(), 2);
        assert!(report.clients.iter().all(|c| c.completed > 0));
        assert!(report.hp().unwrap().latency_ms.is_some());
        assert!(report.gpu.sm_utilization > 0.0 && report.gpu.sm_utilization <= 1.0);
        assert!((report.duration_s - 0.15).abs() < 0.01);

        // The ideal reference: each client alone, as replay runs it.
        let mut ideal = registry::build("ideal", &ParamMap::new()).unwrap();
        let solo: Vec<ExecOutcome> = (0..2)
            .map(|i| run(&s, &ops, ideal.as_mut(), &[i], Stop { duration_ns: Some(150_000_000), requests: None }))
            .collect();
        let ideal_report = build_report(&s, ideal.as_ref(), &Parts::Dedicated(solo), BTreeMap::new());
        report.attach_ideal(&ideal_report);
        assert!(report.gpu.normalized_throughput.is_some());
        assert!(report.hp().unwrap().overhead_vs_ideal.is_some());

        // The JSON is the format orion-sim writes and reads back.
        let back: Report = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(back, report);
    }

    /// Checks a timeline file the way the GPU test does: the trace-event format, one process
    /// per client with a `stream` track, slices of a track in order and never overlapping.
    pub(crate) fn check_timeline_json(text: &str, clients: &[&str]) -> Value {
        let v: Value = serde_json::from_str(text).unwrap();
        let summary = orion_policies::timeline::validate(&v).unwrap();
        assert_eq!(summary.tracks, clients.len());
        let events = v["traceEvents"].as_array().unwrap();
        let procs: Vec<(u64, &str)> = events
            .iter()
            .filter(|e| e["name"] == "process_name")
            .map(|e| (e["pid"].as_u64().unwrap(), e["args"]["name"].as_str().unwrap()))
            .collect();
        assert_eq!(procs.iter().map(|p| p.1).collect::<Vec<_>>(), clients);
        for &(pid, name) in &procs {
            let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X" && e["pid"] == pid).collect();
            assert!(!slices.is_empty(), "{name} has no slice");
            assert!(slices.iter().all(|e| e["tid"] == 1));
            for w in slices.windows(2) {
                let end = w[0]["ts"].as_f64().unwrap() + w[0]["dur"].as_f64().unwrap();
                assert!(w[1]["ts"].as_f64().unwrap() >= end - 1e-6, "{name}: {} then {}", w[0], w[1]);
                assert!(w[1]["args"]["seq"].as_u64() > w[0]["args"]["seq"].as_u64(), "{name}: stream order");
            }
        }
        v
    }

    #[test]
    fn a_replay_timeline_has_the_format_of_orion_sim() {
        let s = scenario();
        let ops: Vec<Vec<Vec<PreparedOp>>> = s.clients.iter().map(|c| fake_ops(&c.trace)).collect();
        let mut policy = registry::build("orion", &ParamMap::new()).unwrap();
        let out = run_timed(&s, &ops, policy.as_mut(), &[0, 1], s.stop, Some(Window::ALL));
        let parts = Parts::Shared(Box::new(out));
        let report = build_report(&s, policy.as_ref(), &parts, BTreeMap::new());
        let t = timeline_of(&s, &report, &parts, Window::ALL, "fake GPU");
        assert!(t.spans.iter().all(|sp| sp.kind == "kernel"), "markers and syncs are left out");
        let v = check_timeline_json(&t.to_json_string(), &["hp (hp)", "be (be)"]);
        let meta = &v["otherData"];
        assert_eq!(meta["time_source"], "gpu_events");
        assert!(meta["timing"].as_str().unwrap().contains("cuEventElapsedTime"));
        for key in ["tool", "commit", "gpu", "device", "traces", "seed", "policy", "scenario"] {
            assert!(meta.get(key).is_some(), "metadata lacks {key}: {meta}");
        }
        assert_eq!(
            (meta["seed"].as_u64(), meta["policy"].as_str(), meta["gpu"].as_str()),
            (Some(3), Some("orion"), Some("fake GPU"))
        );
        let x = v["traceEvents"].as_array().unwrap().iter().find(|e| e["ph"] == "X").unwrap();
        for key in ["duration_ns", "sm_needed", "request", "issued_us", "submitted_us", "completion_seen_us", "ran_ns"]
        {
            assert!(x["args"].get(key).is_some(), "args lack {key}: {x}");
        }

        // A window keeps what overlaps it, and says so.
        let w = Window { from_ns: 50_000_000, to_ns: 80_000_000 };
        let t2 = timeline_of(&s, &report, &parts, w, "fake GPU");
        assert_eq!(t2.spans.len(), t.spans.len(), "the executor already applied the window it was given");
        let out = run_timed(&s, &ops, policy.as_mut(), &[0, 1], s.stop, Some(w));
        let parts = Parts::Shared(Box::new(out));
        let t = timeline_of(&s, &report, &parts, w, "fake GPU");
        assert!(t.spans.iter().all(|sp| sp.end_ns >= w.from_ns && sp.start_ns < w.to_ns));
        assert_eq!(t.metadata["window_s"], json!([0.05, 0.08]));
        check_timeline_json(&t.to_json_string(), &["hp (hp)", "be (be)"]);
    }

    #[test]
    fn a_dedicated_run_timeline_holds_every_client() {
        let s = scenario();
        let ops: Vec<Vec<Vec<PreparedOp>>> = s.clients.iter().map(|c| fake_ops(&c.trace)).collect();
        let mut ideal = registry::build("ideal", &ParamMap::new()).unwrap();
        let stop = Stop { duration_ns: Some(50_000_000), requests: None };
        let solo: Vec<ExecOutcome> =
            (0..2).map(|i| run_timed(&s, &ops, ideal.as_mut(), &[i], stop, Some(Window::ALL))).collect();
        let parts = Parts::Dedicated(solo);
        let report = build_report(&s, ideal.as_ref(), &parts, BTreeMap::new());
        let t = timeline_of(&s, &report, &parts, Window::ALL, "fake GPU");
        assert!(t.metadata["note"].as_str().unwrap().contains("alone"));
        check_timeline_json(&t.to_json_string(), &["hp (hp)", "be (be)"]);
    }

    #[test]
    fn kernel_lists_name_every_table() {
        let s = scenario();
        let cal = |r: &orion_traces::OpRecord| OpCalibration {
            kind: r.kind,
            name: r.name.clone(),
            class: r.class,
            target_ns: r.duration_ns,
            measured_ns: r.duration_ns as f64,
            rel_err: 0.0,
            shape: None,
            q: None,
            blocks_per_sm_record: None,
            blocks_per_sm_measured: None,
            below_floor: false,
            bytes: None,
        };
        let prepared = Prepared {
            ops: s.clients.iter().map(|c| fake_ops(&c.trace)).collect(),
            calibrations: s.clients.iter().map(|c| vec![c.trace.ops.iter().map(cal).collect()]).collect(),
            max_copy: vec![0, 0],
            seconds: 0.0,
        };
        let v = kernels_json(&s, &prepared);
        assert_eq!(v["clients"][1]["tables"][0]["trace"], "be");
        assert_eq!(v["clients"][1]["tables"][0]["ops"].as_array().unwrap().len(), 11);
        assert_eq!(prepared.fidelity(None).kernels, 15);
        assert_eq!(prepared.fidelity(Some(0)).kernels, 5);
    }
}
