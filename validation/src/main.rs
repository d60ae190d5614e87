//! `orion-validate`: how far the simulator is from the real GPU.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use orion_traces::DeviceSpec;
use orion_validation::calibrate::fit::{fit as fit_device, load_results};
use orion_validation::calibrate::plan::{PlanOptions, write_plan};
use orion_validation::{CompareOptions, Suite};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Compares the simulator with measurements of the real GPU on the same scenarios.
#[derive(Debug, Parser)]
#[command(name = "orion-validate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate every real run of a results folder (reports of `orion-real replay`, as
    /// gpu-backend/scripts/matrix.sh writes them on the GPU machine) and report the error of
    /// HP p50/p95/p99, HP p95 overhead and BE throughput per cell, with the median and worst.
    Run(RunArgs),
    /// Calibration of the device parameters: `plan` writes the microbenchmarks for the GPU
    /// machine; `fit` fits the device file to their results.
    #[command(subcommand)]
    Calibrate(CalibrateCommand),
}

#[derive(Debug, Subcommand)]
enum CalibrateCommand {
    /// Write the calibration microbenchmarks (scenarios, traces, runs.tsv, run.sh) to a folder;
    /// run.sh replays them on the GPU machine with orion-real.
    Plan(PlanArgs),
    /// Fit the device's contention parameters, launch costs and copy bandwidths to the results
    /// of a plan's run.sh; write the fitted device file and a Markdown summary.
    Fit(FitArgs),
}

