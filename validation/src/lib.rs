//! Validation of the simulator against the real GPU.
//!
//! The real side is a folder of `orion-real replay` reports (`PAIR-POLICY.json`, as
//! `gpu-backend/scripts/matrix.sh` writes them on the GPU machine) with, per pair, the kernel
//! list of the replay (`PAIR-kernels.json[.gz]`: every op's target duration, i.e. the trace the
//! real run replayed), the traces themselves when the run wrote them (`traces/NAME.csv`, from
//! `orion-real replay --traces-out`), and the device file (`device.json`; absent: the built-in
//! H100 preset). [`compare_folder`] rebuilds each report's scenario (pair, seed,
//! duration, warm-up, HP arrival), checks that the simulator gets exactly the traces the real
//! run replayed, simulates it under the same policy (default parameters, as `matrix.sh` runs
//! them; each side takes its own `ideal` as reference), and pairs the metrics. [`Comparison`]
//! summarises the errors and renders the Markdown report and the scatter figure.
//!
//! Hold-out: nothing here fits parameters; the device file used is the one the real run's
//! traces came from, and the model's parameters are whatever the simulator has.

pub mod calibrate;

use anyhow::{Context, Result, anyhow, bail};
use orion_policies::{ParamMap, Report};
use orion_sim::plot::{Provenance, ScatterPanel, ScatterPoint, SimVsReal};
use orion_sim::run::{IdealReference, run};
use orion_traces::builtin::workload_scenario;
use orion_traces::format::read_trace;
use orion_traces::{DeviceSpec, Role, Scenario, Stop};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Targets of the validation issue: median and worst absolute relative error of the scenario
/// metrics.
pub const TARGET_MEDIAN: f64 = 0.05;
/// See [`TARGET_MEDIAN`].
pub const TARGET_WORST: f64 = 0.15;

/// The metrics compared per scenario cell.
pub const METRICS: [&str; 5] = ["hp_p50_ms", "hp_p95_ms", "hp_p99_ms", "hp_p95_overhead", "be_throughput_per_s"];

/// One metric of one cell, on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPair {
    /// Metric name (one of [`METRICS`]).
    pub metric: String,
    /// Measured on the GPU.
    pub real: f64,
    /// Simulated.
    pub sim: f64,
    /// `sim / real - 1` (for `hp_p95_overhead`, a difference of overheads: `sim - real`).
    pub error: f64,
}

/// One scenario cell (pair x policy).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Scenario (pair) name.
    pub scenario: String,
    /// Policy.
    pub policy: String,
    /// The report file it came from.
    pub file: String,
    /// Compared metrics.
    pub metrics: Vec<MetricPair>,
    /// The HP client as run (trace, arrival, seed, warm-up, duration), when there is one: cells
    /// of the same HP alone (`ideal`) are repeats of one measurement.
    pub hp_alone_key: Option<String>,
    /// The simulator's resolved policy parameters.
    pub sim_params: Value,
    /// The real run's resolved policy parameters.
    pub real_params: Value,
}

/// Error statistics of one metric over the cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    /// Metric.
    pub metric: String,
    /// Cells with a value on both sides.
    pub cells: usize,
    /// Median absolute error.
    pub median_abs: f64,
    /// Worst absolute error, and the cell it is in (`scenario/policy`).
    pub worst_abs: f64,
    /// Where the worst error is.
    pub worst_cell: String,
}

/// Repeats of one real measurement: the HP alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    /// The HP client as run.
    pub key: String,
    /// How many `ideal` cells ran it.
    pub runs: usize,
    /// Its measured p95 latency: min, median, max, ms.
    pub real_p95_ms: [f64; 3],
    /// (max - min) / median.
    pub spread: f64,
    /// The simulated p95 (the same in every repeat), ms.
    pub sim_p95_ms: f64,
}

/// The comparisons of several results folders, and the error statistics over all their cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suite {
    /// One comparison per folder.
    pub parts: Vec<Comparison>,
    /// Per metric, over every cell of every part.
    pub summary: Vec<MetricSummary>,
}

