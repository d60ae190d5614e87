//! The seed paper's experiments, one command each.
//!
//! * **fig7**: HP inference ResNet50 (Poisson, 15 requests/s) and MobileNetV2 (Poisson, 40/s),
//!   batch 4, each against each BE training job (ResNet50 32, MobileNetV2 64, ResNet101 32,
//!   BERT 8, Transformer 8), under every policy: HP p95 latency and BE throughput per cell.
//! * **fig10**: HP inference ResNet50 or MobileNetV2 (batch 4) driven by a bursty trace of
//!   inter-arrival times (generated from the seed, or read from a file), against BE inference
//!   jobs at fixed rates (ResNet50 80/s, MobileNetV2 100/s, ResNet101 40/s, BERT 8/s,
//!   Transformer 20/s, uniform arrivals): HP p95 latency and total request throughput.
//!
//! Cells run in parallel; each is an ordinary [`run`](crate::run) whose ideal reference is
//! simulated once per HP/BE pair and shared by the policies.

use crate::engine::Recording;
use crate::run::{IdealReference, RunError, run_with};
use orion_policies::params::ParamMap;
use orion_policies::report::round6;
use orion_policies::{Report, registry};
use orion_traces::arrival::bursty_inter_arrivals;
use orion_traces::builtin::{inference_client, training_client};
use orion_traces::scenario::DEFAULT_WARMUP;
use orion_traces::{ArrivalProcess, DeviceSpec, Model, Role, Scenario, Stop};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Which experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Experiment {
    /// HP inference vs BE training.
    Fig7,
    /// Bursty HP inference vs BE inference.
    Fig10,
}

impl Experiment {
    /// Name.
    pub fn as_str(self) -> &'static str {
        match self {
            Experiment::Fig7 => "fig7",
            Experiment::Fig10 => "fig10",
        }
    }
}

/// Policies of the paper's comparison, in its order.
pub const POLICIES: [&str; 6] = ["ideal", "temporal", "streams", "priority-streams", "reef", "orion"];

/// Settings of an experiment run.
#[derive(Debug, Clone)]
pub struct ExperimentOptions {
    /// Device.
    pub device: DeviceSpec,
    /// Where the device came from.
    pub device_source: String,
    /// Seed.
    pub seed: u64,
    /// Simulated time per cell, ns.
    pub duration_ns: u64,
    /// Warm-up requests per client.
    pub warmup: u32,
    /// Policies to compare.
    pub policies: Vec<String>,
    /// HP models (default: ResNet50 and MobileNetV2).
    pub hp_models: Vec<Model>,
    /// BE models (default: all five).
    pub be_models: Vec<Model>,
    /// fig10: the HP's inter-arrival times (seconds); default a bursty trace from the seed.
    pub inter_arrivals: Option<Vec<f64>>,
    /// Per-policy parameters: policy name -> parameters.
    pub params: BTreeMap<String, ParamMap>,
}

impl ExperimentOptions {
    /// The paper's settings on `device` with a 30 s run per cell.
    pub fn new(device: DeviceSpec, device_source: String) -> Self {
        ExperimentOptions {
            device,
            device_source,
            seed: 1,
            duration_ns: 30_000_000_000,
            warmup: DEFAULT_WARMUP,
            policies: POLICIES.iter().map(|p| p.to_string()).collect(),
            hp_models: vec![Model::ResNet50, Model::MobileNetV2],
            be_models: Model::ALL.to_vec(),
            inter_arrivals: None,
            params: BTreeMap::new(),
        }
    }
}

/// One cell: an HP/BE pair under one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// HP model.
    pub hp: String,
    /// BE model.
    pub be: String,
    /// Policy.
    pub policy: String,
    /// HP p50 latency, ms.
    pub hp_p50_ms: f64,
    /// HP p95 latency, ms.
    pub hp_p95_ms: f64,
    /// HP p99 latency, ms.
    pub hp_p99_ms: f64,
    /// HP p95 against the HP alone, minus one.
    pub hp_p95_overhead: Option<f64>,
    /// HP requests per second.
    pub hp_throughput_per_s: f64,
    /// BE iterations (fig7) or requests (fig10) per second.
    pub be_throughput_per_s: f64,
    /// HP plus BE requests per second (fig10's total throughput).
    pub total_throughput_per_s: f64,
    /// Sum over clients of throughput / ideal throughput.
    pub normalized_throughput: Option<f64>,
}