#[derive(Debug, clap::Args)]
struct FitArgs {
    /// Folder of run.sh's results (plan.json, NAME-POLICY.json reports, NAME-kernels.json,
    /// traces/).
    #[arg(long, value_name = "DIR")]
    results: PathBuf,
    /// Device preset to start from.
    #[arg(long, default_value = "h100", conflicts_with = "device_file")]
    device: String,
    /// Device file to start from instead of a preset.
    #[arg(long, value_name = "FILE")]
    device_file: Option<PathBuf>,
    /// Write the fitted device file here.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Write the Markdown summary here (default: the device file with extension .md).
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Rounds of coordinate descent on the contention parameters.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Folder to write the plan to (committed, so that the GPU machine's checkout has it).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Device preset the scenarios name.
    #[arg(long, default_value = "h100")]
    device: String,
    /// Length of each run, e.g. 500ms, 1s.
    #[arg(long, default_value = "500ms")]
    duration: String,
    /// Warm-up requests per client.
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// Seed of the scenarios.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Kernels per request of the pair benchmarks.
    #[arg(long, default_value_t = 20)]
    kernels: usize,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Only simulate, checking the committed real results (the real runs are made on the GPU
    /// machine by gpu-backend/scripts/matrix.sh, which has no Rust toolchain).
    #[arg(long)]
    sim_only: bool,
    /// Folder of real reports (`PAIR-POLICY.json`), with `PAIR-kernels.json[.gz]` (replays)
    /// and `device.json` when the traces did not come from the built-in H100 preset; repeat for
    /// several folders (the targets then apply to all their cells together).
    #[arg(long, value_name = "DIR", required = true)]
    results: Vec<PathBuf>,
    /// Write the Markdown report here (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write the comparison as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the scatter figure (sim_vs_real.png and .svg) to this folder.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Simulate with this device file's GPU model (e.g. the fitted one from `calibrate fit`)
    /// instead of the results folder's; the traces still come from the folder's device.
    #[arg(long, value_name = "FILE")]
    model_device_file: Option<PathBuf>,
    /// Exit with status 1 when the targets are not met.
    #[arg(long)]
    check: bool,
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn run(a: RunArgs) -> Result<bool> {
    if !a.sim_only {
        bail!(
            "only --sim-only is available: make the real runs on the GPU machine with gpu-backend/scripts/matrix.sh, \
             commit them, then compare with `orion-validate run --sim-only --results DIR`"
        );
    }
    let model_device = match &a.model_device_file {
        Some(f) => Some((DeviceSpec::from_file(f)?, f.display().to_string())),
        None => None,
    };
    let opts = CompareOptions { model_device };
    let cmp = Suite::compare(&a.results, &opts, &mut |cell| eprintln!("orion-validate: simulating {cell}"))?;
    let gpu = cmp.parts[0].real.get("gpu").and_then(|g| g.as_str()).unwrap_or("the real GPU").to_string();
    let mut md = format!("# Validation: simulator vs {gpu}\n\n");
    let model_arg =
        a.model_device_file.as_ref().map_or(String::new(), |f| format!(" --model-device-file {}", f.display()));
    md.push_str(&format!(
        "Generated by `orion-validate run --sim-only {}{model_arg}` at simulator commit {}.\n\n",
        a.results.iter().map(|r| format!("--results {}", r.display())).collect::<Vec<_>>().join(" "),
        commit()
    ));
    md.push_str(&cmp.markdown());
    if let Some(dir) = &a.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = orion_sim::plot::save_both(&cmp.figure(), dir, "sim_vs_real")?;
        // The link is relative to the report's folder when the figure is under it.
        let base = a.output.as_deref().and_then(|o| o.parent()).unwrap_or(std::path::Path::new(""));
        let link = files[0].strip_prefix(base).unwrap_or(&files[0]);
        md.push_str(&format!("\n![simulated vs measured]({})\n", link.display()));
    }
    match &a.output {
        Some(p) => std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().write_all(md.as_bytes())?,
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&cmp)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(cmp.targets_met() || !a.check)
}

fn plan(a: PlanArgs) -> Result<bool> {
    let duration_ns =
        orion_traces::units::parse_duration_ns(&a.duration, "s").map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
    let opts = PlanOptions { device: a.device, duration_ns, warmup: a.warmup, seed: a.seed, kernels: a.kernels };
    let p = write_plan(&a.out, &opts)?;
    let runs: usize = p.benches.iter().map(|b| b.policies.len()).sum();
    println!(
        "orion-validate: {} benchmarks, {runs} runs, about {:.1} GPU minutes; written to {}\n\
         on the GPU machine: BIN=.carry RESULTS=DIR END=$(( $(date +%s) + 360 )) bash {}/run.sh",
        p.benches.len(),
        p.estimated_gpu_s / 60.0,
        a.out.display(),
        a.out.display()
    );
    Ok(true)
}

fn fit(a: FitArgs) -> Result<bool> {
    let (start, name) = match &a.device_file {
        Some(f) => (orion_traces::DeviceSpec::from_file(f)?, f.display().to_string()),
        None => (orion_traces::DeviceSpec::preset(&a.device)?, format!("builtin:{}", a.device)),
    };
    let results = load_results(&a.results, &start)?;
    eprintln!(
        "orion-validate: {} pair benchmarks, {} launch benchmarks, {} copies from {}",
        results.pairs.len(),
        results.launch.len(),
        results.copies.len(),
        a.results.display()
    );
    let outcome = fit_device(&results, &start, &name, a.rounds, &mut |line| eprintln!("orion-validate: {line}"))?;
    let json = serde_json::to_string_pretty(&outcome.device)? + "\n";
    std::fs::write(&a.out, json).with_context(|| format!("writing {}", a.out.display()))?;
    let summary = a.summary.clone().unwrap_or_else(|| a.out.with_extension("md"));
    std::fs::write(&summary, outcome.markdown()).with_context(|| format!("writing {}", summary.display()))?;
    let calib = outcome.device.calibration.as_ref().map_or_else(String::new, |c| c.source.clone());
    println!("orion-validate: fitted device in {}, summary in {}\n{calib}", a.out.display(), summary.display());
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run(a),
        Command::Calibrate(CalibrateCommand::Plan(a)) => plan(a),
        Command::Calibrate(CalibrateCommand::Fit(a)) => fit(a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("orion-validate: targets not met");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("orion-validate: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
