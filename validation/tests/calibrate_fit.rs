//! `orion-validate calibrate fit`: recovers known parameters from results the simulator made
//! with them, and names the file of bad input.

use orion_policies::ParamMap;
use orion_sim::run::{IdealReference, run};
use orion_traces::DeviceSpec;
use orion_traces::config::LoadOptions;
use orion_traces::config::scenario_file::load_scenario_file;
use orion_traces::format::write_trace;
use orion_validation::calibrate::fit::{fit, load_results, param, score, simulate_pairs};
use orion_validation::calibrate::plan::{PlanOptions, write_plan};
use serde_json::json;
use std::path::Path;

/// The device the "real" results are simulated on.
fn truth() -> DeviceSpec {
    let mut d = DeviceSpec::preset("h100").unwrap();
    d.contention.dram_efficiency = 0.6;
    d.contention.colocation_penalty = 0.08;
    // A memory-class kernel filling every SM asks for 6x the peak bandwidth (at unloaded
    // latency): the memory pairs of 132 blocks and more load DRAM near what it sustains.
    d.contention.memory_class_util[1] = 6.0;
    d.launch_latency_ns = 6_000;
    d.kernel_gap_ns = 500;
    d.h2d_bandwidth_gbs = 25.0;
    d
}

/// Writes a plan and, as `run.sh` would on the GPU, reports of every run (simulated on
/// `device`, marked `real`), kernel lists and traces. `keep` selects the benchmarks run.
fn synthetic_results(dir: &Path, device: &DeviceSpec, keep: &dyn Fn(&str) -> bool) {
    let plan_dir = dir.join("plan");
    let plan = write_plan(&plan_dir, &PlanOptions { duration_ns: 40_000_000, ..PlanOptions::default() }).unwrap();
    std::fs::copy(plan_dir.join("plan.json"), dir.join("plan.json")).unwrap();
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    let load = LoadOptions::preset("h100").unwrap();
    for b in plan.benches.iter().filter(|b| keep(&b.name)) {
        let mut s = load_scenario_file(&plan_dir.join(format!("{}.json", b.name)), &load).unwrap();
        s.device = device.clone();
        let mut ideal = None;
        for (i, p) in b.policies.iter().enumerate() {
            let reference = match &ideal {
                Some(r) => IdealReference::Given(r),
                None => IdealReference::Simulate,
            };
            let mut r = run(&s, p, &ParamMap::new(), reference).unwrap().report;
            r.backend = "real".into();
            if i == 0 {
                let mut alone = r.clone();
                for c in &mut alone.clients {
                    let i = c.ideal.unwrap();
                    c.throughput_per_s = i.throughput_per_s;
                    c.latency_ms = i.latency_ms;
                }
                ideal = Some(alone);
            }
            std::fs::write(dir.join(format!("{}-{p}.json", b.name)), serde_json::to_string(&r).unwrap()).unwrap();
        }
        for c in &s.clients {
            write_trace(&dir.join("traces").join(format!("{}.csv", c.trace.meta.name)), &c.trace).unwrap();
        }
        let ops = |c: &orion_traces::ClientSpec| {
            c.trace
                .ops
                .iter()
                .map(|o| {
                    let measured = match o.copy_bytes {
                        Some(bytes) if o.kind == orion_traces::OpKind::CopyH2D => {
                            bytes as f64 / device.h2d_bandwidth_gbs
                        }
                        _ => o.duration_ns as f64,
                    };
                    json!({"kind": o.kind, "name": o.name, "target_ns": o.duration_ns, "measured_ns": measured,
                           "bytes": o.copy_bytes})
                })
                .collect::<Vec<_>>()
        };
        let list = json!({"format": "orion-rs-kernels/1", "scenario": s.name, "clients": s.clients.iter().map(|c| json!({
            "client": c.name, "tables": [{"table": 0, "trace": c.trace.meta.name, "ops": ops(c)}]
        })).collect::<Vec<_>>()});
        std::fs::write(dir.join(format!("{}-kernels.json", b.name)), list.to_string()).unwrap();
    }
}

