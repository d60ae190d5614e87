//! Fitting the device file to the calibration microbenchmarks (`orion-validate calibrate fit`).
//!
//! The results folder is what `run.sh` of a plan wrote on the GPU machine: `plan.json`, one
//! report per scenario and policy (`NAME-POLICY.json`), the replayed traces (`traces/`) and,
//! per scenario, the replay's kernel list (`NAME-kernels.json`: every op's measured standalone
//! time). Three fits, in this order:
//!
//! 1. Copy bandwidths (H2D, D2H, D2D): a line `time = fixed + bytes / bandwidth` through the
//!    copy benchmark's measured standalone copies of each direction.
//! 2. `launch_latency_ns` and `kernel_gap_ns`: the launch benchmarks (one client of back-to-back
//!    kernels) simulated with the kernels' measured standalone durations, against the measured
//!    mean request time; a grid then a refinement. Before it, the submitting thread: every
//!    benchmark ran through orion-real's one thread making every launch call, whose mean call
//!    time the launch benchmarks report ([`fit_submitter`]); it is simulated in fits 2 and 3.
//! 3. The contention parameters of [`FITTED`] (`dram_efficiency`, `colocation_penalty`, the
//!    compute class's issue demand, the memory class's issue and DRAM demands; the others
//!    are kept, see [`FITTED`]): the pairs' co-run slowdowns (mean request latency shared /
//!    alone, each side against its own ideal reference), simulated on exactly the replayed
//!    traces, minimising the median absolute relative error of slowdown, then the mean (capped
//!    at 100% per run): a screening of points spread over the ranges, then coordinate descent
//!    with shrinking steps from the best, restarted while it improves.

use crate::calibrate::plan::{Bench, BenchKind, PLAN_FORMAT, Plan};
use anyhow::{Context, Result, anyhow, bail};
use orion_policies::report::median;
use orion_policies::{ParamMap, Report};
use orion_sim::run::{IdealReference, run};
use orion_traces::device::{Calibration, ContentionParams};
use orion_traces::format::read_trace;
use orion_traces::{ArrivalProcess, ClientSpec, DeviceSpec, OpKind, Scenario, Stop, SubmitterSpec, Trace, WorkKind};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Per-run absolute error above which a run counts as this much in the mean (a starved client
/// on one side only is an unbounded error).
pub const ERROR_CAP: f64 = 1.0;

/// One real run of a pair benchmark.
#[derive(Debug, Clone)]
pub struct PairRun {
    /// Policy.
    pub policy: String,
    /// Report file name.
    pub file: String,
    /// Measured slowdown per client (shared / alone), `INFINITY` for a starved client.
    pub real: Vec<f64>,
}

/// A pair benchmark with its real runs.
#[derive(Debug, Clone)]
pub struct PairCase {
    /// The benchmark.
    pub bench: Bench,
    /// The scenario, as replayed (its device is replaced by the candidate's when simulating).
    pub scenario: Scenario,
    /// Its runs, one per policy measured.
    pub runs: Vec<PairRun>,
}

/// A launch benchmark: one client, its measured mean request time.
#[derive(Debug, Clone)]
pub struct LaunchCase {
    /// Scenario name.
    pub name: String,
    /// The scenario with the kernels' durations replaced by their measured standalone times.
    pub scenario: Scenario,
    /// Measured mean request time, ms.
    pub real_ms: f64,
    /// Mean host time of one launch call on orion-real's one submitting thread (the report's
    /// `engine.overhead.launch_ns.mean`), ns, when the report has it.
    pub launch_call_ns: Option<f64>,
}

/// Ops a stream holds submitted and not completed before a launch call to it blocks, when the
/// device the fit starts from does not say: about 1000 kernels per stream, as reported for an
/// earlier GPU (stackoverflow.com/questions/53970187). The calibration plan does not measure it
/// yet.
pub const DEFAULT_QUEUE_DEPTH: u32 = 1024;

/// The submitting thread of the launch benchmarks: the median over benchmarks of their mean
/// launch-call time (rounded to 10 ns), with the start device's queue depth (else
/// [`DEFAULT_QUEUE_DEPTH`]); `None` when no benchmark reports its launch calls.
pub fn fit_submitter(cases: &[LaunchCase], start: &DeviceSpec) -> Option<SubmitterSpec> {
    let calls: Vec<f64> = cases.iter().filter_map(|c| c.launch_call_ns).collect();
    let ns = (median(&calls)? / 10.0).round() as u64 * 10;
    let queue_depth = start.submitter.map_or(DEFAULT_QUEUE_DEPTH, |s| s.queue_depth);
    Some(SubmitterSpec { launch_call_ns: ns, queue_depth })
}

/// One measured copy: direction, bytes, standalone ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CopySample {
    /// `copy_h2d`, `copy_d2h` or `copy_d2d`.
    pub kind: OpKind,
    /// Bytes.
    pub bytes: u64,
    /// Measured standalone time, ns.
    pub ns: f64,
}

