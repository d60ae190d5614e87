//! The calibration microbenchmarks (`orion-validate calibrate plan`): pairs of synthetic
//! kernels run concurrently, plus launch-cost and copy benchmarks, written as orion-rs
//! scenarios with their traces and a `run.sh` that replays them on the GPU machine.
//!
//! A pair benchmark is two clients, `a` (HP) and `b` (BE), each a closed-loop inference client
//! whose request is `kernels` identical kernels with no host gaps: the clients loop
//! continuously and the mean request latency of each, against its latency alone (the report's
//! `ideal` reference), is its co-run slowdown. Kernels are `BLOCK_THREADS` threads per block
//! at `BLOCKS_PER_SM` blocks per SM (the real backend pins that occupancy with dynamic shared
//! memory), so a grid of up to 132 blocks covers that many SMs (the hardware spreads blocks
//! over idle SMs first) at a quarter of each, 528 blocks fill the H100 once and 1056 twice.
//! Each pair runs under `streams` (equal priorities; with the ideal reference) and
//! `priority-streams` (`a` high priority; ideal taken from the `streams` run).

use anyhow::{Context, Result, bail};
use orion_traces::config::scenario_file::{ArrivalEntry, ArrivalKind, ClientEntry, DeviceRef, ScenarioFile};
use orion_traces::format::write_trace;
use orion_traces::{DeviceSpec, Dim3, KernelClass, OpKind, OpRecord, Role, Trace, TraceMeta, TraceSource, WorkKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Format identifier of `plan.json`.
pub const PLAN_FORMAT: &str = "orion-rs-calibration-plan/1";
/// Threads per block of every calibration kernel.
pub const BLOCK_THREADS: u32 = 256;
/// Blocks per SM of every calibration kernel.
pub const BLOCKS_PER_SM: u32 = 4;
/// The policies every pair runs under: equal priorities, then HP/BE.
pub const PAIR_POLICIES: [&str; 2] = ["streams", "priority-streams"];
/// Estimated fixed cost of one `orion-real replay` process (CUDA context, preparation,
/// standalone measurements), seconds, for the plan's time estimate.
pub const RUN_OVERHEAD_S: f64 = 1.0;
/// Estimated cost of calibrating one new kernel shape, seconds.
pub const SHAPE_CALIBRATION_S: f64 = 1.0;

/// What a benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchKind {
    /// Two clients co-running: their slowdowns fit the contention parameters.
    Pair,
    /// One client of back-to-back kernels: its request time fits the launch latency and the
    /// gap between kernels.
    Launch,
    /// One client of copies: their standalone times fit the copy bandwidths.
    Copy,
}

/// One client of a benchmark: `kernels` identical kernels per request (kernel benchmarks) or
/// the copies of [`COPY_SIZES`] in each direction (copy benchmark).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchClient {
    /// Client name in the scenario (`a`, `b`).
    pub name: String,
    /// HP or BE.
    pub role: Role,
    /// Kernel class (kernel benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<KernelClass>,
    /// Blocks per kernel (kernel benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<u32>,
    /// Target standalone duration of each kernel, ns (kernel benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_ns: Option<u64>,
    /// Ops per request.
    pub ops: usize,
    /// The trace's name (its file is `NAME.csv` next to the scenario).
    pub trace: String,
}

/// One benchmark: a scenario and the policies it runs under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bench {
    /// Scenario name (the file is `NAME.json`).
    pub name: String,
    /// What it measures.
    pub kind: BenchKind,
    /// Its clients.
    pub clients: Vec<BenchClient>,
    /// Policies, in run order (the first runs the ideal reference).
    pub policies: Vec<String>,
}

/// The settings of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Device preset the scenarios name.
    pub device: String,
    /// Length of each run, ns.
    pub duration_ns: u64,
    /// Warm-up requests per client.
    pub warmup: u32,
    /// Seed of the scenarios.
    pub seed: u64,
    /// Kernels per request of the pair benchmarks.
    pub kernels: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { device: "h100".into(), duration_ns: 500_000_000, warmup: 2, seed: 1, kernels: 20 }
    }
}

/// The whole plan, as written to `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// Settings.
    pub options: PlanOptions,
    /// The benchmarks.
    pub benches: Vec<Bench>,
    /// Estimated GPU time of `run.sh`, seconds.
    pub estimated_gpu_s: f64,
}