impl Suite {
    /// Compares every folder of `dirs` (see [`compare_folder_with`]).
    pub fn compare(dirs: &[PathBuf], opts: &CompareOptions, progress: &mut dyn FnMut(&str)) -> Result<Suite> {
        let parts = dirs.iter().map(|d| compare_folder_with(d, opts, progress)).collect::<Result<Vec<_>>>()?;
        let cells: Vec<Cell> = parts
            .iter()
            .flat_map(|p| {
                p.cells.iter().map(move |c| Cell { scenario: format!("{}: {}", p.label(), c.scenario), ..c.clone() })
            })
            .collect();
        Ok(Suite { summary: summarise(&cells), parts })
    }

    /// Whether the targets hold over all cells.
    pub fn targets_met(&self) -> bool {
        targets_met(&self.summary)
    }

    /// The overall table, then each folder's comparison under its own heading. With one
    /// folder, that folder's comparison alone.
    pub fn markdown(&self) -> String {
        if let [only] = &self.parts[..] {
            return only.markdown();
        }
        let n: usize = self.parts.iter().map(|p| p.cells.len()).sum();
        let mut s = format!("All {n} cells, {} results folders:\n\n", self.parts.len());
        s.push_str(&summary_table(&self.summary));
        for p in &self.parts {
            s.push_str(&format!("\n## {}\n\n", p.results));
            s.push_str(&p.markdown());
        }
        s
    }

    /// One scatter figure of every cell.
    pub fn figure(&self) -> SimVsReal {
        let mut all = self.parts[0].clone();
        all.cells = self.parts.iter().flat_map(|p| p.cells.clone()).collect();
        all.results = self.parts.iter().map(|p| p.results.as_str()).collect::<Vec<_>>().join(" + ");
        all.figure()
    }
}

/// Whether the targets (HP p95 and BE throughput: median and worst) hold in `summary`.
fn targets_met(summary: &[MetricSummary]) -> bool {
    summary
        .iter()
        .filter(|s| s.metric == "hp_p95_ms" || s.metric == "be_throughput_per_s")
        .all(|s| s.median_abs <= TARGET_MEDIAN && s.worst_abs <= TARGET_WORST)
}

/// The per-metric error table and the targets line.
fn summary_table(summary: &[MetricSummary]) -> String {
    let mut s = String::from(
        "| metric | cells | median abs error | worst abs error | worst cell |\n| --- | ---: | ---: | ---: | --- |\n",
    );
    for m in summary {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            m.metric,
            m.cells,
            fmt_error(&m.metric, m.median_abs).trim_start_matches('+'),
            fmt_error(&m.metric, m.worst_abs).trim_start_matches('+'),
            m.worst_cell
        ));
    }
    s.push_str(&format!(
        "\nTargets (HP p95 latency and BE throughput: median <= {:.0}%, worst <= {:.0}%): **{}**.\n\n",
        TARGET_MEDIAN * 100.0,
        TARGET_WORST * 100.0,
        if targets_met(summary) { "met" } else { "not met" }
    ));
    s
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Tool version.
    pub tool: String,
    /// The results folder.
    pub results: String,
    /// Device of the simulation and where it came from.
    pub device: String,
    /// Device source.
    pub device_source: String,
    /// Where the GPU model's parameters came from when not from the device source (traces from
    /// the device source, model from here: [`CompareOptions::model_device`]).
    pub model_source: Option<String>,
    /// The real runs' GPU, commit and date (from the first report).
    pub real: BTreeMap<String, Value>,
    /// Seeds of the cells (all equal in a matrix run).
    pub seeds: Vec<u64>,
    /// Traces (name, source) of the cells.
    pub traces: Vec<(String, String)>,
    /// The cells, in scenario then policy order.
    pub cells: Vec<Cell>,
    /// Per metric: the error statistics.
    pub summary: Vec<MetricSummary>,
}

