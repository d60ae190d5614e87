//! Parameter sweeps: a scenario under every combination of policy parameters, HP arrival rates
//! and BE jobs, run in parallel, one row per point.
//!
//! # Grammar of a swept value
//! * a list `v1,v2,v3` (numbers, booleans, words, durations such as `160us`);
//! * a range `FROM..TO:lin:N` or `FROM..TO:log:N`: `N` values evenly spaced (linearly or
//!   logarithmically, both ends included). Ends with a time unit (`20us..2ms`) are durations,
//!   generated in nanoseconds and given to the policy in microseconds (`125.893us`); ends that
//!   are both integers give integers (rounded, duplicates dropped: write `5.0..40` to keep
//!   fractions); anything else gives decimals.
//!
//! A policy parameter axis is `KEY=VALUES` (applies to every swept policy) or
//! `POLICY.KEY=VALUES` (to that policy only). The points are the cartesian product, per policy,
//! of the axes that apply to it, the HP rates and the BE jobs.
//!
//! Every run is an ordinary [`run`](crate::run) whose ideal reference is simulated once per
//! distinct (HP rate, BE job) and shared by every point with those.

use crate::run::{IdealReference, RunError, run};
use orion_policies::params::ParamMap;
use orion_policies::report::round6;
use orion_policies::{Report, registry};
use orion_traces::builtin::{inference_client, training_client};
use orion_traces::units::parse_duration_ns;
use orion_traces::{ArrivalProcess, Model, Role, Scenario, WorkKind};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Format identifier of a sweep's JSON.
pub const SWEEP_FORMAT: &str = "orion-rs-sweep/1";

/// Errors of a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep's description is invalid.
    #[error("{0}")]
    Spec(String),
    /// A run failed.
    #[error("point {point} ({what}): {source}")]
    Run {
        /// Index of the point.
        point: usize,
        /// The point, described.
        what: String,
        /// What went wrong.
        source: RunError,
    },
}

fn is_duration(s: &str) -> bool {
    let t = s.trim();
    t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && t.ends_with(|c: char| c.is_ascii_alphabetic() || c == 'µ')
}

fn scalar(s: &str) -> Value {
    let t = s.trim();
    if let Ok(b) = t.parse::<bool>() {
        Value::Bool(b)
    } else if let Ok(i) = t.parse::<u64>() {
        Value::from(i)
    } else if let Ok(f) = t.parse::<f64>()
        && f.is_finite()
    {
        Value::from(f)
    } else {
        Value::String(t.to_string())
    }
}

/// A duration in ns as a policy parameter value (`125.893us`).
fn duration_value(ns: u64) -> Value {
    Value::String(format!("{}us", ns as f64 / 1e3))
}

/// `n` values from `a` to `b` (both included), evenly spaced linearly or logarithmically.
fn spaced(a: f64, b: f64, n: usize, log: bool) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n)
        .map(|i| {
            let f = i as f64 / (n - 1) as f64;
            if i == n - 1 {
                b
            } else if log {
                (a.ln() + f * (b.ln() - a.ln())).exp()
            } else {
                a + f * (b - a)
            }
        })
        .collect()
}

