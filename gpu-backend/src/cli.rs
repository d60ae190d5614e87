//! The `orion-real` command line: argument parsing and wiring only; the work is in the library.

use crate::bench::{self, FidelityReport};
use crate::calibrate::Calibrator;
use crate::cuda::Gpu;
use crate::error::RealError;
use crate::interpose::{RunArgs, run_command};
use crate::replay::{self, ReplayOptions};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use orion_policies::params::{ParamMap, resolve_policy};
use orion_policies::timeline::Window;
use orion_policies::{Report, registry};
use orion_traces::builtin::{builtin_trace, workload_clients};
use orion_traces::cli::{ScenarioArgs, load_device};
use orion_traces::{DeviceSpec, Model, Scenario, Trace, WorkKind};
use serde_json::json;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit code of a run stopped by Ctrl-C (its report is still written).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Schedule real kernels on a real GPU under the same policies as `orion-sim`.
#[derive(Debug, Parser)]
#[command(name = "orion-real", version, args_conflicts_with_subcommands = true, arg_required_else_help = true)]
#[command(after_help = "Without a subcommand, `orion-real [OPTIONS] [CONFIG]` is `orion-real run`.\n\nExamples:\n  \
orion-real --policy reef config.json\n  orion-real --policy orion --trace resnet50_bert --duration 30s\n  \
orion-real --policy mps config.json -o mps.json\n  orion-real replay --policy orion --trace resnet50_bert --duration 30s\n  \
orion-real replay --policy reef config.json --json -o report.json\n  \
orion-real calibrate --output fidelity.json\n  orion-real overhead --trace resnet50\n  orion-real info")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `orion-real run`'s arguments, when no subcommand is given.
    #[command(flatten)]
    run: Box<RunArgs>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scenario's models as unmodified PyTorch programs (the Python driver) under the
    /// interposer, scheduled by a policy; print or write the same report as orion-sim (the
    /// default command).
    Run(Box<RunArgs>),
    /// Replay a scenario's traces as synthetic kernels on the GPU under a policy; print or write
    /// the same report as orion-sim.
    Replay(Box<ReplayArgs>),
    /// Calibrate the synthetic kernels of traces (default: every built-in trace) and report
    /// how closely their standalone durations and occupancies match the records.
    Calibrate(CalibrateArgs),
    /// Measure the executor's overhead: one client through the executor vs the same ops
    /// launched back to back.
    Overhead(OverheadArgs),
    /// Check that a high-priority stream overtakes a low-priority one.
    CheckPriority(DeviceArgs),
    /// Print the GPU's facts.
    Info(DeviceArgs),
    /// Show what replaying traces involves (kernels, shapes, calibrations), without a GPU.
    Plan(PlanArgs),
    /// List policies.
    List,
}

/// GPU selection.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
    /// Also write the JSON result to this file.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Arguments of `orion-real replay` (the same as an `orion-sim` run, plus the real backend's).
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Which scenario: a scenario file or a built-in workload, device (the one the traces'
    /// profiles are for), seed, length, arrivals.
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Policy, report and ideal reference.
    #[command(flatten)]
    common: PolicyArgs,
    /// Write every op's measured standalone duration vs its record to this file.
    #[arg(long)]
    kernels_out: Option<PathBuf>,
    /// Calibration cache file: read if it holds for this GPU, written after calibrating.
    #[arg(long)]
    calib_cache: Option<PathBuf>,
    /// Write every client's trace (the records the replay takes its targets from) to this
    /// folder as NAME.csv, so that the run can be simulated later on exactly these traces
    /// (`orion-validate` reads a results folder's `traces/`).
    #[arg(long, value_name = "DIR")]
    traces_out: Option<PathBuf>,
    /// Write the policy's run as a timeline in Chrome trace-event JSON, the format of
    /// `orion-sim --timeline` (open it in Perfetto or chrome://tracing): one track per client,
    /// one slice per op with its profile; start and end from GPU events.
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// Part of the run the timeline shows, FROM..TO (e.g. 1s..1.2s).
    #[arg(long, value_name = "FROM..TO", value_parser = Window::parse, requires = "timeline")]
    window: Option<Window>,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
    /// No progress messages on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// What `orion-real replay` and `orion-real run` share: the policy, where the report goes and
/// where the ideal reference comes from.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Scheduling policy (see `orion-real list`); default: the scenario's, else priority-streams.
    #[arg(long, short)]
    pub policy: Option<String>,
    /// Policy parameter, key=value (repeatable), e.g. -P dur_threshold=160us.
    #[arg(short = 'P', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Skip the ideal reference runs (each client alone on the GPU).
    #[arg(long)]
    pub no_ideal: bool,
    /// Take the ideal reference from this report of the same scenario (under `ideal`, or under
    /// another policy with the ideal reference attached) instead of running it.
    #[arg(long, conflicts_with = "no_ideal")]
    pub ideal_from: Option<PathBuf>,
}