/// Reads a JSON file, gunzipping `.gz`.
fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .with_context(|| format!("decompressing {}", path.display()))?;
        s
    } else {
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// The real reports of a results folder: every `*.json` whose `format` is a report and whose
/// backend is `real`, sorted by scenario then the order of the six policies.
pub fn real_reports(dir: &Path) -> Result<Vec<(PathBuf, Report)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading the folder {}", dir.display()))?;
    for e in entries {
        let path = e?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let v = read_json(&path)?;
        if v.get("format").and_then(Value::as_str) != Some("orion-rs-report/1") {
            continue;
        }
        let mut report: Report =
            serde_json::from_value(v).with_context(|| format!("{}: not a valid report", path.display()))?;
        // Interposer runs before orion-real adopted the interposer's parameters carry the front
        // end's unresolved copy.
        report.adopt_interposer_policy();
        if report.backend != "real" {
            continue;
        }
        out.push((path, report));
    }
    let order = |p: &str| orion_policies::registry::names().iter().position(|n| *n == p).unwrap_or(usize::MAX);
    out.sort_by(|a, b| (&a.1.scenario, order(&a.1.policy.name)).cmp(&(&b.1.scenario, order(&b.1.policy.name))));
    if out.is_empty() {
        bail!("{}: no report of a real run (orion-rs-report/1, backend real) in this folder", dir.display());
    }
    Ok(out)
}

/// The device of a results folder: `device.json` there, else the built-in H100 preset.
pub fn results_device(dir: &Path) -> Result<(DeviceSpec, String)> {
    let file = dir.join("device.json");
    if file.exists() {
        Ok((DeviceSpec::from_file(&file)?, file.display().to_string()))
    } else {
        Ok((DeviceSpec::preset("h100")?, "builtin:h100".into()))
    }
}

/// The scenario a real report ran: its pair's built-in clients on `device` (with the traces of
/// `traces/NAME.csv` when the folder has them), with the report's seed, warm-up and duration. Fails when the clients' traces or arrivals differ from the
/// report's (the simulator would not run what the GPU ran).
pub fn scenario_of(
    report: &Report,
    device: &DeviceSpec,
    device_source: &str,
    traces: Option<&Path>,
) -> Result<Scenario> {
    let mut scenario = workload_scenario(&report.scenario, None, device.clone(), device_source.to_string())
        .with_context(|| format!("scenario {}: not a built-in workload", report.scenario))?;
    let clients = &mut scenario.clients;
    // The traces the real run wrote (`orion-real replay --traces-out`) replace the built-in ones.
    if let Some(dir) = traces {
        for (c, r) in clients.iter_mut().zip(&report.clients) {
            let path = dir.join(format!("{}.csv", r.trace.name));
            if path.exists() {
                c.trace = std::sync::Arc::new(read_trace(&path)?);
            }
        }
    }
    if clients.len() != report.clients.len() {
        bail!("scenario {}: {} clients here, {} in the report", report.scenario, clients.len(), report.clients.len());
    }
    for (c, r) in clients.iter().zip(&report.clients) {
        let here = (&c.trace.meta.name, c.trace.meta.source.as_str(), c.trace.ops.len(), c.trace.kernel_count());
        let there = (&r.trace.name, r.trace.source.as_str(), r.trace.ops, r.trace.kernels);
        if here != there {
            bail!(
                "scenario {}, client {}: the simulator's trace is {here:?} (name, source, ops, kernels), the real run \
                 replayed {there:?}; give the folder the device.json its traces came from",
                report.scenario,
                c.name
            );
        }
        if c.arrival.to_string() != r.arrival {
            bail!(
                "scenario {}, client {}: arrival {} here, {} in the report",
                report.scenario,
                c.name,
                c.arrival,
                r.arrival
            );
        }
    }
    if !(report.duration_s > 0.0 && report.duration_s.is_finite()) {
        bail!("scenario {}: the report's duration_s is {}, not a positive length", report.scenario, report.duration_s);
    }
    let duration_ns = (report.duration_s * 1e9).round() as u64;
    scenario.name = report.scenario.clone();
    scenario.seed = report.seed;
    scenario.stop = Stop { duration_ns: Some(duration_ns), requests: None };
    scenario.warmup = report.warmup;
    Ok(scenario)
}