/// Footprints (blocks per kernel) of the symmetric pairs: 8 to 132 SMs covered, half a wave
/// (2 blocks on every SM), two full waves.
pub const SYMMETRIC_BLOCKS: [u32; 5] = [8, 66, 132, 264, 1056];
/// Kernel durations of the symmetric pairs, ns.
pub const SYMMETRIC_NS: [u64; 2] = [50_000, 1_000_000];
/// Footprints (a, b) of the asymmetric pairs: a small kernel next to a full or a multi-wave one.
pub const ASYMMETRIC_BLOCKS: [(u32, u32); 2] = [(8, 528), (132, 1056)];
/// Kernel duration of the asymmetric pairs, ns.
pub const ASYMMETRIC_NS: u64 = 200_000;
/// Launch benchmarks: (kernels per request, kernel duration ns), 8 blocks each.
pub const LAUNCH_BENCHES: [(usize, u64); 3] = [(1, 10_000), (50, 10_000), (20, 40_000)];
/// Copy sizes of the copy benchmark, bytes, each in every direction.
pub const COPY_SIZES: [u64; 3] = [1 << 20, 16 << 20, 64 << 20];

fn class_letter(c: KernelClass) -> char {
    match c {
        KernelClass::Compute => 'c',
        KernelClass::Memory => 'm',
        KernelClass::Unknown => 'u',
    }
}

fn dur_label(ns: u64) -> String {
    if ns.is_multiple_of(1_000_000) { format!("{}ms", ns / 1_000_000) } else { format!("{}us", ns / 1_000) }
}

/// One calibration kernel record: `blocks` blocks of [`BLOCK_THREADS`] threads at
/// [`BLOCKS_PER_SM`] per SM.
pub fn kernel_record(class: KernelClass, blocks: u32, ns: u64) -> OpRecord {
    let name = format!("calib_{}_b{blocks}_{}", class.as_str(), dur_label(ns));
    let mut r = OpRecord::kernel(name, ns, blocks.div_ceil(BLOCKS_PER_SM), class);
    r.grid = Some(Dim3::linear(blocks));
    r.block = Some(Dim3::linear(BLOCK_THREADS));
    r.blocks_per_sm = Some(BLOCKS_PER_SM);
    r.host_gap_ns = Some(0);
    r
}

fn meta(name: &str, device: &str) -> TraceMeta {
    TraceMeta {
        name: name.to_string(),
        mode: Some(WorkKind::Inference),
        device: Some(device.to_string()),
        source: TraceSource::File,
        extra: BTreeMap::from([("generator".to_string(), "orion-validate calibrate plan".to_string())]),
        ..TraceMeta::default()
    }
}

fn kernel_client(
    bench: &str,
    name: &str,
    role: Role,
    class: KernelClass,
    blocks: u32,
    ns: u64,
    n: usize,
) -> BenchClient {
    BenchClient {
        name: name.into(),
        role,
        class: Some(class),
        blocks: Some(blocks),
        kernel_ns: Some(ns),
        ops: n,
        trace: format!("{bench}-{name}"),
    }
}

/// The copy benchmark's trace: every size of [`COPY_SIZES`] H2D, D2H and D2D, with durations
/// at the device's nominal bandwidths.
pub fn copy_ops(device: &DeviceSpec) -> Vec<OpRecord> {
    let mut ops = Vec::new();
    for (kind, gbs) in [
        (OpKind::CopyH2D, device.h2d_bandwidth_gbs),
        (OpKind::CopyD2H, device.d2h_bandwidth_gbs),
        // The D2D bandwidth counts bytes read and written.
        (OpKind::CopyD2D, device.d2d_bandwidth_gbs / 2.0),
    ] {
        for bytes in COPY_SIZES {
            let ns = (bytes as f64 / gbs).round().max(1.0) as u64;
            let mut r =
                OpRecord::new(kind, format!("calib_{}_{}MiB", kind.as_str(), bytes >> 20), ns, 0, KernelClass::Unknown);
            r.copy_bytes = Some(bytes);
            r.host_gap_ns = Some(0);
            ops.push(r);
        }
    }
    ops
}

