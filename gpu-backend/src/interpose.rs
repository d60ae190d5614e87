//! `orion-real run` (the default form, `orion-real --policy P config.json`): the scenario's
//! models as real, unmodified PyTorch programs, scheduled by a policy through the interposer.
//!
//! The scenario (Orion's `config.json`, an orion-rs scenario file or a built-in pair) names
//! each client's model, mode, batch size, arrivals and role. `orion-real` writes
//!
//! * a workload file for the Python driver (`gpu-backend/workloads/driver.py serve`, built into
//!   this binary): the clients as threads of one process, each on its own CUDA stream, each
//!   marking its requests through the interposer's C ABI;
//! * the interposer's configuration (format `orion-rs-preload/1`): the policy, its parameters,
//!   the device and each client's kernel profile (the scenario's trace, written next to it);
//!
//! then runs the driver under `LD_PRELOAD=liborion_preload.so` and turns what it measured into
//! the same JSON report as `orion-sim` (latency = completion minus scheduled arrival, warm-up
//! excluded; throughput over each client's measured window).
//!
//! Two policies are not a scheduler inside one process:
//!
//! * `ideal`: each client alone on the GPU, one driver process after another, without the
//!   interposer (the dedicated-GPU reference; with a request-count stop the others run as long as
//!   the HP client did);
//! * `mps`: each client in its own driver process, all at once, under an NVIDIA MPS control
//!   daemon that this command starts with private pipe and log folders and always stops (also on
//!   error or Ctrl-C); the processes start their measured phases together (`--sync-dir`).
//!
//! Each client keeps its scenario index as the seed of its weights, inputs and arrivals
//! (`seed_id`), so it sees the same requests alone, in its own process or in company.

use crate::cli::{PolicyArgs, install_interrupt_handler, render_report, write_file, write_traces};
use anyhow::Result;
use anyhow::{Context, anyhow, bail};
use clap::Args;
use orion_policies::params::ParamMap;
use orion_policies::report::{ClientRecorder, client_report};
use orion_policies::{Policy, Report, Sharing, registry};
use orion_traces::cli::ScenarioArgs;
use orion_traces::{ArrivalProcess, Model, Role, Scenario, WorkKind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The Python driver and its models, built into the binary so that it runs from anywhere.
const DRIVER_PY: &str = include_str!("../workloads/driver.py");
const MODELS_PY: &str = include_str!("../workloads/models.py");

/// Length given to the processes of an `mps` run with a request-count stop that do not count
/// requests: they run until the HP client's process writes the stop file.
const UNTIL_STOPPED_S: f64 = 86_400.0;

/// The driver's output format this module reads.
const SERVE_FORMAT: &str = "orion-rs-workload-serve/1";

/// Arguments of `orion-real run` (and of the bare `orion-real --policy P config.json`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which scenario: Orion's config.json, an orion-rs scenario file or a built-in pair; each
    /// client's model, mode and batch come from its trace (`arch`/`batchsize` in Orion's format).
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Policy (also `mps` and `ideal`), report and ideal reference.
    #[command(flatten)]
    common: PolicyArgs,
    /// Python interpreter with PyTorch.
    #[arg(long, default_value = "python3")]
    python: OsString,
    /// The interposer [default: $ORION_PRELOAD_LIB, else liborion_preload.so next to orion-real].
    #[arg(long, value_name = "FILE")]
    preload: Option<PathBuf>,
    /// Folder holding driver.py and models.py [default: the copies built into orion-real].
    #[arg(long, value_name = "DIR")]
    driver: Option<PathBuf>,
    /// Keep the run's files here (workload and interposer configurations, profiles, driver
    /// outputs and logs, interposer reports) [default: a temporary folder, removed].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Deterministic algorithms in PyTorch (`torch.use_deterministic_algorithms`).
    #[arg(long)]
    deterministic: bool,
    /// Seconds a driver process may take beyond the run's length (imports, model builds,
    /// warm-up) before it is stopped.
    #[arg(long, default_value_t = 600, value_name = "S")]
    startup_timeout: u64,
    /// The MPS control program (`--policy mps`).
    #[arg(long, default_value = "nvidia-cuda-mps-control", value_name = "PROGRAM")]
    mps_control: OsString,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
    /// No progress messages on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// One client as the Python driver runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Client name (as in the scenario).
    pub name: String,
    /// Model.
    pub model: Model,
    /// Inference or training.
    pub mode: WorkKind,
    /// Batch size.
    pub batch: u32,
    /// HP or BE.
    pub role: Role,
    /// Arrivals, in the driver's JSON form.
    pub arrival: Value,
    /// Requests or iterations at most, warm-up included.
    pub max_requests: Option<u64>,
    /// Index in the scenario: seeds the client's weights, inputs and arrivals.
    pub seed_id: usize,
}

