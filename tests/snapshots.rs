//! Snapshots of what the simulator reports, so that a policy or model change shows up as a
//! reviewed diff (`cargo insta review`): the JSON report of every policy on two built-in pairs,
//! and the tables of both experiments.

use orion_policies::{ParamMap, registry};
use orion_sim::experiment::{Experiment, ExperimentOptions, run_experiment};
use orion_sim::{IdealReference, run};
use orion_traces::builtin::{workload_clients, workload_scenario};
use orion_traces::{BuiltinTraces, DeviceSpec, Scenario, Stop};

/// The H100 preset pinned to the analytic traces, so that these snapshots keep pinning the
/// simulator and policies, not the measured traces (those have their own snapshots below).
fn analytic_h100() -> DeviceSpec {
    let mut device = DeviceSpec::preset("h100").unwrap();
    device.builtin_traces = BuiltinTraces::Analytic;
    device
}

fn scenario(pair: &str) -> Scenario {
    let mut s = workload_scenario(pair, None, analytic_h100(), "builtin:h100".into()).unwrap();
    s.stop = Stop { duration_ns: Some(5_000_000_000), requests: None };
    s
}

#[test]
fn json_report_of_every_policy_on_two_pairs() {
    for pair in ["resnet50_bert", "mobilenetv2_resnet101"] {
        let sc = scenario(pair);
        for policy in registry::names() {
            let report = run(&sc, policy, &ParamMap::new(), IdealReference::Simulate).unwrap().report;
            insta::assert_snapshot!(format!("report_{pair}_{policy}"), report.to_json());
        }
    }
}

fn experiment(exp: Experiment) -> String {
    let mut opts = ExperimentOptions::new(analytic_h100(), "builtin:h100".into());
    opts.duration_ns = 3_000_000_000;
    run_experiment(exp, &opts).unwrap().table()
}

#[test]
fn fig7_table() {
    insta::assert_snapshot!("fig7_h100_3s", experiment(Experiment::Fig7));
}

#[test]
fn fig10_table() {
    insta::assert_snapshot!("fig10_h100_3s", experiment(Experiment::Fig10));
}

#[test]
fn json_report_with_measured_h100_traces() {
    let mut sc = scenario("resnet50_bert");
    sc.device = DeviceSpec::preset("h100").unwrap();
    sc.clients = workload_clients("resnet50_bert", None, &sc.device).unwrap();
    assert_eq!(sc.clients[0].trace.meta.source.as_str(), "measured");
    for policy in ["ideal", "orion"] {
        let report = run(&sc, policy, &ParamMap::new(), IdealReference::Simulate).unwrap().report;
        insta::assert_snapshot!(format!("report_resnet50_bert_{policy}_measured"), report.to_json());
    }
}