/// The benchmarks of a plan.
pub fn benches(opts: &PlanOptions) -> Vec<Bench> {
    use KernelClass::{Compute as C, Memory as M};
    let pair_policies: Vec<String> = PAIR_POLICIES.iter().map(|p| p.to_string()).collect();
    // The single-client benchmarks first: they are short, and a run cut by its deadline keeps them.
    let mut out = Vec::new();
    for (n, ns) in LAUNCH_BENCHES {
        let name = format!("launch-n{n}-{}", dur_label(ns));
        let clients = vec![kernel_client(&name, "a", Role::Hp, C, 8, ns, n)];
        out.push(Bench { name, kind: BenchKind::Launch, clients, policies: vec!["ideal".into()] });
    }
    let name = "copy".to_string();
    let clients = vec![BenchClient {
        name: "a".into(),
        role: Role::Hp,
        class: None,
        blocks: None,
        kernel_ns: None,
        ops: COPY_SIZES.len() * 3,
        trace: format!("{name}-a"),
    }];
    out.push(Bench { name, kind: BenchKind::Copy, clients, policies: vec!["ideal".into()] });
    let mut pair = |ca: KernelClass, cb: KernelClass, ba: u32, bb: u32, ns: u64| {
        let name = format!("pair-{}{}-b{ba}-b{bb}-{}", class_letter(ca), class_letter(cb), dur_label(ns));
        let clients = vec![
            kernel_client(&name, "a", Role::Hp, ca, ba, ns, opts.kernels),
            kernel_client(&name, "b", Role::Be, cb, bb, ns, opts.kernels),
        ];
        out.push(Bench { name, kind: BenchKind::Pair, clients, policies: pair_policies.clone() });
    };
    for ns in SYMMETRIC_NS {
        for blocks in SYMMETRIC_BLOCKS {
            for (ca, cb) in [(C, C), (C, M), (M, M)] {
                pair(ca, cb, blocks, blocks, ns);
            }
        }
    }
    for (ba, bb) in ASYMMETRIC_BLOCKS {
        for (ca, cb) in [(C, C), (C, M), (M, C), (M, M)] {
            pair(ca, cb, ba, bb, ASYMMETRIC_NS);
        }
    }
    out
}

/// The trace of one benchmark client.
pub fn client_trace(c: &BenchClient, device: &DeviceSpec) -> Trace {
    let ops = match (c.class, c.blocks, c.kernel_ns) {
        (Some(class), Some(blocks), Some(ns)) => vec![kernel_record(class, blocks, ns); c.ops],
        _ => copy_ops(device),
    };
    Trace::new(meta(&c.trace, &device.name), ops)
}

/// The scenario file of one benchmark (its traces are `TRACE.csv` in the same folder).
pub fn scenario_file(b: &Bench, opts: &PlanOptions) -> ScenarioFile {
    ScenarioFile {
        name: Some(b.name.clone()),
        device: Some(DeviceRef::Preset(opts.device.clone())),
        seed: Some(opts.seed),
        duration_ns: Some(opts.duration_ns),
        requests: None,
        warmup: Some(opts.warmup),
        policy: b.policies.first().cloned(),
        policy_params: BTreeMap::new(),
        clients: b
            .clients
            .iter()
            .map(|c| ClientEntry {
                name: Some(c.name.clone()),
                role: Some(c.role),
                mode: Some(WorkKind::Inference),
                trace: Some(format!("{}.csv", c.trace)),
                arrival: Some(ArrivalEntry {
                    kind: ArrivalKind::ClosedLoop,
                    rate: None,
                    file: None,
                    inter_arrival_s: None,
                }),
                ..ClientEntry::default()
            })
            .collect(),
    }
}

/// Estimated GPU seconds of running every benchmark: per process [`RUN_OVERHEAD_S`] plus the
/// run (three lengths for the first policy of a multi-client scenario: shared, then each
/// client alone), plus [`SHAPE_CALIBRATION_S`] per distinct kernel shape.
pub fn estimate_gpu_s(benches: &[Bench], opts: &PlanOptions) -> f64 {
    let d = opts.duration_ns as f64 / 1e9;
    let mut shapes: Vec<(Option<KernelClass>, Option<u32>, Option<u64>)> = Vec::new();
    let mut total = 0.0;
    for b in benches {
        for (i, _) in b.policies.iter().enumerate() {
            let lengths = if i == 0 && b.clients.len() > 1 { 1 + b.clients.len() } else { 1 };
            total += RUN_OVERHEAD_S + d * lengths as f64;
        }
        for c in &b.clients {
            let s = (c.class, c.blocks, c.kernel_ns);
            if !shapes.contains(&s) {
                shapes.push(s);
            }
        }
    }
    total + SHAPE_CALIBRATION_S * shapes.len() as f64
}

/// The plan of `opts`.
pub fn make_plan(opts: &PlanOptions) -> Result<Plan> {
    if opts.duration_ns == 0 {
        bail!("the run length must be positive");
    }
    if opts.kernels == 0 {
        bail!("a request needs at least one kernel");
    }
    let benches = benches(opts);
    let estimated_gpu_s = (estimate_gpu_s(&benches, opts) * 10.0).round() / 10.0;
    Ok(Plan { format: PLAN_FORMAT.into(), options: opts.clone(), benches, estimated_gpu_s })
}