/// Everything read from a results folder.
#[derive(Debug, Clone)]
pub struct Results {
    /// The folder.
    pub dir: PathBuf,
    /// The plan it ran.
    pub plan: Plan,
    /// Pair benchmarks with at least one run.
    pub pairs: Vec<PairCase>,
    /// Launch benchmarks measured.
    pub launch: Vec<LaunchCase>,
    /// Measured copies.
    pub copies: Vec<CopySample>,
    /// GPU name, orion-real commit and date of the first report.
    pub gpu: String,
    /// orion-real commit.
    pub commit: String,
    /// Date of the first report (ISO 8601).
    pub date: String,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// The slowdown of each client of a real or simulated report against its alone latency:
/// `shared mean latency / alone mean latency`; by throughput when a side has no latency;
/// `INFINITY` for a client that completed nothing.
pub fn slowdowns(shared: &Report, alone: &Report) -> std::result::Result<Vec<f64>, String> {
    shared
        .clients
        .iter()
        .map(|c| {
            let a = alone.clients.iter().find(|a| a.id == c.id).ok_or(format!("client {} has no run alone", c.name))?;
            if c.completed == 0 {
                return Ok(f64::INFINITY);
            }
            match (c.latency_ms, a.latency_ms) {
                (Some(l), Some(al)) if al.mean > 0.0 => Ok(l.mean / al.mean),
                _ if a.throughput_per_s > 0.0 && c.throughput_per_s > 0.0 => {
                    Ok(a.throughput_per_s / c.throughput_per_s)
                }
                _ => Err(format!("client {} completed nothing alone", c.name)),
            }
        })
        .collect()
}

/// A real report's own slowdowns, from its attached ideal reference.
fn real_slowdowns(r: &Report, file: &Path) -> Result<Vec<f64>> {
    let mut alone = r.clone();
    for c in &mut alone.clients {
        let i = c.ideal.ok_or_else(|| {
            anyhow!(
                "{}: clients[{}] ({}) has no `ideal` reference (run with the ideal reference)",
                file.display(),
                c.id,
                c.name
            )
        })?;
        c.throughput_per_s = i.throughput_per_s;
        c.latency_ms = i.latency_ms;
        c.completed = 1;
    }
    slowdowns(r, &alone).map_err(|e| anyhow!("{}: {e}", file.display()))
}

/// The scenario a report ran: its clients on the traces of `traces/`, closed loop, with the
/// report's seed, warm-up and length, on `device`.
fn scenario_of(r: &Report, bench: &Bench, dir: &Path, file: &Path, device: &DeviceSpec) -> Result<Scenario> {
    let at = file.display();
    if r.clients.len() != bench.clients.len() {
        bail!("{at}: {} clients, benchmark {} has {}", r.clients.len(), bench.name, bench.clients.len());
    }
    let mut clients = Vec::new();
    for (c, b) in r.clients.iter().zip(&bench.clients) {
        if c.trace.name != b.trace || c.trace.ops != b.ops {
            bail!(
                "{at}: client {} replayed trace `{}` of {} ops, benchmark {} has `{}` of {} ops",
                c.name,
                c.trace.name,
                c.trace.ops,
                bench.name,
                b.trace,
                b.ops
            );
        }
        if c.arrival != ArrivalProcess::ClosedLoop.to_string() {
            bail!("{at}: client {}: arrival `{}`, the benchmarks are closed loop", c.name, c.arrival);
        }
        let path = dir.join("traces").join(format!("{}.csv", b.trace));
        let trace = read_trace(&path).with_context(|| format!("the trace replayed by {at}"))?;
        if trace.ops.len() != b.ops {
            bail!("{}: {} ops, benchmark {} has {}", path.display(), trace.ops.len(), bench.name, b.ops);
        }
        clients.push(ClientSpec {
            name: c.name.clone(),
            role: c.role,
            kind: WorkKind::Inference,
            trace: Arc::new(trace),
            first_trace: None,
            arrival: ArrivalProcess::ClosedLoop,
            max_requests: None,
        });
    }
    if !(r.duration_s > 0.0 && r.duration_s.is_finite()) {
        bail!("{at}: duration_s is {}, not a positive length", r.duration_s);
    }
    Ok(Scenario {
        name: r.scenario.clone(),
        clients,
        device: device.clone(),
        device_source: "calibration candidate".into(),
        seed: r.seed,
        stop: Stop { duration_ns: Some((r.duration_s * 1e9).round() as u64), requests: None },
        warmup: r.warmup,
        policy: Some(r.policy.name.clone()),
        policy_params: BTreeMap::new(),
    })
}

/// One op of a kernel list: target ns, measured standalone ns, bytes (copies).
type OpTime = (u64, f64, Option<u64>);

/// The measured standalone times of a scenario's ops from its kernel list (`NAME-kernels.json`),
/// checked against the traces; per client, per op.
fn measured_times(dir: &Path, scenario: &Scenario) -> Result<Vec<Vec<OpTime>>> {
    let path = dir.join(format!("{}-kernels.json", scenario.name));
    if !path.exists() {
        bail!(
            "{}: missing (the kernel list of scenario {}, orion-real replay --kernels-out)",
            path.display(),
            scenario.name
        );
    }
    let v = read_json(&path)?;
    let at = path.display();
    let entries = v["clients"].as_array().ok_or_else(|| anyhow!("{at}: no `clients` array"))?;
    let mut out = Vec::new();
    for c in &scenario.clients {
        let e = entries
            .iter()
            .find(|e| e["client"].as_str() == Some(c.name.as_str()))
            .ok_or_else(|| anyhow!("{at}: client {} is not listed", c.name))?;
        let ops =
            e["tables"][0]["ops"].as_array().ok_or_else(|| anyhow!("{at}: client {}: no tables[0].ops", c.name))?;
        if ops.len() != c.trace.ops.len() {
            bail!("{at}: client {}: {} ops listed, the trace has {}", c.name, ops.len(), c.trace.ops.len());
        }
        let mut times = Vec::new();
        for (i, (op, rec)) in ops.iter().zip(&c.trace.ops).enumerate() {
            let target = op["target_ns"].as_u64();
            let measured = op["measured_ns"].as_f64().filter(|m| m.is_finite() && *m > 0.0);
            let (Some(target), Some(measured)) = (target, measured) else {
                bail!("{at}: client {}, ops[{i}]: no `target_ns` or positive `measured_ns`", c.name);
            };
            if target != rec.duration_ns || op["name"].as_str() != Some(rec.name.as_str()) {
                bail!(
                    "{at}: client {}, ops[{i}]: `{}` of {target} ns, the trace has `{}`",
                    c.name,
                    op["name"],
                    rec.name
                );
            }
            times.push((target, measured, op["bytes"].as_u64()));
        }
        out.push(times);
    }
    Ok(out)
}

/// Reads a results folder (see the module documentation). Errors name the file and field.
pub fn load_results(dir: &Path, device: &DeviceSpec) -> Result<Results> {
    if !dir.is_dir() {
        bail!("{}: no such results folder", dir.display());
    }
    let plan_path = dir.join("plan.json");
    let plan: Plan = serde_json::from_value(read_json(&plan_path)?)
        .with_context(|| format!("{}: not a calibration plan", plan_path.display()))?;
    if plan.format != PLAN_FORMAT {
        bail!("{}: format is `{}`, expected {PLAN_FORMAT}", plan_path.display(), plan.format);
    }
    let reports = crate::real_reports(dir)?;
    let mut pairs: Vec<PairCase> = Vec::new();
    let mut launch = Vec::new();
    let mut copies = Vec::new();
    for (path, r) in &reports {
        let at = path.display();
        let bench =
            plan.benches.iter().find(|b| b.name == r.scenario).ok_or_else(|| {
                anyhow!("{at}: scenario `{}` is not a benchmark of {}", r.scenario, plan_path.display())
            })?;
        if !bench.policies.contains(&r.policy.name) {
            bail!("{at}: policy `{}` is not one benchmark {} runs under", r.policy.name, bench.name);
        }
        if r.engine.get("interrupted").and_then(Value::as_bool) == Some(true) {
            bail!("{at}: engine.interrupted is true: the run did not finish");
        }
        if r.device.name != device.name {
            bail!("{at}: device.name is `{}`, fitting device `{}`", r.device.name, device.name);
        }
        let scenario = scenario_of(r, bench, dir, path, device)?;
        let file = path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        match bench.kind {
            BenchKind::Pair => {
                let run = PairRun { policy: r.policy.name.clone(), file, real: real_slowdowns(r, path)? };
                match pairs.iter_mut().find(|p| p.bench.name == bench.name) {
                    Some(p) => p.runs.push(run),
                    None => pairs.push(PairCase { bench: bench.clone(), scenario, runs: vec![run] }),
                }
            }
            BenchKind::Launch => {
                let real_ms = r.clients[0]
                    .latency_ms
                    .map(|l| l.mean)
                    .filter(|m| *m > 0.0)
                    .ok_or_else(|| anyhow!("{at}: clients[0].latency_ms: no requests measured"))?;
                let times = measured_times(dir, &scenario)?;
                let mut s = scenario;
                for (c, t) in s.clients.iter_mut().zip(&times) {
                    let mut trace: Trace = (*c.trace).clone();
                    for (op, (_, m, _)) in trace.ops.iter_mut().zip(t) {
                        op.duration_ns = m.round() as u64;
                    }
                    c.trace = Arc::new(trace);
                }
                let launch_call_ns =
                    r.engine.get("overhead").and_then(|o| o.pointer("/launch_ns/mean")).and_then(Value::as_f64);
                launch.push(LaunchCase { name: bench.name.clone(), scenario: s, real_ms, launch_call_ns });
            }
            BenchKind::Copy => {
                let times = measured_times(dir, &scenario)?;
                for (rec, (_, m, bytes)) in scenario.clients[0].trace.ops.iter().zip(&times[0]) {
                    let bytes = bytes
                        .or(rec.copy_bytes)
                        .ok_or_else(|| anyhow!("{at}: copy `{}` has no byte count", rec.name))?;
                    copies.push(CopySample { kind: rec.kind, bytes, ns: *m });
                }
            }
        }
    }
    // Pairs and their runs in plan order.
    let order = |name: &str| plan.benches.iter().position(|b| b.name == name).unwrap_or(usize::MAX);
    pairs.sort_by_key(|p| order(&p.bench.name));
    for p in &mut pairs {
        let pol = p.bench.policies.clone();
        p.runs.sort_by_key(|r| pol.iter().position(|x| *x == r.policy));
    }
    let first = &reports[0].1;
    let engine = |k: &str| first.engine.get(k);
    let gpu = engine("gpu")
        .and_then(|g| g.get("name").or(Some(g)))
        .and_then(Value::as_str)
        .unwrap_or("unknown GPU")
        .to_string();
    let commit = engine("commit").and_then(Value::as_str).unwrap_or("unknown").to_string();
    let date = engine("date").and_then(Value::as_str).unwrap_or("unknown").to_string();
    Ok(Results { dir: dir.to_path_buf(), plan, pairs, launch, copies, gpu, commit, date })
}

/// One client of one pair run: measured and simulated slowdowns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowdownRow {
    /// Scenario.
    pub scenario: String,
    /// Policy.
    pub policy: String,
    /// Client.
    pub client: String,
    /// Measured slowdown.
    pub real: f64,
    /// Simulated slowdown.
    pub sim: f64,
    /// `sim / real - 1` (0 when both starve, infinite when one does).
    pub error: f64,
}

