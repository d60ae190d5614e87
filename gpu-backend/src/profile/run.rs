//! The `orion-profile` pipeline: capture, ncu, convert, write.

use super::convert::{ConvertOptions, ConvertSummary, HostGapScale, build_trace};
use super::error::{ProfileError, Result};
use super::kineto::{Step, read_step};
use super::ncu::{NcuKernel, read_ncu_csv};
use orion_traces::format::{TraceFormat, write_trace_as};
use orion_traces::{DeviceSpec, Trace, WorkKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What to profile.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A built-in model of the workload driver (`workloads/models.py`).
    Model {
        /// Model name (`resnet50`, ...).
        model: String,
        /// Inference or training.
        mode: WorkKind,
        /// Batch size (`None`: the paper's default).
        batch: Option<u32>,
    },
    /// Any Python program that marks its steps with `torch.cuda.profiler.start()/stop()`.
    Program(Vec<String>),
}

/// Everything one profiling run needs.
#[derive(Debug, Clone)]
pub struct ProfileJob {
    /// What to profile.
    pub target: Target,
    /// Trace name (default `MODEL-MODE-bBATCH`, or the program's file stem).
    pub name: String,
    /// Where the traces go.
    pub out_dir: PathBuf,
    /// Where the raw captures go (Kineto traces, ncu report and CSV, logs).
    pub work_dir: PathBuf,
    /// The device the trace is for (occupancy limits, roofline knee, name).
    pub device: DeviceSpec,
    /// Python interpreter.
    pub python: String,
    /// The capture harness (`gpu-backend/workloads/capture.py`).
    pub capture_script: PathBuf,
    /// Nsight Compute executable; `None` skips the metrics step.
    pub ncu: Option<String>,
    /// Metrics to collect.
    pub metrics: Vec<String>,
    /// Profiled steps kept.
    pub steps: u32,
    /// Warm-up steps (built-in models).
    pub warmup: u32,
    /// Unprofiled timed steps (built-in models).
    pub latency_steps: u32,
    /// Extra harness arguments (`--bert-attn sdpa`, `--seed 2`).
    pub harness_args: Vec<String>,
    /// Host-gap correction.
    pub host_gap_scale: HostGapScale,
    /// Profile at most this many kernels with ncu (the first ones of the step); kernels
    /// identical to a profiled one take its metrics, the others are marked.
    pub ncu_launch_count: Option<u32>,
    /// Profile every launch instead of one per distinct launch configuration.
    pub ncu_every_launch: bool,
    /// Reuse `WORK/capture` from an earlier run instead of capturing again.
    pub reuse_capture: bool,
    /// The command line, for the trace's provenance.
    pub command: String,
}

/// Prints one progress line.
pub fn progress(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "[orion-profile] {msg}");
}

fn harness_target_args(target: &Target) -> Vec<String> {
    match target {
        Target::Model { model, mode, batch } => {
            let mut a = vec!["--model".into(), model.clone(), "--mode".into(), mode.as_str().into()];
            if let Some(b) = batch {
                a.extend(["--batch".into(), b.to_string()]);
            }
            a
        }
        Target::Program(p) => {
            let mut a = vec!["--".to_string()];
            a.extend(p.iter().cloned());
            a
        }
    }
}

fn run_logged(step: &'static str, mut cmd: Command, log: &Path, expected: Option<usize>) -> Result<()> {
    let shown = format!("{cmd:?}");
    let file = std::fs::File::create(log).map_err(|e| ProfileError::io(log, e))?;
    let file2 = file.try_clone().map_err(|e| ProfileError::io(log, e))?;
    cmd.stdout(Stdio::from(file)).stderr(Stdio::from(file2));
    let started = Instant::now();
    let mut child =
        cmd.spawn().map_err(|e| ProfileError::Step { step, message: format!("could not start {shown}: {e}") })?;
    let mut last_report = Instant::now();
    let mut last_count = usize::MAX;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| ProfileError::Step { step, message: e.to_string() })? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(500));
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let n = text.lines().filter(|l| l.starts_with("==PROF== Profiling")).count();
            if n != last_count {
                last_count = n;
                let of = expected.map(|e| format!("/{e}")).unwrap_or_default();
                progress(&format!("  {step}: {n}{of} kernels profiled, {:.0} s", started.elapsed().as_secs_f64()));
            }
        }
    };
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(ProfileError::Step {
            step,
            message: format!("{shown} exited with {status}; see {}; last lines:\n{}", log.display(), tail.join("\n")),
        });
    }
    Ok(())
}

