//! The `orion-sim` command line: argument parsing and wiring only; the work is in the library.

use crate::engine::Recording;
use crate::experiment::{Experiment, ExperimentOptions, run_experiment};
use crate::gpu::UtilizationWindow;
use crate::run::{IdealReference, run_with};
use crate::sweep::{SweepSpec, parse_param_axis, parse_rates, run_sweep};
use crate::timeline::{self, Window};
use crate::{plot, table};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use orion_policies::params::{parse_assignment, resolve_policy};
use orion_policies::registry;
use orion_traces::cli::{ScenarioArgs, load_device};
use orion_traces::scenario::DEFAULT_WARMUP;
use orion_traces::units::parse_duration_ns;
use orion_traces::{DeviceSpec, Model, WorkKind, arrival::read_inter_arrivals};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Simulate deep-learning jobs sharing one GPU under a scheduling policy.
#[derive(Debug, Parser)]
#[command(name = "orion-sim", version, args_conflicts_with_subcommands = true)]
#[command(after_help = "Examples:\n  orion-sim --policy priority-streams --trace resnet50_bert\n  \
orion-sim --policy streams --trace mobilenetv2_resnet101 --duration 60s --json\n  \
orion-sim --policy temporal config.json\n  \
orion-sim --trace resnet50_bert --duration 2s --plot figs --timeline run.json\n  \
orion-sim experiment fig7 --plot figs\n  \
orion-sim sweep --trace resnet50_bert --param dur_threshold=20us..2ms:log:50 -o sweep.csv --plot figs\n  \
orion-sim list")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List policies, models, pairs and devices.
    List,
    /// Run one of the seed paper's experiments (fig7: HP inference vs BE training; fig10:
    /// bursty HP inference vs BE inference) and print its table.
    Experiment(Box<ExperimentArgs>),
    /// Sweep policy parameters, HP arrival rates and BE jobs (cartesian product), in parallel;
    /// one CSV or JSON row per point, and a Pareto plot.
    Sweep(Box<SweepArgs>),
}