impl PolicyArgs {
    /// The policy's name and parameters for `scenario`, checked by building the policy (before
    /// anything touches the GPU).
    pub(crate) fn resolve(&self, scenario: &Scenario) -> Result<(String, ParamMap)> {
        let (name, params) = resolve_policy(scenario, self.policy.as_deref(), &self.params, "priority-streams")
            .map_err(|e| anyhow!(e))?;
        registry::build(&name, &params)?;
        Ok((name, params))
    }

    /// The ideal reference `--ideal-from` gives, if it does.
    pub(crate) fn given_ideal(&self, scenario: &Scenario) -> Result<Option<Report>> {
        self.ideal_from.as_deref().map(|p| read_ideal(p, scenario)).transpose()
    }
}

/// Arguments of `orion-real calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Workloads whose traces to calibrate (repeatable; names as for replay --trace); default:
    /// every built-in model, inference and training.
    #[arg(long, short)]
    trace: Vec<String>,
    /// Mode of single-model workloads.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<WorkKind>,
    /// Device preset the traces are generated for.
    #[arg(long, default_value = "h100", conflicts_with = "device_file")]
    device: String,
    /// Device description file.
    #[arg(long)]
    device_file: Option<PathBuf>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Write every kernel's measured standalone duration vs its record to this file.
    #[arg(long)]
    kernels_out: Option<PathBuf>,
    /// Calibration cache file (read if it holds for this GPU, written after).
    #[arg(long)]
    calib_cache: Option<PathBuf>,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
}

/// Arguments of `orion-real plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Workloads (repeatable); default: every built-in model, inference and training.
    #[arg(long, short)]
    trace: Vec<String>,
    /// Mode of single-model workloads.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<WorkKind>,
    /// Device preset.
    #[arg(long, default_value = "h100")]
    device: String,
}

/// Arguments of `orion-real overhead`.
#[derive(Debug, Args)]
pub struct OverheadArgs {
    /// Workload whose first client is measured.
    #[arg(long, short, default_value = "resnet50")]
    trace: String,
    /// Mode of a single-model workload.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<WorkKind>,
    /// Policy the executor runs (one that submits at once measures pure overhead).
    #[arg(long, short, default_value = "streams")]
    policy: String,
    /// Measured requests.
    #[arg(long, default_value_t = 100)]
    requests: u64,
    /// Device preset the traces are generated for.
    #[arg(long, default_value = "h100")]
    device: String,
    /// Also write the JSON result to this file.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Calibration cache file.
    #[arg(long)]
    calib_cache: Option<PathBuf>,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
}

fn parse_mode(s: &str) -> Result<WorkKind, String> {
    s.parse()
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler: the first Ctrl-C asks the run to stop (it drains the GPU, frees
/// everything and writes the report of what completed); a second one exits at once.
pub(crate) fn install_interrupt_handler() -> &'static AtomicBool {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!("orion-real: interrupted; stopping, draining the GPU and writing the report (Ctrl-C again to quit)");
    });
    &INTERRUPTED
}

