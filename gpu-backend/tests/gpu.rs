//! Tests that need an NVIDIA GPU. Without one (no driver, no device, no NVRTC) every test is
//! still listed and reported as ignored, by name, with the reason "no CUDA GPU: <error>", so
//! a machine without a GPU never passes them silently.
//!
//! Run: `cargo test --release -p orion-gpu --test gpu` (they run one at a time: they time the
//! GPU).

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use orion_gpu::Gpu;
use orion_gpu::bench::{self, criterion_met};
use orion_gpu::calibrate::{Calibrator, FidelitySummary};
use orion_gpu::cli::builtin_traces;
use orion_gpu::replay::{ReplayOptions, replay};
use orion_policies::ParamMap;
use orion_traces::builtin::workload_clients;
use orion_traces::{DeviceSpec, Dim3, KernelClass, OpRecord, Scenario, Stop, WorkKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

type TestResult = Result<(), Failed>;

fn fail(msg: impl std::fmt::Display) -> Failed {
    Failed::from(msg.to_string())
}

fn h100() -> DeviceSpec {
    DeviceSpec::preset("h100").expect("preset")
}

fn open() -> Result<Gpu, Failed> {
    Gpu::open(0).map_err(fail)
}

/// Kernel records of every class, several shapes and occupancies, 15 us to 2 ms.
fn synthetic_records() -> Vec<OpRecord> {
    let mut v = Vec::new();
    let shapes = [(264u32, 256u32, 4u32), (1056, 128, 8), (66, 512, 2), (2000, 64, 16), (132, 1024, 1), (40, 256, 3)];
    for class in [KernelClass::Compute, KernelClass::Memory, KernelClass::Unknown] {
        for &(grid, block, bps) in &shapes {
            for dur in [15_000u64, 60_000, 250_000, 2_000_000] {
                let mut r = OpRecord::kernel(format!("{class}-{grid}x{block}-{bps}-{dur}"), dur, 0, class);
                r.grid = Some(Dim3::linear(grid));
                r.block = Some(Dim3::linear(block));
                r.blocks_per_sm = Some(bps);
                r.sm_needed = grid.div_ceil(bps);
                v.push(r);
            }
        }
    }
    v
}

fn synthetic_kernels_hit_their_target_durations() -> TestResult {
    let gpu = open()?;
    let mut cal = Calibrator::new(&gpu).map_err(fail)?;
    let device = h100();
    let mut cals = Vec::new();
    for r in synthetic_records() {
        let (_, c) = cal.kernel(&r, &device).map_err(fail)?;
        println!(
            "{:<40} target {:>9} ns measured {:>11.1} ns err {:+6.2}% occupancy {:?}/{:?}",
            c.name,
            c.target_ns,
            c.measured_ns,
            100.0 * c.rel_err,
            c.blocks_per_sm_measured,
            c.blocks_per_sm_record
        );
        cals.push(c);
    }
    let s = FidelitySummary::of(&cals);
    println!("{s:?}");
    if s.occupancy_match != s.occupancy_checked {
        return Err(fail(format!("occupancy matches {}/{}", s.occupancy_match, s.occupancy_checked)));
    }
    if !criterion_met(&s) {
        return Err(fail(format!("{:.1}% within 5%", 100.0 * s.fraction_within_5pct_over_10us)));
    }
    Ok(())
}

fn builtin_traces_meet_the_fidelity_criterion() -> TestResult {
    let gpu = open()?;
    let mut cal = Calibrator::new(&gpu).map_err(fail)?;
    let device = h100();
    let traces = builtin_traces(&device);
    let report = bench::fidelity_sweep(&mut cal, &gpu, &device, &traces, |_, _| {}, true).map_err(fail)?;
    print!("{}", orion_gpu::cli::render_fidelity(&report));
    if !report.criterion_met {
        return Err(fail("the fidelity criterion is not met (see the table)"));
    }
    Ok(())
}

fn the_priority_stream_is_preferred() -> TestResult {
    let gpu = open()?;
    let mut cal = Calibrator::new(&gpu).map_err(fail)?;
    cal.warm_up(200).map_err(fail)?;
    let check = bench::priority_check(&gpu, &mut cal).map_err(fail)?;
    println!("{check:?}");
    if !check.preferred() {
        return Err(fail(format!(
            "high priority waited {:.1} us, equal priority {:.1} us",
            check.hp_high_priority_us, check.hp_equal_priority_us
        )));
    }
    Ok(())
}

fn pair_scenario(policy_duration: Duration) -> Scenario {
    let device = h100();
    let clients = workload_clients("resnet50_bert", None, &device).expect("pair");
    Scenario {
        name: "resnet50_bert".into(),
        clients,
        device,
        device_source: "builtin:h100".into(),
        seed: 1,
        stop: Stop { duration_ns: Some(policy_duration.as_nanos() as u64), requests: None },
        warmup: 2,
        policy: None,
        policy_params: ParamMap::new(),
    }
}

fn a_two_client_orion_run_completes() -> TestResult {
    let gpu = open()?;
    let mut cal = Calibrator::new(&gpu).map_err(fail)?;
    let scenario = pair_scenario(Duration::from_secs(3));
    let opts = ReplayOptions { ideal: true, interrupt: None, verbose: true, given_ideal: None, timeline: None };
    let (result, _) = replay(&gpu, &mut cal, &scenario, "orion", &ParamMap::new(), &opts).map_err(fail)?;
    let r = &result.report;
    println!("{}", orion_gpu::cli::render_report(r));
    if r.backend != "real" || result.interrupted {
        return Err(fail("not a complete real-backend report"));
    }
    for c in &r.clients {
        if c.completed == 0 {
            return Err(fail(format!("client {} completed nothing", c.name)));
        }
    }
    if r.gpu.normalized_throughput.is_none() {
        return Err(fail("no ideal reference attached"));
    }
    let n = r.engine["overhead"]["admit_to_submit_ns"]["n"].as_u64().unwrap_or(0);
    if n == 0 {
        return Err(fail("no overhead samples"));
    }
    Ok(())
}

fn an_interrupted_run_releases_the_gpu_and_reports() -> TestResult {
    let gpu = open()?;
    let (free_before, _) = gpu.mem_info().map_err(fail)?;
    let flag = AtomicBool::new(false);
    let scenario = pair_scenario(Duration::from_secs(60));
    let mut cal = Calibrator::new(&gpu).map_err(fail)?;
    // Calibrate first, so that the interrupt falls in the run itself.
    orion_gpu::replay::prepare(&mut cal, &scenario).map_err(fail)?;
    let t0 = Instant::now();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(4));
            flag.store(true, Ordering::SeqCst);
        });
        let opts =
            ReplayOptions { ideal: true, interrupt: Some(&flag), verbose: true, given_ideal: None, timeline: None };
        replay(&gpu, &mut cal, &scenario, "priority-streams", &ParamMap::new(), &opts).map_err(fail)
    });
    drop(cal);
    let result = result?;
    let elapsed = t0.elapsed();
    let (free_after, _) = gpu.mem_info().map_err(fail)?;
    let r = &result.0.report;
    println!("{}", orion_gpu::cli::render_report(r));
    println!("free before {free_before}, after {free_after}, elapsed {elapsed:?}");
    if !result.0.interrupted || r.engine["interrupted"] != true {
        return Err(fail("the report is not marked interrupted"));
    }
    if elapsed > Duration::from_secs(40) {
        return Err(fail(format!("the interrupt took effect only after {elapsed:?}")));
    }
    if r.clients.iter().all(|c| c.completed == 0) {
        return Err(fail("nothing completed before the interrupt"));
    }
    // Everything the run allocated is released (the calibrator's buffers are gone too).
    if free_after + (64 << 20) < free_before {
        return Err(fail(format!("{} MiB not released", (free_before - free_after) >> 20)));
    }
    Ok(())
}

