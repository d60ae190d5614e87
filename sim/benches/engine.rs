//! Simulator speed on one core: simulated events per second (criterion's element throughput)
//! and, printed once per policy, simulated GPU-seconds per wall-second, for the default engine
//! (a client alone on the GPU fast-forwarded) and the event-by-event path.
//!
//! An event is one thing the engine processes in time order: a host event (an arrival, an op
//! issue, a policy wake-up) or a GPU event (an op start, a cohort or transfer completion; in a
//! stretch fast-forwarded without policy calls, one per op: its completion; in one with policy
//! calls (`orion`, `reef`), the events event by event would have processed). Both paths give
//! the same report. `ideal` is the dedicated-GPU reference every run of the command line also
//! simulates.
//!
//! `cargo bench -p orion-sim --bench engine`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orion_policies::ParamMap;
use orion_sim::engine::Recording;
use orion_sim::run::{IdealReference, run_with};
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
        for policy in ["streams", "priority-streams", "reef", "orion", "ideal"] {
            for (path, event_by_event) in [("fast", false), ("event-by-event", true)] {
                let rec = Recording { event_by_event, ..Recording::default() };
                let once = || run_with(&sc, policy, &params, IdealReference::Skip, &rec).unwrap().0;
                let first = once();
                let t = Instant::now();
                once();
                let wall = t.elapsed().as_secs_f64();
                let fast = first.report.engine.get("fast_forwarded_ops").and_then(|v| v.as_u64()).unwrap_or(0);
                eprintln!(
                    "{pair} {policy} {path}: {} events per run, {fast} ops fast-forwarded without policy calls, {} on the lone-stream model, {} requests replayed; {:.0} simulated s per wall s ({:.2} M events/s, one run)",
                    first.events,
                    first.lone_ops,
                    first.replayed_requests,
                    SIMULATED_S as f64 / wall,
                    first.events as f64 / wall / 1e6
                );
                group.throughput(Throughput::Elements(first.events));
                group.bench_with_input(BenchmarkId::new(policy, path), &policy, |b, p| {
                    b.iter(|| run_with(&sc, p, &params, IdealReference::Skip, &rec).unwrap())
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
