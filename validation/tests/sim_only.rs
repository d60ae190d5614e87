//! `orion-validate run --sim-only` on the committed real results: the comparison is reproduced
//! by the current simulator (a model change shows up as a reviewed snapshot diff), the traces the
//! simulator uses are checked against those the GPU replayed, and what the model already gets
//! right stays right.

use orion_traces::DeviceSpec;
use orion_validation::{
    CompareOptions, Comparison, METRICS, MetricSummary, Suite, compare_folder, compare_folder_with, scenario_of,
};
use std::path::Path;

const RESULTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/results/real-2026-11-24-h100");

/// The fitted H100 device (`calibrate fit` on the calibration benchmarks only: the scenarios
/// here were never used to fit it).
const FITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/calibration/h100-fitted.json");

fn fitted() -> DeviceSpec {
    DeviceSpec::from_file(Path::new(FITTED)).unwrap()
}

fn compare_with(device: DeviceSpec) -> Comparison {
    let opts = CompareOptions { model_device: Some((device, "validation/calibration/h100-fitted.json".into())) };
    compare_folder_with(Path::new(RESULTS), &opts, &mut |_| {}).unwrap()
}

fn summary(cmp: &Comparison, metric: &str) -> MetricSummary {
    cmp.summary.iter().find(|m| m.metric == metric).unwrap().clone()
}

#[test]
fn committed_real_results_against_the_fitted_simulator() {
    let cmp = compare_with(fitted());
    assert_eq!(cmp.cells.len(), 12, "six policies x two pairs");
    for c in &cmp.cells {
        let names: Vec<&str> = c.metrics.iter().map(|m| m.metric.as_str()).collect();
        let expected: Vec<&str> =
            METRICS.iter().copied().filter(|m| c.policy != "ideal" || *m != "hp_p95_overhead").collect();
        assert_eq!(names, expected, "{}/{}", c.scenario, c.policy);
    }
    // The targets (HP p95 and BE throughput: median <= 5%, worst <= 15%) hold: a model change
    // that breaks them fails here.
    assert!(cmp.targets_met(), "{:?}\n{:?}", summary(&cmp, "hp_p95_ms"), summary(&cmp, "be_throughput_per_s"));
    // The whole table, reviewed on change (`cargo insta review`).
    let md = cmp.markdown().replace(RESULTS, "validation/results/real-2026-11-24-h100");
    insta::assert_snapshot!("sim_vs_real_2026_11_24_h100_fitted", md);
}

#[test]
fn the_submitting_thread_is_what_delays_the_hp_under_streams() {
    // Without orion-real's one submitting thread in the model, the HP's p95 under streams and
    // priority-streams beside BERT's training is half the measured one (the BE's stream fills,
    // a launch to it blocks the thread, and the HP's launches wait behind it).
    let mut d = fitted();
    assert!(d.submitter.is_some(), "the fitted device models the submitting thread");
    d.submitter = None;
    let cmp = compare_with(d);
    let p95 = summary(&cmp, "hp_p95_ms");
    assert!(p95.worst_abs > 0.4 && p95.worst_cell.starts_with("resnet50_bert/"), "{p95:?}");
    // The folder's own device (the preset the traces came from, no submitting thread) misses too.
    let own = compare_folder(Path::new(RESULTS), &mut |_| {}).unwrap();
    assert!(!own.targets_met());
    assert_eq!(own.model_source, None);
}

#[test]
fn a_model_device_of_another_gpu_is_refused() {
    let opts = CompareOptions { model_device: Some((DeviceSpec::preset("a100").unwrap(), "a100".into())) };
    let e = compare_folder_with(Path::new(RESULTS), &opts, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("a100") && e.contains("SMs"), "{e}");
}

#[test]
fn a_trace_other_than_the_replayed_one_is_refused() {
    // Without the folder's device.json the built-in H100 traces are the measured ones, not the
    // analytic ones the GPU replayed: the comparison must refuse, naming the client.
    let dir = tempfile::tempdir().unwrap();
    for f in ["resnet50_bert-orion.json", "resnet50_bert-kernels.json.gz"] {
        std::fs::copy(Path::new(RESULTS).join(f), dir.path().join(f)).unwrap();
    }
    let e = format!("{:#}", compare_folder(dir.path(), &mut |_| {}).unwrap_err());
    assert!(e.contains("resnet50_bert-orion.json") && e.contains("the real run") && e.contains("device.json"), "{e}");

    // With the device but a kernel list whose durations differ: refused, naming the op.
    let (device, source) = orion_validation::results_device(Path::new(RESULTS)).unwrap();
    std::fs::copy(Path::new(RESULTS).join("device.json"), dir.path().join("device.json")).unwrap();
    let report: orion_policies::Report =
        serde_json::from_str(&std::fs::read_to_string(Path::new(RESULTS).join("resnet50_bert-orion.json")).unwrap())
            .unwrap();
    let sc = scenario_of(&report, &device, &source, None).unwrap();
    let name = &sc.clients[0].trace.ops[1].name;
    let list = |changed: Option<usize>| {
        let clients: Vec<serde_json::Value> = sc
            .clients
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let ops: Vec<serde_json::Value> = c
                    .trace
                    .ops
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        let bump = u64::from(ci == 0 && Some(i) == changed);
                        serde_json::json!({"name": o.name, "target_ns": o.duration_ns + bump})
                    })
                    .collect();
                serde_json::json!({"client": c.name, "tables": [{"ops": ops}]})
            })
            .collect();
        serde_json::json!({ "clients": clients })
    };
    let n = orion_validation::check_kernel_list(&sc, &list(None), Path::new("k.json")).unwrap();
    assert_eq!(n, sc.clients.iter().map(|c| c.trace.ops.len()).sum::<usize>());
    let e = orion_validation::check_kernel_list(&sc, &list(Some(1)), Path::new("k.json")).unwrap_err().to_string();
    assert!(e.contains("op 1") && e.contains(name.as_str()), "{e}");
    // A client missing from the list, an op without its target: refused.
    let mut partial = list(None);
    partial["clients"].as_array_mut().unwrap().pop();
    let e = orion_validation::check_kernel_list(&sc, &partial, Path::new("k.json")).unwrap_err().to_string();
    assert!(e.contains("is not listed"), "{e}");
    let mut no_target = list(None);
    no_target["clients"][0]["tables"][0]["ops"][3].as_object_mut().unwrap().remove("target_ns");
    let e = orion_validation::check_kernel_list(&sc, &no_target, Path::new("k.json")).unwrap_err().to_string();
    assert!(e.contains("op 3") && e.contains("target_ns"), "{e}");
}

