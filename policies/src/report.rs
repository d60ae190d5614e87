//! The report of a run: the same JSON shape from the simulator and the real backend, so the two
//! can be diffed field by field.

use crate::policy::Policy;
use crate::state::RequestDone;
use orion_traces::{ClientSpec, Role, Scenario, WorkKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Version of the report format.
pub const REPORT_FORMAT: &str = "orion-rs-report/1";

/// The whole report of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Format identifier.
    pub format: String,
    /// Tool version (`orion-rs x.y.z`).
    pub tool: String,
    /// `sim` or `real`.
    pub backend: String,
    /// Scenario name.
    pub scenario: String,
    /// Policy and its resolved parameters.
    pub policy: PolicyReport,
    /// Device.
    pub device: DeviceReport,
    /// Seed of every random choice.
    pub seed: u64,
    /// Warm-up requests per client excluded from statistics.
    pub warmup: u32,
    /// Length of the run (simulated or wall time), seconds.
    pub duration_s: f64,
    /// Per client.
    pub clients: Vec<ClientReport>,
    /// Whole GPU.
    pub gpu: GpuReport,
    /// Backend-specific facts (simulated events; real-backend overheads).
    pub engine: BTreeMap<String, Value>,
}

/// Policy section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Policy name.
    pub name: String,
    /// Resolved parameters (defaults included).
    pub params: BTreeMap<String, Value>,
    /// Policy-specific counters.
    pub counters: BTreeMap<String, u64>,
}

/// Device section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Short name.
    pub name: String,
    /// Full name.
    pub full_name: String,
    /// Where the description came from (`builtin:h100` or a path).
    pub source: String,
    /// SMs.
    pub sm_count: u32,
}

/// Trace provenance of a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceReport {
    /// Trace name.
    pub name: String,
    /// `analytic`, `measured` or `file`.
    pub source: String,
    /// Ops per request (iteration).
    pub ops: usize,
    /// Kernels per request (iteration).
    pub kernels: usize,
}

/// Latency statistics, milliseconds. Percentiles are nearest-rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// The ideal (dedicated-GPU) reference of a client.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IdealReference {
    /// Throughput alone, per second.
    pub throughput_per_s: f64,
    /// Latency alone (inference), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyStats>,
}

/// Overhead against the ideal reference: policy's percentile / ideal's - 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// At the 95th percentile.
    pub p95: f64,
    /// At the 99th percentile.
    pub p99: f64,
}

/// One client's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientReport {
    /// Index in the scenario.
    pub id: usize,
    /// Name.
    pub name: String,
    /// HP or BE.
    pub role: Role,
    /// Inference or training.
    pub kind: WorkKind,
    /// Trace used.
    pub trace: TraceReport,
    /// Arrival process.
    pub arrival: String,
    /// Measured requests (iterations) completed, warm-up excluded.
    pub completed: u64,
    /// Measured requests (iterations) per second.
    pub throughput_per_s: f64,
    /// Request latency (scheduled arrival to completion), ms; inference only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyStats>,
    /// Mean iteration time, ms; training only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_iteration_ms: Option<f64>,
    /// The client alone on a dedicated GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal: Option<IdealReference>,
    /// Latency overhead against the ideal (HP client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_vs_ideal: Option<Overhead>,
}

/// Whole-GPU results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReport {
    /// Sum over clients of throughput / ideal throughput.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalized_throughput: Option<f64>,
    /// Time-averaged fraction of SMs holding at least one block.
    pub sm_utilization: f64,
}

/// Rounds to 6 decimals so reports stay readable and stable.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Median of samples (the mean of the two middle ones for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl LatencyStats {
    /// Statistics of latencies in ns (`None` when empty).
    pub fn from_ns(values: &[u64]) -> Option<LatencyStats> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let ms = |ns: u64| round6(ns as f64 / 1e6);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        Some(LatencyStats {
            mean: round6(mean / 1e6),
            p50: ms(percentile(&v, 50.0)),
            p95: ms(percentile(&v, 95.0)),
            p99: ms(percentile(&v, 99.0)),
            max: ms(*v.last().unwrap()),
        })
    }
}

/// Collects per-request results of one client during a run.
#[derive(Debug, Clone, Default)]
pub struct ClientRecorder {
    /// Latencies of measured (non-warm-up) requests, ns.
    pub latencies_ns: Vec<u64>,
    /// When the last warm-up request completed (start of the measured window), ns.
    pub measured_since: Option<u64>,
    /// All requests completed, warm-up included.
    pub total_completed: u64,
}

impl ClientRecorder {
    /// Records a completed request.
    pub fn record(&mut self, done: &RequestDone, warmup: u32) {
        self.total_completed += 1;
        if done.warmup {
            self.measured_since = Some(done.completed_at);
        } else {
            if self.measured_since.is_none() && warmup == 0 {
                self.measured_since = Some(0);
            }
            self.latencies_ns.push(done.latency_ns());
        }
    }

    /// Measured requests.
    pub fn completed(&self) -> u64 {
        self.latencies_ns.len() as u64
    }

    /// Measured requests per second over the window from the end of warm-up to `end_ns`.
    pub fn throughput(&self, end_ns: u64) -> f64 {
        match self.measured_since {
            Some(since) if end_ns > since => self.completed() as f64 / ((end_ns - since) as f64 / 1e9),
            _ => 0.0,
        }
    }
}

