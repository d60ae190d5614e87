//! The `orion-profile` command line.

use super::convert::HostGapScale;
use super::ncu::{default_metrics, light_metrics};
use super::run::{self, ProfileJob, Target, progress};
use clap::{Args, Parser, Subcommand};
use orion_traces::{DeviceSpec, WorkKind};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const ABOUT: &str = "Measured kernel traces of one request (inference) or iteration (training) of a PyTorch \
workload, for orion-sim and orion-real: one command from a model to a trace.";

const STEPS: &str = "\
WHAT IT DOES (every step prints its progress on stderr)

  [1/3] capture  `python3 gpu-backend/workloads/capture.py capture ...`: builds the workload (a
        model of the workload driver, workloads/models.py, with --model; or any Python program
        after `--` that wraps each step in torch.cuda.profiler.start()/stop()), runs --warmup
        steps, times --latency-steps unprofiled steps (wall clock and CUDA events), then runs
        --steps steps (plus one discarded), each in its own torch.profiler session (CUDA
        activity: CUPTI kernels, copies, memsets and the CUDA API calls that issued them).
        Records per op: kernel name, grid, block, registers per thread, shared memory, GPU
        duration, copy size and direction, and the API call times (host gaps).
  [2/3] ncu      `ncu --clock-control none --profile-from-start off --metrics LIST
        --filter-mode per-launch-config --launch-count 1` on one step of the same workload in
        a fresh process (the harness calls cudaProfilerStart/Stop around it): one launch per
        distinct launch configuration (kernel, grid, block, shared memory) is profiled, and
        every identical launch of the step takes its metrics (--ncu-every-launch profiles them
        all). Metrics: % of peak SM throughput, % of peak DRAM throughput, DRAM bytes, FP32
        and TF32 tensor FLOPs, the occupancy limits, the launch shape, ncu's duration
        (--ncu-light leaves out the FLOP counters: fewer replay passes, but classes then rest
        on the throughputs alone and are mostly unknown). Metrics the GPU does not offer are dropped (and
        said); a kernel ncu cannot measure keeps its other fields and is marked (class
        unknown, listed in the trace's `ncu_missing`), the trace is kept.
        `ncu --import --csv --page raw` turns the report into WORK/ncu.csv.
  [3/3] convert  per op the median GPU duration over the steps; host gaps (API call to API
        call; after a sync, from the GPU finishing; a device-to-host copy that blocked the
        host gets a sync after it; the step starts at its end marker minus the step's wall
        time, which the harness measures with perf_counter, since the start marker's profiler
        timestamp can lie early), corrected for the profiler's host overhead (--host-gap-
        scale auto); blocks per SM from ncu's occupancy limits (else the occupancy calculator
        on the device's SM limits); sm_needed = ceil(blocks / blocks per SM); the class by
        Orion's rule: compute if FLOPs/bytes is above the device's roofline knee (not with
        --ncu-light), else compute if SM throughput >= 60% of peak, memory if DRAM throughput
        >= 60%, else unknown.
        Writes OUT/NAME.csv (orion-rs trace, with a header naming GPU, driver, CUDA, PyTorch,
        date and command) and OUT/NAME.orion.csv (Orion's kernel file), and reads the trace
        back to check it.

  Raw material stays in WORK (Kineto traces, capture.json, ncu report and CSV, logs);
  `orion-profile convert --work-dir WORK` redoes step 3 from it without a GPU; with
  `--ncu-from OTHER/ncu.csv` it takes the metrics from another run's ncu CSV (same workload),
  matched in launch order, then by kernel, grid and block.

EXAMPLES
  orion-profile --model resnet50 --mode inference                  # model_kernels/h100/resnet50-inference-b4.csv
  orion-profile --model bert --mode training --batch 8 --out-dir /tmp/traces
  orion-profile --name mynet-b16 -- my_train.py --batch 16         # any Python program
  orion-profile convert --work-dir /tmp/orion-profile/resnet50-inference-b4
  orion-profile convert --work-dir RUN2/resnet50-inference --ncu-from RUN1/resnet50-inference/ncu.csv

NEEDS  python3 with PyTorch (CUDA), torchvision / transformers for the built-in models, and
Nsight Compute's `ncu` on PATH (or --ncu PATH; --no-ncu skips step 2).";

/// `orion-profile` arguments.
#[derive(Debug, Parser)]
#[command(name = "orion-profile", version, about = ABOUT, after_long_help = STEPS, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Step 3 only: convert a work folder written by an earlier run (no GPU needed).
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Device the trace is for (occupancy limits, roofline knee, trace metadata): v100, a100, h100.
    #[arg(long, default_value = "h100")]
    device: String,
    /// A device file instead of a preset.
    #[arg(long)]
    device_file: Option<PathBuf>,
    /// Output folder (default model_kernels/DEVICE).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Host-gap correction for the profiler's overhead: auto, none, or a factor.
    #[arg(long, default_value = "auto")]
    host_gap_scale: String,
    /// Metrics for ncu, comma-separated (default: the built-in list; see --help).
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Leave out the FLOP counters (FP32 and TF32 tensor ops: several more ncu passes a
    /// kernel); the class then rests on the SM and DRAM throughputs alone (mostly `unknown`).
    #[arg(long)]
    ncu_light: bool,
}

#[derive(Debug, Args)]
struct ProfileArgs {
    /// A model of the workload driver: resnet50, mobilenetv2, resnet101, bert, transformer.
    #[arg(long)]
    model: Option<String>,
    /// inference or training.
    #[arg(long, default_value = "inference")]
    mode: String,
    /// Batch size (default: the paper's: inference 4, BERT 2; training 32/64/32/8/8).
    #[arg(long)]
    batch: Option<u32>,
    /// Trace name (default MODEL-MODE-bBATCH; required with a program).
    #[arg(long)]
    name: Option<String>,
    /// Work folder for the raw captures (default: TMPDIR/orion-profile/NAME).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Profiled steps (the median is taken over them).
    #[arg(long, default_value_t = 5)]
    steps: u32,
    /// Warm-up steps before anything is measured.
    #[arg(long, default_value_t = 10)]
    warmup: u32,
    /// Unprofiled steps timed (wall clock) before the profiled ones (0: none; then no host-gap correction).
    #[arg(long, default_value_t = 50)]
    latency_steps: u32,
    /// Python interpreter.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The capture harness.
    #[arg(long, default_value = "gpu-backend/workloads/capture.py")]
    capture_script: PathBuf,
    /// Nsight Compute executable.
    #[arg(long, default_value = "ncu")]
    ncu: String,
    /// Skip step 2 (no ncu): every kernel's class is unknown.
    #[arg(long)]
    no_ncu: bool,
    /// Profile every kernel launch of the step with ncu, not one launch per distinct launch
    /// configuration (the default: `--filter-mode per-launch-config --launch-count 1`).
    #[arg(long)]
    ncu_every_launch: bool,
    /// With --ncu-every-launch: profile only the first N kernels of the step (ncu
    /// --launch-count). Either way, a kernel ncu did not profile takes the metrics of an
    /// identical profiled launch (kernel, grid, block, registers, shared memory), or is marked.
    #[arg(long, requires = "ncu_every_launch")]
    ncu_launch_count: Option<u32>,
    /// Skip step 1 when WORK already holds a capture (e.g. to add ncu metrics later).
    #[arg(long)]
    reuse_capture: bool,
    /// BERT attention implementation (eager, sdpa, default).
    #[arg(long, default_value = "eager")]
    bert_attn: String,
    /// Seed of weights and inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    common: Common,
    /// A Python program (and its arguments) instead of --model; it must wrap each step in
    /// torch.cuda.profiler.start()/stop().
    #[arg(last = true)]
    program: Vec<String>,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// The work folder of an earlier run.
    #[arg(long)]
    work_dir: PathBuf,
    /// Trace name (default: the work folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Take ncu's metrics from this raw CSV (WORK/ncu.csv of another run of the same
    /// workload, e.g. one whose ncu phase completed) instead of WORK/ncu.csv. Rows are matched
    /// to the captured kernels in launch order, then by kernel, grid and block; the trace's
    /// header names the file (`ncu_from`).
    #[arg(long, value_name = "FILE")]
    ncu_from: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

fn device(c: &Common) -> anyhow::Result<DeviceSpec> {
    Ok(match &c.device_file {
        Some(f) => DeviceSpec::from_file(f)?,
        None => DeviceSpec::preset(&c.device)?,
    })
}

fn scale(text: &str) -> anyhow::Result<HostGapScale> {
    match text.trim() {
        "auto" => Ok(HostGapScale::Auto),
        "none" => Ok(HostGapScale::None),
        t => match t.parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Ok(HostGapScale::Factor(f)),
            _ => anyhow::bail!("--host-gap-scale `{t}`: expected auto, none or a positive factor"),
        },
    }
}

fn metrics(c: &Common) -> Vec<String> {
    match (c.metrics.is_empty(), c.ncu_light) {
        (false, _) => c.metrics.clone(),
        (true, true) => light_metrics(),
        (true, false) => default_metrics(),
    }
}

fn out_dir(c: &Common, device: &DeviceSpec) -> PathBuf {
    c.out_dir.clone().unwrap_or_else(|| Path::new("model_kernels").join(&device.name))
}

/// Runs `orion-profile` with these arguments; returns the exit code.
pub fn main_with<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(cli, &command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orion-profile: error: {e:#}");
            1
        }
    }
}

