//! The fast path (a client alone on the GPU fast-forwarded, see `simulate_with`) gives exactly
//! the results of the event-by-event path: every policy, on pairs and seeds, inference and
//! training, request-count and duration stops, warm-up, first-request traces, host syncs and
//! allocations, finite request counts, three clients, REEF's preemption.

use orion_policies::{ParamMap, registry};
use orion_sim::engine::Recording;
use orion_sim::run::{IdealReference, run_with};
use orion_traces::builtin::{inference_client, training_client, workload_scenario};
use orion_traces::{ArrivalProcess, DeviceSpec, Model, OpKind, OpRecord, Role, Scenario, Stop, Trace};
use std::sync::Arc;

fn h100() -> DeviceSpec {
    DeviceSpec::preset("h100").unwrap()
}

fn pair(name: &str, seconds: u64, seed: u64) -> Scenario {
    let mut s = workload_scenario(name, None, h100(), "builtin:h100".into()).unwrap();
    s.stop = Stop { duration_ns: Some(seconds * 1_000_000_000), requests: None };
    s.seed = seed;
    s
}

/// `trace` with a host sync after its first third and an allocation and a free around its
/// middle, and every op's host gap set.
fn with_syncs(trace: &Trace) -> Trace {
    let mut t = trace.clone();
    let n = t.ops.len();
    t.ops.insert(n / 3, OpRecord::new(OpKind::Sync, "sync", 0, 0, Default::default()));
    t.ops.insert(n / 2, OpRecord::new(OpKind::Malloc, "malloc", 3_000, 0, Default::default()));
    t.ops.insert(n / 2 + 5, OpRecord::new(OpKind::Free, "free", 2_000, 0, Default::default()));
    t.ops.push(OpRecord::new(OpKind::Sync, "sync", 0, 0, Default::default()));
    for (i, op) in t.ops.iter_mut().enumerate() {
        op.host_gap_ns = Some(op.host_gap().max((i as u64 % 7) * 500));
    }
    t
}

/// Scenarios covering what the fast path must get right.
fn scenarios() -> Vec<(String, Scenario)> {
    let d = h100();
    let mut out = Vec::new();
    for (name, seed) in [("resnet50_bert", 1), ("mobilenetv2_resnet101", 2), ("resnet101_transformer", 3)] {
        out.push((format!("{name} seed {seed}"), pair(name, 2, seed)));
    }
    // Inference + inference: each runs alone between the other's requests.
    let mut s = pair("resnet50_bert", 2, 4);
    s.clients = vec![
        inference_client(Model::ResNet50, Role::Hp, ArrivalProcess::Poisson { rate: 40.0 }, &d),
        inference_client(Model::MobileNetV2, Role::Be, ArrivalProcess::Poisson { rate: 60.0 }, &d),
    ];
    out.push(("inference+inference".into(), s.clone()));
    // The same with a closed-loop BE inference client.
    s.clients[1].arrival = ArrivalProcess::ClosedLoop;
    out.push(("inference+closed-loop inference".into(), s));
    // A request-count stop (the HP client's), no warm-up.
    let mut s = pair("resnet50_bert", 2, 5);
    s.stop = Stop { duration_ns: None, requests: Some(25) };
    s.warmup = 0;
    out.push(("request stop".into(), s));
    // Both stops, three warm-up requests.
    let mut s = pair("mobilenetv2_resnet101", 2, 6);
    s.stop = Stop { duration_ns: Some(1_500_000_000), requests: Some(12) };
    s.warmup = 3;
    out.push(("both stops".into(), s));
    // A first-iteration trace, syncs, allocations, a finite number of iterations.
    let mut s = pair("resnet50_bert", 2, 7);
    let be = &mut s.clients[1];
    let mut first = with_syncs(&be.trace);
    for op in &mut first.ops {
        op.duration_ns = op.duration_ns * 3 / 2;
    }
    be.first_trace = Some(Arc::new(first));
    be.trace = Arc::new(with_syncs(&be.trace));
    be.max_requests = Some(20);
    out.push(("first trace, syncs, finite BE".into(), s));
    // Three clients: an HP and two BE training jobs.
    let mut s = pair("resnet50_bert", 1, 8);
    s.clients.push(training_client(Model::MobileNetV2, Role::Be, &d));
    out.push(("three clients".into(), s));
    out
}

/// The report without its engine counters, and every client's latencies.
fn results(
    sc: &Scenario,
    policy: &str,
    params: &ParamMap,
    event_by_event: bool,
) -> (serde_json::Value, Vec<Vec<u64>>, u64) {
    let rec = Recording { event_by_event, ..Recording::default() };
    let (result, detail) = run_with(sc, policy, params, IdealReference::Simulate, &rec).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&result.report.to_json()).unwrap();
    let engine = json.as_object_mut().unwrap().remove("engine").expect("the report has engine counters");
    let fast = engine["fast_forwarded_ops"].as_u64().unwrap();
    if event_by_event {
        assert_eq!(fast, 0, "the event-by-event path fast-forwards nothing");
    }
    (json, detail.latencies_ns, fast)
}

fn check(label: &str, sc: &Scenario, policy: &str, params: &ParamMap) -> u64 {
    let (fast_report, fast_latencies, fast_ops) = results(sc, policy, params, false);
    let (slow_report, slow_latencies, _) = results(sc, policy, params, true);
    assert_eq!(fast_latencies, slow_latencies, "{label}, {policy} {params:?}: latencies");
    assert_eq!(fast_report, slow_report, "{label}, {policy} {params:?}: report");
    fast_ops
}

#[test]
fn every_policy_gives_the_same_results_fast_forwarded_or_event_by_event() {
    let mut fast = std::collections::BTreeMap::<&str, u64>::new();
    for (label, sc) in scenarios() {
        for policy in registry::names() {
            if policy == "ideal" && sc.stop.duration_ns.is_none() {
                // `ideal` runs each client alone, the BE clients with no stop of their own when
                // the run stops only on the HP's request count: it never ends (either path).
                continue;
            }
            *fast.entry(policy).or_default() += check(&label, &sc, policy, &ParamMap::new());
        }
    }
    // The policies that submit a lone client's ops at once are fast-forwarded (so the test
    // compares two different paths); the others are not.
    for policy in ["streams", "mps", "priority-streams", "temporal", "ideal"] {
        assert!(fast[policy] > 10_000, "{policy}: {} ops fast-forwarded", fast[policy]);
    }
    for policy in ["orion", "reef"] {
        assert_eq!(fast[policy], 0, "{policy}");
    }
}

#[test]
fn policy_parameters_and_preemption_give_the_same_results() {
    let sc = pair("mobilenetv2_resnet101", 2, 9);
    let param = |pairs: &[(&str, &str)]| -> ParamMap {
        pairs.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect()
    };
    for (policy, params) in [
        ("reef", param(&[("reset", "true")])),
        ("reef", param(&[("padding", "orion-artifact"), ("reef_depth", "4")])),
        ("orion", param(&[("dur_threshold", "40us"), ("sm_threshold", "60")])),
        ("orion", param(&[("round", "3us")])),
    ] {
        check("mobilenetv2_resnet101", &sc, policy, &params);
    }
}