/// The runnable workload of every client of `scenario`: each trace must name its model (the
/// built-in and measured traces do; Orion's config gives `arch` and `batchsize`).
pub fn workloads(scenario: &Scenario) -> Result<Vec<Workload>> {
    scenario.validate().map_err(|m| anyhow!("scenario `{}`: {m}", scenario.name))?;
    scenario
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let meta = &c.trace.meta;
            let model: Model = match &meta.model {
                Some(m) => m.parse().map_err(|e| anyhow!("client `{}` (trace `{}`): {e}", c.name, meta.name))?,
                None => bail!(
                    "client `{}`: its trace `{}` names no model, and the interposer runs the model itself \
                     (one of {}): use a built-in or measured trace, or Orion's `arch`",
                    c.name,
                    meta.name,
                    Model::names().join(", ")
                ),
            };
            let arrival = match &c.arrival {
                ArrivalProcess::Poisson { rate } => json!({"type": "poisson", "rate": rate}),
                ArrivalProcess::Uniform { rate } => json!({"type": "uniform", "rate": rate}),
                ArrivalProcess::Trace { inter_arrival_s } => {
                    json!({"type": "trace", "inter_arrival_s": inter_arrival_s})
                }
                ArrivalProcess::ClosedLoop => json!({"type": "closed_loop"}),
            };
            Ok(Workload {
                name: c.name.clone(),
                model,
                mode: c.kind,
                batch: meta.batch_size.unwrap_or_else(|| model.default_batch(c.kind)),
                role: c.role,
                arrival,
                max_requests: c.max_requests,
                seed_id: i,
            })
        })
        .collect()
}

/// The driver's workload file for `clients` (indices into `work`), with the run's seed,
/// warm-up and stop (`duration_s` overrides the scenario's stop).
pub fn driver_scenario(scenario: &Scenario, work: &[Workload], clients: &[usize], duration_s: Option<f64>) -> Value {
    let mut doc = json!({
        "seed": scenario.seed,
        "warmup": scenario.warmup,
        "clients": clients.iter().map(|&i| {
            let w = &work[i];
            json!({"name": w.name, "model": w.model.as_str(), "mode": w.mode.as_str(), "batch": w.batch,
                   "role": w.role.as_str(), "arrival": w.arrival, "max_requests": w.max_requests,
                   "seed_id": w.seed_id})
        }).collect::<Vec<_>>(),
    });
    match (duration_s, scenario.stop.duration_ns, scenario.stop.requests) {
        (Some(d), _, _) => doc["duration"] = json!(format!("{d}s")),
        (None, Some(ns), _) => doc["duration"] = json!(format!("{}s", ns as f64 / 1e9)),
        (None, None, Some(r)) => doc["requests"] = json!(r),
        (None, None, None) => {}
    }
    doc
}

/// The interposer's configuration: `policy` with the parameters as given (`params`: the
/// interposer builds the policy from them, as the registry does here) over every client of
/// `scenario`, each with its profile `traces/NAME.csv` (relative to the configuration file).
pub fn preload_config(scenario: &Scenario, policy: &dyn Policy, params: &ParamMap) -> Value {
    json!({
        "format": "orion-rs-preload/1",
        "policy": policy.name(),
        "params": params,
        "device": {"name": scenario.device.name, "sm_count": scenario.device.sm_count},
        "clients": scenario.clients.iter().map(|c| json!({
            "name": c.name, "role": c.role.as_str(), "kind": c.kind.as_str(), "warmup": scenario.warmup,
            "trace": format!("traces/{}.csv", c.trace.meta.name),
        })).collect::<Vec<_>>(),
    })
}