/// One client's section of a report, from what its recorder collected up to `end_ns`.
pub fn client_report(id: usize, c: &ClientSpec, rec: &ClientRecorder, end_ns: u64) -> ClientReport {
    let (latency_ms, mean_iteration_ms) = match c.kind {
        WorkKind::Inference => (LatencyStats::from_ns(&rec.latencies_ns), None),
        WorkKind::Training => (None, LatencyStats::from_ns(&rec.latencies_ns).map(|l| l.mean)),
    };
    ClientReport {
        id,
        name: c.name.clone(),
        role: c.role,
        kind: c.kind,
        trace: TraceReport {
            name: c.trace.meta.name.clone(),
            source: c.trace.meta.source.to_string(),
            ops: c.trace.ops.len(),
            kernels: c.trace.kernel_count(),
        },
        arrival: c.arrival.to_string(),
        completed: rec.completed(),
        throughput_per_s: round6(rec.throughput(end_ns)),
        latency_ms,
        mean_iteration_ms,
        ideal: None,
        overhead_vs_ideal: None,
    }
}

impl Report {
    /// A policy that ran inside orion-rs's interposer was set up there, with defaults derived
    /// from the clients' profiles: takes its parameters and counters from what the interposer
    /// reported (`engine.interposer.schedule.params` and `.counters`) instead of those of the
    /// front end's copy, which was never set up. Reports of other runs are left as they are.
    pub fn adopt_interposer_policy(&mut self) {
        let Some(sch) = self.engine.get("interposer").and_then(|i| i.get("schedule")) else { return };
        let params = sch.get("params").and_then(Value::as_object).map(|p| p.clone().into_iter().collect());
        let counters = sch
            .get("counters")
            .and_then(Value::as_object)
            .map(|c| c.iter().filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n))).collect());
        if let Some(p) = params {
            self.policy.params = p;
        }
        if let Some(c) = counters {
            self.policy.counters = c;
        }
    }

    /// A report of `scenario` under `policy` on `backend` (`sim` or `real`) with the client
    /// sections given, the run `duration_ns` long and SMs busy `sm_utilization` of the time;
    /// the ideal reference is attached later.
    pub fn new(
        scenario: &Scenario,
        policy: &dyn Policy,
        backend: &str,
        clients: Vec<ClientReport>,
        duration_ns: u64,
        sm_utilization: f64,
        engine: BTreeMap<String, Value>,
    ) -> Report {
        Report {
            format: REPORT_FORMAT.to_string(),
            tool: format!("orion-rs {}", env!("CARGO_PKG_VERSION")),
            backend: backend.to_string(),
            scenario: scenario.name.clone(),
            policy: PolicyReport {
                name: policy.name().to_string(),
                params: policy.params(),
                counters: policy.counters(),
            },
            device: DeviceReport {
                name: scenario.device.name.clone(),
                full_name: scenario.device.full_name.clone(),
                source: scenario.device_source.clone(),
                sm_count: scenario.device.sm_count,
            },
            seed: scenario.seed,
            warmup: scenario.warmup,
            duration_s: round6(duration_ns as f64 / 1e9),
            clients,
            gpu: GpuReport { normalized_throughput: None, sm_utilization: round6(sm_utilization) },
            engine,
        }
    }

    /// Fills the ideal references, the HP overhead and the normalised throughput from the
    /// report of the same scenario under `ideal`.
    pub fn attach_ideal(&mut self, ideal: &Report) {
        let mut norm = 0.0;
        let mut all = true;
        for c in &mut self.clients {
            let Some(i) = ideal.clients.iter().find(|i| i.id == c.id) else {
                all = false;
                continue;
            };
            c.ideal = Some(IdealReference { throughput_per_s: i.throughput_per_s, latency_ms: i.latency_ms });
            if i.throughput_per_s > 0.0 {
                norm += c.throughput_per_s / i.throughput_per_s;
            } else {
                all = false;
            }
            if c.role == Role::Hp
                && let (Some(l), Some(il)) = (c.latency_ms, i.latency_ms)
                && il.p95 > 0.0
                && il.p99 > 0.0
            {
                c.overhead_vs_ideal =
                    Some(Overhead { p95: round6(l.p95 / il.p95 - 1.0), p99: round6(l.p99 / il.p99 - 1.0) });
            }
        }
        self.gpu.normalized_throughput = all.then_some(round6(norm));
    }

    /// The HP client's report, if any.
    pub fn hp(&self) -> Option<&ClientReport> {
        self.clients.iter().find(|c| c.role == Role::Hp)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 95.0), 7);
    }

    #[test]
    fn throughput_counts_only_the_measured_window() {
        let mut r = ClientRecorder::default();
        let done = |request, completed_at, warmup| RequestDone { client: 0, request, arrival: 0, completed_at, warmup };
        r.record(&done(0, 1_000_000_000, true), 1);
        r.record(&done(1, 1_500_000_000, false), 1);
        r.record(&done(2, 2_000_000_000, false), 1);
        assert_eq!(r.completed(), 2);
        assert!((r.throughput(3_000_000_000) - 1.0).abs() < 1e-12);
    }
}
