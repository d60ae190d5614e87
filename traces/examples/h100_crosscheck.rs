//! Cross-device check of the analytic generator against the measured traces of a device:
//! `cargo run -p orion-traces --example h100_crosscheck [-- DEVICE [DIR]]` (default h100 and
//! model_kernels/DEVICE). For each of the ten configurations with a measured trace in DIR it
//! prints, analytic vs measured: kernel count, summed kernel time, summed host gaps, a serial
//! replay of the request (the host issues each op its gap after the previous one, or after the
//! GPU finished for the op after a sync; the GPU runs ops in order: the standalone request
//! time), the kernel-duration distribution (median, p90) and the share of kernel time per class
//! (compute / memory / unknown). A markdown table, for model_kernels/DEVICE/README.md.

use orion_traces::analytic::generate;
use orion_traces::format::read_trace;
use orion_traces::{DeviceSpec, KernelClass, Model, OpKind, Trace, WorkKind};
use std::path::PathBuf;

struct Stats {
    kernels: usize,
    kernel_ms: f64,
    gaps_ms: f64,
    request_ms: f64,
    p50_us: f64,
    p90_us: f64,
    /// Shares of kernel time: compute, memory, unknown.
    class_share: [f64; 3],
}

/// Standalone request time: one host thread issuing ops after their host gaps, one in-order GPU.
fn serial_replay_ns(t: &Trace) -> f64 {
    let (mut host, mut gpu_free) = (0.0f64, 0.0f64);
    for op in &t.ops {
        host += op.host_gap_ns.unwrap_or(0) as f64;
        match op.kind {
            OpKind::Sync => host = host.max(gpu_free),
            OpKind::Malloc | OpKind::Free => host += op.duration_ns as f64,
            _ => gpu_free = gpu_free.max(host) + op.duration_ns as f64,
        }
    }
    host.max(gpu_free)
}

fn stats(t: &Trace) -> Stats {
    let mut d: Vec<f64> = t.ops.iter().filter(|o| o.kind.is_kernel()).map(|o| o.duration_ns as f64).collect();
    d.sort_by(f64::total_cmp);
    let total: f64 = d.iter().sum();
    let mut share = [0.0; 3];
    for o in t.ops.iter().filter(|o| o.kind.is_kernel()) {
        let i = match o.class {
            KernelClass::Compute => 0,
            KernelClass::Memory => 1,
            KernelClass::Unknown => 2,
        };
        share[i] += o.duration_ns as f64 / total.max(1.0);
    }
    let pct = |q: f64| d.get(((d.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0) / 1e3;
    Stats {
        kernels: d.len(),
        kernel_ms: total / 1e6,
        gaps_ms: t.summed_host_gap_ns() as f64 / 1e6,
        request_ms: serial_replay_ns(t) / 1e6,
        p50_us: pct(0.5),
        p90_us: pct(0.9),
        class_share: share,
    }
}

fn err(a: f64, m: f64) -> String {
    if m > 0.0 { format!("{:+.0}%", 100.0 * (a - m) / m) } else { "-".into() }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "h100".into());
    let device = DeviceSpec::preset(&name)?;
    let dir = std::env::args().nth(2).map_or_else(|| PathBuf::from("model_kernels").join(&name), PathBuf::from);
    println!(
        "| trace | kernels a / m | kernel time ms a / m (err) | host gaps ms a / m | serial request ms a / m (err) \
         | kernel median us a / m | p90 us a / m | compute / memory / unknown share of kernel time, a vs m |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let (mut n, mut abs_req, mut abs_k) = (0, 0.0, 0.0);
    for kind in [WorkKind::Inference, WorkKind::Training] {
        for m in Model::ALL {
            let b = m.default_batch(kind);
            let file = dir.join(format!("{}-{}-b{b}.csv", m.as_str(), kind.as_str()));
            if !file.exists() {
                continue;
            }
            let measured = stats(&read_trace(&file)?);
            let analytic = stats(&generate(m, kind, b, &device));
            let share = |s: &Stats| {
                format!(
                    "{:.0}/{:.0}/{:.0}",
                    100.0 * s.class_share[0],
                    100.0 * s.class_share[1],
                    100.0 * s.class_share[2]
                )
            };
            println!(
                "| {}-{}-b{b} | {} / {} | {:.2} / {:.2} ({}) | {:.2} / {:.2} | {:.2} / {:.2} ({}) | {:.1} / {:.1} | {:.1} / {:.1} | {} vs {} |",
                m.as_str(),
                kind.as_str(),
                analytic.kernels,
                measured.kernels,
                analytic.kernel_ms,
                measured.kernel_ms,
                err(analytic.kernel_ms, measured.kernel_ms),
                analytic.gaps_ms,
                measured.gaps_ms,
                analytic.request_ms,
                measured.request_ms,
                err(analytic.request_ms, measured.request_ms),
                analytic.p50_us,
                measured.p50_us,
                analytic.p90_us,
                measured.p90_us,
                share(&analytic),
                share(&measured),
            );
            n += 1;
            abs_req += ((analytic.request_ms - measured.request_ms) / measured.request_ms).abs();
            abs_k += ((analytic.kernel_ms - measured.kernel_ms) / measured.kernel_ms).abs();
        }
    }
    if n > 0 {
        println!(
            "\nMean absolute error over {n} traces: kernel time {:.0}%, serial request time {:.0}%.",
            100.0 * abs_k / n as f64,
            100.0 * abs_req / n as f64
        );
    }
    Ok(())
}