/// The result of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// Format identifier.
    pub format: String,
    /// Tool version.
    pub tool: String,
    /// Experiment name.
    pub experiment: String,
    /// Device.
    pub device: String,
    /// Where the device came from.
    pub device_source: String,
    /// Seed.
    pub seed: u64,
    /// Simulated seconds per cell.
    pub duration_s: f64,
    /// Warm-up requests per client.
    pub warmup: u32,
    /// Policies compared.
    pub policies: Vec<String>,
    /// Trace name -> provenance (`analytic`, `measured`, `file`).
    pub traces: BTreeMap<String, String>,
    /// HP arrivals of each HP model.
    pub hp_arrivals: BTreeMap<String, String>,
    /// Resolved parameters of each policy (from the first cell that ran it).
    pub policy_params: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// The cells, by HP, BE, then policy.
    pub cells: Vec<Cell>,
    /// HP request latencies of every cell, ns, by (HP, BE, policy): for plots, not serialised.
    #[serde(skip)]
    pub hp_latencies_ns: BTreeMap<(String, String, String), Vec<u64>>,
}

fn hp_arrival(exp: Experiment, hp: Model, opts: &ExperimentOptions) -> ArrivalProcess {
    match exp {
        Experiment::Fig7 => ArrivalProcess::Poisson { rate: hp.default_hp_rate() },
        Experiment::Fig10 => ArrivalProcess::Trace {
            inter_arrival_s: opts
                .inter_arrivals
                .clone()
                .unwrap_or_else(|| bursty_inter_arrivals(opts.seed, hp.default_hp_rate(), 20_000)),
        },
    }
}

fn scenario(exp: Experiment, hp: Model, be: Model, opts: &ExperimentOptions) -> Scenario {
    let d = &opts.device;
    let be_client = match exp {
        Experiment::Fig7 => training_client(be, Role::Be, d),
        Experiment::Fig10 => inference_client(be, Role::Be, ArrivalProcess::Uniform { rate: be.fig10_be_rate() }, d),
    };
    let mut hp_client = inference_client(hp, Role::Hp, hp_arrival(exp, hp, opts), d);
    // Distinct names when a model shares the GPU with itself.
    if hp == be {
        hp_client.name = format!("{hp}-hp");
    }
    Scenario {
        name: format!("{}:{}_{}", exp.as_str(), hp, be),
        clients: vec![hp_client, be_client],
        device: opts.device.clone(),
        device_source: opts.device_source.clone(),
        seed: opts.seed,
        stop: Stop { duration_ns: Some(opts.duration_ns), requests: None },
        warmup: opts.warmup,
        policy: None,
        policy_params: ParamMap::new(),
    }
}

fn cell(hp: Model, be: Model, policy: &str, r: &Report) -> Cell {
    let h = &r.clients[0];
    let b = &r.clients[1];
    let l = h.latency_ms.unwrap_or(orion_policies::report::LatencyStats {
        mean: 0.0,
        p50: 0.0,
        p95: 0.0,
        p99: 0.0,
        max: 0.0,
    });
    Cell {
        hp: hp.to_string(),
        be: be.to_string(),
        policy: policy.to_string(),
        hp_p50_ms: l.p50,
        hp_p95_ms: l.p95,
        hp_p99_ms: l.p99,
        hp_p95_overhead: h.overhead_vs_ideal.map(|o| o.p95),
        hp_throughput_per_s: h.throughput_per_s,
        be_throughput_per_s: b.throughput_per_s,
        total_throughput_per_s: round6(h.throughput_per_s + b.throughput_per_s),
        normalized_throughput: r.gpu.normalized_throughput,
    }
}

/// One cell's result: the cell, its report, and the HP's request latencies (ns).
type CellRun = (Cell, Report, Vec<u64>);