fn rel_error(sim: f64, real: f64) -> f64 {
    match (sim.is_finite(), real.is_finite()) {
        (true, true) => sim / real - 1.0,
        (false, false) => 0.0,
        _ => f64::INFINITY,
    }
}

/// Simulates every pair run on `device` and pairs the slowdowns.
pub fn simulate_pairs(pairs: &[PairCase], device: &DeviceSpec) -> Result<Vec<SlowdownRow>> {
    let per_case: Vec<Result<Vec<SlowdownRow>>> = pairs
        .par_iter()
        .map(|p| {
            let mut s = p.scenario.clone();
            s.device = device.clone();
            let sim = |policy: &str| {
                run(&s, policy, &ParamMap::new(), IdealReference::Skip)
                    .map(|r| r.report)
                    .with_context(|| format!("simulating {} under {policy}", s.name))
            };
            let alone = sim("ideal")?;
            let mut rows = Vec::new();
            for r in &p.runs {
                let shared = sim(&r.policy)?;
                let simulated = slowdowns(&shared, &alone).map_err(|e| anyhow!("simulating {}: {e}", s.name))?;
                for ((c, real), sim) in s.clients.iter().zip(&r.real).zip(simulated) {
                    rows.push(SlowdownRow {
                        scenario: s.name.clone(),
                        policy: r.policy.clone(),
                        client: c.name.clone(),
                        real: *real,
                        sim,
                        error: rel_error(sim, *real),
                    });
                }
            }
            Ok(rows)
        })
        .collect();
    let mut rows = Vec::new();
    for r in per_case {
        rows.extend(r?);
    }
    Ok(rows)
}