fn dedup(values: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Parses a swept value: a list `a,b,c` or a range `FROM..TO:lin|log:N` (see the module
/// documentation).
pub fn parse_values(spec: &str) -> Result<Vec<Value>, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("no values".into());
    }
    let Some((from, rest)) = spec.split_once("..") else {
        let items: Vec<&str> = spec.split(',').map(str::trim).collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(format!("`{spec}`: empty item in the list"));
        }
        return Ok(dedup(items.into_iter().map(scalar).collect()));
    };
    let mut parts = rest.split(':');
    let to = parts.next().unwrap_or_default();
    let (Some(mode), Some(count)) = (parts.next(), parts.next()) else {
        return Err(format!("`{spec}`: a range needs a spacing and a count, e.g. {from}..{to}:log:20 or :lin:20"));
    };
    if parts.next().is_some() {
        return Err(format!("`{spec}`: expected FROM..TO:lin|log:N"));
    }
    let log = match mode.trim() {
        "log" => true,
        "lin" => false,
        m => return Err(format!("`{spec}`: unknown spacing `{m}` (expected lin or log)")),
    };
    let n: usize = count
        .trim()
        .parse()
        .ok()
        .filter(|&n| (1..=100_000).contains(&n))
        .ok_or_else(|| format!("`{spec}`: the count `{count}` is not a whole number from 1 to 100000"))?;
    let (from, to) = (from.trim(), to.trim());
    if is_duration(from) || is_duration(to) {
        let a = parse_duration_ns(from, "us").map_err(|e| format!("`{spec}`: {e}"))?;
        let b = parse_duration_ns(to, "us").map_err(|e| format!("`{spec}`: {e}"))?;
        if log && (a == 0 || b == 0) {
            return Err(format!("`{spec}`: a log range needs positive ends"));
        }
        let v = spaced(a as f64, b as f64, n, log);
        return Ok(dedup(v.into_iter().map(|x| duration_value(x.round() as u64)).collect()));
    }
    let num = |s: &str| -> Result<f64, String> {
        s.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("`{spec}`: `{s}` is not a number or a duration"))
    };
    let (a, b) = (num(from)?, num(to)?);
    if log && (a <= 0.0 || b <= 0.0) {
        return Err(format!("`{spec}`: a log range needs positive ends"));
    }
    let integers = from.parse::<i64>().is_ok() && to.parse::<i64>().is_ok();
    let v = spaced(a, b, n, log);
    Ok(dedup(
        v.into_iter().map(|x| if integers { Value::from(x.round() as i64) } else { Value::from(round6(x)) }).collect(),
    ))
}

/// One policy-parameter axis of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamAxis {
    /// The policy it applies to (`None`: every swept policy).
    pub policy: Option<String>,
    /// The parameter.
    pub key: String,
    /// Its values.
    pub values: Vec<Value>,
}

/// Parses `KEY=VALUES` or `POLICY.KEY=VALUES`.
pub fn parse_param_axis(text: &str) -> Result<ParamAxis, String> {
    let (k, v) =
        text.split_once('=').ok_or_else(|| format!("`{text}` is not a parameter axis (expected KEY=VALUES)"))?;
    let k = k.trim();
    let (policy, key) = match k.split_once('.') {
        Some((p, key)) => (Some(p.trim().to_ascii_lowercase().replace('_', "-")), key.trim()),
        None => (None, k),
    };
    if key.is_empty() {
        return Err(format!("`{text}`: empty parameter name"));
    }
    let values = parse_values(v).map_err(|e| format!("`{k}`: {e}"))?;
    Ok(ParamAxis { policy, key: key.replace('-', "_"), values })
}

/// Parses the HP-rate axis: numbers (requests/s), as a list or a range.
pub fn parse_rates(spec: &str) -> Result<Vec<f64>, String> {
    parse_values(spec)?
        .into_iter()
        .map(|v| match v.as_f64() {
            Some(r) if r > 0.0 && r.is_finite() => Ok(r),
            _ => Err(format!("`{spec}`: the HP rate {v} is not a positive number of requests/s")),
        })
        .collect()
}

/// What to sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepSpec {
    /// Policies.
    pub policies: Vec<String>,
    /// Fixed parameters per policy (applied under the swept ones).
    pub fixed: BTreeMap<String, ParamMap>,
    /// Policy-parameter axes.
    pub params: Vec<ParamAxis>,
    /// HP arrival rates (empty: the scenario's).
    pub hp_rates: Vec<f64>,
    /// BE jobs replacing the scenario's BE client (empty: the scenario's).
    pub be: Vec<Model>,
}

/// One point of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// Policy.
    pub policy: String,
    /// BE job (`None`: the scenario's).
    pub be: Option<Model>,
    /// HP rate (`None`: the scenario's).
    pub hp_rate: Option<f64>,
    /// The swept parameters' values.
    pub swept: ParamMap,
}