fn dispatch(cli: Cli, command: &str) -> anyhow::Result<i32> {
    if let Some(Cmd::Convert(c)) = cli.cmd {
        let dev = device(&c.common)?;
        let name = match c.name {
            Some(n) => n,
            None => c.work_dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "trace".into()),
        };
        let w = run::convert(
            &c.work_dir,
            &out_dir(&c.common, &dev),
            &name,
            &dev,
            scale(&c.common.host_gap_scale)?,
            run::NcuInput { metrics: &metrics(&c.common), from: c.ncu_from.as_deref() },
            command,
        )?;
        report(&w);
        return Ok(0);
    }
    let p = cli.profile;
    let dev = device(&p.common)?;
    let target = match (&p.model, p.program.is_empty()) {
        (Some(m), true) => {
            let mode: WorkKind = p.mode.parse().map_err(|e: String| anyhow::anyhow!("--mode: {e}"))?;
            let model: orion_traces::Model = m.parse()?;
            Target::Model { model: model.as_str().to_string(), mode, batch: p.batch }
        }
        (None, false) => Target::Program(p.program.clone()),
        (Some(_), false) => anyhow::bail!("give --model or a program after `--`, not both"),
        (None, true) => anyhow::bail!("nothing to profile: give --model MODEL, or `-- PROGRAM.py ARGS` (see --help)"),
    };
    let name = match (&p.name, &target) {
        (Some(n), _) => n.clone(),
        (None, Target::Model { model, mode, batch }) => {
            let m: orion_traces::Model = model.parse()?;
            format!("{model}-{}-b{}", mode.as_str(), batch.unwrap_or_else(|| m.default_batch(*mode)))
        }
        (None, Target::Program(_)) => anyhow::bail!("--name NAME is required when profiling a program"),
    };
    if !p.capture_script.exists() {
        anyhow::bail!(
            "the capture harness {} does not exist: run from the repository root or give --capture-script",
            p.capture_script.display()
        );
    }
    let job = ProfileJob {
        target,
        work_dir: p.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("orion-profile").join(&name)),
        out_dir: out_dir(&p.common, &dev),
        name,
        device: dev,
        python: p.python.clone(),
        capture_script: p.capture_script.clone(),
        ncu: (!p.no_ncu).then(|| p.ncu.clone()),
        metrics: metrics(&p.common),
        steps: p.steps.max(1),
        warmup: p.warmup,
        latency_steps: p.latency_steps,
        harness_args: vec!["--bert-attn".into(), p.bert_attn.clone(), "--seed".into(), p.seed.to_string()],
        host_gap_scale: scale(&p.common.host_gap_scale)?,
        ncu_launch_count: p.ncu_launch_count,
        ncu_every_launch: p.ncu_every_launch,
        reuse_capture: p.reuse_capture,
        command: command.to_string(),
    };
    let (w, ncu_error) = run::profile(&job)?;
    report(&w);
    if let Some(e) = ncu_error {
        progress(&format!("WARNING: ncu failed, the trace has no classes: {e}"));
        return Ok(3);
    }
    Ok(0)
}