/// The fit's objective of some rows: (median absolute error, mean absolute error capped at
/// [`ERROR_CAP`] per row).
pub fn score(rows: &[SlowdownRow]) -> (f64, f64) {
    let abs: Vec<f64> = rows.iter().map(|r| r.error.abs()).collect();
    let med = median(&abs).unwrap_or(f64::NAN);
    let mean = abs.iter().map(|e| e.min(ERROR_CAP)).sum::<f64>() / abs.len().max(1) as f64;
    (med, mean)
}

/// The scalar the search minimises: the median, then the mean as a tie-breaker.
fn objective(s: (f64, f64)) -> f64 {
    s.0 + 0.1 * s.1
}

/// A fitted bandwidth of one copy direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyFit {
    /// Direction.
    pub kind: OpKind,
    /// Samples.
    pub samples: usize,
    /// Fitted bandwidth, GB/s (D2D: bytes read and written).
    pub bandwidth_gbs: f64,
    /// Fixed cost per copy, ns.
    pub fixed_ns: f64,
}

/// Fits `time = fixed + bytes / bandwidth` per direction (least squares); a direction whose
/// line does not slope up gets its largest copy's bytes / time.
pub fn fit_copies(samples: &[CopySample]) -> Vec<CopyFit> {
    let mut out = Vec::new();
    for kind in [OpKind::CopyH2D, OpKind::CopyD2H, OpKind::CopyD2D] {
        let s: Vec<&CopySample> = samples.iter().filter(|c| c.kind == kind && c.bytes > 0).collect();
        if s.is_empty() {
            continue;
        }
        let n = s.len() as f64;
        let mx = s.iter().map(|c| c.bytes as f64).sum::<f64>() / n;
        let my = s.iter().map(|c| c.ns).sum::<f64>() / n;
        let sxx: f64 = s.iter().map(|c| (c.bytes as f64 - mx).powi(2)).sum();
        let sxy: f64 = s.iter().map(|c| (c.bytes as f64 - mx) * (c.ns - my)).sum();
        let factor = if kind == OpKind::CopyD2D { 2.0 } else { 1.0 };
        let (bw, fixed) = if sxx > 0.0 && sxy > 0.0 {
            let slope = sxy / sxx;
            (factor / slope, my - slope * mx)
        } else {
            let big = s.iter().max_by_key(|c| c.bytes).expect("not empty");
            (factor * big.bytes as f64 / big.ns, 0.0)
        };
        out.push(CopyFit { kind, samples: s.len(), bandwidth_gbs: bw, fixed_ns: fixed });
    }
    out
}

/// One launch benchmark: measured and simulated mean request time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaunchRow {
    /// Scenario.
    pub scenario: String,
    /// Measured, ms.
    pub real_ms: f64,
    /// Simulated, ms.
    pub sim_ms: f64,
    /// `sim / real - 1`.
    pub error: f64,
}

/// Simulates the launch benchmarks on `device`.
pub fn simulate_launch(cases: &[LaunchCase], device: &DeviceSpec) -> Result<Vec<LaunchRow>> {
    cases
        .iter()
        .map(|c| {
            let mut s = c.scenario.clone();
            s.device = device.clone();
            let r = run(&s, "ideal", &ParamMap::new(), IdealReference::Skip)
                .with_context(|| format!("simulating {}", c.name))?
                .report;
            let sim_ms = r.clients[0].latency_ms.map_or(f64::NAN, |l| l.mean);
            Ok(LaunchRow { scenario: c.name.clone(), real_ms: c.real_ms, sim_ms, error: sim_ms / c.real_ms - 1.0 })
        })
        .collect()
}

fn launch_cost(cases: &[LaunchCase], d: &DeviceSpec) -> Result<f64> {
    let rows = simulate_launch(cases, d)?;
    Ok(rows.iter().map(|r| r.error.abs()).fold(0.0, f64::max))
}