/// Runs the command line `args` (program name first), writing to `out` and `err`; returns the
/// process exit code.
pub fn main_with<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let text = e.render().ansi().to_string();
            let _ = if code == 0 { write!(out, "{text}") } else { write!(err, "{text}") };
            return code;
        }
    };
    match execute(cli, out) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            if matches!(e.downcast_ref::<RealError>(), Some(RealError::Interrupted(_))) { EXIT_INTERRUPTED } else { 1 }
        }
    }
}

fn execute(cli: Cli, out: &mut dyn Write) -> Result<i32> {
    match cli.command {
        None => run_command(*cli.run, out),
        Some(Command::Run(a)) => run_command(*a, out),
        Some(Command::Replay(a)) => replay_command(*a, out),
        Some(Command::Calibrate(a)) => calibrate_command(a, out),
        Some(Command::Overhead(a)) => overhead_command(a, out),
        Some(Command::CheckPriority(a)) => priority_command(a, out),
        Some(Command::Info(a)) => info_command(a, out),
        Some(Command::Plan(a)) => plan_command(a, out),
        Some(Command::List) => {
            writeln!(out, "policies:")?;
            for (name, summary) in registry::summaries() {
                writeln!(out, "  {name:<18} {summary}")?;
            }
            Ok(0)
        }
    }
}

/// Builds the scenario the arguments describe (the same rules as `orion-sim`:
/// [`ScenarioArgs::scenario`]).
pub fn scenario_from_args(args: &ReplayArgs) -> Result<Scenario> {
    args.scenario.scenario()
}

/// Writes each client's trace (and first-iteration trace) to `dir/NAME.csv`.
pub(crate) fn write_traces(scenario: &Scenario, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for c in &scenario.clients {
        for t in std::iter::once(&c.trace).chain(&c.first_trace) {
            let path = dir.join(format!("{}.csv", t.meta.name));
            orion_traces::format::write_trace(&path, t).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, format!("{text}\n")).with_context(|| format!("writing {}", path.display()))
}

fn open_gpu(ordinal: usize) -> Result<Gpu> {
    Gpu::open(ordinal).map_err(anyhow::Error::from)
}

fn open_calibrator<'g>(gpu: &'g Gpu, cache: Option<&Path>, quiet: bool) -> Result<Calibrator<'g>> {
    let mut cal = Calibrator::new(gpu)?;
    if let Some(p) = cache {
        let n = cal.load_cache(p)?;
        if !quiet && n > 0 {
            eprintln!("orion-real: {n} calibrated kernels from {}", p.display());
        }
    }
    Ok(cal)
}