/// Arguments of `orion-sim sweep`.
#[derive(Debug, Args)]
#[command(after_help = "Values: a list (33,66,132; 160us,1ms; true,false) or a range FROM..TO:lin:N or \
FROM..TO:log:N (N values, both ends included; ends with a time unit are durations; integer ends give \
integers).\n\nExample (1,000 points):\n  orion-sim sweep --trace resnet50_bert --policy orion \
--param dur_threshold=20us..2ms:log:50 --param sm_threshold=33,66,99,132 --hp-rate 5..40:lin:5 \
--duration 5s -o sweep.csv --plot figs")]
pub struct SweepArgs {
    /// Scenario file (Orion's config.json or an orion-rs scenario), instead of --trace.
    config: Option<PathBuf>,
    /// Built-in workload (a pair HP_BE such as resnet50_bert) or a trace file.
    #[arg(long, short, conflicts_with = "config")]
    trace: Option<String>,
    /// Mode of a single-model or trace-file workload: inference or training.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<WorkKind>,
    /// Device preset (v100, a100, h100) [default: the scenario file's, else h100].
    #[arg(long, conflicts_with = "device_file")]
    device: Option<String>,
    /// Device description file.
    #[arg(long)]
    device_file: Option<PathBuf>,
    /// Seed of every random choice, the same for every point [default: the scenario file's, else 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Simulated time per point.
    #[arg(long, default_value = "10s", conflicts_with = "requests")]
    duration: String,
    /// Stop each point after the HP client completes this many measured requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Warm-up requests per client excluded from statistics (default 10).
    #[arg(long)]
    warmup: Option<u32>,
    /// Policies to sweep, comma-separated.
    #[arg(long, short, value_delimiter = ',', default_value = "orion")]
    policy: Vec<String>,
    /// A policy parameter axis, KEY=VALUES or POLICY.KEY=VALUES (repeatable), e.g.
    /// dur_threshold=20us..2ms:log:50 or sm_threshold=33,66,132.
    #[arg(short = 'P', long = "param", value_name = "KEY=VALUES")]
    params: Vec<String>,
    /// HP arrival rates in requests/s, e.g. 5..40:lin:8 or 10,20,40.
    #[arg(long, value_name = "VALUES")]
    hp_rate: Option<String>,
    /// BE jobs replacing the scenario's BE client, comma-separated models, e.g. resnet50,bert.
    #[arg(long, value_delimiter = ',')]
    be: Vec<String>,
    /// Write the results to this file: CSV (.csv) or JSON (.json). Without it, the CSV goes to
    /// standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Print JSON instead of CSV to standard output.
    #[arg(long, conflicts_with = "output")]
    json: bool,
    /// Write the Pareto plot (HP p95 overhead vs BE throughput) to this folder (PNG and SVG).
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Threads to run on (default: every core).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// Arguments of `orion-sim experiment`.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// fig7 or fig10.
    #[arg(value_enum)]
    name: Experiment,
    /// Device preset (v100, a100, h100).
    #[arg(long, default_value = "h100", conflicts_with = "device_file")]
    device: String,
    /// Device description file.
    #[arg(long)]
    device_file: Option<PathBuf>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated time per cell.
    #[arg(long, default_value = "30s")]
    duration: String,
    /// Warm-up requests per client.
    #[arg(long, default_value_t = DEFAULT_WARMUP)]
    warmup: u32,
    /// Policies to compare, comma-separated (default: the paper's six).
    #[arg(long, value_delimiter = ',')]
    policies: Vec<String>,
    /// HP models, comma-separated (default: resnet50,mobilenetv2).
    #[arg(long, value_delimiter = ',')]
    hp: Vec<String>,
    /// BE models, comma-separated (default: all five).
    #[arg(long, value_delimiter = ',')]
    be: Vec<String>,
    /// fig10: the HP's inter-arrival times from a file instead of the seeded bursty trace.
    #[arg(long)]
    inter_arrivals: Option<PathBuf>,
    /// A policy's parameter, POLICY.KEY=VALUE (repeatable), e.g. -P orion.dur_threshold=100us.
    #[arg(short = 'P', long = "param", value_name = "POLICY.KEY=VALUE")]
    params: Vec<String>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Write the figures (HP p95 and throughput bars, HP latency CDF per pair) to this folder,
    /// as PNG and SVG.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
}

/// Arguments of a simulation run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which scenario: a scenario file or a built-in workload, device, seed, length, arrivals.
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Scheduling policy (see `orion-sim list`); default: the scenario's, else orion.
    #[arg(long, short)]
    policy: Option<String>,
    /// Policy parameter, key=value (repeatable), e.g. -P dur_threshold=160us.
    #[arg(short = 'P', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Skip the ideal (dedicated-GPU) reference runs.
    #[arg(long)]
    no_ideal: bool,
    /// Write the figures (HP latency CDF against the ideal, utilisation timeline) to this
    /// folder, as PNG and SVG.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Write the run's timeline as Chrome trace-event JSON (open it in Perfetto or
    /// chrome://tracing): one track per client, one slice per op with its profile.
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// Part of the run the timeline and the utilisation plot show, FROM..TO (e.g. 1s..1.2s).
    #[arg(long, value_name = "FROM..TO", value_parser = Window::parse)]
    window: Option<Window>,
    /// Process every event one by one, never fast-forwarding a client alone on the GPU (same
    /// report, slower; for checking and timing the fast path).
    #[arg(long)]
    event_by_event: bool,
}

fn parse_mode(s: &str) -> Result<WorkKind, String> {
    s.parse()
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
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            1
        }
    }
}

fn execute(cli: Cli, out: &mut dyn Write) -> Result<()> {
    match cli.command {
        Some(Command::List) => list(out),
        Some(Command::Experiment(args)) => experiment_command(*args, out),
        Some(Command::Sweep(args)) => sweep_command(*args, out),
        None => run_command(cli.run, out),
    }
}