/// What the driver wrote (the fields read here).
#[derive(Debug, Clone, Deserialize)]
pub struct ServeDoc {
    /// `orion-rs-workload-serve/1`.
    pub format: String,
    /// Python, PyTorch, GPU.
    #[serde(default)]
    pub env: Value,
    /// Stopped by Ctrl-C.
    #[serde(default)]
    pub interrupted: bool,
    /// Why the run ended.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Length of the measured phase, s.
    #[serde(default)]
    pub measured_phase_s: Option<f64>,
    /// Per client.
    pub clients: Vec<ServeClient>,
}

/// One client of the driver's output.
#[derive(Debug, Clone, Deserialize)]
pub struct ServeClient {
    /// Name.
    pub name: String,
    /// From the start of the measured phase to the client's stop, s.
    #[serde(default)]
    pub window_s: Option<f64>,
    /// Each measured request: scheduled arrival, start, end, ms from the start of the measured
    /// phase.
    #[serde(default)]
    pub requests_ms: Vec<[f64; 3]>,
    /// Warm-up requests.
    #[serde(default)]
    pub warmup: Value,
    /// What failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// Reads and checks the driver's output `path`.
pub fn read_serve(path: &Path) -> Result<ServeDoc> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the driver's output {}", path.display()))?;
    let doc: ServeDoc =
        serde_json::from_str(&text).with_context(|| format!("{}: not the driver's serve output", path.display()))?;
    if doc.format != SERVE_FORMAT {
        bail!("{}: format `{}`, expected `{SERVE_FORMAT}`", path.display(), doc.format);
    }
    if let Some(c) = doc.clients.iter().find(|c| c.error.is_some()) {
        bail!("{}: client `{}` failed: {}", path.display(), c.name, c.error.as_deref().unwrap_or_default());
    }
    Ok(doc)
}

/// A client's recorder and measured window (ns) from the driver's record of it.
pub fn recorder(c: &ServeClient) -> (ClientRecorder, u64) {
    let latencies_ns: Vec<u64> = c.requests_ms.iter().map(|r| ((r[2] - r[0]).max(0.0) * 1e6).round() as u64).collect();
    let warm = c.warmup.get("n").and_then(Value::as_u64).unwrap_or(0);
    let n = latencies_ns.len() as u64;
    let window = c.window_s.map_or(0, |w| (w * 1e9).round() as u64);
    (ClientRecorder { latencies_ns, measured_since: Some(0), total_completed: warm + n }, window)
}

/// Where each scenario client's record is: (process output, index in it).
type Located<'a> = Vec<(&'a ServeDoc, usize)>;

fn locate<'a>(scenario: &Scenario, docs: &'a [ServeDoc]) -> Result<Located<'a>> {
    // One process with every client in scenario order, or one process per client in order
    // (names may repeat: resnet50_resnet50 has two clients called resnet50).
    let n = scenario.clients.len();
    let located: Located<'a> = match docs {
        [d] if d.clients.len() == n => (0..n).map(|i| (d, i)).collect(),
        _ if docs.len() == n && docs.iter().all(|d| d.clients.len() == 1) => docs.iter().map(|d| (d, 0)).collect(),
        _ => bail!(
            "the driver's outputs hold {} clients in {} processes; the scenario has {n}",
            docs.iter().map(|d| d.clients.len()).sum::<usize>(),
            docs.len()
        ),
    };
    for (c, (d, k)) in scenario.clients.iter().zip(&located) {
        if d.clients[*k].name != c.name {
            bail!("the driver's output has client `{}` where the scenario has `{}`", d.clients[*k].name, c.name);
        }
    }
    Ok(located)
}