fn save_cache(cal: &Calibrator<'_>, cache: Option<&Path>) -> Result<()> {
    if let Some(p) = cache {
        cal.save_cache(p).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn replay_command(args: ReplayArgs, out: &mut dyn Write) -> Result<i32> {
    let scenario = scenario_from_args(&args)?;
    let (policy, params) = args.common.resolve(&scenario)?;
    if let Some(dir) = &args.traces_out {
        write_traces(&scenario, dir)?;
    }
    let given_ideal = args.common.given_ideal(&scenario)?;
    let interrupt = install_interrupt_handler();
    let gpu = open_gpu(args.gpu)?;
    let mut cal = open_calibrator(&gpu, args.calib_cache.as_deref(), args.quiet)?;
    cal.set_interrupt(interrupt);
    let opts = ReplayOptions {
        ideal: !args.common.no_ideal,
        interrupt: Some(interrupt),
        verbose: !args.quiet,
        given_ideal: given_ideal.as_ref(),
        timeline: args.timeline.is_some().then(|| args.window.unwrap_or(Window::ALL)),
    };
    let result = replay::replay(&gpu, &mut cal, &scenario, &policy, &params, &opts);
    save_cache(&cal, args.calib_cache.as_deref())?;
    let (result, prepared) = result?;
    let json = result.report.to_json();
    if let Some(path) = &args.common.output {
        write_file(path, &json)?;
    }
    if let Some(path) = &args.kernels_out {
        let k = replay::kernels_json(&scenario, &prepared);
        write_file(path, &serde_json::to_string_pretty(&k)?)?;
    }
    if let (Some(path), Some(t)) = (&args.timeline, &result.timeline) {
        let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        t.write_json(&mut f).with_context(|| format!("writing {}", path.display()))?;
        if !args.quiet {
            eprintln!(
                "orion-real: timeline: {} slices in {} (open in Perfetto or chrome://tracing)",
                t.spans.len(),
                path.display()
            );
        }
    }
    if args.common.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", render_report(&result.report))?;
    }
    Ok(if result.interrupted { EXIT_INTERRUPTED } else { 0 })
}

/// Reads a report of `scenario` under `ideal`, or the ideal reference attached to a report of
/// it under another policy (for --ideal-from).
pub(crate) fn read_ideal(path: &Path, scenario: &Scenario) -> Result<Report> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let r: Report = serde_json::from_str(&text).with_context(|| format!("{} is not a report", path.display()))?;
    if r.scenario != scenario.name || r.clients.len() != scenario.clients.len() || r.seed != scenario.seed {
        bail!("--ideal-from {}: the report is of another scenario (`{}`, seed {})", path.display(), r.scenario, r.seed);
    }
    if r.policy.name == "ideal" {
        return Ok(r);
    }
    // Another policy's report of the same scenario carries the ideal reference it measured.
    let mut ideal = r.clone();
    ideal.policy.name = "ideal".into();
    for c in &mut ideal.clients {
        let Some(i) = c.ideal else {
            bail!(
                "--ideal-from {}: a report under `ideal`, or one with the ideal reference attached, is needed; this \
                 `{}` report has none for client `{}`",
                path.display(),
                r.policy.name,
                c.name
            );
        };
        c.throughput_per_s = i.throughput_per_s;
        c.latency_ms = i.latency_ms;
        c.ideal = None;
        c.overhead_vs_ideal = None;
    }
    Ok(ideal)
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

/// The human-readable form of a real-backend report.
pub fn render_report(r: &Report) -> String {
    let mut s = String::new();
    let gpu = r.engine.get("gpu").and_then(|g| g.get("name")).and_then(|n| n.as_str()).unwrap_or("?");
    let _ = writeln!(
        s,
        "{} | backend real ({gpu}) | scenario {} | policy {} | profiles {} ({}) | seed {}",
        r.tool, r.scenario, r.policy.name, r.device.name, r.device.source, r.seed
    );
    if r.engine.get("interrupted").and_then(|v| v.as_bool()) == Some(true) {
        let _ = writeln!(s, "INTERRUPTED: the report covers what completed");
    }
    let _ = writeln!(
        s,
        "\n{:<14} {:<4} {:<10} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
        "client", "role", "kind", "done", "thrpt/s", "p50 ms", "p95 ms", "p99 ms", "iter ms", "ideal/s", "p95 ovh"
    );
    for c in &r.clients {
        let l = c.latency_ms;
        let _ = writeln!(
            s,
            "{:<14} {:<4} {:<10} {:>8} {:>9.2} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
            c.name,
            c.role.as_str(),
            c.kind.as_str(),
            c.completed,
            c.throughput_per_s,
            opt(l.map(|l| l.p50), 2),
            opt(l.map(|l| l.p95), 2),
            opt(l.map(|l| l.p99), 2),
            opt(c.mean_iteration_ms, 2),
            opt(c.ideal.map(|i| i.throughput_per_s), 2),
            c.overhead_vs_ideal.map_or_else(|| "-".to_string(), |o| format!("{:+.1}%", o.p95 * 100.0)),
        );
    }
    let _ = writeln!(
        s,
        "\nGPU: normalised throughput {}, SM utilisation (estimate) {:.1}%, {:.2} s",
        opt(r.gpu.normalized_throughput, 3),
        r.gpu.sm_utilization * 100.0,
        r.duration_s
    );
    if let Some(o) = r.engine.get("overhead") {
        let g = |k: &str, p: &str| o.get(k).and_then(|v| v.get(p)).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let _ = writeln!(
            s,
            "scheduler: admissible-to-submitted median {:.0} ns, p99 {:.0} ns; launch call median {:.0} ns",
            g("admit_to_submit_ns", "p50"),
            g("admit_to_submit_ns", "p99"),
            g("launch_ns", "p50"),
        );
    }
    if let Some(f) = r.engine.get("fidelity") {
        let g = |k: &str| f.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let _ = writeln!(
            s,
            "synthetic kernels: {:.0}/{:.0} > 10 us within 5% ({:.1}%), occupancy {:.0}/{:.0}",
            g("within_5pct_over_10us"),
            g("kernels_over_10us"),
            100.0 * g("fraction_within_5pct_over_10us"),
            g("occupancy_match"),
            g("occupancy_checked"),
        );
    }
    if !r.policy.counters.is_empty() {
        let p: Vec<String> = r.policy.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "policy counters: {}", p.join(", "));
    }
    s
}