#[test]
fn the_fit_recovers_the_parameters_the_results_were_made_with() {
    let dir = tempfile::tempdir().unwrap();
    let truth = truth();
    synthetic_results(dir.path(), &truth, &|_| true);
    let start = DeviceSpec::preset("h100").unwrap();
    let results = load_results(dir.path(), &start).unwrap();
    assert_eq!(results.launch.len(), 3);
    assert!(results.pairs.len() >= 30);
    let before = score(&simulate_pairs(&results.pairs, &start).unwrap());
    let mut lines = Vec::new();
    let out = fit(&results, &start, "builtin:h100", 4, &mut |l| lines.push(l)).unwrap();
    let after = score(&out.after);
    eprintln!("before {before:?} after {after:?}\n{}", lines.join("\n"));
    // Many pairs do not contend in the model (disjoint SMs, kernels taking turns), so the
    // perturbation shows in the mean error more than in the median.
    assert!(before.1 > 0.02, "the perturbation must show: {before:?}");
    assert!(after.0 < 0.005 && after.1 < before.1 / 5.0, "before {before:?}, after {after:?}");
    // Launch costs and the H2D bandwidth are recovered.
    assert!((out.device.launch_latency_ns as f64 - 6_000.0).abs() <= 500.0, "{}", out.device.launch_latency_ns);
    assert!((out.device.kernel_gap_ns as f64 - 500.0).abs() <= 200.0, "{}", out.device.kernel_gap_ns);
    assert!((out.device.h2d_bandwidth_gbs - 25.0).abs() < 0.5, "{}", out.device.h2d_bandwidth_gbs);
    // The identifiable contention parameters move toward the truth.
    for name in ["dram_efficiency", "colocation_penalty"] {
        let (t, s, f) =
            (param(&truth.contention, name), param(&start.contention, name), param(&out.device.contention, name));
        assert!((f - t).abs() < (s - t).abs(), "{name}: truth {t}, start {s}, fitted {f}");
    }
    let c = out.device.calibration.as_ref().unwrap();
    assert!(c.slowdown_error_after.unwrap() <= c.slowdown_error_before.unwrap());
    assert!(c.data.as_deref() == Some(dir.path().to_str().unwrap()));
    assert!(out.markdown().contains("| pair-mm-b1056-b1056-1ms | streams | a |"));
    // The fitted file is a valid device file.
    DeviceSpec::from_json_str(&serde_json::to_string(&out.device).unwrap(), orion_traces::Location::file("fitted"))
        .unwrap();
}

#[test]
fn a_missing_folder_or_a_foreign_report_is_a_clear_error() {
    let h100 = DeviceSpec::preset("h100").unwrap();
    let missing = Path::new("/nonexistent/calib-results");
    let e = load_results(missing, &h100).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/calib-results"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    synthetic_results(dir.path(), &h100, &|n| n == "pair-cc-b8-b8-50us");
    assert_eq!(load_results(dir.path(), &h100).unwrap().pairs.len(), 1);
    // A report of a validation scenario dropped into the folder.
    let foreign = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/real-2026-11-24-h100/resnet50_bert-streams.json");
    std::fs::copy(&foreign, dir.path().join("resnet50_bert-streams.json")).unwrap();
    let e = format!("{:#}", load_results(dir.path(), &h100).unwrap_err());
    assert!(e.contains("resnet50_bert-streams.json") && e.contains("not a benchmark"), "{e}");
    std::fs::remove_file(dir.path().join("resnet50_bert-streams.json")).unwrap();
    // A missing trace names the file.
    std::fs::remove_file(dir.path().join("traces/pair-cc-b8-b8-50us-b.csv")).unwrap();
    let e = format!("{:#}", load_results(dir.path(), &h100).unwrap_err());
    assert!(e.contains("pair-cc-b8-b8-50us-b.csv"), "{e}");
    // No plan.json.
    std::fs::remove_file(dir.path().join("plan.json")).unwrap();
    let e = format!("{:#}", load_results(dir.path(), &h100).unwrap_err());
    assert!(e.contains("plan.json"), "{e}");
}