/// Step 1: the Python capture (Kineto). Writes `WORK/capture/`.
pub fn capture(job: &ProfileJob) -> Result<PathBuf> {
    let dir = job.work_dir.join("capture");
    std::fs::create_dir_all(&dir).map_err(|e| ProfileError::io(&dir, e))?;
    let mut cmd = Command::new(&job.python);
    cmd.arg(&job.capture_script).arg("capture").arg("--out").arg(&dir);
    cmd.args(["--steps", &job.steps.to_string(), "--warmup", &job.warmup.to_string()]);
    cmd.args(["--latency-steps", &job.latency_steps.to_string()]);
    cmd.args(&job.harness_args);
    cmd.args(harness_target_args(&job.target));
    run_logged("capture", cmd, &job.work_dir.join("capture.log"), None)?;
    Ok(dir)
}

/// The metrics of `wanted` that `ncu --query-metrics` lists for this GPU (launch metrics are
/// always kept); all of them when the query fails.
pub fn available_metrics(ncu: &str, wanted: &[String]) -> (Vec<String>, Vec<String>) {
    let out = Command::new(ncu).arg("--query-metrics").output();
    let Ok(out) = out else { return (wanted.to_vec(), vec![]) };
    let text = String::from_utf8_lossy(&out.stdout);
    let bases: std::collections::HashSet<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    if !out.status.success() || bases.len() < 20 {
        return (wanted.to_vec(), vec![]);
    }
    wanted.iter().cloned().partition(|m| {
        let base = m.split('.').next().unwrap_or(m);
        m.starts_with("launch__") || bases.contains(base)
    })
}

/// Step 2: Nsight Compute on one step. Writes `WORK/ncu.ncu-rep` and `WORK/ncu.csv`.
pub fn ncu_metrics(job: &ProfileJob, ncu: &str, metrics: &[String], expected: usize) -> Result<PathBuf> {
    let report = job.work_dir.join("ncu");
    let mut cmd = Command::new(ncu);
    cmd.args(["--clock-control", "none", "--profile-from-start", "off", "--target-processes", "all"]);
    cmd.args(["--metrics", &metrics.join(","), "--force-overwrite", "--export"]).arg(&report);
    if !job.ncu_every_launch {
        // One launch per launch configuration; identical launches take its metrics (convert).
        cmd.args(["--filter-mode", "per-launch-config", "--launch-count", "1"]);
    } else if let Some(n) = job.ncu_launch_count {
        cmd.args(["--launch-count", &n.to_string()]);
    }
    cmd.arg(&job.python).arg(&job.capture_script).arg("ncu-step");
    // Warm-up only settles the caching allocator here; under ncu every launch is intercepted.
    cmd.args(["--warmup", &job.warmup.min(3).to_string()]);
    cmd.args(&job.harness_args);
    cmd.args(harness_target_args(&job.target));
    let rep = report.with_extension("ncu-rep");
    if let Err(e) = run_logged("ncu", cmd, &job.work_dir.join("ncu.log"), Some(expected)) {
        // ncu exits non-zero when some kernels could not be profiled; what it did profile is
        // in the report, and the kernels it lost are marked by the conversion.
        if !rep.exists() {
            return Err(e);
        }
        progress(&format!("  ncu reported an error but wrote a report; kernels it lost will be marked: {e}"));
    }
    let csv = job.work_dir.join("ncu.csv");
    let out = Command::new(ncu)
        .arg("--import")
        .arg(&rep)
        .args(["--csv", "--page", "raw", "--print-units", "base", "--print-kernel-base", "demangled"])
        .output()
        .map_err(|e| ProfileError::Step { step: "ncu --import", message: e.to_string() })?;
    if !out.status.success() {
        return Err(ProfileError::Step {
            step: "ncu --import",
            message: String::from_utf8_lossy(&out.stderr).lines().take(10).collect::<Vec<_>>().join("\n"),
        });
    }
    std::fs::write(&csv, &out.stdout).map_err(|e| ProfileError::io(&csv, e))?;
    Ok(csv)
}

