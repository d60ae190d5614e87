//! Timelines in the Chrome trace-event format: the backend-neutral part (spans, counters, the
//! writer, [`validate`], [`Window`], [`report_metadata`]) lives in
//! [`orion_policies::timeline`] and is re-exported here, so that the real backend writes the same
//! format; [`from_sim_run`] turns a simulated run into a [`Timeline`].

pub use orion_policies::timeline::{
    COUNTER_PROCESS, CounterSample, Span, Timeline, TraceSummary, Window, client_names, op_span, report_metadata, us,
    validate,
};

use crate::run::RunDetail;
use orion_policies::Report;
use orion_traces::Scenario;
use serde_json::json;
use std::collections::BTreeMap;

/// A simulated run as a timeline: one process per client (`NAME (hp)`), one track (its stream)
/// with one slice per op that ran on the GPU (kernels, copies, memsets) with its profile and
/// timings in `args`; and, when the run sampled it, SM occupancy and DRAM bandwidth per client
/// as counters. Only what overlaps `window` is kept.
pub fn from_sim_run(scenario: &Scenario, report: &Report, detail: &RunDetail, window: Window) -> Timeline {
    let names = client_names(scenario);
    let mut metadata = report_metadata(report);
    if detail.dedicated {
        metadata.insert("note".into(), json!("ideal: each client ran alone on its own GPU"));
    }
    window.note_in(&mut metadata);
    let mut spans = Vec::new();
    for (span, info) in &detail.ops {
        if !window.overlaps(span.start, span.end) {
            continue;
        }
        let client = &scenario.clients[span.stream];
        let Some(mut slice) =
            op_span(client, &names[span.stream], info.profile, (span.start, span.end), span.seq, info.request)
        else {
            continue;
        };
        slice.args.insert("issued_us".into(), json!(us(info.issued_at)));
        slice.args.insert("submitted_us".into(), json!(us(info.submitted_at)));
        spans.push(slice);
    }
    let mut counters = Vec::new();
    if let Some(u) = &detail.utilization {
        let bw = scenario.device.dram_bandwidth_gbs;
        for i in 0..u.len() {
            let t = u.bucket_start(i);
            if !window.overlaps(t, t + u.bucket_ns) {
                continue;
            }
            let series = |v: &[Vec<f64>], scale: f64| -> BTreeMap<String, f64> {
                names.iter().zip(v).map(|(n, s)| (n.clone(), orion_policies::report::round6(s[i] * scale))).collect()
            };
            counters.push(CounterSample { name: "SMs busy".into(), ts_ns: t, values: series(&u.sms, 1.0) });
            counters.push(CounterSample { name: "DRAM GB/s".into(), ts_ns: t, values: series(&u.dram, bw) });
        }
    }
    Timeline { metadata, clients: names, spans, counters }
}