/// `orion-real replay --timeline` on a short run: the file passes the trace-event check, has
/// one process per client with one stream track, slices of a track in stream order and never
/// overlapping, GPU-event times, and the provenance metadata.
fn a_replay_writes_a_valid_timeline() -> TestResult {
    let path = std::env::temp_dir().join(format!("orion-real-timeline-{}.json", std::process::id()));
    let args = [
        "orion-real",
        "replay",
        "--policy",
        "orion",
        "--trace",
        "resnet50_bert",
        "--duration",
        "1s",
        "--warmup",
        "1",
        "--no-ideal",
        "--timeline",
        path.to_str().ok_or_else(|| fail("temp path is not UTF-8"))?,
        "--window",
        "0.2s..0.8s",
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = orion_gpu::cli::main_with(args, &mut out, &mut err);
    print!("{}", String::from_utf8_lossy(&out));
    eprint!("{}", String::from_utf8_lossy(&err));
    if code != 0 {
        return Err(fail(format!("orion-real replay exited with {code}")));
    }
    let text = std::fs::read_to_string(&path).map_err(fail)?;
    let _ = std::fs::remove_file(&path);
    let v: serde_json::Value = serde_json::from_str(&text).map_err(fail)?;
    let summary = orion_policies::timeline::validate(&v).map_err(fail)?;
    println!("{summary:?}");
    let events = v["traceEvents"].as_array().ok_or_else(|| fail("no traceEvents"))?;
    let procs: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["name"] == "process_name")
        .filter_map(|e| Some((e["pid"].as_u64()?, e["args"]["name"].as_str()?.to_string())))
        .collect();
    if procs.len() != 2 || summary.tracks != 2 {
        return Err(fail(format!("expected 2 client processes with a track each: {procs:?}, {summary:?}")));
    }
    for (pid, name) in &procs {
        let slices: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X" && e["pid"] == *pid).collect();
        if slices.is_empty() {
            return Err(fail(format!("{name}: no slice")));
        }
        for w in slices.windows(2) {
            let f = |e: &serde_json::Value, k: &str| e[k].as_f64().unwrap_or(f64::NAN);
            if f(w[1], "ts") < f(w[0], "ts") + f(w[0], "dur") - 1e-3
                || w[1]["args"]["seq"].as_u64() <= w[0]["args"]["seq"].as_u64()
            {
                return Err(fail(format!("{name}: slices out of stream order: {} then {}", w[0], w[1])));
            }
        }
        for e in &slices {
            let (ts, dur) = (e["ts"].as_f64().unwrap_or(0.0), e["dur"].as_f64().unwrap_or(0.0));
            if ts + dur < 200_000.0 - 1e-3 || ts > 800_000.0 + 1e-3 {
                return Err(fail(format!("{name}: slice outside the window: {e}")));
            }
        }
    }
    let meta = &v["otherData"];
    println!("{meta}");
    if meta["time_source"] != "gpu_events" {
        return Err(fail(format!("times not from GPU events: {}", meta["time_source"])));
    }
    for key in ["tool", "commit", "gpu", "device", "traces", "seed", "policy", "window_s"] {
        if meta.get(key).is_none() {
            return Err(fail(format!("metadata lacks {key}")));
        }
    }
    Ok(())
}