/// Checks a replay's kernel list (`orion-rs-kernels/1`) against the scenario's traces: every
/// client listed, the same ops in the same order with the same names and target durations.
/// Returns the number of ops checked.
pub fn check_kernel_list(scenario: &Scenario, list: &Value, file: &Path) -> Result<usize> {
    let at = file.display();
    let entries = list["clients"].as_array().ok_or_else(|| anyhow!("{at}: no `clients` array"))?;
    let mut checked = 0;
    for c in &scenario.clients {
        let entry = entries
            .iter()
            .find(|e| e["client"].as_str() == Some(c.name.as_str()))
            .ok_or_else(|| anyhow!("{at}: client {} of scenario {} is not listed", c.name, scenario.name))?;
        let name = &c.name;
        let table =
            entry["tables"][0]["ops"].as_array().ok_or_else(|| anyhow!("{at}: client {name}: no tables[0].ops"))?;
        if table.len() != c.trace.ops.len() {
            bail!("{at}: client {name}: {} ops listed, the trace has {}", table.len(), c.trace.ops.len());
        }
        for (i, (op, rec)) in table.iter().zip(&c.trace.ops).enumerate() {
            let target = op.get("target_ns").and_then(Value::as_u64);
            let listed = op.get("name").and_then(Value::as_str);
            let (Some(target), Some(listed)) = (target, listed) else {
                bail!("{at}: client {name}, op {i}: no `name` or `target_ns`");
            };
            if target != rec.duration_ns || listed != rec.name {
                bail!(
                    "{at}: client {name}, op {i}: the real run replayed `{listed}` for {target} ns, the simulator's \
                     trace has `{}` for {} ns",
                    rec.name,
                    rec.duration_ns
                );
            }
            checked += 1;
        }
    }
    if checked == 0 {
        bail!("{at}: no op to check");
    }
    Ok(checked)
}

/// The metrics of a report: HP latency percentiles and p95 overhead (inference HP), BE
/// throughput (summed over BE clients).
fn metrics_of(r: &Report) -> BTreeMap<&'static str, f64> {
    let mut m = BTreeMap::new();
    if let Some(hp) = r.clients.iter().find(|c| c.role == Role::Hp)
        && let Some(l) = &hp.latency_ms
    {
        m.insert("hp_p50_ms", l.p50);
        m.insert("hp_p95_ms", l.p95);
        m.insert("hp_p99_ms", l.p99);
        if let Some(i) = hp.ideal.as_ref().and_then(|i| i.latency_ms.as_ref()).filter(|i| i.p95 > 0.0) {
            m.insert("hp_p95_overhead", l.p95 / i.p95 - 1.0);
        }
    }
    let be: Vec<f64> = r.clients.iter().filter(|c| c.role == Role::Be).map(|c| c.throughput_per_s).collect();
    if !be.is_empty() {
        m.insert("be_throughput_per_s", be.iter().sum());
    }
    m
}

/// Pairs the metrics of a real and a simulated report of the same cell.
pub fn pair_metrics(real: &Report, sim: &Report) -> Vec<MetricPair> {
    let (a, b) = (metrics_of(real), metrics_of(sim));
    METRICS
        .iter()
        .filter_map(|&k| {
            let (r, s) = (*a.get(k)?, *b.get(k)?);
            let error = if k == "hp_p95_overhead" {
                s - r
            } else if r == 0.0 {
                // A starved client on the GPU: any simulated value but 0 is an unbounded error.
                if s == 0.0 { 0.0 } else { f64::INFINITY }
            } else {
                s / r - 1.0
            };
            Some(MetricPair { metric: k.into(), real: r, sim: s, error })
        })
        .collect()
}

/// Per-metric error statistics of the cells.
pub fn summarise(cells: &[Cell]) -> Vec<MetricSummary> {
    METRICS
        .iter()
        .map(|&k| {
            let errs: Vec<(f64, String)> = cells
                .iter()
                .flat_map(|c| {
                    c.metrics
                        .iter()
                        .filter(|m| m.metric == k)
                        .map(|m| (m.error.abs(), format!("{}/{}", c.scenario, c.policy)))
                })
                .collect();
            let abs: Vec<f64> = errs.iter().map(|e| e.0).collect();
            let worst = errs.iter().max_by(|a, b| a.0.total_cmp(&b.0));
            MetricSummary {
                metric: k.into(),
                cells: errs.len(),
                median_abs: orion_policies::report::median(&abs).unwrap_or(f64::NAN),
                worst_abs: worst.map_or(f64::NAN, |w| w.0),
                worst_cell: worst.map_or_else(String::new, |w| w.1.clone()),
            }
        })
        .collect()
}

