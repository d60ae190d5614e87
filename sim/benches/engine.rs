//! Simulator speed on one core: simulated events per second (criterion's element throughput)
//! and, printed once per policy, simulated GPU-seconds per wall-second.
//!
//! `cargo bench -p orion-sim --bench engine`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orion_policies::ParamMap;
use orion_sim::{IdealReference, run};
use orion_traces::builtin::workload_scenario;
use orion_traces::{DeviceSpec, Scenario, Stop};
use std::time::Instant;

const SIMULATED_S: u64 = 10;

fn scenario(pair: &str) -> Scenario {
    let mut s = workload_scenario(pair, None, DeviceSpec::preset("h100").unwrap(), "builtin:h100".into()).unwrap();
    s.stop = Stop { duration_ns: Some(SIMULATED_S * 1_000_000_000), requests: None };
    s
}

fn bench(c: &mut Criterion) {
    let params = ParamMap::new();
    for pair in ["resnet50_bert", "mobilenetv2_resnet101"] {
        let sc = scenario(pair);
        let mut group = c.benchmark_group(format!("{pair}/{SIMULATED_S}s"));
        group.sample_size(10);
        for policy in ["streams", "priority-streams", "reef", "orion"] {
            let first = run(&sc, policy, &params, IdealReference::Skip).unwrap();
            let t = Instant::now();
            run(&sc, policy, &params, IdealReference::Skip).unwrap();
            let wall = t.elapsed().as_secs_f64();
            eprintln!(
                "{pair} {policy}: {} events per run; {:.0} simulated s per wall s ({:.2} M events/s, one run)",
                first.events,
                SIMULATED_S as f64 / wall,
                first.events as f64 / wall / 1e6
            );
            group.throughput(Throughput::Elements(first.events));
            group.bench_with_input(BenchmarkId::from_parameter(policy), &policy, |b, p| {
                b.iter(|| run(&sc, p, &params, IdealReference::Skip).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