/// Fits `launch_latency_ns` and `kernel_gap_ns` to the launch benchmarks (the largest
/// absolute error of request time): a grid, then halving steps around the best point.
pub fn fit_launch(cases: &[LaunchCase], start: &DeviceSpec) -> Result<(u64, u64)> {
    let with = |l: u64, g: u64| {
        let mut d = start.clone();
        d.launch_latency_ns = l;
        d.kernel_gap_ns = g;
        d
    };
    let mut best = (start.launch_latency_ns, start.kernel_gap_ns);
    let mut best_cost = launch_cost(cases, &with(best.0, best.1))?;
    let grid: Vec<u64> = vec![0, 500, 1_000, 2_000, 3_000, 4_000, 6_000, 8_000, 12_000, 16_000];
    let points: Vec<(u64, u64)> = grid.iter().flat_map(|&l| grid.iter().map(move |&g| (l, g))).collect();
    let costs: Vec<Result<f64>> = points.par_iter().map(|&(l, g)| launch_cost(cases, &with(l, g))).collect();
    for (p, c) in points.iter().zip(costs) {
        let c = c?;
        if c < best_cost {
            best = *p;
            best_cost = c;
        }
    }
    let mut step = 500i64;
    while step >= 25 {
        let mut improved = false;
        for (dl, dg) in [(step, 0), (-step, 0), (0, step), (0, -step)] {
            let l = best.0 as i64 + dl;
            let g = best.1 as i64 + dg;
            if l < 0 || g < 0 {
                continue;
            }
            let c = launch_cost(cases, &with(l as u64, g as u64))?;
            if c < best_cost {
                best = (l as u64, g as u64);
                best_cost = c;
                improved = true;
            }
        }
        if !improved {
            step /= 2;
        }
    }
    Ok(best)
}

/// The contention parameters the fit moves, with their ranges. Not fitted, because no
/// calibration kernel can tell their value (kept from the starting device):
/// `latency_floor` (every calibration kernel drives its SMs or DRAM well above any plausible
/// floor, so the fit is flat in it) and the compute class's DRAM demand (`synth_compute` moves
/// no DRAM bytes; left free, the fit raises it to stand in for phenomena the model lacks, which
/// would make every compute-class kernel of other traces contend for DRAM). The DRAM demands
/// are multiples of peak bandwidth (see `ContentionParams`), hence their wider range.
pub const FITTED: [(&str, f64, f64); 5] = [
    ("dram_efficiency", 0.3, 1.0),
    ("colocation_penalty", 0.0, 0.5),
    ("compute_class_util[0]", 0.0, 1.0),
    ("memory_class_util[0]", 0.0, 1.0),
    ("memory_class_util[1]", 0.0, 16.0),
];

fn param_mut<'a>(c: &'a mut ContentionParams, name: &str) -> &'a mut f64 {
    match name {
        "latency_floor" => &mut c.latency_floor,
        "dram_efficiency" => &mut c.dram_efficiency,
        "colocation_penalty" => &mut c.colocation_penalty,
        "compute_class_util[0]" => &mut c.compute_class_util[0],
        "compute_class_util[1]" => &mut c.compute_class_util[1],
        "memory_class_util[0]" => &mut c.memory_class_util[0],
        _ => &mut c.memory_class_util[1],
    }
}

/// A contention parameter by its name in [`FITTED`].
pub fn param(c: &ContentionParams, name: &str) -> f64 {
    *param_mut(&mut c.clone(), name)
}

/// Fits the contention parameters to the pairs. The parameters are coupled (the compute class's
/// issue demand and the colocation penalty, DRAM demand and sustained bandwidth), so a
/// coordinate descent stops in whichever valley it starts in: the search screens the start and
/// [`SCREEN`] points spread evenly over the ranges (a Halton sequence), then descends from the
/// best [`STARTS`] of them and keeps the best result. A descent runs cycles of rounds: each
/// round tries, per parameter, `levels` values across the current step around the best value
/// (the first round spans the whole range), keeps the best, and halves the step; a cycle ends
/// after `rounds` rounds or when a round changes nothing at the finest step, and the next one
/// starts over the whole ranges from the best point, while cycles improve the objective (at
/// most [`CYCLES`]). `progress` gets one line per cycle.
pub fn fit_contention(
    pairs: &[PairCase],
    start: &DeviceSpec,
    rounds: usize,
    progress: &mut dyn FnMut(String),
) -> Result<DeviceSpec> {
    let eval = |d: &DeviceSpec| -> Result<f64> { Ok(objective(score(&simulate_pairs(pairs, d)?))) };
    let start_cost = eval(start)?;
    progress(format!("start: objective {start_cost:.4}"));
    let mut screened = vec![(start_cost, start.clone())];
    for i in 1..=SCREEN {
        let mut d = start.clone();
        for (j, (name, lo, hi)) in FITTED.iter().enumerate() {
            *param_mut(&mut d.contention, name) = lo + (hi - lo) * halton(i, PRIMES[j]);
        }
        if d.validate().is_ok() {
            screened.push((eval(&d)?, d));
        }
    }
    screened.sort_by(|x, y| x.0.total_cmp(&y.0));
    progress(format!("screening {SCREEN} points: best objective {:.4}", screened[0].0));
    let mut best: Option<(f64, DeviceSpec)> = None;
    for (k, (cost, d)) in screened.into_iter().take(STARTS).enumerate() {
        let (cost, d) = descend(&eval, d, cost, rounds, &mut |line| progress(format!("descent {}, {line}", k + 1)))?;
        if best.as_ref().is_none_or(|b| cost < b.0 - 1e-12) {
            best = Some((cost, d));
        }
    }
    Ok(best.expect("the start is screened").1)
}