/// What the capture wrote: its steps and the facts from `capture.json`.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The profiled steps.
    pub steps: Vec<Step>,
    /// Provenance (gpu, driver, cuda, torch, cudnn, date, python command).
    pub provenance: BTreeMap<String, String>,
    /// Median unprofiled latency, ms.
    pub unprofiled_latency_ms: Option<f64>,
    /// Median CUDA-event span of unprofiled steps, ms.
    pub gpu_span_ms: Option<f64>,
    /// Wall time of each profiled step, ms.
    pub profiled_step_wall_ms: Vec<f64>,
    /// Per step, how far its start was moved later by [`Step::start_from_wall`], us (empty
    /// when the capture has no wall time per step).
    pub step_start_moved_us: Vec<f64>,
    /// Model, mode and batch the harness reported.
    pub model: Option<(String, WorkKind, u32)>,
}

/// Reads `DIR/capture.json` and the step traces it lists.
pub fn read_capture(dir: &Path) -> Result<Captured> {
    let path = dir.join("capture.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ProfileError::io(&path, e))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| ProfileError::invalid(&path, Some(format!("line {}", e.line())), e.to_string()))?;
    let files = doc.get("kineto_files").and_then(Value::as_array).ok_or_else(|| {
        ProfileError::invalid(&path, Some("field `kineto_files`".into()), "missing (not written by capture.py?)")
    })?;
    let mut steps = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let name = f.as_str().ok_or_else(|| {
            ProfileError::invalid(&path, Some(format!("field `kineto_files[{i}]`")), "not a file name")
        })?;
        steps.push(read_step(&dir.join(name))?);
    }
    if steps.is_empty() {
        return Err(ProfileError::invalid(&path, Some("field `kineto_files`".into()), "no step was captured"));
    }
    let profiled_step_wall_ms: Vec<f64> = doc
        .get("profiled_step_wall_ms")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let step_start_moved_us = if profiled_step_wall_ms.len() == steps.len() {
        steps.iter_mut().zip(&profiled_step_wall_ms).map(|(s, w)| s.start_from_wall(*w)).collect()
    } else {
        Vec::new()
    };
    let mut provenance = BTreeMap::new();
    if let Some(env) = doc.get("env").and_then(Value::as_object) {
        for (k, key) in [
            ("gpu", "gpu"),
            ("driver", "driver"),
            ("cuda", "cuda"),
            ("torch", "torch"),
            ("cudnn", "cudnn"),
            ("date", "date"),
            ("capture_command", "command"),
        ] {
            if let Some(v) = env.get(key) {
                provenance.insert(k.to_string(), v.as_str().map_or_else(|| v.to_string(), String::from));
            }
        }
    }
    let num = |a: &str, b: &str| doc.get(a).and_then(|v| v.get(b)).and_then(Value::as_f64);
    let model = match (
        doc.get("model").and_then(Value::as_str),
        doc.get("mode").and_then(Value::as_str).and_then(|m| m.parse::<WorkKind>().ok()),
        doc.get("batch").and_then(Value::as_u64),
    ) {
        (Some(m), Some(k), Some(b)) => Some((m.to_string(), k, b as u32)),
        _ => None,
    };
    Ok(Captured {
        steps,
        provenance,
        unprofiled_latency_ms: num("latency_ms", "median"),
        gpu_span_ms: num("gpu_span_ms", "median"),
        profiled_step_wall_ms,
        step_start_moved_us,
        model,
    })
}

