//! `orion-validate calibrate plan`: the scenarios it writes load and run in the simulator.

use orion_policies::ParamMap;
use orion_sim::run::{IdealReference, run};
use orion_traces::config::LoadOptions;
use orion_traces::config::scenario_file::load_scenario_file;
use orion_validation::calibrate::plan::{BenchKind, PlanOptions, write_plan};

#[test]
fn every_planned_scenario_loads_and_the_runs_list_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PlanOptions { duration_ns: 20_000_000, ..PlanOptions::default() };
    let plan = write_plan(dir.path(), &opts).unwrap();
    let load = LoadOptions::preset("h100").unwrap();
    let runs = std::fs::read_to_string(dir.path().join("runs.tsv")).unwrap();
    assert!(plan.estimated_gpu_s > 0.0 && plan.estimated_gpu_s < 6.0 * 60.0, "{}", plan.estimated_gpu_s);
    for b in &plan.benches {
        let s = load_scenario_file(&dir.path().join(format!("{}.json", b.name)), &load).unwrap();
        assert_eq!(s.name, b.name);
        assert_eq!(s.clients.len(), b.clients.len());
        for (c, bc) in s.clients.iter().zip(&b.clients) {
            assert_eq!(c.trace.meta.name, bc.trace);
            assert_eq!(c.trace.ops.len(), bc.ops);
            for op in &c.trace.ops {
                op.validate().unwrap();
                if b.kind == BenchKind::Pair {
                    assert_eq!(op.blocks(), bc.blocks.map(u64::from));
                }
            }
        }
        for p in &b.policies {
            assert!(runs.lines().any(|l| l.starts_with(&format!("{}\t{p}\t", b.name))), "{} {p}", b.name);
        }
    }
    assert_eq!(plan.benches.iter().filter(|b| b.kind == BenchKind::Launch).count(), 3);
    assert!(plan.benches.iter().any(|b| b.kind == BenchKind::Copy));
    let script = std::fs::read_to_string(dir.path().join("run.sh")).unwrap();
    assert!(script.contains("orion-real\" replay") && script.contains("END"));
}

#[test]
fn a_planned_pair_runs_in_the_simulator_and_contends() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PlanOptions { duration_ns: 50_000_000, ..PlanOptions::default() };
    write_plan(dir.path(), &opts).unwrap();
    let load = LoadOptions::preset("h100").unwrap();
    let s = load_scenario_file(&dir.path().join("pair-cc-b1056-b1056-50us.json"), &load).unwrap();
    let r = run(&s, "streams", &ParamMap::new(), IdealReference::Simulate).unwrap().report;
    for c in &r.clients {
        let shared = c.latency_ms.unwrap().mean;
        let alone = c.ideal.unwrap().latency_ms.unwrap().mean;
        // Two compute kernels of two full waves each take turns on the SMs.
        assert!(shared / alone > 1.2, "{}: {shared} vs {alone}", c.name);
    }
}