/// The report of `scenario` under `policy` from the driver outputs `docs` (one per process).
pub fn build_report(
    scenario: &Scenario,
    policy: &dyn Policy,
    docs: &[ServeDoc],
    mut engine: BTreeMap<String, Value>,
) -> Result<Report> {
    let located = locate(scenario, docs)?;
    let mut clients = Vec::new();
    let mut busy_sm_ns = 0.0;
    for (i, (doc, k)) in located.iter().enumerate() {
        let (rec, window) = recorder(&doc.clients[*k]);
        let spec = &scenario.clients[i];
        // SM time of the requests, from the profile: an estimate, the interposer does not
        // measure occupancy.
        let sm = scenario.device.sm_count as f64;
        let per_request: f64 = spec
            .trace
            .ops
            .iter()
            .map(|o| o.duration_ns as f64 * (o.sm_needed.min(scenario.device.sm_count) as f64 / sm))
            .sum();
        busy_sm_ns += per_request * rec.completed() as f64;
        clients.push(client_report(i, spec, &rec, window));
    }
    let duration_s = docs.iter().filter_map(|d| d.measured_phase_s).fold(0.0, f64::max);
    let duration_ns = (duration_s * 1e9).round() as u64;
    let span = if policy.sharing() == Sharing::Dedicated {
        located.iter().map(|(d, k)| d.clients[*k].window_s.unwrap_or(0.0) * 1e9).sum::<f64>()
    } else {
        duration_ns as f64
    };
    let utilization = if span > 0.0 { (busy_sm_ns / span).min(1.0) } else { 0.0 };
    engine.insert("sm_utilization_source".into(), json!("kernel profiles x completed requests (not measured)"));
    engine.insert("interrupted".into(), json!(docs.iter().any(|d| d.interrupted)));
    engine.insert("stop_reason".into(), json!(docs.iter().filter_map(|d| d.stop_reason.clone()).collect::<Vec<_>>()));
    if let Some(env) = docs.first().map(|d| &d.env) {
        engine.insert("gpu".into(), env.get("gpu").cloned().unwrap_or(Value::Null));
        let versions: BTreeMap<&str, Value> = ["python", "torch", "cuda", "cudnn", "torchvision", "transformers"]
            .iter()
            .filter_map(|k| env.get(*k).map(|v| (*k, v.clone())))
            .collect();
        engine.insert("software".into(), json!(versions));
    }
    Ok(Report::new(scenario, policy, "real", clients, duration_ns, utilization, engine))
}

/// The interposer's report, reduced to what belongs in the run's report; refuses a run in
/// which the interposer fell back to passing calls through (the policy did not schedule it).
pub fn interposer_summary(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("reading the interposer's report {} (did the driver run under it?)", path.display())
    })?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    if v.get("failure_logged").and_then(Value::as_bool) == Some(true) {
        bail!(
            "{}: the interposer failed and passed every call through (its line is in the driver's log)",
            path.display()
        );
    }
    if v.get("mode").and_then(Value::as_i64) != Some(2) {
        bail!("{}: the interposer was not in scheduling mode (mode {})", path.display(), v["mode"]);
    }
    let mut s = v.get("schedule").cloned().unwrap_or(Value::Null);
    if let Some(cs) = s.get_mut("clients").and_then(Value::as_array_mut) {
        for c in cs {
            if let Some(l) = c.get_mut("latency").and_then(Value::as_object_mut) {
                l.remove("requests_ns");
            }
        }
    }
    if let Some(errors) = s.get("submit_errors").and_then(Value::as_u64).filter(|&e| e > 0) {
        bail!("{}: {errors} captured ops failed to submit (first: {})", path.display(), s["first_submit_error"]);
    }
    // Ops the interposer had to submit without the policy (a client blocked on its own ops the
    // policy held back): the run finished, but the policy did not decide everything.
    let forced: u64 = s
        .get("clients")
        .and_then(Value::as_array)
        .map_or(0, |cs| cs.iter().filter_map(|c| c.get("forced").and_then(Value::as_u64)).sum());
    Ok(json!({"captured": v.get("captured"), "uncaptured": v.get("uncaptured"), "forced_submissions": forced,
              "schedule": s}))
}

/// The files and programs of one run.
struct Ctx<'a> {
    args: &'a RunArgs,
    dir: PathBuf,
    driver: PathBuf,
    interrupt: &'static AtomicBool,
    /// Wall-clock limit of one driver process.
    limit: Duration,
}

/// A driver process to start: its workload file and output, the environment it adds.
struct Launch {
    tag: String,
    env: Vec<(String, OsString)>,
    sync: Option<(PathBuf, usize)>,
    stream_per_client: bool,
}