/// The traces of every built-in model, inference and training, at the default batch sizes.
pub fn builtin_traces(device: &DeviceSpec) -> Vec<Trace> {
    let mut v = Vec::new();
    for m in Model::ALL {
        for k in [WorkKind::Inference, WorkKind::Training] {
            v.push(builtin_trace(m, k, m.default_batch(k), device));
        }
    }
    v
}

fn traces_of(names: &[String], mode: Option<WorkKind>, device: &DeviceSpec) -> Result<Vec<Trace>> {
    if names.is_empty() {
        return Ok(builtin_traces(device));
    }
    let mut v = Vec::new();
    for name in names {
        for c in workload_clients(name, mode, device)? {
            v.push((*c.trace).clone());
            if let Some(f) = &c.first_trace {
                v.push((**f).clone());
            }
        }
    }
    Ok(v)
}

fn plan_command(args: PlanArgs, out: &mut dyn Write) -> Result<i32> {
    let device = DeviceSpec::preset(&args.device)?;
    writeln!(
        out,
        "{:<36} {:>6} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>10}",
        "trace", "ops", "kernels", ">10us", "shapes", "calibs", "no-occ", "copies", "kernel ms"
    )?;
    for t in traces_of(&args.trace, args.mode, &device)? {
        let p = crate::plan::plan_summary(&t, &device);
        writeln!(
            out,
            "{:<36} {:>6} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>10.3}",
            p.trace,
            p.ops,
            p.kernels,
            p.kernels_over_10us,
            p.shapes,
            p.calibrations,
            p.unreproducible_occupancy,
            p.copies,
            p.kernel_ms
        )?;
    }
    Ok(0)
}

fn calibrate_command(args: CalibrateArgs, out: &mut dyn Write) -> Result<i32> {
    let (device, _) = load_device(&args.device, args.device_file.as_deref())?;
    let traces = traces_of(&args.trace, args.mode, &device)?;
    let interrupt = install_interrupt_handler();
    let gpu = open_gpu(args.gpu)?;
    let mut cal = open_calibrator(&gpu, args.calib_cache.as_deref(), false)?;
    cal.set_interrupt(interrupt);
    let mut kernels = Vec::new();
    let report = bench::fidelity_sweep(
        &mut cal,
        &gpu,
        &device,
        &traces,
        |t, cals| {
            if args.kernels_out.is_some() {
                kernels.push(json!({ "trace": t.meta.name, "ops": cals }));
            }
        },
        true,
    );
    save_cache(&cal, args.calib_cache.as_deref())?;
    let report = report?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.output {
        write_file(path, &json)?;
    }
    if let Some(path) = &args.kernels_out {
        write_file(path, &serde_json::to_string(&json!({ "format": "orion-rs-kernels/1", "traces": kernels }))?)?;
    }
    if args.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", render_fidelity(&report))?;
    }
    Ok(if report.interrupted { EXIT_INTERRUPTED } else { 0 })
}

