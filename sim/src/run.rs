//! Running a scenario under a policy: the shared simulation, the ideal (dedicated-GPU)
//! reference, and the report.

use crate::engine::{OpInfo, Recording, SimClient, SimInput, SimOutcome, simulate, simulate_with};
use crate::gpu::{OpSpan, Utilization};
use orion_policies::report::{client_report, round6};
use orion_policies::{ClientInfo, ParamMap, Policy, PolicyError, Report, Sharing, registry};
use orion_traces::{ArrivalProcess, ClientSpec, Scenario, Stop};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Errors of a simulation run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario is inconsistent.
    #[error("scenario `{name}`: {message}")]
    Scenario {
        /// Scenario name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The policy could not be built or set up.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// A finished run: the report plus what is not part of it because it is not deterministic.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The report (deterministic for a scenario and seed).
    pub report: Report,
    /// Wall time of the whole run (shared simulation plus ideal reference).
    pub wall: Duration,
    /// Wall time of the policy's own simulation.
    pub policy_wall: Duration,
    /// Events of the policy's own simulation.
    pub events: u64,
    /// Ops of the policy's own simulation that ran on the lone-stream model (a client alone on
    /// the GPU, fast-forwarded with or without policy calls).
    pub lone_ops: u64,
    /// Requests of the policy's own simulation replayed whole from an identical one (a client
    /// alone, fast-forwarded without policy calls).
    pub replayed_requests: u64,
    /// Simulated seconds of the policy's own simulation.
    pub simulated_s: f64,
}

/// Where the ideal (dedicated-GPU) reference of a run comes from: it gives the HP's overhead
/// vs ideal and the normalised throughput.
#[derive(Debug, Clone, Copy)]
pub enum IdealReference<'a> {
    /// No reference: those fields stay empty.
    Skip,
    /// Simulate each client alone for as long as the run lasted.
    Simulate,
    /// A report of the same scenario under `ideal`, computed before (experiments share one
    /// reference among the policies of a cell).
    Given(&'a Report),
}

/// What a run recorded besides its report, for plots and timelines.
#[derive(Debug, Clone, Default)]
pub struct RunDetail {
    /// Per client (scenario order): latencies of its measured requests (iteration times of a
    /// training client), ns, in completion order.
    pub latencies_ns: Vec<Vec<u64>>,
    /// The same for the ideal reference, when this run simulated it.
    pub ideal_latencies_ns: Option<Vec<Vec<u64>>>,
    /// Every op that ran, with what it was, in completion order per simulation; `stream` is the
    /// client's index in the scenario (only with [`Recording::ops`]).
    pub ops: Vec<(OpSpan, OpInfo)>,
    /// SM occupancy and DRAM bandwidth per client (scenario order) over time (only with
    /// [`Recording::utilization`]).
    pub utilization: Option<Utilization>,
    /// Whether each client ran alone on its own GPU (the `ideal` policy): its ops and
    /// utilisation are then those of separate GPUs.
    pub dedicated: bool,
}

/// Runs `scenario` under the policy `policy_name` with `params`.
pub fn run(
    scenario: &Scenario,
    policy_name: &str,
    params: &ParamMap,
    reference: IdealReference<'_>,
) -> Result<RunResult, RunError> {
    run_with(scenario, policy_name, params, reference, &Recording::default()).map(|(r, _)| r)
}