impl SweepPoint {
    fn describe(&self) -> String {
        let mut s = self.policy.clone();
        if let Some(b) = self.be {
            let _ = write!(s, ", BE {b}");
        }
        if let Some(r) = self.hp_rate {
            let _ = write!(s, ", HP {r}/s");
        }
        for (k, v) in &self.swept {
            let _ = write!(s, ", {k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string));
        }
        s
    }
}

impl SweepSpec {
    /// The points, in order: policy, then BE job, then HP rate, then parameter axes (the last
    /// varying fastest).
    pub fn points(&self) -> Result<Vec<SweepPoint>, String> {
        for a in &self.params {
            if let Some(p) = &a.policy
                && !self.policies.contains(p)
            {
                return Err(format!(
                    "the axis `{p}.{}` names a policy that is not swept (swept: {})",
                    a.key,
                    self.policies.join(", ")
                ));
            }
        }
        let bes: Vec<Option<Model>> =
            if self.be.is_empty() { vec![None] } else { self.be.iter().copied().map(Some).collect() };
        let rates: Vec<Option<f64>> =
            if self.hp_rates.is_empty() { vec![None] } else { self.hp_rates.iter().copied().map(Some).collect() };
        let mut out = Vec::new();
        for policy in &self.policies {
            let axes: Vec<&ParamAxis> =
                self.params.iter().filter(|a| a.policy.as_deref().is_none_or(|p| p == policy)).collect();
            let mut combos: Vec<ParamMap> = vec![ParamMap::new()];
            for a in &axes {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        a.values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.insert(a.key.clone(), v.clone());
                            c
                        })
                    })
                    .collect();
            }
            for &be in &bes {
                for &hp_rate in &rates {
                    for swept in &combos {
                        out.push(SweepPoint { policy: policy.clone(), be, hp_rate, swept: swept.clone() });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One row of a sweep's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Index of the point.
    pub point: usize,
    /// Policy.
    pub policy: String,
    /// HP client.
    pub hp: String,
    /// BE client(s), `+`-separated.
    pub be: String,
    /// HP arrival process.
    pub hp_arrival: String,
    /// The swept parameters, as given to the policy.
    pub params: BTreeMap<String, Value>,
    /// Every parameter of the policy as it resolved them (defaults included).
    pub resolved: BTreeMap<String, Value>,
    /// HP p50 latency, ms.
    pub hp_p50_ms: Option<f64>,
    /// HP p95 latency, ms.
    pub hp_p95_ms: Option<f64>,
    /// HP p99 latency, ms.
    pub hp_p99_ms: Option<f64>,
    /// HP p95 alone (ideal), ms.
    pub hp_ideal_p95_ms: Option<f64>,
    /// HP p95 against the HP alone, minus one.
    pub hp_p95_overhead: Option<f64>,
    /// HP requests per second.
    pub hp_throughput_per_s: f64,
    /// BE iterations (requests) per second, summed over the BE clients.
    pub be_throughput_per_s: f64,
    /// BE throughput alone (ideal), per second.
    pub be_ideal_throughput_per_s: Option<f64>,
    /// Sum over clients of throughput / ideal throughput.
    pub normalized_throughput: Option<f64>,
    /// Time-averaged fraction of SMs busy.
    pub sm_utilization: f64,
}

/// A whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Format identifier.
    pub format: String,
    /// Simulator version.
    pub tool: String,
    /// Base scenario.
    pub scenario: String,
    /// Device.
    pub device: String,
    /// Where the device came from.
    pub device_source: String,
    /// Trace name -> provenance (`analytic`, `measured`, `file`).
    pub traces: BTreeMap<String, String>,
    /// Seed.
    pub seed: u64,
    /// Simulated seconds per point (or `null` with a request-count stop).
    pub duration_s: Option<f64>,
    /// Warm-up requests per client.
    pub warmup: u32,
    /// The axes, as given.
    pub axes: Vec<String>,
    /// One row per point.
    pub rows: Vec<SweepRow>,
}

/// The scenario of a (BE job, HP rate) variant of `base`.
pub fn variant(base: &Scenario, be: Option<Model>, hp_rate: Option<f64>) -> Result<Scenario, String> {
    let mut sc = base.clone();
    let hp = sc.hp_client();
    if let Some(model) = be {
        let bes: Vec<usize> = (0..sc.clients.len()).filter(|&i| sc.clients[i].role == Role::Be).collect();
        let [b] = bes[..] else {
            return Err(format!(
                "--be replaces the BE client, but scenario `{}` has {} BE clients",
                base.name,
                bes.len()
            ));
        };
        let old = &sc.clients[b];
        let mut client = match old.kind {
            WorkKind::Training => training_client(model, Role::Be, &sc.device),
            WorkKind::Inference => inference_client(model, Role::Be, old.arrival.clone(), &sc.device),
        };
        client.max_requests = old.max_requests;
        if let Some(h) = hp
            && sc.clients[h].name == client.name
        {
            client.name = format!("{}-be", client.name);
        }
        sc.clients[b] = client;
    }
    if let Some(rate) = hp_rate {
        let h = hp.ok_or_else(|| format!("--hp-rate: scenario `{}` has no HP client", base.name))?;
        let c = &mut sc.clients[h];
        if c.kind != WorkKind::Inference {
            return Err("--hp-rate: the HP client trains (closed loop); a rate applies to inference only".into());
        }
        c.arrival = match c.arrival {
            ArrivalProcess::Uniform { .. } => ArrivalProcess::Uniform { rate },
            _ => ArrivalProcess::Poisson { rate },
        };
    }
    Ok(sc)
}

fn row(point: usize, p: &SweepPoint, r: &Report) -> SweepRow {
    let hp = r.hp();
    let bes: Vec<_> = r.clients.iter().filter(|c| c.role == Role::Be).collect();
    let l = hp.and_then(|h| h.latency_ms);
    let be_ideal: Option<f64> = bes.iter().map(|c| c.ideal.map(|i| i.throughput_per_s)).sum();
    SweepRow {
        point,
        policy: p.policy.clone(),
        hp: hp.map_or_else(String::new, |h| h.name.clone()),
        be: bes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join("+"),
        hp_arrival: hp.map_or_else(String::new, |h| h.arrival.clone()),
        params: p.swept.clone(),
        resolved: r.policy.params.clone(),
        hp_p50_ms: l.map(|l| l.p50),
        hp_p95_ms: l.map(|l| l.p95),
        hp_p99_ms: l.map(|l| l.p99),
        hp_ideal_p95_ms: hp.and_then(|h| h.ideal).and_then(|i| i.latency_ms).map(|l| l.p95),
        hp_p95_overhead: hp.and_then(|h| h.overhead_vs_ideal).map(|o| o.p95),
        hp_throughput_per_s: hp.map_or(0.0, |h| h.throughput_per_s),
        be_throughput_per_s: round6(bes.iter().map(|c| c.throughput_per_s).sum()),
        be_ideal_throughput_per_s: be_ideal.map(round6),
        normalized_throughput: r.gpu.normalized_throughput,
        sm_utilization: r.gpu.sm_utilization,
    }
}

/// Runs every point of `spec` on variants of `base`, in parallel on the current rayon pool;
/// `progress` is called once per finished simulation (ideal references included: there are
/// [`SweepSpec::points`] plus one per distinct (BE job, HP rate)). `axes` describes the sweep
/// for the report.
pub fn run_sweep(
    base: &Scenario,
    spec: &SweepSpec,
    axes: Vec<String>,
    progress: &(dyn Fn() + Sync),
) -> Result<SweepReport, SweepError> {
    let points = spec.points().map_err(SweepError::Spec)?;
    // Check every policy and parameter name before running anything.
    for p in &spec.policies {
        let mut params = spec.fixed.get(p).cloned().unwrap_or_default();
        if let Some(first) = points.iter().find(|x| &x.policy == p) {
            params.extend(first.swept.clone());
        }
        registry::build(p, &params).map_err(|e| SweepError::Spec(e.to_string()))?;
    }
    let mut variants: Vec<(Option<Model>, Option<f64>)> = Vec::new();
    for p in &points {
        if !variants.iter().any(|&(b, r)| b == p.be && r == p.hp_rate) {
            variants.push((p.be, p.hp_rate));
        }
    }
    let scenarios: Vec<Scenario> = variants
        .iter()
        .map(|&(be, rate)| variant(base, be, rate))
        .collect::<Result<_, _>>()
        .map_err(SweepError::Spec)?;
    let empty = ParamMap::new();
    let ideals: Vec<Report> = scenarios
        .par_iter()
        .map(|sc| {
            let r = run(sc, "ideal", &empty, IdealReference::Simulate).map(|r| r.report);
            progress();
            r
        })
        .collect::<Result<_, _>>()
        .map_err(|source| SweepError::Run { point: 0, what: "ideal reference".into(), source })?;
    let rows: Vec<SweepRow> = points
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let v = variants.iter().position(|&(b, r)| b == p.be && r == p.hp_rate).expect("every variant is listed");
            let report = if p.policy == "ideal" && p.swept.is_empty() && !spec.fixed.contains_key("ideal") {
                ideals[v].clone()
            } else {
                let mut params = spec.fixed.get(&p.policy).cloned().unwrap_or_default();
                params.extend(p.swept.clone());
                run(&scenarios[v], &p.policy, &params, IdealReference::Given(&ideals[v]))
                    .map_err(|source| SweepError::Run { point: i, what: p.describe(), source })?
                    .report
            };
            progress();
            Ok(row(i, p, &report))
        })
        .collect::<Result<_, SweepError>>()?;
    let mut traces = BTreeMap::new();
    for r in ideals.iter() {
        for c in &r.clients {
            traces.insert(c.trace.name.clone(), c.trace.source.clone());
        }
    }
    Ok(SweepReport {
        format: SWEEP_FORMAT.into(),
        tool: format!("orion-rs {}", env!("CARGO_PKG_VERSION")),
        scenario: base.name.clone(),
        device: base.device.name.clone(),
        device_source: base.device_source.clone(),
        traces,
        seed: base.seed,
        duration_s: base.stop.duration_ns.map(|d| round6(d as f64 / 1e9)),
        warmup: base.warmup,
        axes,
        rows,
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| x.to_string())
}

