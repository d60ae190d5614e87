//! Properties of the simulator under every policy, over random small traces: ops of a client
//! run in order, every admitted request completes (no starvation, no deadlock), and a run is
//! deterministic for its seed.

use orion_policies::{ClientInfo, registry};
use orion_sim::engine::{SimClient, SimInput, SimOutcome, simulate};
use orion_traces::{
    ArrivalProcess, ClientSpec, DeviceSpec, KernelClass, OpKind, OpRecord, Role, Stop, Trace, TraceMeta, WorkKind,
};
use proptest::prelude::*;
use std::sync::Arc;

const POLICIES: [&str; 7] = ["ideal", "temporal", "streams", "mps", "priority-streams", "reef", "orion"];

fn op_strategy() -> impl Strategy<Value = OpRecord> {
    let kind = prop_oneof![
        8 => Just(OpKind::Kernel),
        1 => Just(OpKind::CopyH2D),
        1 => Just(OpKind::CopyD2H),
        1 => Just(OpKind::Memset),
        1 => Just(OpKind::Sync),
        1 => Just(OpKind::Malloc),
    ];
    let class = prop_oneof![Just(KernelClass::Compute), Just(KernelClass::Memory), Just(KernelClass::Unknown)];
    (kind, class, 1u64..300, 1u32..400, 0u64..40).prop_map(|(kind, class, dur_us, sm, gap_us)| {
        let sm_needed = if kind == OpKind::Kernel { sm } else { 0 };
        let duration = if kind == OpKind::Sync { 0 } else { dur_us * 1_000 };
        let mut r = OpRecord::new(kind, kind.as_str(), duration, sm_needed, class);
        r.host_gap_ns = Some(gap_us * 1_000);
        if matches!(kind, OpKind::CopyH2D | OpKind::CopyD2H | OpKind::Memset) {
            r.copy_bytes = Some(dur_us * 10_000);
        }
        r
    })
}

#[derive(Debug, Clone)]
struct Case {
    clients: Vec<(Vec<OpRecord>, u64)>,
    hp_rate: f64,
    policy: &'static str,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let client = (prop::collection::vec(op_strategy(), 1..8), 1u64..5);
    (prop::collection::vec(client, 1..4), 50.0f64..5_000.0, prop::sample::select(POLICIES.to_vec()), any::<u64>())
        .prop_map(|(clients, hp_rate, policy, seed)| Case { clients, hp_rate, policy, seed })
}

fn specs(case: &Case) -> Vec<ClientSpec> {
    case.clients
        .iter()
        .enumerate()
        .map(|(i, (ops, n))| {
            let hp = i == 0;
            ClientSpec {
                name: format!("c{i}"),
                role: if hp { Role::Hp } else { Role::Be },
                kind: if hp { WorkKind::Inference } else { WorkKind::Training },
                trace: Arc::new(Trace::new(TraceMeta { name: format!("t{i}"), ..Default::default() }, ops.clone())),
                first_trace: None,
                arrival: if hp { ArrivalProcess::Poisson { rate: case.hp_rate } } else { ArrivalProcess::ClosedLoop },
                max_requests: Some(*n),
            }
        })
        .collect()
}

fn run(case: &Case, params: &[(&str, serde_json::Value)]) -> SimOutcome {
    let device = DeviceSpec::preset("h100").unwrap();
    let specs = specs(case);
    let infos: Vec<ClientInfo> = specs
        .iter()
        .enumerate()
        .map(|(i, c)| ClientInfo {
            id: i,
            name: c.name.clone(),
            role: c.role,
            kind: c.kind,
            warmup: 1,
            ops_per_request: c.trace.ops.len(),
            standalone_latency_ns: 2_000_000,
            max_sm_needed: c.trace.max_sm_needed(),
            update_start: None,
        })
        .collect();
    let input = SimInput {
        device: &device,
        clients: specs
            .iter()
            .zip(&infos)
            .enumerate()
            .map(|(i, (spec, info))| SimClient { scenario_id: i, spec, info })
            .collect(),
        seed: case.seed,
        warmup: 1,
        // A safety net far beyond what any case needs: reaching it means something starved.
        stop: Stop { duration_ns: Some(3_600_000_000_000), requests: None },
        record_ops: true,
    };
    let params = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let mut policy = registry::build(case.policy, &params).unwrap();
    // `ideal` is a backend-level mode (each client alone); its scheduling here is `streams`-like.
    simulate(&input, policy.as_mut()).unwrap()
}

fn check(case: &Case, out: &SimOutcome) -> Result<(), TestCaseError> {
    // Every request of every client completed, well before the safety net.
    for (i, (_, n)) in case.clients.iter().enumerate() {
        prop_assert_eq!(out.recorders[i].total_completed, *n, "client {} completed all its requests", i);
    }
    prop_assert!(out.end_ns < 3_600_000_000_000, "run ended by itself");
    // Ops of one client: in sequence order, each starting no earlier than its predecessor ended.
    for stream in 0..case.clients.len() {
        let mut spans: Vec<_> = out.ops.iter().filter(|s| s.stream == stream).collect();
        spans.sort_by_key(|s| s.seq);
        for w in spans.windows(2) {
            prop_assert!(
                w[1].start >= w[0].end,
                "stream {}: op {} starts at {} before op {} ends at {}",
                stream,
                w[1].seq,
                w[1].start,
                w[0].seq,
                w[0].end
            );
            prop_assert!(w[1].seq > w[0].seq);
        }
        for s in &spans {
            prop_assert!(s.end >= s.start);
        }
    }
    Ok(())
}

proptest! {
    // 200 cases by default; PROPTEST_CASES overrides (e.g. for a long local search).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_policy_runs_ops_in_order_and_completes_every_request(case in case_strategy()) {
        let out = run(&case, &[]);
        check(&case, &out)?;
    }

    #[test]
    fn simulation_is_deterministic_for_a_seed(case in case_strategy()) {
        let a = run(&case, &[]);
        let b = run(&case, &[]);
        prop_assert_eq!(a.end_ns, b.end_ns);
        prop_assert_eq!(&a.ops, &b.ops);
        for (x, y) in a.recorders.iter().zip(&b.recorders) {
            prop_assert_eq!(&x.latencies_ns, &y.latencies_ns);
        }
    }

    #[test]
    fn reef_with_reset_preemption_still_completes_everything_in_order(case in case_strategy()) {
        let case = Case { policy: "reef", ..case };
        let out = run(&case, &[("reset", serde_json::json!(true)), ("reef_depth", serde_json::json!(2))]);
        check(&case, &out)?;
    }

    #[test]
    fn orion_with_tight_thresholds_still_completes_everything(case in case_strategy()) {
        let case = Case { policy: "orion", ..case };
        let out = run(&case, &[("dur_threshold", serde_json::json!("5us")), ("sm_threshold", serde_json::json!(3))]);
        check(&case, &out)?;
    }
}