/// As [`run`], also recording what `recording` asks for in the policy's own simulation (not in
/// the ideal reference's), and returning every client's request latencies.
pub fn run_with(
    scenario: &Scenario,
    policy_name: &str,
    params: &ParamMap,
    reference: IdealReference<'_>,
    recording: &Recording,
) -> Result<(RunResult, RunDetail), RunError> {
    let started = Instant::now();
    scenario.validate().map_err(|message| RunError::Scenario { name: scenario.name.clone(), message })?;
    let infos = client_infos(scenario);
    let mut policy = registry::build(policy_name, params)?;
    let t0 = Instant::now();
    let (report_parts, outcome_events, (lone_ops, replayed_requests), simulated_ns) = match policy.sharing() {
        Sharing::Shared => {
            let out = run_shared(scenario, &infos, policy.as_mut(), scenario.stop, recording)?;
            let (events, lone) = (out.events(), (out.lone_ops, out.replayed_requests));
            let end = out.end_ns;
            (Parts::Shared(Box::new(out)), events, lone, end)
        }
        Sharing::Dedicated => {
            let (outs, end) = run_dedicated(scenario, &infos, policy.as_mut(), recording)?;
            let events = outs.iter().map(SimOutcome::events).sum();
            let lone = (outs.iter().map(|o| o.lone_ops).sum(), outs.iter().map(|o| o.replayed_requests).sum());
            (Parts::Dedicated(outs), events, lone, end)
        }
    };
    let policy_wall = t0.elapsed();
    let mut report = build_report(scenario, policy.as_ref(), &report_parts);
    let mut detail = take_detail(report_parts);
    let ideal = match reference {
        IdealReference::Skip => None,
        IdealReference::Given(r) => Some(r.clone()),
        IdealReference::Simulate if detail.dedicated => {
            detail.ideal_latencies_ns = Some(detail.latencies_ns.clone());
            Some(report.clone())
        }
        IdealReference::Simulate => {
            let mut ideal_policy = registry::build("ideal", &ParamMap::new())?;
            let stop = Stop { duration_ns: Some(simulated_ns.max(1)), requests: None };
            let plain = Recording { event_by_event: recording.event_by_event, ..Recording::default() };
            let outs = solo_runs(scenario, &infos, ideal_policy.as_mut(), stop, &plain)?;
            let parts = Parts::Dedicated(outs);
            let ideal = build_report(scenario, ideal_policy.as_ref(), &parts);
            detail.ideal_latencies_ns = Some(take_detail(parts).latencies_ns);
            Some(ideal)
        }
    };
    if let Some(ideal) = ideal {
        report.attach_ideal(&ideal);
    }
    let result = RunResult {
        report,
        wall: started.elapsed(),
        policy_wall,
        events: outcome_events,
        lone_ops,
        replayed_requests,
        simulated_s: simulated_ns as f64 / 1e9,
    };
    Ok((result, detail))
}

/// The latencies, op log and utilisation of a run's simulations, by scenario client index.
fn take_detail(parts: Parts) -> RunDetail {
    match parts {
        Parts::Shared(o) => RunDetail {
            latencies_ns: o.recorders.into_iter().map(|r| r.latencies_ns).collect(),
            ideal_latencies_ns: None,
            ops: o.ops.into_iter().zip(o.op_info).collect(),
            utilization: o.utilization,
            dedicated: false,
        },
        Parts::Dedicated(outs) => {
            let mut detail = RunDetail { dedicated: true, ..RunDetail::default() };
            for (i, o) in outs.into_iter().enumerate() {
                detail.latencies_ns.extend(o.recorders.into_iter().map(|r| r.latencies_ns));
                detail.ops.extend(o.ops.into_iter().zip(o.op_info).map(|(s, info)| (OpSpan { stream: i, ..s }, info)));
                detail.utilization = match (detail.utilization.take(), o.utilization) {
                    (Some(a), Some(b)) => Some(a.merge(b)),
                    (a, b) => a.or(b),
                };
            }
            detail
        }
    }
}

enum Parts {
    Shared(Box<SimOutcome>),
    Dedicated(Vec<SimOutcome>),
}

/// Static facts of every client, including its standalone request latency (simulated alone).
pub fn client_infos(scenario: &Scenario) -> Vec<ClientInfo> {
    scenario
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| ClientInfo {
            id: i,
            name: c.name.clone(),
            role: c.role,
            kind: c.kind,
            warmup: scenario.warmup,
            ops_per_request: c.trace.ops.len(),
            standalone_latency_ns: standalone_latency(scenario, c),
            max_sm_needed: c.trace.max_sm_needed(),
            update_start: c.trace.meta.update_start,
        })
        .collect()
}

/// Latency of one steady-state request of `client` with the GPU to itself.
fn standalone_latency(scenario: &Scenario, client: &ClientSpec) -> u64 {
    let spec =
        ClientSpec { first_trace: None, arrival: ArrivalProcess::ClosedLoop, max_requests: Some(1), ..client.clone() };
    let info = ClientInfo {
        id: 0,
        name: spec.name.clone(),
        role: spec.role,
        kind: spec.kind,
        warmup: 0,
        ops_per_request: spec.trace.ops.len(),
        standalone_latency_ns: 0,
        max_sm_needed: spec.trace.max_sm_needed(),
        update_start: None,
    };
    let input = SimInput {
        device: &scenario.device,
        clients: vec![SimClient { scenario_id: 0, spec: &spec, info: &info }],
        seed: scenario.seed,
        warmup: 0,
        stop: Stop { duration_ns: None, requests: Some(1) },
        record_ops: false,
    };
    let mut ideal = orion_policies::ideal::Ideal;
    let out = simulate(&input, &mut ideal).expect("ideal policy needs no setup");
    out.recorders[0].latencies_ns.first().copied().unwrap_or(0)
}

fn run_shared(
    scenario: &Scenario,
    infos: &[ClientInfo],
    policy: &mut dyn Policy,
    stop: Stop,
    recording: &Recording,
) -> Result<SimOutcome, PolicyError> {
    let input = SimInput {
        device: &scenario.device,
        clients: scenario
            .clients
            .iter()
            .zip(infos)
            .enumerate()
            .map(|(i, (spec, info))| SimClient { scenario_id: i, spec, info })
            .collect(),
        seed: scenario.seed,
        warmup: scenario.warmup,
        stop,
        record_ops: false,
    };
    simulate_with(&input, policy, recording)
}