fn report(w: &run::Written) {
    let s = &w.summary;
    let (c, m, u) = w.trace.class_counts();
    progress(&format!(
        "wrote {} and {}: {} ops, {} kernels ({} compute, {} memory, {} unknown), kernel time {:.3} ms, \
         host gaps {:.3} ms (scale {:.3}), {} of {} kernels with ncu metrics",
        w.native.display(),
        w.orion.display(),
        w.trace.ops.len(),
        s.kernels,
        c,
        m,
        u,
        s.kernel_time_ns / 1e6,
        w.trace.summed_host_gap_ns() as f64 / 1e6,
        s.host_gap_scale,
        s.kernels - s.ncu_missing.len(),
        s.kernels
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_documents_every_step() {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let help = cmd.render_long_help().to_string();
        for want in [
            "[1/3] capture",
            "[2/3] ncu",
            "[3/3] convert",
            "--clock-control none",
            "Orion's rule",
            "convert --work-dir",
            "--ncu-from",
        ] {
            assert!(help.contains(want), "`{want}` not in --help");
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        assert_eq!(main_with(["orion-profile"]), 1);
        assert_eq!(main_with(["orion-profile", "--model", "alexnet"]), 1);
        assert_eq!(main_with(["orion-profile", "--model", "resnet50", "--mode", "sleep"]), 1);
        assert_eq!(main_with(["orion-profile", "--frobnicate"]), 2);
        assert!(scale("0").is_err() && scale("x").is_err());
        assert_eq!(scale("0.8").unwrap(), HostGapScale::Factor(0.8));
    }

    #[test]
    fn convert_of_a_missing_folder_names_it() {
        let code = main_with(["orion-profile", "convert", "--work-dir", "/nonexistent/wd"]);
        assert_eq!(code, 1);
    }

    #[test]
    fn ncu_from_a_missing_file_is_an_error_not_a_trace_without_classes() {
        let dir = std::env::temp_dir().join(format!("orion-profile-ncu-from-{}", std::process::id()));
        let cap = dir.join("capture");
        std::fs::create_dir_all(&cap).unwrap();
        std::fs::write(cap.join("k.json"), crate::profile::kineto::tests::fixture()).unwrap();
        std::fs::write(cap.join("capture.json"), r#"{"kineto_files": ["k.json"]}"#).unwrap();
        let wd = dir.to_string_lossy().into_owned();
        let out = dir.join("out").to_string_lossy().into_owned();
        let base = ["orion-profile", "convert", "--work-dir", wd.as_str(), "--out-dir", out.as_str()];
        assert_eq!(main_with(base), 0);
        let ncu = dir.join("other-ncu.csv");
        let missing = ncu.to_string_lossy().into_owned();
        assert_eq!(main_with(base.iter().copied().chain(["--ncu-from", missing.as_str()])), 1);
        std::fs::write(&ncu, crate::profile::ncu::tests::fixture()).unwrap();
        assert_eq!(main_with(base.iter().copied().chain(["--ncu-from", missing.as_str()])), 0);
        let text = std::fs::read_to_string(
            dir.join("out").join(format!("{}.csv", dir.file_name().unwrap().to_string_lossy())),
        )
        .unwrap();
        assert!(text.contains("# ncu_from: "), "{text}");
        assert!(text.contains("2 of 2 kernels matched"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