/// The files a run wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The trace in the project's CSV.
    pub native: PathBuf,
    /// The kernels in Orion's CSV.
    pub orion: PathBuf,
    /// The trace.
    pub trace: Trace,
    /// Conversion facts.
    pub summary: ConvertSummary,
}

/// Where step 3 takes ncu's rows from.
#[derive(Debug, Clone, Copy)]
pub struct NcuInput<'a> {
    /// The metrics that were asked for (a kernel lacking one of them is marked).
    pub metrics: &'a [String],
    /// ncu's raw CSV of another run of the same workload, instead of `WORK/ncu.csv`: its rows
    /// are matched in launch order, then by kernel, grid and block
    /// ([`ConvertOptions::ncu_by_shape`](super::convert::ConvertOptions::ncu_by_shape)).
    pub from: Option<&'a Path>,
}

/// Step 3: converts a work folder (capture, and ncu's CSV when present, or `ncu.from`) into
/// traces in `out_dir`: `NAME.csv` (the project's format) and `NAME.orion.csv` (Orion's kernel
/// file).
pub fn convert(
    work_dir: &Path,
    out_dir: &Path,
    name: &str,
    device: &DeviceSpec,
    scale: HostGapScale,
    ncu_input: NcuInput<'_>,
    command: &str,
) -> Result<Written> {
    let cap = read_capture(&work_dir.join("capture"))?;
    let csv = ncu_input.from.map_or_else(|| work_dir.join("ncu.csv"), Path::to_path_buf);
    let ncu: Option<Vec<NcuKernel>> =
        if csv.exists() || ncu_input.from.is_some() { Some(read_ncu_csv(&csv, ncu_input.metrics)?) } else { None };
    let mut provenance = cap.provenance.clone();
    provenance.insert("command".into(), command.to_string());
    if let Some(f) = ncu_input.from {
        provenance.insert(
            "ncu_from".into(),
            format!(
                "{} (another run's ncu rows, matched in launch order, then by kernel, grid and block)",
                f.display()
            ),
        );
    }
    if let Some(s) = cap.gpu_span_ms {
        provenance.insert("unprofiled_gpu_span_ms".into(), format!("{s:.4}"));
    }
    provenance.insert(
        "step_start".into(),
        if cap.step_start_moved_us.is_empty() {
            "end of the start marker (no wall time per step in capture.json)".into()
        } else {
            let mut moved = cap.step_start_moved_us.clone();
            moved.sort_by(f64::total_cmp);
            format!(
                "end marker minus the step's perf_counter wall time (moved later by a median {:.1} us over the \
                 start marker's end)",
                moved[moved.len() / 2]
            )
        },
    );
    let opts = ConvertOptions {
        name: name.to_string(),
        model: cap.model.as_ref().map(|m| m.0.clone()),
        mode: cap.model.as_ref().map(|m| m.1),
        batch: cap.model.as_ref().map(|m| m.2),
        host_gap_scale: scale,
        unprofiled_latency_ms: cap.unprofiled_latency_ms,
        profiled_step_wall_ms: cap.profiled_step_wall_ms.clone(),
        provenance,
        ncu_by_shape: ncu_input.from.is_some(),
    };
    let (trace, summary) = build_trace(&cap.steps, ncu.as_deref(), device, &opts)
        .map_err(|m| ProfileError::invalid(work_dir.join("capture"), None, m))?;
    std::fs::create_dir_all(out_dir).map_err(|e| ProfileError::io(out_dir, e))?;
    let native = out_dir.join(format!("{name}.csv"));
    let orion = out_dir.join(format!("{name}.orion.csv"));
    write_trace_as(&native, &trace, TraceFormat::NativeCsv)?;
    write_trace_as(&orion, &trace, TraceFormat::OrionCsv)?;
    // Re-load what was written: a trace that does not read back is a bug, not a result.
    orion_traces::format::read_trace(&native)?;
    Ok(Written { native, orion, trace, summary })
}