/// Compares every real report of `dir` with the simulator on the same scenario. `progress` is
/// called with each cell's name before it is simulated.
/// How [`compare_folder_with`] simulates.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Simulate with this device's GPU model (launch latency, gaps, bandwidths, contention
    /// parameters) and its source, instead of the results folder's device. The traces still come
    /// from the folder's device (they are what the GPU replayed; their host gaps are part of
    /// them), so this evaluates a fitted device file on scenarios it was not fitted to. Its
    /// name and SM count must be those of the folder's device.
    pub model_device: Option<(DeviceSpec, String)>,
}

/// [`compare_folder_with`] with the folder's own device for the model.
pub fn compare_folder(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<Comparison> {
    compare_folder_with(dir, &CompareOptions::default(), progress)
}

/// Simulates every real report of folder `dir` (see [`real_reports`]) and compares.
pub fn compare_folder_with(dir: &Path, opts: &CompareOptions, progress: &mut dyn FnMut(&str)) -> Result<Comparison> {
    let reports = real_reports(dir)?;
    let (device, device_source) = results_device(dir)?;
    if let Some((m, src)) = &opts.model_device
        && (m.name != device.name || m.sm_count != device.sm_count)
    {
        bail!(
            "{src}: device {} with {} SMs; the results in {} ran on {} with {} SMs ({device_source})",
            m.name,
            m.sm_count,
            dir.display(),
            device.name,
            device.sm_count
        );
    }
    let mut cells = Vec::new();
    let mut seeds = Vec::new();
    let mut traces: Vec<(String, String)> = Vec::new();
    let mut checked_lists: Vec<String> = Vec::new();
    let mut ideals: BTreeMap<String, Report> = BTreeMap::new();
    for (path, real) in &reports {
        let trace_dir = Some(dir.join("traces")).filter(|t| t.is_dir());
        let mut scenario = scenario_of(real, &device, &device_source, trace_dir.as_deref())
            .with_context(|| format!("{}", path.display()))?;
        if real.engine.get("interrupted").and_then(Value::as_bool) == Some(true) {
            bail!("{}: engine.interrupted is true: the real run did not finish", path.display());
        }
        if real.device.name != device.name {
            bail!(
                "{}: device.name is `{}`, the simulation's device is `{}` ({device_source})",
                path.display(),
                real.device.name,
                device.name
            );
        }
        // A run through the interposer ran PyTorch's own kernels, matched to the trace's records
        // by position (`engine.interposer`): there is no replayed kernel list to check, only the
        // trace's identity (above).
        let interposed = real.engine.contains_key("interposer");
        if !interposed && !checked_lists.contains(&real.scenario) {
            let list = ["json", "json.gz"]
                .iter()
                .map(|ext| dir.join(format!("{}-kernels.{ext}", real.scenario)))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    anyhow!(
                        "{}: no {}-kernels.json[.gz] (orion-real replay --kernels-out): cannot check that the simulator \
                         runs the traces the GPU replayed",
                        dir.display(),
                        real.scenario
                    )
                })?;
            check_kernel_list(&scenario, &read_json(&list)?, &list)?;
            checked_lists.push(real.scenario.clone());
        }
        if let Some((m, src)) = &opts.model_device {
            scenario.device = m.clone();
            scenario.device_source = src.clone();
        }
        progress(&format!("{}/{}", real.scenario, real.policy.name));
        let simulate = |policy: &str, reference: IdealReference<'_>| {
            run(&scenario, policy, &ParamMap::new(), reference)
                .with_context(|| format!("simulating {} under {policy}", real.scenario))
                .map(|r| r.report)
        };
        // The scenario's ideal reference is simulated once and shared by its policies' cells (as
        // experiments do); it is also the `ideal` cell's report.
        if !ideals.contains_key(&real.scenario) {
            ideals.insert(real.scenario.clone(), simulate("ideal", IdealReference::Simulate)?);
        }
        let ideal = &ideals[&real.scenario];
        let sim = if real.policy.name == "ideal" {
            ideal.clone()
        } else {
            simulate(&real.policy.name, IdealReference::Given(ideal))?
        };
        if !seeds.contains(&real.seed) {
            seeds.push(real.seed);
        }
        for c in &real.clients {
            let t = (c.trace.name.clone(), c.trace.source.clone());
            if !traces.contains(&t) {
                traces.push(t);
            }
        }
        let hp_alone_key = real.clients.iter().find(|c| c.role == Role::Hp).map(|c| {
            format!(
                "{} {} seed {} warm-up {} {:.0} s",
                c.trace.name, c.arrival, real.seed, real.warmup, real.duration_s
            )
        });
        cells.push(Cell {
            scenario: real.scenario.clone(),
            policy: real.policy.name.clone(),
            file: path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            metrics: pair_metrics(real, &sim),
            hp_alone_key,
            sim_params: serde_json::to_value(&sim.policy.params)?,
            real_params: serde_json::to_value(&real.policy.params)?,
        });
    }
    let first = &reports[0].1;
    let mut real_meta = BTreeMap::new();
    for key in ["commit", "date"] {
        if let Some(v) = first.engine.get(key) {
            real_meta.insert(key.to_string(), v.clone());
        }
    }
    if let Some(name) = first.engine.get("gpu").and_then(|g| g.get("name").or(Some(g))).filter(|n| n.is_string()) {
        real_meta.insert("gpu".into(), name.clone());
    }
    let mut durations: Vec<f64> = Vec::new();
    for (_, r) in &reports {
        if !durations.contains(&r.duration_s) {
            durations.push(r.duration_s);
        }
    }
    let durations: Vec<String> = durations.iter().map(|d| format!("{d}")).collect();
    real_meta.insert("duration_s".into(), serde_json::json!(durations.join(" / ")));
    let summary = summarise(&cells);
    Ok(Comparison {
        tool: format!("orion-rs {}", env!("CARGO_PKG_VERSION")),
        results: dir.display().to_string(),
        device: device.name.clone(),
        model_source: opts.model_device.as_ref().map(|(_, src)| src.clone()),
        device_source,
        real: real_meta,
        seeds,
        traces,
        cells,
        summary,
    })
}