impl Ctx<'_> {
    fn log(&self, msg: &str) {
        if !self.args.quiet {
            eprintln!("orion-real: {msg}");
        }
    }

    /// The run's file of launch `l` ending in `suffix` (`-workload.json`, `-serve.json`, `.log`).
    fn file(&self, l: &Launch, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}", l.tag))
    }

    fn spawn(&self, l: &Launch, workload: &Value) -> Result<Child> {
        let wl = self.file(l, "-workload.json");
        write_file(&wl, &serde_json::to_string_pretty(workload)?)?;
        let out = self.file(l, "-serve.json");
        let log = self.file(l, ".log");
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&self.args.python);
        cmd.arg(self.driver.join("driver.py"))
            .arg("serve")
            .arg("--scenario")
            .arg(&wl)
            .arg("--out")
            .arg(&out)
            .arg("--device")
            .arg(format!("cuda:{}", self.args.gpu));
        if l.stream_per_client {
            cmd.arg("--stream-per-client");
        }
        if self.args.deterministic {
            cmd.arg("--deterministic");
        }
        if let Some((dir, n)) = &l.sync {
            cmd.arg("--sync-dir").arg(dir).arg("--sync-count").arg(n.to_string());
        }
        cmd.env("PYTHONUNBUFFERED", "1").envs(l.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
        cmd.spawn().with_context(|| format!("starting {} (--python)", self.args.python.to_string_lossy()))
    }

    /// Runs the launches at once and waits for all of them; reads their outputs.
    fn run(&self, launches: &[(Launch, Value)]) -> Result<Vec<ServeDoc>> {
        let mut children = Vec::new();
        for (l, w) in launches {
            match self.spawn(l, w) {
                Ok(c) => children.push(c),
                Err(e) => {
                    stop_all(&mut children);
                    return Err(e);
                }
            }
        }
        let started = Instant::now();
        let mut status: Vec<Option<ExitStatus>> = vec![None; children.len()];
        let mut timed_out = false;
        while status.iter().any(Option::is_none) {
            for (c, s) in children.iter_mut().zip(&mut status) {
                if s.is_none() {
                    *s = c.try_wait().context("waiting for the driver")?;
                }
            }
            if started.elapsed() > self.limit && !timed_out {
                timed_out = true;
                dump_stacks(&children);
                stop_all(&mut children);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut docs = Vec::new();
        for ((l, _), s) in launches.iter().zip(&status) {
            let s = s.expect("every process ended");
            let log = self.file(l, ".log");
            if timed_out {
                bail!(
                    "the driver ran longer than the run plus --startup-timeout ({} s) and was stopped (every thread's \
                     Python stack is at the end of its log {}); log:\n{}",
                    self.limit.as_secs(),
                    log.display(),
                    tail(&log, 40)
                );
            }
            let interrupted = self.interrupt.load(Ordering::SeqCst) && s.code() == Some(130);
            if !s.success() && !interrupted {
                bail!(
                    "the driver ({}) exited with {s}; the end of its log {}:\n{}",
                    l.tag,
                    log.display(),
                    tail(&log, 20)
                );
            }
            docs.push(read_serve(&self.file(l, "-serve.json")).with_context(|| {
                format!("the driver ({}) wrote no usable output; the end of its log:\n{}", l.tag, tail(&log, 20))
            })?);
        }
        Ok(docs)
    }

    /// Each client alone, without the interposer, one after another (`ideal`).
    fn solo(&self, scenario: &Scenario, work: &[Workload]) -> Result<Vec<ServeDoc>> {
        let mut order: Vec<usize> = (0..work.len()).collect();
        // With a request-count stop the HP client runs first; the others as long as it did.
        let hp = scenario.hp_client().filter(|_| scenario.stop.requests.is_some());
        if let Some(h) = hp {
            order.retain(|&i| i != h);
            order.insert(0, h);
        }
        let mut docs: Vec<Option<ServeDoc>> = vec![None; work.len()];
        let mut hp_s = None;
        for i in order {
            self.log(&format!("ideal: client `{}` alone", work[i].name));
            let duration = if Some(i) == hp { None } else { hp_s };
            let wl = driver_scenario(scenario, work, &[i], duration);
            let launch = Launch { tag: format!("ideal-{i}"), env: Vec::new(), sync: None, stream_per_client: false };
            let doc = self.run(&[(launch, wl)])?.pop().expect("one process");
            if Some(i) == hp {
                hp_s = doc.measured_phase_s.filter(|&s| s > 0.0);
            }
            docs[i] = Some(doc);
        }
        Ok(docs.into_iter().flatten().collect())
    }
}

/// Asks each driver that is still running to print every thread's Python stack into its log
/// (`driver.py` registers SIGUSR1 with `faulthandler`), and gives them a moment to do so.
fn dump_stacks(children: &[Child]) {
    for c in children {
        // SAFETY: a signal to a child of this process (a no-op if it has already exited).
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGUSR1) };
    }
    std::thread::sleep(Duration::from_secs(2));
}

