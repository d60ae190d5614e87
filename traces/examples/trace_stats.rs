//! Statistics of the built-in traces on a device: `cargo run -p orion-traces --example
//! trace_stats -- h100` (kernel counts, how much time full-GPU kernels take, duration
//! percentiles, summed kernel time and host gaps).

use orion_traces::builtin::builtin_trace;
use orion_traces::{DeviceSpec, Model, WorkKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = DeviceSpec::preset(&std::env::args().nth(1).unwrap_or_else(|| "h100".into()))?;
    for kind in [WorkKind::Inference, WorkKind::Training] {
        for m in Model::ALL {
            let t = builtin_trace(m, kind, m.default_batch(kind), &device);
            let kernels: Vec<_> = t.ops.iter().filter(|o| o.kind.is_kernel()).collect();
            let mut d: Vec<u64> = kernels.iter().map(|o| o.duration_ns).collect();
            d.sort_unstable();
            let sum: u64 = d.iter().sum();
            let full: Vec<_> = kernels.iter().filter(|o| o.sm_needed >= device.sm_count).collect();
            let full_time: u64 = full.iter().map(|o| o.duration_ns).sum();
            println!(
                "{:<26} kernels {:>5}, full-GPU {:>5} ({:>4.1}% of kernel time), median {:>6.1} us, p90 {:>6.1} us, \
                 max {:>6.1} us, summed {:>6.2} ms, host gaps {:>6.2} ms",
                t.meta.name,
                kernels.len(),
                full.len(),
                100.0 * full_time as f64 / sum.max(1) as f64,
                d[d.len() / 2] as f64 / 1e3,
                d[d.len() * 9 / 10] as f64 / 1e3,
                d[d.len() - 1] as f64 / 1e3,
                sum as f64 / 1e6,
                t.summed_host_gap_ns() as f64 / 1e6
            );
        }
    }
    Ok(())
}