impl SweepReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// CSV: `# key: value` provenance lines, a header, one row per point; swept parameters in
    /// `param.KEY` columns, resolved ones in `policy.KEY` columns (empty where a policy lacks
    /// them).
    pub fn to_csv(&self) -> String {
        let mut s = String::new();
        let sources: Vec<String> = self.traces.iter().map(|(n, s)| format!("{n} ({s})")).collect();
        let _ = writeln!(s, "# format: {}", self.format);
        let _ = writeln!(s, "# tool: {}", self.tool);
        let _ = writeln!(s, "# scenario: {}", self.scenario);
        let _ = writeln!(s, "# device: {} ({})", self.device, self.device_source);
        let _ = writeln!(s, "# traces: {}", sources.join(", "));
        let _ = writeln!(s, "# seed: {}", self.seed);
        let _ = writeln!(s, "# duration_s: {}", self.duration_s.map_or_else(|| "-".into(), |d| d.to_string()));
        let _ = writeln!(s, "# warmup: {}", self.warmup);
        let _ = writeln!(s, "# axes: {}", self.axes.join(" "));
        let mut swept: Vec<&String> = self.rows.iter().flat_map(|r| r.params.keys()).collect();
        swept.sort();
        swept.dedup();
        let mut resolved: Vec<&String> = self.rows.iter().flat_map(|r| r.resolved.keys()).collect();
        resolved.sort();
        resolved.dedup();
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = ["point", "policy", "hp", "be", "hp_arrival"].map(String::from).to_vec();
        header.extend(swept.iter().map(|k| format!("param.{k}")));
        header.extend(resolved.iter().map(|k| format!("policy.{k}")));
        header.extend(
            [
                "hp_p50_ms",
                "hp_p95_ms",
                "hp_p99_ms",
                "hp_ideal_p95_ms",
                "hp_p95_overhead",
                "hp_throughput_per_s",
                "be_throughput_per_s",
                "be_ideal_throughput_per_s",
                "normalized_throughput",
                "sm_utilization",
            ]
            .map(String::from),
        );
        let _ = w.write_record(&header);
        for r in &self.rows {
            let mut rec: Vec<String> =
                vec![r.point.to_string(), r.policy.clone(), r.hp.clone(), r.be.clone(), r.hp_arrival.clone()];
            rec.extend(swept.iter().map(|k| r.params.get(*k).map(cell).unwrap_or_default()));
            rec.extend(resolved.iter().map(|k| r.resolved.get(*k).map(cell).unwrap_or_default()));
            rec.extend([
                opt(r.hp_p50_ms),
                opt(r.hp_p95_ms),
                opt(r.hp_p99_ms),
                opt(r.hp_ideal_p95_ms),
                opt(r.hp_p95_overhead),
                r.hp_throughput_per_s.to_string(),
                r.be_throughput_per_s.to_string(),
                opt(r.be_ideal_throughput_per_s),
                opt(r.normalized_throughput),
                r.sm_utilization.to_string(),
            ]);
            let _ = w.write_record(&rec);
        }
        let body = w.into_inner().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        s.push_str(&body);
        s
    }

    /// The Pareto plot: HP p95 overhead (%) against BE throughput (per second), one colour per
    /// policy; one panel per BE job and HP arrival process when the sweep has several (up to 9;
    /// beyond, one panel with the BE throughput as a fraction of each job's ideal).
    pub fn pareto(&self) -> crate::plot::Pareto {
        use crate::plot::{Pareto, ParetoPanel, ParetoPoint, Provenance};
        let mut groups: Vec<(&str, &str)> = Vec::new();
        for r in &self.rows {
            if !groups.contains(&(r.be.as_str(), r.hp_arrival.as_str())) {
                groups.push((&r.be, &r.hp_arrival));
            }
        }
        let point = |r: &SweepRow, normalised: bool| -> Option<ParetoPoint> {
            let y = r.hp_p95_overhead? * 100.0;
            let x = if normalised {
                r.be_throughput_per_s / r.be_ideal_throughput_per_s.filter(|&i| i > 0.0)?
            } else {
                r.be_throughput_per_s
            };
            Some(ParetoPoint { policy: r.policy.clone(), x, y })
        };
        let (panels, x_label) = if groups.len() <= 9 {
            let panels = groups
                .iter()
                .map(|&(be, arrival)| ParetoPanel {
                    title: if groups.len() > 1 { format!("BE {be}, HP {arrival}") } else { String::new() },
                    points: self
                        .rows
                        .iter()
                        .filter(|r| r.be == be && r.hp_arrival == arrival)
                        .filter_map(|r| point(r, false))
                        .collect(),
                })
                .collect();
            let x_label = match groups[..] {
                [(be, _)] => format!("BE {be} throughput (per second)"),
                _ => "BE throughput (per second)".to_string(),
            };
            (panels, x_label)
        } else {
            let points = self.rows.iter().filter_map(|r| point(r, true)).collect();
            (vec![ParetoPanel { title: String::new(), points }], "BE throughput (fraction of the BE job alone)".into())
        };
        let arrival = match groups[..] {
            [(_, a)] => format!(", HP {a}"),
            _ => String::new(),
        };
        Pareto {
            title: format!(
                "sweep of {}{arrival}: HP p95 overhead vs BE throughput (lines: Pareto fronts)",
                self.scenario
            ),
            x_label,
            y_label: "HP p95 overhead vs ideal (%)".into(),
            panels,
            provenance: Provenance {
                tool: self.tool.clone(),
                device: self.device.clone(),
                device_source: self.device_source.clone(),
                traces: self.traces.iter().map(|(n, s)| (n.clone(), s.clone())).collect(),
                seed: self.seed,
                extra: vec![format!(
                    "{} points, {} s simulated each, sweep: {}",
                    self.rows.len(),
                    self.duration_s.map_or_else(|| "-".into(), |d| d.to_string()),
                    self.axes.join(" ")
                )],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_keep_their_types() {
        assert_eq!(parse_values("33,66,132").unwrap(), vec![json!(33), json!(66), json!(132)]);
        assert_eq!(parse_values("true, false").unwrap(), vec![json!(true), json!(false)]);
        assert_eq!(parse_values("reef,orion-artifact").unwrap(), vec![json!("reef"), json!("orion-artifact")]);
        assert_eq!(parse_values("160us,1.5").unwrap(), vec![json!("160us"), json!(1.5)]);
        assert_eq!(parse_values("3,3,4").unwrap(), vec![json!(3), json!(4)]);
    }

    #[test]
    fn duration_ranges_are_microseconds() {
        let v = parse_values("20us..2ms:log:3").unwrap();
        assert_eq!(v, vec![json!("20us"), json!("200us"), json!("2000us")]);
        let v = parse_values("20us..2ms:log:50").unwrap();
        assert_eq!(v.len(), 50);
        assert_eq!(v[0], json!("20us"));
        assert_eq!(v[49], json!("2000us"));
        // Strictly increasing and each a valid duration.
        let ns: Vec<u64> = v.iter().map(|x| parse_duration_ns(x.as_str().unwrap(), "us").unwrap()).collect();
        assert!(ns.windows(2).all(|w| w[0] < w[1]), "{ns:?}");
        assert_eq!(parse_values("0us..1ms:lin:3").unwrap(), vec![json!("0us"), json!("500us"), json!("1000us")]);
    }

    #[test]
    fn integer_ranges_round_and_dedup() {
        assert_eq!(parse_values("33..132:lin:4").unwrap(), vec![json!(33), json!(66), json!(99), json!(132)]);
        assert_eq!(parse_values("1..4:log:3").unwrap(), vec![json!(1), json!(2), json!(4)]);
        assert_eq!(parse_values("1..2:lin:5").unwrap(), vec![json!(1), json!(2)]);
        assert_eq!(parse_values("5.0..40:lin:8").unwrap()[1], json!(10.0));
        assert_eq!(parse_values("1.0..2:lin:5").unwrap()[1], json!(1.25));
        assert_eq!(parse_values("7..7:lin:1").unwrap(), vec![json!(7)]);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let e = |s: &str| parse_values(s).unwrap_err();
        assert!(e("").contains("no values"));
        assert!(e("1..10").contains("spacing and a count"), "{}", e("1..10"));
        assert!(e("1..10:cubic:3").contains("unknown spacing `cubic`"));
        assert!(e("1..10:lin:0").contains("count"));
        assert!(e("1..10:lin:x").contains("count"));
        assert!(e("1..10:lin:3:4").contains("FROM..TO"));
        assert!(e("0..10:log:3").contains("positive"));
        assert!(e("0us..1ms:log:3").contains("positive"));
        assert!(e("a..b:lin:3").contains("not a number"));
        assert!(e("1ms..3parsecs:lin:3").contains("unit"));
        assert!(e("1,,2").contains("empty item"));
    }

    #[test]
    fn axes_name_key_policy_and_values() {
        let a = parse_param_axis("orion.dur-threshold=20us,40us").unwrap();
        assert_eq!(a.policy.as_deref(), Some("orion"));
        assert_eq!(a.key, "dur_threshold");
        assert_eq!(a.values.len(), 2);
        let a = parse_param_axis("sm_threshold=33..132:lin:4").unwrap();
        assert_eq!((a.policy, a.values.len()), (None, 4));
        assert!(parse_param_axis("sm_threshold").unwrap_err().contains("KEY=VALUES"));
        assert!(parse_param_axis("=1,2").unwrap_err().contains("empty parameter name"));
        assert!(parse_param_axis("k=1..2:log").unwrap_err().contains("`k`"));
    }

    #[test]
    fn rates_must_be_positive_numbers() {
        assert_eq!(parse_rates("5..40:lin:8").unwrap(), vec![5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]);
        assert_eq!(parse_rates("2.5,10").unwrap(), vec![2.5, 10.0]);
        assert!(parse_rates("0,5").is_err());
        assert!(parse_rates("fast").is_err());
        assert!(parse_rates("-3").is_err());
    }

    #[test]
    fn points_are_the_product_of_the_axes_that_apply() {
        let spec = SweepSpec {
            policies: vec!["orion".into(), "reef".into()],
            params: vec![
                parse_param_axis("orion.sm_threshold=33,66").unwrap(),
                parse_param_axis("reef.reef_depth=4,8,12").unwrap(),
            ],
            hp_rates: vec![10.0, 20.0],
            be: vec![Model::Bert],
            ..SweepSpec::default()
        };
        let pts = spec.points().unwrap();
        assert_eq!(pts.len(), 2 * 2 + 3 * 2);
        assert_eq!(pts.iter().filter(|p| p.policy == "reef").count(), 6);
        assert!(pts.iter().all(|p| p.be == Some(Model::Bert)));
        assert_eq!(pts[0].swept.get("sm_threshold"), Some(&json!(33)));
        assert_eq!(pts[1].swept.get("sm_threshold"), Some(&json!(66)));
        let bad = SweepSpec {
            policies: vec!["orion".into()],
            params: vec![parse_param_axis("reef.reef_depth=4").unwrap()],
            ..SweepSpec::default()
        };
        assert!(bad.points().unwrap_err().contains("not swept"));
    }
}