fn stop_all(children: &mut [Child]) {
    for c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// An MPS control daemon with private pipe and log folders, stopped when dropped.
struct Mps {
    program: OsString,
    env: Vec<(String, OsString)>,
    log_dir: PathBuf,
}

impl Mps {
    fn start(program: &OsString, dir: &Path) -> Result<Mps> {
        let pipe = dir.join("mps-pipe");
        let log_dir = dir.join("mps-log");
        for d in [&pipe, &log_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let env = vec![
            ("CUDA_MPS_PIPE_DIRECTORY".to_string(), pipe.clone().into_os_string()),
            ("CUDA_MPS_LOG_DIRECTORY".to_string(), log_dir.clone().into_os_string()),
        ];
        let status =
            Command::new(program).arg("-d").envs(env.iter().map(|(k, v)| (k, v))).status().with_context(|| {
                format!("--policy mps: starting `{} -d` (the NVIDIA MPS control daemon)", program.to_string_lossy())
            })?;
        if !status.success() {
            bail!("--policy mps: `{} -d` exited with {status}", program.to_string_lossy());
        }
        let mps = Mps { program: program.clone(), env, log_dir };
        // The daemon is ready once its control pipe exists.
        let t = Instant::now();
        while !pipe.join("control").exists() {
            if t.elapsed() > Duration::from_secs(10) {
                bail!("--policy mps: no control pipe in {} 10 s after starting the daemon", pipe.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(mps)
    }

    /// What the daemon logged: whether a server started and how many clients connected.
    fn evidence(&self) -> Value {
        let control = std::fs::read_to_string(self.log_dir.join("control.log")).unwrap_or_default();
        let count = |pat: &str| control.lines().filter(|l| l.contains(pat)).count();
        json!({"server_started": count("Starting new server") + count("Server started"),
               "new_clients": count("New client"), "log_lines": control.lines().count()})
    }
}

impl Drop for Mps {
    fn drop(&mut self) {
        let quit = Command::new(&self.program)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                if let Some(mut i) = c.stdin.take() {
                    let _ = i.write_all(b"quit\n");
                }
                c.wait()
            });
        if let Err(e) = quit {
            eprintln!("orion-real: stopping the MPS control daemon failed: {e}");
        }
    }
}

/// The preload library to use.
fn find_preload(args: &RunArgs) -> Result<PathBuf> {
    let candidate = match (&args.preload, std::env::var_os("ORION_PRELOAD_LIB")) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) if !p.is_empty() => PathBuf::from(p),
        _ => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("liborion_preload.so")))
            .unwrap_or_else(|| PathBuf::from("liborion_preload.so")),
    };
    if !candidate.is_file() {
        bail!(
            "the interposer {} does not exist (build it with `cargo build --release -p orion-preload`, or give \
             --preload FILE)",
            candidate.display()
        );
    }
    candidate.canonicalize().with_context(|| format!("resolving {}", candidate.display()))
}

