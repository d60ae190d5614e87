//! The `orion-sim` command line: argument parsing and wiring only; the work is in the library.

use crate::experiment::{Experiment, ExperimentOptions, run_experiment};
use crate::run::{IdealReference, run};
use crate::table;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use orion_policies::params::{ParamMap, parse_assignment};
use orion_policies::registry;
use orion_traces::builtin::workload_clients;
use orion_traces::config::{LoadOptions, load_scenario};
use orion_traces::scenario::DEFAULT_WARMUP;
use orion_traces::units::parse_duration_ns;
use orion_traces::{ArrivalProcess, DeviceSpec, Model, Scenario, Stop, WorkKind, arrival::read_inter_arrivals};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Simulate deep-learning jobs sharing one GPU under a scheduling policy.
#[derive(Debug, Parser)]
#[command(name = "orion-sim", version, args_conflicts_with_subcommands = true)]
#[command(after_help = "Examples:\n  orion-sim --policy priority-streams --trace resnet50_bert\n  \
orion-sim --policy streams --trace mobilenetv2_resnet101 --duration 60s --json\n  \
orion-sim --policy temporal config.json\n  orion-sim list")]
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
}

/// Arguments of a simulation run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file: Orion's config.json (a list of clients, the last one high-priority) or an
    /// orion-rs scenario (JSON object).
    config: Option<PathBuf>,
    /// Scheduling policy (see `orion-sim list`); default: the scenario's, else orion.
    #[arg(long, short)]
    policy: Option<String>,
    /// Built-in workload: a pair HP_BE such as resnet50_bert (HP = first model, inference; BE =
    /// second model, training), a single model name, or a trace file.
    #[arg(long, short, conflicts_with = "config")]
    trace: Option<String>,
    /// Mode of a single-model or trace-file workload: inference or training.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<WorkKind>,
    /// Device preset (v100, a100, h100).
    #[arg(long, default_value = "h100", conflicts_with = "device_file")]
    device: String,
    /// Device description file (JSON, see traces/devices/).
    #[arg(long)]
    device_file: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated time to run, e.g. 30s, 2min (default 30s unless --requests is given).
    #[arg(long, conflicts_with = "requests")]
    duration: Option<String>,
    /// Stop after the HP client completes this many measured requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Warm-up requests per client excluded from statistics (default 10).
    #[arg(long)]
    warmup: Option<u32>,
    /// HP arrival rate in requests/s (overrides the workload's).
    #[arg(long)]
    hp_rate: Option<f64>,
    /// HP arrivals at constant intervals instead of Poisson.
    #[arg(long)]
    uniform: bool,
    /// HP inter-arrival times from a file (seconds, one per line, or a JSON list).
    #[arg(long)]
    inter_arrivals: Option<PathBuf>,
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

fn load_device(preset: &str, file: Option<&Path>) -> Result<(DeviceSpec, String)> {
    match file {
        Some(p) => Ok((DeviceSpec::from_file(p)?, p.display().to_string())),
        None => Ok((DeviceSpec::preset(preset)?, format!("builtin:{}", preset.to_ascii_lowercase()))),
    }
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
    Ok(())
}

/// Builds the scenario the arguments describe.
pub fn scenario_from_args(args: &RunArgs) -> Result<Scenario> {
    let (device, device_source) = load_device(&args.device, args.device_file.as_deref())?;
    let mut scenario = if let Some(path) = &args.config {
        let opts =
            LoadOptions { device, device_source, seed: args.seed, warmup: args.warmup.unwrap_or(DEFAULT_WARMUP) };
        let mut s = load_scenario(path, &opts).with_context(|| format!("loading {}", path.display()))?;
        // The command line wins over the file for what it states explicitly.
        if args.device_file.is_some() || args.device != "h100" {
            s.device = opts.device;
            s.device_source = opts.device_source;
        }
        if args.seed != 1 {
            s.seed = args.seed;
        }
        if let Some(w) = args.warmup {
            s.warmup = w;
        }
        s
    } else {
        let name = args.trace.as_deref().unwrap_or("resnet50_bert");
        let clients = workload_clients(name, args.mode, &device)?;
        Scenario {
            name: Path::new(name).file_stem().map_or(name.to_string(), |s| s.to_string_lossy().into_owned()),
            clients,
            device,
            device_source,
            seed: args.seed,
            stop: Stop::DEFAULT,
            warmup: args.warmup.unwrap_or(DEFAULT_WARMUP),
            policy: None,
            policy_params: ParamMap::new(),
        }
    };
    if let Some(d) = &args.duration {
        let ns = parse_duration_ns(d, "s").map_err(|e| anyhow!("--duration: {e}"))?;
        if ns == 0 {
            bail!("--duration: must be positive");
        }
        scenario.stop = Stop { duration_ns: Some(ns), requests: None };
    } else if let Some(n) = args.requests {
        if n == 0 {
            bail!("--requests: must be at least 1");
        }
        scenario.stop = Stop { duration_ns: None, requests: Some(n) };
    }
    let hp_arrival = if let Some(path) = &args.inter_arrivals {
        Some(ArrivalProcess::Trace { inter_arrival_s: read_inter_arrivals(path)? })
    } else {
        let rate = args.hp_rate.or_else(|| {
            scenario.hp_client().and_then(|h| scenario.clients[h].arrival.mean_rate()).filter(|_| args.uniform)
        });
        rate.map(|rate| if args.uniform { ArrivalProcess::Uniform { rate } } else { ArrivalProcess::Poisson { rate } })
    };
    if let Some(arrival) = hp_arrival {
        arrival.validate().map_err(|(f, m)| anyhow!("HP arrival {f}: {m}"))?;
        let h = scenario.hp_client().ok_or_else(|| anyhow!("the workload has no HP client to set the rate of"))?;
        if scenario.clients[h].kind == WorkKind::Training {
            bail!("the HP client trains (closed loop); an arrival rate applies to inference only");
        }
        scenario.clients[h].arrival = arrival;
    }
    Ok(scenario)
}

fn run_command(args: RunArgs, out: &mut dyn Write) -> Result<()> {
    let scenario = scenario_from_args(&args)?;
    let mut params = scenario.policy_params.clone();
    for p in &args.params {
        let (k, v) = parse_assignment(p).map_err(|e| anyhow!("--param: {e}"))?;
        params.insert(k, v);
    }
    let policy = args.policy.clone().or_else(|| scenario.policy.clone()).unwrap_or_else(|| "orion".into());
    let result =
        run(&scenario, &policy, &params, if args.no_ideal { IdealReference::Skip } else { IdealReference::Simulate })?;
    let json = result.report.to_json();
    if let Some(path) = &args.output {
        std::fs::write(path, format!("{json}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", table::render(&result))?;
    }
    Ok(())
}