fn the_executor_overhead_is_measured() -> TestResult {
    let gpu = open()?;
    let mut cal = Calibrator::new(&gpu).map_err(fail)?;
    let device = h100();
    let client = workload_clients("resnet50", Some(WorkKind::Inference), &device).map_err(fail)?.remove(0);
    let report = bench::overhead(&gpu, &mut cal, &device, &client, "streams", 50).map_err(fail)?;
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    if report.variants.iter().any(|v| v.overhead.admit_to_submit_ns.n == 0) {
        return Err(fail("no samples"));
    }
    Ok(())
}

type TestFn = fn() -> TestResult;

const TESTS: [(&str, TestFn); 7] = [
    ("synthetic_kernels_hit_their_target_durations", synthetic_kernels_hit_their_target_durations),
    ("builtin_traces_meet_the_fidelity_criterion", builtin_traces_meet_the_fidelity_criterion),
    ("the_priority_stream_is_preferred", the_priority_stream_is_preferred),
    ("a_two_client_orion_run_completes", a_two_client_orion_run_completes),
    ("an_interrupted_run_releases_the_gpu_and_reports", an_interrupted_run_releases_the_gpu_and_reports),
    ("the_executor_overhead_is_measured", the_executor_overhead_is_measured),
    ("a_replay_writes_a_valid_timeline", a_replay_writes_a_valid_timeline),
];

fn main() {
    let mut args = Arguments::from_args();
    // The tests time the GPU: never two at once.
    args.test_threads = Some(1);
    let unavailable = Gpu::open(0).err().map(|e| format!("no CUDA GPU: {e}"));
    let trials = TESTS
        .iter()
        .map(|&(name, f)| {
            let reason = unavailable.clone();
            Trial::ignorable_test(name, move || match reason {
                Some(r) => Ok(Completion::ignored_with(r)),
                None => f().map(|()| Completion::Completed),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