/// `orion-real run`.
pub fn run_command(args: RunArgs, out: &mut dyn Write) -> Result<i32> {
    let scenario = args.scenario.scenario()?;
    let (name, params) = args.common.resolve(&scenario)?;
    let policy = registry::build(&name, &params)?;
    let work = workloads(&scenario)?;
    let given_ideal = args.common.given_ideal(&scenario)?;
    let (dir, _temp) = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (d.canonicalize()?, None)
        }
        None => {
            let t = tempfile::Builder::new().prefix("orion-real-").tempdir().context("creating a temporary folder")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let driver = match &args.driver {
        Some(d) => d.clone(),
        None => {
            let d = dir.join("driver");
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("driver.py"), DRIVER_PY)?;
            std::fs::write(d.join("models.py"), MODELS_PY)?;
            d
        }
    };
    let run_s = scenario.stop.duration_ns.map_or(0, |ns| ns.div_ceil(1_000_000_000));
    let ctx = Ctx {
        args: &args,
        dir: dir.clone(),
        driver,
        interrupt: install_interrupt_handler(),
        limit: Duration::from_secs(run_s + args.startup_timeout),
    };
    let mut engine = BTreeMap::new();
    engine.insert("work_dir".into(), json!(args.work_dir.as_ref().map(|_| dir.display().to_string())));
    let docs = if policy.sharing() == Sharing::Dedicated {
        engine.insert("processes".into(), json!(work.len()));
        engine.insert("interposer".into(), Value::Null);
        ctx.solo(&scenario, &work)?
    } else if policy.name() == "mps" {
        let mps = Mps::start(&args.mps_control, &dir)?;
        ctx.log(&format!("mps: {} processes under the MPS control daemon ({})", work.len(), dir.display()));
        let sync = dir.join("sync");
        let launches: Vec<(Launch, Value)> = (0..work.len())
            .map(|i| {
                let l = Launch {
                    tag: format!("mps-{i}"),
                    env: mps.env.clone(),
                    sync: Some((sync.clone(), work.len())),
                    stream_per_client: false,
                };
                // With a request-count stop only the HP client's process counts requests;
                // the others run until it writes the stop file.
                let until_stopped = scenario.stop.requests.is_some() && scenario.hp_client() != Some(i);
                (l, driver_scenario(&scenario, &work, &[i], until_stopped.then_some(UNTIL_STOPPED_S)))
            })
            .collect();
        let docs = ctx.run(&launches);
        engine.insert("mps".into(), mps.evidence());
        drop(mps);
        engine.insert("processes".into(), json!(work.len()));
        engine.insert("interposer".into(), Value::Null);
        docs?
    } else {
        let lib = find_preload(&args)?;
        write_traces(&scenario, &dir.join("traces"))?;
        let config = dir.join("preload-config.json");
        write_file(&config, &serde_json::to_string_pretty(&preload_config(&scenario, policy.as_ref(), &params))?)?;
        let report = dir.join("preload-report.json");
        let env = vec![
            ("LD_PRELOAD".to_string(), lib.clone().into_os_string()),
            ("ORION_PRELOAD_CONFIG".to_string(), config.into_os_string()),
            ("ORION_PRELOAD_REPORT".to_string(), report.clone().into_os_string()),
        ];
        ctx.log(&format!(
            "{} clients as threads of one process under the interposer ({}), policy {}",
            work.len(),
            lib.display(),
            policy.name()
        ));
        let launch = Launch { tag: "shared".into(), env, sync: None, stream_per_client: true };
        let all: Vec<usize> = (0..work.len()).collect();
        let docs = ctx.run(&[(launch, driver_scenario(&scenario, &work, &all, None))])?;
        engine.insert("processes".into(), json!(1));
        let summary = interposer_summary(&report)?;
        if let Some(k) = summary["forced_submissions"].as_u64().filter(|&k| k > 0) {
            eprintln!(
                "orion-real: warning: the interposer submitted {k} ops without the policy to end a client's wait \
                 (engine.interposer.schedule.clients[].forced); the policy did not decide every op of this run"
            );
        }
        engine.insert("interposer".into(), summary);
        docs
    };
    let mut report = build_report(&scenario, policy.as_ref(), &docs, engine)?;
    report.adopt_interposer_policy();
    let ideal = match given_ideal {
        Some(r) => Some(r),
        None if policy.sharing() == Sharing::Dedicated => Some(report.clone()),
        None if args.common.no_ideal => None,
        None => {
            let ideal_policy = registry::build("ideal", &Default::default())?;
            let docs = ctx.solo(&scenario, &work)?;
            Some(build_report(&scenario, ideal_policy.as_ref(), &docs, BTreeMap::new())?)
        }
    };
    if let Some(i) = &ideal {
        report.attach_ideal(i);
    }
    let json = report.to_json();
    if let Some(path) = &args.common.output {
        write_file(path, &json)?;
    }
    if args.common.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", render_report(&report))?;
    }
    let interrupted = report.engine.get("interrupted").and_then(Value::as_bool) == Some(true);
    Ok(if interrupted { crate::cli::EXIT_INTERRUPTED } else { 0 })
}