fn list(out: &mut dyn Write) -> Result<()> {
    writeln!(out, "policies:")?;
    for (name, summary) in registry::summaries() {
        writeln!(out, "  {name:<18} {summary}")?;
    }
    writeln!(out, "models (inference batch / training batch):")?;
    for m in Model::ALL {
        writeln!(
            out,
            "  {:<18} {} / {}",
            m.as_str(),
            m.default_batch(WorkKind::Inference),
            m.default_batch(WorkKind::Training)
        )?;
    }
    writeln!(out, "pairs: HP_BE from any two models, e.g. resnet50_bert, mobilenetv2_resnet101")?;
    writeln!(out, "devices: {}", DeviceSpec::preset_names().join(", "))?;
    Ok(())
}

fn experiment_command(args: ExperimentArgs, out: &mut dyn Write) -> Result<()> {
    let (device, source) = load_device(&args.device, args.device_file.as_deref())?;
    let mut opts = ExperimentOptions::new(device, source);
    opts.seed = args.seed;
    opts.duration_ns = parse_duration_ns(&args.duration, "s").map_err(|e| anyhow!("--duration: {e}"))?;
    if opts.duration_ns == 0 {
        bail!("--duration: must be positive");
    }
    opts.warmup = args.warmup;
    if !args.policies.is_empty() {
        opts.policies = args.policies.clone();
    }
    let models = |names: &[String]| -> Result<Vec<Model>> { names.iter().map(|n| Ok(n.parse::<Model>()?)).collect() };
    if !args.hp.is_empty() {
        opts.hp_models = models(&args.hp)?;
    }
    if !args.be.is_empty() {
        opts.be_models = models(&args.be)?;
    }
    if let Some(path) = &args.inter_arrivals {
        if args.name != Experiment::Fig10 {
            bail!("--inter-arrivals applies to fig10 only");
        }
        opts.inter_arrivals = Some(read_inter_arrivals(path)?);
    }
    for p in &args.params {
        let (key, value) = parse_assignment(p).map_err(|e| anyhow!("--param: {e}"))?;
        let Some((policy, key)) = key.split_once('.') else {
            bail!("--param `{p}`: name the policy, as POLICY.KEY=VALUE (e.g. orion.dur_threshold=100us)");
        };
        let policy = policy.replace('_', "-");
        if !opts.policies.contains(&policy) {
            bail!("--param `{p}`: policy `{policy}` is not among the compared policies ({})", opts.policies.join(", "));
        }
        opts.params.entry(policy).or_default().insert(key.to_string(), value);
    }
    let report = run_experiment(args.name, &opts)?;
    let json = report.to_json();
    if let Some(path) = &args.output {
        std::fs::write(path, format!("{json}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", report.table())?;
    }
    if let Some(dir) = &args.plot {
        let files = plot::write_experiment_plots(dir, &report)?;
        if !args.json {
            writeln!(out, "figures: {} files in {}", files.len(), dir.display())?;
        }
    }
    Ok(())
}

fn run_command(args: RunArgs, out: &mut dyn Write) -> Result<()> {
    let scenario = args.scenario.scenario()?;
    let (policy, params) =
        resolve_policy(&scenario, args.policy.as_deref(), &args.params, "orion").map_err(|e| anyhow!(e))?;
    let window = args.window.unwrap_or(Window::ALL);
    if args.window.is_some() && args.plot.is_none() && args.timeline.is_none() {
        bail!("--window applies to --plot and --timeline; give one of them");
    }
    let recording = Recording {
        ops: args.timeline.is_some(),
        utilization: (args.plot.is_some() || args.timeline.is_some()).then_some(UtilizationWindow {
            from_ns: window.from_ns,
            to_ns: if window.to_ns == u64::MAX { scenario.stop.duration_ns } else { Some(window.to_ns) },
            buckets: 1000,
        }),
        event_by_event: args.event_by_event,
    };
    let reference = if args.no_ideal { IdealReference::Skip } else { IdealReference::Simulate };
    let (result, detail) = run_with(&scenario, &policy, &params, reference, &recording)?;
    let json = result.report.to_json();
    if let Some(path) = &args.output {
        std::fs::write(path, format!("{json}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", table::render(&result))?;
    }
    if let Some(path) = &args.timeline {
        let t = timeline::from_sim_run(&scenario, &result.report, &detail, window);
        let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        t.write_json(&mut f).with_context(|| format!("writing {}", path.display()))?;
        if !args.json {
            writeln!(
                out,
                "timeline: {} slices in {} (open in Perfetto or chrome://tracing)",
                t.spans.len(),
                path.display()
            )?;
        }
    }
    if let Some(dir) = &args.plot {
        let files = plot::write_run_plots(dir, &scenario, &result, &detail)?;
        if !args.json {
            writeln!(out, "figures: {} files in {}", files.len(), dir.display())?;
        }
    }
    Ok(())
}

fn sweep_command(args: SweepArgs, out: &mut dyn Write) -> Result<()> {
    let scenario_args = ScenarioArgs {
        config: args.config.clone(),
        trace: args.trace.clone(),
        mode: args.mode,
        device: args.device.clone(),
        device_file: args.device_file.clone(),
        seed: args.seed,
        duration: args.requests.is_none().then(|| args.duration.clone()),
        requests: args.requests,
        warmup: args.warmup,
        hp_rate: None,
        uniform: false,
        inter_arrivals: None,
    };
    let base = scenario_args.scenario()?;
    let mut spec = SweepSpec {
        policies: args.policy.iter().map(|p| p.trim().to_ascii_lowercase().replace('_', "-")).collect(),
        ..SweepSpec::default()
    };
    if spec.policies.is_empty() {
        bail!("--policy: name at least one policy");
    }
    for p in &spec.policies {
        if !registry::names().contains(&p.as_str()) {
            bail!("--policy: unknown policy `{p}` (expected one of: {})", registry::names().join(", "));
        }
    }
    if !base.policy_params.is_empty() {
        for p in &spec.policies {
            spec.fixed.insert(p.clone(), base.policy_params.clone());
        }
    }
    let mut axes = vec![format!("--policy {}", spec.policies.join(","))];
    for p in &args.params {
        spec.params.push(parse_param_axis(p).map_err(|e| anyhow!("--param: {e}"))?);
        axes.push(format!("--param {p}"));
    }
    if let Some(r) = &args.hp_rate {
        spec.hp_rates = parse_rates(r).map_err(|e| anyhow!("--hp-rate: {e}"))?;
        axes.push(format!("--hp-rate {r}"));
    }
    if !args.be.is_empty() {
        spec.be =
            args.be.iter().map(|n| n.parse::<Model>().map_err(|e| anyhow!("--be: {e}"))).collect::<Result<_>>()?;
        axes.push(format!("--be {}", args.be.join(",")));
    }
    let format_json = match &args.output {
        Some(p) => match p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => false,
            Some("json") => true,
            _ => bail!("-o {}: write the results as .csv or .json", p.display()),
        },
        None => args.json,
    };
    let points = spec.points().map_err(|e| anyhow!("{e}"))?;
    let mut variants: Vec<(Option<Model>, Option<u64>)> =
        points.iter().map(|p| (p.be, p.hp_rate.map(f64::to_bits))).collect();
    variants.sort();
    variants.dedup();
    let total = (points.len() + variants.len()) as u64;
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} sweep [{elapsed_precise}] {wide_bar} {pos}/{len} simulations ({eta} left)",
        ) {
            b.set_style(style);
        }
        b
    };
    let threads = args.jobs.unwrap_or_else(rayon::current_num_threads);
    if threads == 0 {
        bail!("--jobs: must be at least 1");
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("starting the worker threads")?;
    let started = std::time::Instant::now();
    let report = pool.install(|| run_sweep(&base, &spec, axes, &|| bar.inc(1)))?;
    let wall = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let text = if format_json { format!("{}\n", report.to_json()) } else { report.to_csv() };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            writeln!(
                out,
                "sweep: {} points ({} simulations with the ideal references) in {wall:.1} s wall on {threads} threads; results in {}",
                report.rows.len(),
                total,
                path.display()
            )?;
        }
        None => write!(out, "{text}")?,
    }
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the plot folder {}", dir.display()))?;
        let files = plot::save_both(&report.pareto(), dir, "sweep_pareto")?;
        if args.output.is_some() {
            writeln!(out, "figures: {} files in {}", files.len(), dir.display())?;
        }
    }
    Ok(())
}