/// One coordinate descent of [`fit_contention`] from `best` (objective `best_cost`).
fn descend(
    eval: &dyn Fn(&DeviceSpec) -> Result<f64>,
    mut best: DeviceSpec,
    mut best_cost: f64,
    rounds: usize,
    progress: &mut dyn FnMut(String),
) -> Result<(f64, DeviceSpec)> {
    let levels = 8;
    for cycle in 0..CYCLES {
        let cycle_start = best_cost;
        let mut span = 1.0; // fraction of each parameter's range searched around the best value
        for _ in 0..rounds {
            let mut changed = false;
            for (name, lo, hi) in FITTED {
                let cur = param(&best.contention, name);
                let width = (hi - lo) * span;
                let (a, b) = ((cur - width / 2.0).max(lo), (cur + width / 2.0).min(hi));
                for i in 0..=levels {
                    let v = a + (b - a) * i as f64 / levels as f64;
                    if (v - cur).abs() <= 1e-9 {
                        continue;
                    }
                    let mut d = best.clone();
                    *param_mut(&mut d.contention, name) = v;
                    // dram_efficiency must stay in (0, 1].
                    d.validate().map_err(|(f, m)| anyhow!("candidate {f}: {m}"))?;
                    let c = eval(&d)?;
                    if c < best_cost - 1e-12 {
                        best_cost = c;
                        best = d;
                        changed = true;
                    }
                }
            }
            if !changed && span < 0.05 {
                break;
            }
            span /= 2.0;
        }
        progress(format!("cycle {}: objective {best_cost:.4}", cycle + 1));
        if best_cost > cycle_start - 1e-4 {
            break;
        }
    }
    Ok((best_cost, best))
}

/// Most cycles of [`fit_contention`].
pub const CYCLES: usize = 4;
/// Points of [`fit_contention`]'s screening.
pub const SCREEN: usize = 64;
/// Screened points [`fit_contention`] descends from.
pub const STARTS: usize = 4;
/// One prime base per fitted parameter, for the screening's Halton sequence.
const PRIMES: [usize; FITTED.len()] = [2, 3, 5, 7, 11];

/// The `i`-th element of the van der Corput sequence in base `b` (0..1).
fn halton(mut i: usize, b: usize) -> f64 {
    let (mut f, mut r) = (1.0, 0.0);
    while i > 0 {
        f /= b as f64;
        r += f * (i % b) as f64;
        i /= b;
    }
    r
}

/// What a fit made.
#[derive(Debug, Clone, Serialize)]
pub struct FitOutcome {
    /// The fitted device.
    pub device: DeviceSpec,
    /// The starting device's name and source.
    pub start: String,
    /// Pair slowdowns on the starting device.
    pub before: Vec<SlowdownRow>,
    /// Pair slowdowns on the fitted device.
    pub after: Vec<SlowdownRow>,
    /// Launch benchmarks before and after.
    pub launch_before: Vec<LaunchRow>,
    /// See `launch_before`.
    pub launch_after: Vec<LaunchRow>,
    /// Copy fits.
    pub copies: Vec<CopyFit>,
    /// Results folder, GPU, commit, date.
    pub results: String,
    /// GPU.
    pub gpu: String,
    /// orion-real commit.
    pub commit: String,
    /// Date.
    pub date: String,
}

/// Fits `start` to `results`: copies, then launch costs, then contention (`rounds` rounds).
pub fn fit(
    results: &Results,
    start: &DeviceSpec,
    start_name: &str,
    rounds: usize,
    progress: &mut dyn FnMut(String),
) -> Result<FitOutcome> {
    if results.pairs.is_empty() {
        bail!("{}: no pair benchmark report: nothing to fit the contention model to", results.dir.display());
    }
    let before = simulate_pairs(&results.pairs, start)?;
    let launch_before = simulate_launch(&results.launch, start)?;
    let mut device = start.clone();
    let copies = fit_copies(&results.copies);
    for c in &copies {
        let bw = (c.bandwidth_gbs * 10.0).round() / 10.0;
        match c.kind {
            OpKind::CopyH2D => device.h2d_bandwidth_gbs = bw,
            OpKind::CopyD2H => device.d2h_bandwidth_gbs = bw,
            _ => device.d2d_bandwidth_gbs = bw,
        }
    }
    // Every benchmark ran through orion-real's one submitting thread: it is measured first and
    // simulated in the fits that follow.
    if let Some(sub) = fit_submitter(&results.launch, start) {
        progress(format!("submitter: launch_call_ns {}, queue_depth {}", sub.launch_call_ns, sub.queue_depth));
        device.submitter = Some(sub);
    }
    if !results.launch.is_empty() {
        let (l, g) = fit_launch(&results.launch, &device)?;
        progress(format!("launch_latency_ns {l}, kernel_gap_ns {g}"));
        device.launch_latency_ns = l;
        device.kernel_gap_ns = g;
    }
    let launch_after = simulate_launch(&results.launch, &device)?;
    let mut device = fit_contention(&results.pairs, &device, rounds, progress)?;
    // Round the fitted values to 3 decimals, as the device files write them.
    for (name, _, _) in FITTED {
        let v = param_mut(&mut device.contention, name);
        *v = (*v * 1000.0).round() / 1000.0;
    }
    if device.contention.dram_efficiency <= 0.0 {
        device.contention.dram_efficiency = 0.001;
    }
    device.validate().map_err(|(f, m)| anyhow!("fitted device, {f}: {m}"))?;
    let after = simulate_pairs(&results.pairs, &device)?;
    let (b, a) = (score(&before), score(&after));
    device.calibration = Some(Calibration {
        date: results.date.clone(),
        source: format!(
            "orion-validate calibrate fit from {start_name}: {} pair runs ({} benchmarks), {} launch and {} copy \
             measurements on {} (orion-real {}); pairwise slowdown median abs error {:.1}% -> {:.1}%, mean (capped) \
             {:.1}% -> {:.1}%",
            before.len() / 2,
            results.pairs.len(),
            results.launch.len(),
            results.copies.len(),
            results.gpu,
            results.commit,
            b.0 * 100.0,
            a.0 * 100.0,
            b.1 * 100.0,
            a.1 * 100.0
        ),
        data: Some(results.dir.display().to_string()),
        slowdown_error_before: Some((b.0 * 1e4).round() / 1e4),
        slowdown_error_after: Some((a.0 * 1e4).round() / 1e4),
    });
    Ok(FitOutcome {
        device,
        start: start_name.to_string(),
        before,
        after,
        launch_before,
        launch_after,
        copies,
        results: results.dir.display().to_string(),
        gpu: results.gpu.clone(),
        commit: results.commit.clone(),
        date: results.date.clone(),
    })
}