/// Runs experiment `exp`.
pub fn run_experiment(exp: Experiment, opts: &ExperimentOptions) -> Result<ExperimentReport, RunError> {
    for p in &opts.policies {
        registry::build(p, opts.params.get(p).unwrap_or(&ParamMap::new()))?;
    }
    let pairs: Vec<(Model, Model)> =
        opts.hp_models.iter().flat_map(|&hp| opts.be_models.iter().map(move |&be| (hp, be))).collect();
    let empty = ParamMap::new();
    let rec = Recording::default();
    let per_pair: Vec<Result<Vec<CellRun>, RunError>> = pairs
        .par_iter()
        .map(|&(hp, be)| {
            let sc = scenario(exp, hp, be, opts);
            let (ideal, ideal_detail) = run_with(&sc, "ideal", &empty, IdealReference::Simulate, &rec)?;
            let ideal = ideal.report;
            let hp_latencies = |mut l: Vec<Vec<u64>>| if l.is_empty() { Vec::new() } else { l.swap_remove(0) };
            let ideal_latencies = hp_latencies(ideal_detail.latencies_ns);
            opts.policies
                .par_iter()
                .map(|p| {
                    let params = opts.params.get(p).unwrap_or(&empty);
                    let (r, latencies) = if p == "ideal" {
                        (ideal.clone(), ideal_latencies.clone())
                    } else {
                        let (r, d) = run_with(&sc, p, params, IdealReference::Given(&ideal), &rec)?;
                        (r.report, hp_latencies(d.latencies_ns))
                    };
                    Ok((cell(hp, be, p, &r), r, latencies))
                })
                .collect()
        })
        .collect();
    let mut cells = Vec::new();
    let mut traces = BTreeMap::new();
    let mut policy_params = BTreeMap::new();
    let mut hp_latencies_ns = BTreeMap::new();
    for pair in per_pair {
        for (c, r, latencies) in pair? {
            hp_latencies_ns.insert((c.hp.clone(), c.be.clone(), c.policy.clone()), latencies);
            for client in &r.clients {
                traces.insert(client.trace.name.clone(), client.trace.source.clone());
            }
            policy_params.entry(c.policy.clone()).or_insert_with(|| r.policy.params.clone());
            cells.push(c);
        }
    }
    let hp_arrivals = opts.hp_models.iter().map(|&m| (m.to_string(), hp_arrival(exp, m, opts).to_string())).collect();
    Ok(ExperimentReport {
        format: "orion-rs-experiment/1".into(),
        tool: format!("orion-rs {}", env!("CARGO_PKG_VERSION")),
        experiment: exp.as_str().into(),
        device: opts.device.name.clone(),
        device_source: opts.device_source.clone(),
        seed: opts.seed,
        duration_s: round6(opts.duration_ns as f64 / 1e9),
        warmup: opts.warmup,
        policies: opts.policies.clone(),
        traces,
        hp_arrivals,
        policy_params,
        cells,
        hp_latencies_ns,
    })
}

impl ExperimentReport {
    /// The table: one row per HP/BE pair, one column per policy with
    /// `HP p95 ms / BE throughput` (fig7) or `HP p95 ms / total throughput` (fig10).
    pub fn table(&self) -> String {
        let fig10 = self.experiment == "fig10";
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: HP p95 latency (ms) / {} — device {} ({}), {} s per cell, seed {}, warm-up {}",
            self.experiment,
            if fig10 { "total throughput (requests/s)" } else { "BE throughput (iterations/s)" },
            self.device,
            self.device_source,
            self.duration_s,
            self.seed,
            self.warmup
        );
        let sources: Vec<String> = self.traces.iter().map(|(n, s)| format!("{n} ({s})")).collect();
        let _ = writeln!(s, "traces: {}", sources.join(", "));
        let arrivals: Vec<String> = self.hp_arrivals.iter().map(|(m, a)| format!("{m}: {a}")).collect();
        let _ = writeln!(s, "HP arrivals: {}", arrivals.join("; "));
        let _ = write!(s, "{:<12} {:<12}", "HP", "BE");
        for p in &self.policies {
            let _ = write!(s, " {p:>17}");
        }
        let _ = writeln!(s);
        let mut rows: Vec<(&str, &str)> = Vec::new();
        for c in &self.cells {
            if !rows.contains(&(c.hp.as_str(), c.be.as_str())) {
                rows.push((&c.hp, &c.be));
            }
        }
        for (hp, be) in rows {
            let _ = write!(s, "{hp:<12} {be:<12}");
            for p in &self.policies {
                match self.cells.iter().find(|c| c.hp == hp && c.be == be && &c.policy == p) {
                    Some(c) => {
                        let t = if fig10 { c.total_throughput_per_s } else { c.be_throughput_per_s };
                        let _ = write!(s, " {:>17}", format!("{:.2} / {:.1}", c.hp_p95_ms, t));
                    }
                    None => {
                        let _ = write!(s, " {:>17}", "-");
                    }
                }
            }
            let _ = writeln!(s);
        }
        s
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }
}