/// Each client alone under `policy` (a fresh setup per client), each with `stop`.
/// Each client of the scenario alone on the device, each with `stop`.
fn solo_runs(
    scenario: &Scenario,
    infos: &[ClientInfo],
    policy: &mut dyn Policy,
    stop: Stop,
    recording: &Recording,
) -> Result<Vec<SimOutcome>, PolicyError> {
    (0..scenario.clients.len()).map(|i| solo_run(scenario, infos, i, policy, stop, recording)).collect()
}

/// Client `i` of the scenario alone on the device.
fn solo_run(
    scenario: &Scenario,
    infos: &[ClientInfo],
    i: usize,
    policy: &mut dyn Policy,
    stop: Stop,
    recording: &Recording,
) -> Result<SimOutcome, PolicyError> {
    let info = ClientInfo { id: 0, ..infos[i].clone() };
    let input = SimInput {
        device: &scenario.device,
        clients: vec![SimClient { scenario_id: i, spec: &scenario.clients[i], info: &info }],
        seed: scenario.seed,
        warmup: scenario.warmup,
        stop,
        record_ops: false,
    };
    simulate_with(&input, policy, recording)
}

fn run_dedicated(
    scenario: &Scenario,
    infos: &[ClientInfo],
    policy: &mut dyn Policy,
    recording: &Recording,
) -> Result<(Vec<SimOutcome>, u64), PolicyError> {
    let outs = match (scenario.stop.requests, scenario.hp_client()) {
        // With a request-count stop, the HP client runs first, until its requests are done;
        // the others then run alone for as long as it did (they have no count of their own).
        (Some(_), Some(h)) => {
            let hp = solo_run(scenario, infos, h, policy, scenario.stop, recording)?;
            let stop = Stop { duration_ns: Some(hp.end_ns.max(1)), requests: None };
            let mut hp = Some(hp);
            (0..scenario.clients.len())
                .map(|i| {
                    if i == h {
                        Ok(hp.take().expect("the HP client is run once"))
                    } else {
                        solo_run(scenario, infos, i, policy, stop, recording)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        _ => solo_runs(scenario, infos, policy, scenario.stop, recording)?,
    };
    let end = outs.iter().map(|o| o.end_ns).max().unwrap_or(0);
    Ok((outs, end))
}

fn build_report(scenario: &Scenario, policy: &dyn Policy, parts: &Parts) -> Report {
    let sm = scenario.device.sm_count as f64;
    let (clients, duration_ns, busy, span, events, policy_calls, preempted, fast_forwarded) = match parts {
        Parts::Shared(o) => (
            o.recorders
                .iter()
                .enumerate()
                .map(|(i, r)| client_report(i, &scenario.clients[i], r, o.end_ns))
                .collect::<Vec<_>>(),
            o.end_ns,
            o.gpu.busy_sm_ns,
            o.end_ns as f64,
            o.events(),
            o.policy_calls,
            o.gpu.preempted_work_ns,
            o.fast_forwarded_ops,
        ),
        Parts::Dedicated(outs) => (
            outs.iter()
                .enumerate()
                .map(|(i, o)| client_report(i, &scenario.clients[i], &o.recorders[0], o.end_ns))
                .collect(),
            outs.iter().map(|o| o.end_ns).max().unwrap_or(0),
            outs.iter().map(|o| o.gpu.busy_sm_ns).sum(),
            outs.iter().map(|o| o.end_ns as f64).sum(),
            outs.iter().map(SimOutcome::events).sum(),
            outs.iter().map(|o| o.policy_calls).sum(),
            outs.iter().map(|o| o.gpu.preempted_work_ns).sum(),
            outs.iter().map(|o| o.fast_forwarded_ops).sum(),
        ),
    };
    let mut engine = BTreeMap::new();
    engine.insert("events".to_string(), json!(events));
    engine.insert("policy_calls".to_string(), json!(policy_calls));
    engine.insert("fast_forwarded_ops".to_string(), json!(fast_forwarded));
    if let Parts::Shared(o) = parts {
        engine.insert("gpu_op_starts".to_string(), json!(o.gpu.starts));
        engine.insert("gpu_cohorts".to_string(), json!(o.gpu.cohorts));
        engine.insert("host_events".to_string(), json!(o.host_events));
    }
    engine.insert("preempted_work_ms".to_string(), json!(round6(preempted / 1e6)));
    let utilization = if span > 0.0 { busy / (sm * span) } else { 0.0 };
    Report::new(scenario, policy, "sim", clients, duration_ns, utilization, engine)
}