/// Distinct launch configurations (kernel, grid, block, shared memory) among a step's kernels:
/// what ncu profiles with `--filter-mode per-launch-config --launch-count 1`.
pub fn distinct_launches(step: &Step) -> usize {
    step.items
        .iter()
        .filter(|i| i.kind == super::kineto::StepItemKind::Gpu(orion_traces::OpKind::Kernel))
        .map(|i| (i.name.as_str(), i.grid, i.block, i.shared_mem_per_block))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// The whole pipeline: capture, ncu (unless skipped; a failure there leaves the trace without
/// classes and is reported), convert. Returns the files and whether ncu succeeded.
pub fn profile(job: &ProfileJob) -> Result<(Written, Option<String>)> {
    std::fs::create_dir_all(&job.work_dir).map_err(|e| ProfileError::io(&job.work_dir, e))?;
    let stale = job.work_dir.join("ncu.csv");
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(|e| ProfileError::io(&stale, e))?;
    }
    progress(&format!(
        "[1/3] capture: {} steps under torch.profiler (log: {})",
        job.steps,
        job.work_dir.join("capture.log").display()
    ));
    let t = Instant::now();
    let reused = job.work_dir.join("capture").join("capture.json");
    let dir = if job.reuse_capture && reused.exists() {
        progress("  reusing the capture already in the work folder (--reuse-capture)");
        job.work_dir.join("capture")
    } else {
        capture(job)?
    };
    let cap = read_capture(&dir)?;
    let kernels = cap.steps[0]
        .items
        .iter()
        .filter(|i| i.kind == super::kineto::StepItemKind::Gpu(orion_traces::OpKind::Kernel))
        .count();
    progress(&format!(
        "  captured {} steps, {} ops, {} kernels ({:.1} ms of kernel time) in {:.0} s",
        cap.steps.len(),
        cap.steps[0].items.len(),
        kernels,
        cap.steps[0].kernel_time_us() / 1e3,
        t.elapsed().as_secs_f64()
    ));
    let mut ncu_error = None;
    let mut metrics = job.metrics.clone();
    match &job.ncu {
        None => progress("[2/3] ncu: skipped (--no-ncu): classes will be unknown"),
        Some(ncu) => {
            let (ok, dropped) = available_metrics(ncu, &job.metrics);
            if !dropped.is_empty() {
                progress(&format!("  ncu does not list {} on this GPU: not collected", dropped.join(", ")));
            }
            metrics = ok;
            let expected = if job.ncu_every_launch {
                job.ncu_launch_count.map_or(kernels, |n| kernels.min(n as usize))
            } else {
                distinct_launches(&cap.steps[0])
            };
            progress(&format!(
                "[2/3] ncu: {} metrics on one step, {expected} of {kernels} kernels{} (log: {})",
                metrics.len(),
                if job.ncu_every_launch { "" } else { " (one per distinct launch configuration)" },
                job.work_dir.join("ncu.log").display()
            ));
            let t = Instant::now();
            match ncu_metrics(job, ncu, &metrics, expected) {
                Ok(_) => progress(&format!("  ncu done in {:.0} s", t.elapsed().as_secs_f64())),
                Err(e) => {
                    progress(&format!("  ncu FAILED: {e}"));
                    ncu_error = Some(e.to_string());
                }
            }
        }
    }
    progress(&format!("[3/3] convert: writing {}", job.out_dir.display()));
    let ncu_input = NcuInput { metrics: &metrics, from: None };
    let w = convert(&job.work_dir, &job.out_dir, &job.name, &job.device, job.host_gap_scale, ncu_input, &job.command)?;
    Ok((w, ncu_error))
}