/// The human-readable form of a fidelity sweep.
pub fn render_fidelity(r: &FidelityReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "synthetic-kernel fidelity on {} (profiles: {}), {}", r.gpu.name, r.device_preset, r.date);
    let _ = writeln!(
        s,
        "{:<36} {:>7} {:>8} {:>8} {:>9} {:>9} {:>11} {:>6}",
        "trace", "kernels", ">10us", "in 5%", "fraction", "p95 err", "occupancy", "met"
    );
    let mut row = |name: &str, f: &crate::calibrate::FidelitySummary, met: bool| {
        let _ = writeln!(
            s,
            "{:<36} {:>7} {:>8} {:>8} {:>8.2}% {:>8.2}% {:>5}/{:<5} {:>6}",
            name,
            f.kernels,
            f.kernels_over_10us,
            f.within_5pct_over_10us,
            100.0 * f.fraction_within_5pct_over_10us,
            100.0 * f.p95_abs_err_over_10us,
            f.occupancy_match,
            f.occupancy_checked,
            if met { "yes" } else { "NO" }
        );
    };
    for t in &r.traces {
        row(&t.trace, &t.summary, t.criterion_met);
    }
    row("all", &r.overall, r.criterion_met);
    let _ = writeln!(s, "{} timed launches, {:.1} s", r.measurements, r.seconds);
    s
}

fn overhead_command(args: OverheadArgs, out: &mut dyn Write) -> Result<i32> {
    let device = DeviceSpec::preset(&args.device)?;
    let clients = workload_clients(&args.trace, args.mode, &device)?;
    let client = clients.first().ok_or_else(|| anyhow!("workload `{}` has no client", args.trace))?;
    registry::build(&args.policy, &ParamMap::new())?;
    let gpu = open_gpu(args.gpu)?;
    let mut cal = open_calibrator(&gpu, args.calib_cache.as_deref(), false)?;
    let report = bench::overhead(&gpu, &mut cal, &device, client, &args.policy, args.requests);
    save_cache(&cal, args.calib_cache.as_deref())?;
    let report = report?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.output {
        write_file(path, &json)?;
    }
    writeln!(out, "{json}")?;
    Ok(0)
}

fn priority_command(args: DeviceArgs, out: &mut dyn Write) -> Result<i32> {
    let gpu = open_gpu(args.gpu)?;
    let mut cal = Calibrator::new(&gpu)?;
    cal.warm_up(200)?;
    let check = bench::priority_check(&gpu, &mut cal)?;
    let json = serde_json::to_string_pretty(&json!({ "check": check, "preferred": check.preferred() }))?;
    if let Some(path) = &args.output {
        write_file(path, &json)?;
    }
    writeln!(out, "{json}")?;
    Ok(if check.preferred() { 0 } else { 1 })
}

