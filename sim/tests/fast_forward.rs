//! The fast path (a client alone on the GPU fast-forwarded, see `simulate_with`) gives exactly
//! the results of the event-by-event path: every policy, on pairs and seeds, inference and
//! training, request-count and duration stops, warm-up, first-request traces, host syncs and
//! allocations, finite request counts, three clients, REEF's preemption. Policies that skip
//! their calls for a client alone (`streams`, ...) and those still called (`orion`, `reef`,
//! whose reports, engine counters included, are then the same on both paths) are both
//! checked.

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
/// What a run gave: the report without its engine counters, the engine counters, every
/// client's latencies, the ops run on the lone-stream model and the requests replayed whole.
type Results = (serde_json::Value, serde_json::Value, Vec<Vec<u64>>, u64, u64);

fn results(sc: &Scenario, policy: &str, params: &ParamMap, event_by_event: bool) -> Results {
    let rec = Recording { event_by_event, ..Recording::default() };
    let (result, detail) = run_with(sc, policy, params, IdealReference::Simulate, &rec).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&result.report.to_json()).unwrap();
    let engine = json.as_object_mut().unwrap().remove("engine").expect("the report has engine counters");
    let fast = engine["fast_forwarded_ops"].as_u64().unwrap();
    assert!(fast <= result.lone_ops, "ops fast-forwarded without policy calls run on the lone model");
    if event_by_event {
        assert_eq!(result.lone_ops + result.replayed_requests, 0, "the event-by-event path fast-forwards nothing");
    }
    (json, engine, detail.latencies_ns, result.lone_ops, result.replayed_requests)
}

/// Checks both paths give the same report; returns the ops run on the lone-stream model.
fn check(label: &str, sc: &Scenario, policy: &str, params: &ParamMap) -> u64 {
    check_counting(label, sc, policy, params).0
}

/// As [`check`], also returning the requests replayed whole.
fn check_counting(label: &str, sc: &Scenario, policy: &str, params: &ParamMap) -> (u64, u64) {
    let (fast_report, fast_engine, fast_latencies, lone_ops, replayed) = results(sc, policy, params, false);
    let (slow_report, slow_engine, slow_latencies, _, _) = results(sc, policy, params, true);
    assert_eq!(fast_latencies, slow_latencies, "{label}, {policy} {params:?}: latencies");
    assert_eq!(fast_report, slow_report, "{label}, {policy} {params:?}: report");
    if fast_engine["fast_forwarded_ops"] == 0 {
        // The policy was called as usual: even the engine counters are those of the
        // event-by-event path.
        assert_eq!(fast_engine, slow_engine, "{label}, {policy} {params:?}: engine counters");
    }
    (lone_ops, replayed)
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
    // Every policy runs a lone client on the lone-stream model (so the test compares two
    // different paths).
    for policy in registry::names() {
        assert!(fast[policy] > 10_000, "{policy}: {} ops fast-forwarded", fast[policy]);
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
        assert!(check("mobilenetv2_resnet101", &sc, policy, &params) > 1_000, "{policy} {params:?}");
    }
}

#[test]
fn orion_and_reef_with_hp_arrivals_landing_mid_iteration() {
    // HP requests at constant intervals (27/s, 37 ms apart) land at every phase of the BE's
    // iterations; bursts from a list of inter-arrival times stack HP requests up.
    for (name, seed) in [("resnet50_bert", 11), ("mobilenetv2_resnet101", 12)] {
        let mut s = pair(name, 2, seed);
        s.clients[0].arrival = ArrivalProcess::Uniform { rate: 27.0 };
        for policy in ["orion", "reef"] {
            assert!(check(&format!("{name} uniform"), &s, policy, &ParamMap::new()) > 10_000, "{policy}");
        }
        s.clients[0].arrival = ArrivalProcess::Trace { inter_arrival_s: vec![0.0004, 0.0011, 0.093, 0.0007, 0.051] };
        for policy in ["orion", "reef"] {
            assert!(check(&format!("{name} bursts"), &s, policy, &ParamMap::new()) > 10_000, "{policy}");
        }
    }
}

#[test]
fn requests_replayed_whole_give_the_same_results() {
    // Rare HP requests: most BE iterations run alone from their beginning to their end and are
    // replayed, and the HP's arrivals cut some of them short (they are then not replayed but
    // fast-forwarded op by op up to the arrival). The `ideal` reference, each client alone,
    // replays nearly every request. A first-iteration trace, syncs and allocations change
    // what a request depends on.
    let mut total = std::collections::BTreeMap::<&str, u64>::new();
    let mut sc = vec![];
    for (name, seed) in [("resnet50_bert", 21), ("mobilenetv2_resnet101", 22)] {
        let mut s = pair(name, 3, seed);
        s.clients[0].arrival = ArrivalProcess::Poisson { rate: 3.0 };
        sc.push((name.to_string(), s));
    }
    let mut s = pair("resnet50_bert", 2, 23);
    s.clients[0].arrival = ArrivalProcess::Poisson { rate: 4.0 };
    let be = &mut s.clients[1];
    be.first_trace = Some(Arc::new(with_syncs(&be.trace)));
    be.trace = Arc::new(with_syncs(&be.trace));
    sc.push(("syncs".into(), s));
    for (label, s) in &sc {
        for policy in ["streams", "priority-streams", "temporal", "ideal"] {
            *total.entry(policy).or_default() += check_counting(label, s, policy, &ParamMap::new()).1;
        }
    }
    for (policy, n) in total {
        assert!(n > 50, "{policy}: {n} requests replayed");
    }
}
