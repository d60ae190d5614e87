//! On every built-in pair, Orion's HP p95 is no worse than uncontrolled sharing (`streams`).
//!
//! Both runs see the same HP arrivals (seeded per client), so the comparison is paired. On the
//! H100 preset the analytic ResNet50/MobileNetV2 requests are launch-bound and every spatial
//! policy stays close to ideal: there the p95s of two policies differ by how BE kernels happen
//! to align with the tail requests, which measured up to 0.7% either way over seeds 1-3 at
//! 120 s. The assertion allows 1% for that noise; on the V100 preset (GPU-bound HP, the paper's
//! setting) streams is 2-5x worse than Orion, so a broken rule fails here by a wide margin.

use orion_policies::ParamMap;
use orion_sim::{IdealReference, run};
use orion_traces::builtin::pair_clients;
use orion_traces::scenario::DEFAULT_WARMUP;
use orion_traces::{DeviceSpec, Model, Pair, Scenario, Stop};

const NOISE: f64 = 0.01;

fn hp_p95(device: &DeviceSpec, pair: Pair, policy: &str) -> f64 {
    let sc = Scenario {
        name: pair.name(),
        clients: pair_clients(pair, device),
        device: device.clone(),
        device_source: format!("builtin:{}", device.name),
        seed: 1,
        stop: Stop { duration_ns: Some(20_000_000_000), requests: None },
        warmup: DEFAULT_WARMUP,
        policy: None,
        policy_params: ParamMap::new(),
    };
    let r = run(&sc, policy, &ParamMap::new(), IdealReference::Skip).unwrap().report;
    r.hp().unwrap().latency_ms.unwrap().p95
}

fn check(device: &str) {
    let d = DeviceSpec::preset(device).unwrap();
    let mut worse = Vec::new();
    for hp in Model::ALL {
        for be in Model::ALL {
            let pair = Pair { hp, be };
            let (orion, streams) = (hp_p95(&d, pair, "orion"), hp_p95(&d, pair, "streams"));
            if orion > streams * (1.0 + NOISE) {
                worse.push(format!("{}: orion {orion:.3} ms > streams {streams:.3} ms", pair.name()));
            }
        }
    }
    assert!(worse.is_empty(), "{device}: Orion's HP p95 is worse than streams on:\n{}", worse.join("\n"));
}

#[test]
fn orion_hp_p95_is_no_worse_than_streams_on_every_pair_h100() {
    check("h100");
}

#[test]
fn orion_hp_p95_is_no_worse_than_streams_on_every_pair_v100() {
    check("v100");
}