/// The errors of one class of pair under one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The classes of the pair's clients, `cc`, `cm`, `mc` or `mm` (the scenario name's second
    /// part).
    pub class: String,
    /// Policy.
    pub policy: String,
    /// Client runs.
    pub runs: usize,
    /// (median, worst) absolute error before.
    pub before: (f64, f64),
    /// (median, worst) absolute error after.
    pub after: (f64, f64),
}

/// The rows of `before` and `after` (the same runs in the same order) by class of pair and
/// policy, in order of first appearance of the class, then policy.
pub fn groups(before: &[SlowdownRow], after: &[SlowdownRow]) -> Vec<Group> {
    let class = |r: &SlowdownRow| r.scenario.split('-').nth(1).unwrap_or("").to_string();
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in before {
        let k = (class(r), r.policy.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort_by_key(|(c, p)| (before.iter().position(|r| class(r) == *c), before.iter().position(|r| r.policy == *p)));
    let stats = |rows: Vec<&SlowdownRow>| {
        let abs: Vec<f64> = rows.iter().map(|r| r.error.abs()).collect();
        (median(&abs).unwrap_or(f64::NAN), abs.iter().copied().fold(0.0, f64::max))
    };
    keys.into_iter()
        .map(|(c, p)| {
            let pick = |rows: &[SlowdownRow]| -> Vec<usize> {
                rows.iter().enumerate().filter(|(_, r)| class(r) == c && r.policy == p).map(|(i, _)| i).collect()
            };
            let idx = pick(before);
            Group {
                runs: idx.len(),
                before: stats(idx.iter().map(|&i| &before[i]).collect()),
                after: stats(idx.iter().filter_map(|&i| after.get(i)).collect()),
                class: c,
                policy: p,
            }
        })
        .collect()
}

fn pct(e: f64) -> String {
    if e.is_finite() { format!("{:+.1}%", e * 100.0) } else { "inf".into() }
}

fn num(v: f64) -> String {
    if v.is_finite() { format!("{v:.3}") } else { "starved".into() }
}

impl FitOutcome {
    /// The summary as Markdown: the fitted values, then per pair run and client the measured
    /// slowdown, simulated before and after, and the errors.
    pub fn markdown(&self) -> String {
        let (b, a) = (score(&self.before), score(&self.after));
        let worst = |rows: &[SlowdownRow]| rows.iter().map(|r| r.error.abs()).fold(0.0, f64::max);
        let mut s = format!(
            "# Calibration of the {} device\n\nMeasurements: `{}` ({}, orion-real {}, {}). Start: {}.\n\n",
            self.device.name, self.results, self.gpu, self.commit, self.date, self.start
        );
        s.push_str(&format!(
            "Pairwise co-run slowdown ({} client runs): median abs error {} -> **{}** (target <= 5%), mean \
             (capped at 100%) {} -> {}, worst {} -> {}.\n\n",
            self.after.len(),
            pct(b.0).trim_start_matches('+'),
            pct(a.0).trim_start_matches('+'),
            pct(b.1).trim_start_matches('+'),
            pct(a.1).trim_start_matches('+'),
            pct(worst(&self.before)).trim_start_matches('+'),
            pct(worst(&self.after)).trim_start_matches('+'),
        ));
        s.push_str("Per class of pair (`pair-XY-...`: X client `a`, Y client `b`; c compute, m memory) and policy, median and worst absolute error before -> after:\n\n| pairs | policy | runs | median | worst |\n| --- | --- | ---: | ---: | ---: |\n");
        for g in groups(&self.before, &self.after) {
            s.push_str(&format!(
                "| {} | {} | {} | {} -> {} | {} -> {} |\n",
                g.class,
                g.policy,
                g.runs,
                pct(g.before.0).trim_start_matches('+'),
                pct(g.after.0).trim_start_matches('+'),
                pct(g.before.1).trim_start_matches('+'),
                pct(g.after.1).trim_start_matches('+'),
            ));
        }
        s.push_str("\n| parameter | fitted |\n| --- | ---: |\n");
        let c = &self.device.contention;
        for (name, _, _) in FITTED {
            s.push_str(&format!("| contention.{name} | {:.3} |\n", param(c, name)));
        }
        for name in ["latency_floor", "compute_class_util[1]"] {
            s.push_str(&format!("| contention.{name} | {:.3} (kept, not fitted) |\n", param(c, name)));
        }
        for (k, v) in [
            ("launch_latency_ns", self.device.launch_latency_ns as f64),
            ("kernel_gap_ns", self.device.kernel_gap_ns as f64),
            ("h2d_bandwidth_gbs", self.device.h2d_bandwidth_gbs),
            ("d2h_bandwidth_gbs", self.device.d2h_bandwidth_gbs),
            ("d2d_bandwidth_gbs", self.device.d2d_bandwidth_gbs),
        ] {
            s.push_str(&format!("| {k} | {v} |\n"));
        }
        if let Some(sub) = self.device.submitter {
            s.push_str(&format!(
                "| submitter.launch_call_ns | {} (mean launch call of the launch benchmarks, median) |\n\
                 | submitter.queue_depth | {} (not measured by the plan) |\n",
                sub.launch_call_ns, sub.queue_depth
            ));
        }
        if !self.copies.is_empty() {
            s.push_str("\nCopies (`time = fixed + bytes / bandwidth`):\n\n| copy | samples | GB/s | fixed us |\n| --- | ---: | ---: | ---: |\n");
            for c in &self.copies {
                s.push_str(&format!(
                    "| {} | {} | {:.1} | {:.1} |\n",
                    c.kind,
                    c.samples,
                    c.bandwidth_gbs,
                    c.fixed_ns / 1e3
                ));
            }
        }
        if !self.launch_after.is_empty() {
            s.push_str("\nLaunch benchmarks, mean request time (ms): real / simulated before (error) / after (error):\n\n| scenario | real | before | after |\n| --- | ---: | ---: | ---: |\n");
            for (x, y) in self.launch_before.iter().zip(&self.launch_after) {
                s.push_str(&format!(
                    "| {} | {:.4} | {:.4} ({}) | {:.4} ({}) |\n",
                    x.scenario,
                    x.real_ms,
                    x.sim_ms,
                    pct(x.error),
                    y.sim_ms,
                    pct(y.error)
                ));
            }
        }
        s.push_str("\nPairs: slowdown (mean request latency shared / alone), measured, simulated before and after (error):\n\n| scenario | policy | client | measured | before | after |\n| --- | --- | --- | ---: | ---: | ---: |\n");
        for (x, y) in self.before.iter().zip(&self.after) {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} ({}) | {} ({}) |\n",
                x.scenario,
                x.policy,
                x.client,
                num(x.real),
                num(x.sim),
                pct(x.error),
                num(y.sim),
                pct(y.error)
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_submitter_is_the_median_launch_call_with_the_start_devices_queue_depth() {
        let start = DeviceSpec::preset("h100").unwrap();
        let scenario =
            orion_traces::builtin::workload_scenario("resnet50_bert", None, start.clone(), "builtin:h100".into())
                .unwrap();
        let case = |ns: Option<f64>| LaunchCase {
            name: "launch".into(),
            scenario: scenario.clone(),
            real_ms: 1.0,
            launch_call_ns: ns,
        };
        assert_eq!(fit_submitter(&[case(None)], &start), None);
        let cases = [case(Some(3702.5)), case(Some(4164.9)), case(Some(3323.1)), case(None)];
        let s = fit_submitter(&cases, &start).unwrap();
        assert_eq!(s, SubmitterSpec { launch_call_ns: 3700, queue_depth: DEFAULT_QUEUE_DEPTH });
        let mut deep = start.clone();
        deep.submitter = Some(SubmitterSpec { launch_call_ns: 1, queue_depth: 4096 });
        assert_eq!(fit_submitter(&cases, &deep).unwrap().queue_depth, 4096);
    }

    fn row(scenario: &str, policy: &str, error: f64) -> SlowdownRow {
        SlowdownRow {
            scenario: scenario.into(),
            policy: policy.into(),
            client: "a".into(),
            real: 1.0,
            sim: 1.0 + error,
            error,
        }
    }

    #[test]
    fn groups_are_per_class_of_pair_and_policy_with_median_and_worst() {
        let before = [
            row("pair-cc-b8-b8-50us", "streams", 0.1),
            row("pair-cc-b8-b8-50us", "priority-streams", -0.3),
            row("pair-mm-b8-b8-50us", "streams", 0.2),
            row("pair-cc-b66-b66-50us", "streams", -0.4),
            row("pair-cc-b132-b132-50us", "streams", 0.05),
        ];
        let mut after = before.clone();
        after[3].error = f64::INFINITY;
        let g = groups(&before, &after);
        let keys: Vec<(&str, &str, usize)> = g.iter().map(|g| (&*g.class, &*g.policy, g.runs)).collect();
        assert_eq!(keys, vec![("cc", "streams", 3), ("cc", "priority-streams", 1), ("mm", "streams", 1)]);
        // cc/streams: |0.1|, |-0.4|, |0.05| -> median 0.1, worst 0.4; after, worst unbounded.
        assert_eq!(g[0].before, (0.1, 0.4));
        assert_eq!(g[0].after.0, 0.1);
        assert!(g[0].after.1.is_infinite());
        assert_eq!(g[1].before, (0.3, 0.3));
    }
}