fn fmt_value(metric: &str, v: f64) -> String {
    if metric == "hp_p95_overhead" { format!("{:+.1}%", v * 100.0) } else { format!("{v:.2}") }
}

fn fmt_error(metric: &str, e: f64) -> String {
    if metric == "hp_p95_overhead" { format!("{:+.1} pt", e * 100.0) } else { format!("{:+.1}%", e * 100.0) }
}

impl Comparison {
    /// Whether the scenario targets hold for HP p95 latency and BE throughput.
    pub fn targets_met(&self) -> bool {
        self.summary
            .iter()
            .filter(|s| s.metric == "hp_p95_ms" || s.metric == "be_throughput_per_s")
            .all(|s| s.median_abs <= TARGET_MEDIAN && s.worst_abs <= TARGET_WORST)
    }

    /// The error table and summary as Markdown (no dates or wall times: the same inputs give
    /// the same text).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "Real runs: `{}` ({} cells; GPU {}, orion-real commit {}, {}; {} s each). Simulator: {} on device {} \
             ({}). Seeds: {}.\n\n",
            self.results,
            self.cells.len(),
            self.real.get("gpu").and_then(Value::as_str).unwrap_or("?"),
            self.real.get("commit").and_then(Value::as_str).unwrap_or("?"),
            self.real.get("date").and_then(Value::as_str).unwrap_or("?"),
            self.real.get("duration_s").and_then(Value::as_str).unwrap_or("?"),
            self.tool,
            self.device,
            self.device_source,
            self.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        ));
        if let Some(m) = &self.model_source {
            s.push_str(&format!(
                "GPU model parameters (launch latency, gaps, bandwidths, contention) from `{m}`; traces and their host \
                 gaps from the device above (what the GPU replayed).\n\n"
            ));
        }
        let traces: Vec<String> = self.traces.iter().map(|(n, s)| format!("{n} ({s})")).collect();
        s.push_str(&format!("Traces: {}.\n\n", traces.join(", ")));
        s.push_str(&summary_table(&self.summary));
        for sp in self.spread() {
            s.push_str(&format!(
                "Run-to-run spread of the real GPU: the HP alone (`ideal`) ran {} times with the same client ({}): \
                 p95 {} ms (min / median / max), a spread of {:.0}% of the median; simulated {:.2} ms.\n\n",
                sp.runs,
                sp.key,
                sp.real_p95_ms.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(" / "),
                sp.spread * 100.0,
                sp.sim_p95_ms
            ));
        }
        s.push_str("Per cell, real / simulated (error):\n\n| scenario | policy |");
        for m in METRICS {
            s.push_str(&format!(" {m} |"));
        }
        s.push_str("\n| --- | --- |");
        for _ in METRICS {
            s.push_str(" ---: |");
        }
        s.push('\n');
        for c in &self.cells {
            s.push_str(&format!("| {} | {} |", c.scenario, c.policy));
            for k in METRICS {
                match c.metrics.iter().find(|m| m.metric == k) {
                    Some(m) => s.push_str(&format!(
                        " {} / {} ({}) |",
                        fmt_value(k, m.real),
                        fmt_value(k, m.sim),
                        fmt_error(k, m.error)
                    )),
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        let diffs = self.parameter_differences();
        if !diffs.is_empty() {
            s.push_str(
                "\nPolicy parameters as each side resolved them, where they differ (each derives its defaults from \
                        its own measurements):\n\n",
            );
            for d in diffs {
                s.push_str(&format!("* {d}\n"));
            }
        }
        s
    }

    /// The cells whose policy parameters, as each backend resolved them, differ (e.g. Orion's
    /// `dur_threshold`, derived from each side's own HP standalone latency).
    /// A short name of the results folder (its path after `results/`, else the whole path).
    pub fn label(&self) -> &str {
        self.results.rsplit_once("results/").map_or(self.results.as_str(), |(_, l)| l)
    }

    /// The HP's p95 over `ideal` cells that ran the same HP client alone (repeats of one
    /// measurement), for each such client run at least twice.
    pub fn spread(&self) -> Vec<Spread> {
        let mut keys: Vec<&str> = Vec::new();
        for c in self.cells.iter().filter(|c| c.policy == "ideal") {
            if let Some(k) = c.hp_alone_key.as_deref()
                && !keys.contains(&k)
            {
                keys.push(k);
            }
        }
        keys.into_iter()
            .filter_map(|k| {
                let pairs: Vec<&MetricPair> = self
                    .cells
                    .iter()
                    .filter(|c| c.policy == "ideal" && c.hp_alone_key.as_deref() == Some(k))
                    .filter_map(|c| c.metrics.iter().find(|m| m.metric == "hp_p95_ms"))
                    .collect();
                if pairs.len() < 2 {
                    return None;
                }
                let real: Vec<f64> = pairs.iter().map(|m| m.real).collect();
                let med = orion_policies::report::median(&real)?;
                let (lo, hi) = real.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &v| (a.0.min(v), a.1.max(v)));
                Some(Spread {
                    key: k.to_string(),
                    runs: pairs.len(),
                    real_p95_ms: [lo, med, hi],
                    spread: (hi - lo) / med,
                    sim_p95_ms: pairs[0].sim,
                })
            })
            .collect()
    }

    pub fn parameter_differences(&self) -> Vec<String> {
        self.cells
            .iter()
            .filter(|c| c.sim_params != c.real_params)
            .map(|c| format!("{}/{}: real {} / simulated {}", c.scenario, c.policy, c.real_params, c.sim_params))
            .collect()
    }

    /// The scatter figure: HP p95 latency and BE throughput, simulated against measured.
    pub fn figure(&self) -> SimVsReal {
        let panel = |metric: &str, label: &str| ScatterPanel {
            metric: label.into(),
            points: self
                .cells
                .iter()
                .filter_map(|c| {
                    let m = c.metrics.iter().find(|m| m.metric == metric)?;
                    Some(ScatterPoint { policy: c.policy.clone(), real: m.real, sim: m.sim })
                })
                .collect(),
        };
        SimVsReal {
            title: format!("simulated vs measured on the GPU ({} cells)", self.cells.len()),
            panels: vec![
                panel("hp_p95_ms", "HP p95 latency (ms)"),
                panel("be_throughput_per_s", "BE throughput (iterations/s)"),
            ],
            provenance: Provenance {
                tool: self.tool.clone(),
                device: self.device.clone(),
                device_source: self.device_source.clone(),
                traces: self.traces.clone(),
                seed: self.seeds.first().copied().unwrap_or(0),
                extra: vec![format!(
                    "real: {} ({})",
                    self.results,
                    self.real.get("gpu").and_then(Value::as_str).unwrap_or("?")
                )],
            },
        }
    }
}