#[test]
fn incomplete_folders_and_interrupted_runs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["resnet50_bert-orion.json", "device.json"] {
        std::fs::copy(Path::new(RESULTS).join(f), dir.path().join(f)).unwrap();
    }
    // No kernel list: nothing proves the traces are the replayed ones.
    let e = format!("{:#}", compare_folder(dir.path(), &mut |_| {}).unwrap_err());
    assert!(e.contains("resnet50_bert-kernels.json"), "{e}");
    std::fs::copy(
        Path::new(RESULTS).join("resnet50_bert-kernels.json.gz"),
        dir.path().join("resnet50_bert-kernels.json.gz"),
    )
    .unwrap();
    assert_eq!(compare_folder(dir.path(), &mut |_| {}).unwrap().cells.len(), 1);
    // An interrupted run.
    let path = dir.path().join("resnet50_bert-orion.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["engine"]["interrupted"] = serde_json::json!(true);
    std::fs::write(&path, v.to_string()).unwrap();
    let e = format!("{:#}", compare_folder(dir.path(), &mut |_| {}).unwrap_err());
    assert!(e.contains("resnet50_bert-orion.json") && e.contains("interrupted"), "{e}");
}

#[test]
fn a_folder_without_real_reports_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.json"), "{\"format\": \"something-else\"}").unwrap();
    let e = compare_folder(dir.path(), &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("no report of a real run"), "{e}");
    std::fs::write(dir.path().join("bad.json"), "{not json").unwrap();
    let e = format!("{:#}", compare_folder(dir.path(), &mut |_| {}).unwrap_err());
    assert!(e.contains("bad.json") && e.contains("not JSON"), "{e}");
}

#[test]
fn traces_written_by_the_real_run_are_the_ones_simulated() {
    // A folder without device.json but with the replayed traces in traces/: those are used (the
    // built-in H100 traces are the measured ones, which the op-by-op check would refuse).
    let (device, source) = orion_validation::results_device(Path::new(RESULTS)).unwrap();
    let text = std::fs::read_to_string(Path::new(RESULTS).join("resnet50_bert-orion.json")).unwrap();
    let report: orion_policies::Report = serde_json::from_str(&text).unwrap();
    let sc = scenario_of(&report, &device, &source, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    for c in &sc.clients {
        let path = dir.path().join("traces").join(format!("{}.csv", c.trace.meta.name));
        orion_traces::format::write_trace(&path, &c.trace).unwrap();
    }
    for f in ["resnet50_bert-orion.json", "resnet50_bert-kernels.json.gz"] {
        std::fs::copy(Path::new(RESULTS).join(f), dir.path().join(f)).unwrap();
    }
    let cmp = compare_folder(dir.path(), &mut |_| {}).unwrap();
    assert_eq!(cmp.cells.len(), 1);
    assert_eq!(cmp.device_source, "builtin:h100");
}

const INTERPOSED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/results/interpose-2026-11-25-h100-v2/fig7");

#[test]
fn interposed_pytorch_runs_are_compared_with_their_repeats_and_the_interposers_parameters() {
    let opts = CompareOptions { model_device: Some((fitted(), "fitted".into())) };
    let suite = Suite::compare(&[RESULTS.into(), INTERPOSED.into()], &opts, &mut |_| {}).unwrap();
    let [replay, interposed] = &suite.parts[..] else { panic!("two parts") };
    // fig7's ResNet50-HP row: five BE models x seven policies, real PyTorch kernels (no
    // replayed kernel list to check).
    assert_eq!(interposed.cells.len(), 35);
    assert_eq!(suite.summary.iter().find(|m| m.metric == "hp_p95_ms").unwrap().cells, 47);
    // The policy ran inside the interposer: its parameters as it resolved them.
    let orion = interposed.cells.iter().find(|c| c.policy == "orion").unwrap();
    assert_eq!(orion.real_params["dur_threshold_us"], 179.06);
    assert_eq!(orion.real_params["sm_threshold"], 132);
    // The five `ideal` cells ran the same HP alone: the real GPU's run-to-run spread.
    let sp = interposed.spread();
    assert_eq!(sp.len(), 1);
    assert_eq!(sp[0].runs, 5);
    assert!(sp[0].real_p95_ms[0] < sp[0].real_p95_ms[1] && sp[0].real_p95_ms[1] < sp[0].real_p95_ms[2]);
    assert!(replay.spread().is_empty(), "the two replay pairs have different HPs");
    let md = suite.markdown();
    assert!(md.contains("All 47 cells") && md.contains("Run-to-run spread"), "{md}");
}