/// One line of `runs.tsv`: scenario, policy, the report to take the ideal reference from
/// (`-`: run it), estimated seconds.
pub fn run_lines(plan: &Plan) -> Vec<String> {
    let d = plan.options.duration_ns as f64 / 1e9;
    let mut lines = Vec::new();
    for b in &plan.benches {
        for (i, p) in b.policies.iter().enumerate() {
            let (ideal, lengths) = if i == 0 {
                ("-".to_string(), if b.clients.len() > 1 { 1 + b.clients.len() } else { 1 })
            } else {
                (format!("{}-{}.json", b.name, b.policies[0]), 1)
            };
            let est = (RUN_OVERHEAD_S + d * lengths as f64).ceil() as u64;
            lines.push(format!("{}\t{p}\t{ideal}\t{est}", b.name));
        }
    }
    lines
}

/// The script that replays the plan on the GPU machine (see its header).
pub const RUN_SH: &str = r#"#!/usr/bin/env bash
# Calibration microbenchmarks on the real GPU (written by `orion-validate calibrate plan`).
# Replays every scenario of this folder under its policies with orion-real, one report each,
# into RESULTS; the first policy of a scenario also measures the ideal reference (each client
# alone), writes the replay's kernel list (measured standalone times) and the replayed traces;
# later policies take the ideal reference from it. Resumable: existing reports are skipped.
# Stops starting runs that would end after END (epoch seconds).
#
#   BIN=.carry RESULTS=validation/results/calib-h100 END=$(( $(date +%s) + 360 )) \
#     bash validation/calibration/plan/run.sh
#
# Then, on a machine with Rust: orion-validate calibrate fit --results RESULTS ...
set -u
PLAN=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-.carry}
RESULTS=${RESULTS:-validation/results/calib-$(date -u +%Y-%m-%d)}
END=${END:-0}
mkdir -p "$RESULTS/traces"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
cp "$PLAN/plan.json" "$RESULTS/plan.json"
CACHE="$RESULTS/calib-cache.json"
LOG="$RESULTS/run.log"
done_n=0; skipped=0; failed=0; late=0
while IFS=$'\t' read -r name policy ideal est; do
  out="$RESULTS/$name-$policy.json"
  if [ -s "$out" ]; then skipped=$((skipped + 1)); continue; fi
  now=$(date +%s)
  if [ "$END" -gt 0 ] && [ $((now + est)) -gt "$END" ]; then
    echo "== $name $policy: not started, the deadline is near" | tee -a "$LOG"
    late=$((late + 1)); continue
  fi
  if [ "$ideal" = "-" ]; then
    extra=(--kernels-out "$RESULTS/$name-kernels.json" --traces-out "$RESULTS/traces")
  elif [ -s "$RESULTS/$ideal" ]; then
    extra=(--ideal-from "$RESULTS/$ideal")
  else
    echo "== $name $policy: no $ideal, running without an ideal reference" | tee -a "$LOG"
    extra=(--no-ideal)
  fi
  echo "== $name $policy" | tee -a "$LOG"
  if "$BIN/orion-real" replay --policy "$policy" "$PLAN/$name.json" --calib-cache "$CACHE" \
       -o "$out.tmp" "${extra[@]}" >>"$LOG" 2>&1; then
    mv "$out.tmp" "$out"; done_n=$((done_n + 1))
  else
    echo "== $name $policy: FAILED (see $LOG)" | tee -a "$LOG"; rm -f "$out.tmp"; failed=$((failed + 1))
  fi
done < "$PLAN/runs.tsv"
echo "calibration runs: $done_n done, $skipped already there, $failed failed, $late left for lack of time; reports in $RESULTS" | tee -a "$LOG"
[ "$failed" -eq 0 ] && [ "$late" -eq 0 ]
"#;

/// Writes the plan to `dir`: `plan.json`, one scenario file `NAME.json` per benchmark, its
/// traces `TRACE.csv`, `runs.tsv` and `run.sh`. Returns the plan.
pub fn write_plan(dir: &Path, opts: &PlanOptions) -> Result<Plan> {
    let device = DeviceSpec::preset(&opts.device).with_context(|| format!("device `{}`", opts.device))?;
    let plan = make_plan(opts)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for b in &plan.benches {
        for c in &b.clients {
            let path = dir.join(format!("{}.csv", c.trace));
            write_trace(&path, &client_trace(c, &device)).with_context(|| format!("writing {}", path.display()))?;
        }
        let path = dir.join(format!("{}.json", b.name));
        let text = serde_json::to_string_pretty(&scenario_file(b, opts))?;
        std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("plan.json", serde_json::to_string_pretty(&plan)? + "\n")?;
    write("runs.tsv", run_lines(&plan).join("\n") + "\n")?;
    write("run.sh", RUN_SH.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("run.sh");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", p.display()))?;
    }
    Ok(plan)
}
