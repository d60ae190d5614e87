//! The human-readable report.

use crate::run::RunResult;
use orion_policies::Report;
use std::fmt::Write;

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

/// Renders a run as a table: header, one row per client, GPU totals, policy parameters.
pub fn render(result: &RunResult) -> String {
    let r = &result.report;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} | scenario {} | policy {} | device {} ({}) | seed {}",
        r.tool, r.scenario, r.policy.name, r.device.name, r.device.source, r.seed
    );
    let traces: Vec<String> = r.clients.iter().map(|c| format!("{} ({})", c.trace.name, c.trace.source)).collect();
    let _ = writeln!(s, "traces: {}", traces.join(", "));
    if r.clients.iter().any(|c| c.trace.source == "analytic") {
        let _ = writeln!(s, "note: analytic traces are estimates from layer shapes, not measurements");
    }
    let _ = writeln!(s);
    s.push_str(&client_table(r));
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "GPU: normalised throughput {} (sum of throughput / ideal), SM utilisation {:.1}%",
        opt(r.gpu.normalized_throughput, 3),
        r.gpu.sm_utilization * 100.0
    );
    if !r.policy.params.is_empty() {
        let p: Vec<String> = r.policy.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "policy parameters: {}", p.join(", "));
    }
    if !r.policy.counters.is_empty() {
        let p: Vec<String> = r.policy.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "policy counters: {}", p.join(", "));
    }
    let wall = result.policy_wall.as_secs_f64();
    let _ = writeln!(
        s,
        "simulated {:.2} s in {:.3} s wall ({:.0}x real time), {} events ({:.2} M events/s); whole run incl. ideal reference {:.3} s",
        result.simulated_s,
        wall,
        if wall > 0.0 { result.simulated_s / wall } else { 0.0 },
        result.events,
        if wall > 0.0 { result.events as f64 / wall / 1e6 } else { 0.0 },
        result.wall.as_secs_f64(),
    );
    s
}

/// The per-client table of a report.
pub fn client_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:<4} {:<10} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
        "client",
        "role",
        "kind",
        "done",
        "thrpt/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "iter ms",
        "ideal/s",
        "p95 ovh"
    );
    for c in &r.clients {
        let l = c.latency_ms;
        let _ = writeln!(
            s,
            "{:<14} {:<4} {:<10} {:>8} {:>9.2} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
            c.name,
            c.role.as_str(),
            c.kind.as_str(),
            c.completed,
            c.throughput_per_s,
            opt(l.map(|l| l.p50), 2),
            opt(l.map(|l| l.p95), 2),
            opt(l.map(|l| l.p99), 2),
            opt(l.map(|l| l.max), 2),
            opt(c.mean_iteration_ms, 2),
            opt(c.ideal.map(|i| i.throughput_per_s), 2),
            c.overhead_vs_ideal.map_or_else(|| "-".to_string(), |o| format!("{:+.1}%", o.p95 * 100.0)),
        );
    }
    s
}