fn info_command(args: DeviceArgs, out: &mut dyn Write) -> Result<i32> {
    let gpu = open_gpu(args.gpu)?;
    let regs = gpu.registers()?;
    let json = serde_json::to_string_pretty(&json!({ "gpu": gpu.props(), "synthetic_kernel_registers": regs }))?;
    if let Some(path) = &args.output {
        write_file(path, &json)?;
    }
    writeln!(out, "{json}")?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion_traces::{ArrivalProcess, Stop};

    fn run(args: &[&str]) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = main_with(std::iter::once("orion-real").chain(args.iter().copied()), &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn replay_args(args: &[&str]) -> ReplayArgs {
        let cli = Cli::try_parse_from(
            std::iter::once("orion-real").chain(std::iter::once("replay")).chain(args.iter().copied()),
        )
        .unwrap();
        match cli.command {
            Some(Command::Replay(a)) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn list_names_every_policy() {
        let (code, out, _) = run(&["list"]);
        assert_eq!(code, 0);
        for p in ["ideal", "temporal", "streams", "mps", "priority-streams", "reef", "orion"] {
            assert!(out.contains(p), "{p}");
        }
    }

    #[test]
    fn a_bad_policy_fails_before_touching_the_gpu() {
        let (code, _, err) = run(&["replay", "--policy", "nope", "--trace", "resnet50_bert"]);
        assert_eq!(code, 1);
        assert!(err.contains("unknown policy"), "{err}");
    }

    #[test]
    fn replay_arguments_build_the_same_scenario_as_orion_sim() {
        let a = replay_args(&["--trace", "resnet50_bert", "--duration", "5s", "--hp-rate", "30", "--seed", "7"]);
        let s = scenario_from_args(&a).unwrap();
        assert_eq!(s.name, "resnet50_bert");
        assert_eq!(s.clients.len(), 2);
        assert_eq!(s.seed, 7);
        assert_eq!(s.stop, Stop { duration_ns: Some(5_000_000_000), requests: None });
        assert_eq!(s.clients[0].arrival, ArrivalProcess::Poisson { rate: 30.0 });
        let a = replay_args(&["--trace", "resnet50", "--requests", "50", "--warmup", "3"]);
        let s = scenario_from_args(&a).unwrap();
        assert_eq!(s.stop, Stop { duration_ns: None, requests: Some(50) });
        assert_eq!(s.warmup, 3);
    }

    #[test]
    fn traces_out_writes_the_replayed_traces_before_the_gpu_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("traces");
        // No GPU here: the run fails after the traces are written.
        let _ = run(&["replay", "--trace", "resnet50_bert", "--traces-out", out.to_str().unwrap()]);
        let s = scenario_from_args(&replay_args(&["--trace", "resnet50_bert"])).unwrap();
        for c in &s.clients {
            let back = orion_traces::format::read_trace(&out.join(format!("{}.csv", c.trace.meta.name))).unwrap();
            assert_eq!(back.ops, c.trace.ops, "{}", c.name);
            assert_eq!(back.meta.source, c.trace.meta.source);
        }
    }

    #[test]
    fn a_window_needs_a_timeline_and_parses_like_orion_sim() {
        let a = replay_args(&["--trace", "resnet50_bert", "--timeline", "t.json", "--window", "1s..1.5s"]);
        assert_eq!(a.window, Some(Window { from_ns: 1_000_000_000, to_ns: 1_500_000_000 }));
        let (code, _, err) = run(&["replay", "--trace", "resnet50_bert", "--window", "1s..2s"]);
        assert_eq!(code, 2);
        assert!(err.contains("--timeline"), "{err}");
        let (code, _, err) = run(&["replay", "--timeline", "t.json", "--window", "2s..1s"]);
        assert_eq!(code, 2);
        assert!(err.contains("ends before it starts"), "{err}");
    }

    #[test]
    fn an_orion_config_file_is_a_scenario_too() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/orion_config.json");
        let a = replay_args(&[path, "--duration", "2s"]);
        let s = scenario_from_args(&a).unwrap();
        assert_eq!(s.clients.len(), 2);
        assert_eq!(s.hp_client(), Some(1));
        assert_eq!(s.stop.duration_ns, Some(2_000_000_000));
    }

    #[test]
    fn info_without_a_gpu_is_a_clear_error() {
        // On machines with a GPU this prints its facts instead.
        let (code, out, err) = run(&["info"]);
        if code != 0 {
            assert!(err.contains("orion-real needs an NVIDIA GPU"), "{err}");
        } else {
            assert!(out.contains("sm_count"));
        }
    }
}
