//! The contention model: how much slower a resident kernel runs because of what shares the GPU.
//!
//! Each resident kernel `k` is described by how hard it drives the SMs it occupies and DRAM
//! when alone (`b_c`, `b_m`, both 0..1, from its measured SM and DRAM throughput), and by its
//! footprint now (resident blocks against resident blocks alone, `alpha`; SMs covered, `cov`).
//!
//! * Issue contention is local to SMs: kernel `j` puts a per-SM issue load
//!   `lambda_j = min(1, u_j * S * alpha_j / cov_j)` on the SMs it covers. Blocks are spread over idle
//!   SMs first, so two kernels overlap on `max(0, cov_j + cov_k - S)` SMs; the load on `k`'s SMs
//!   is `L_k = lambda_k + sum_j lambda_j * overlap(j, k) / cov_k`, oversubscribed by
//!   `O_c = max(1, L_k)`.
//! * DRAM bandwidth is global: demand `P_m = sum_j m_j * alpha_j` (plus DMA traffic) against
//!   what the device delivers to concurrent streams (`dram_efficiency`, or more if one kernel
//!   alone was measured drawing more), oversubscribed by `O_m = max(1, P_m / max(dram_efficiency,
//!   max_j m_j alpha_j))`.
//! * A kernel's time scales with its bottleneck: `sigma_k = max(theta, b_c O_c, b_m O_m) /
//!   max(theta, b_c, b_m)`, where `theta` (`latency_floor`) is the utilisation below which a
//!   kernel is latency-bound and hides contention; times `1 + colocation_penalty` per other
//!   kernel sharing its SMs.
//!
//! This is a fluid model: rates are recomputed whenever the set of resident blocks changes.
//! It captures the phenomena of `gpu-model.md` at a few operations per event, and its three
//! parameters are fitted by the validation suite's calibration step.

use orion_traces::device::ContentionParams;

/// One resident kernel's load, as the contention model sees it.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// SM issue utilisation alone, averaged over the device.
    pub sm_util: f64,
    /// DRAM utilisation alone, fraction of peak.
    pub dram_util: f64,
    /// Resident blocks now / resident blocks alone.
    pub alpha: f64,
    /// SMs covered now.
    pub cov: f64,
    /// SMs covered alone.
    pub cov_alone: f64,
}

/// Slowdown factors (>= 1) for each kernel in `loads`, plus for each DMA op drawing the DRAM
/// fractions in `dma`. Writes kernel factors to `out_kernels` and DMA factors to `out_dma`.
pub fn slowdowns(
    params: &ContentionParams,
    sm_count: f64,
    loads: &[Load],
    dma: &[f64],
    out_kernels: &mut Vec<f64>,
    out_dma: &mut Vec<f64>,
) {
    out_kernels.clear();
    out_dma.clear();
    let theta = params.latency_floor;
    let demands = loads.iter().map(|l| l.dram_util * l.alpha).chain(dma.iter().copied());
    let (p_m, largest) = demands.fold((0.0f64, 0.0f64), |(sum, max), d| (sum + d, max.max(d)));
    // Concurrent streams draw `dram_efficiency` of peak together, but never less than what one
    // kernel was measured to draw alone: nothing is slowed by its own demand.
    let o_m = (p_m / params.dram_efficiency.max(largest)).max(1.0);
    for (k, lk) in loads.iter().enumerate() {
        if lk.cov <= 0.0 {
            out_kernels.push(1.0);
            continue;
        }
        // A kernel cannot load the SMs it occupies past their issue capacity, whatever an
        // (inconsistent) measurement of its device-wide utilisation says.
        let lambda = |l: &Load| (l.sm_util * sm_count * l.alpha / l.cov).min(1.0);
        let mut load = lambda(lk);
        let mut sharers = 0usize;
        for (j, lj) in loads.iter().enumerate() {
            if j == k || lj.cov <= 0.0 {
                continue;
            }
            let overlap = (lj.cov + lk.cov - sm_count).max(0.0);
            if overlap > 0.0 {
                load += lambda(lj) * overlap / lk.cov;
                sharers += 1;
            }
        }
        let o_c = load.max(1.0);
        let b_c = (lk.sm_util * sm_count / lk.cov_alone.max(1.0)).min(1.0);
        let b_m = (lk.dram_util * sm_count / lk.cov_alone.max(1.0)).min(1.0);
        let base = theta.max(b_c).max(b_m);
        let contended = theta.max(b_c * o_c).max(b_m * o_m);
        let sigma = if base > 0.0 { contended / base } else { 1.0 };
        out_kernels.push(sigma.max(1.0) * (1.0 + params.colocation_penalty * sharers as f64));
    }
    for &m in dma {
        let base = theta.max(m);
        out_dma.push((theta.max(m * o_m) / base).max(1.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(theta: f64) -> ContentionParams {
        ContentionParams {
            latency_floor: theta,
            dram_efficiency: 1.0,
            colocation_penalty: 0.0,
            compute_class_util: [0.75, 0.25],
            memory_class_util: [0.25, 0.75],
            unknown_class_util: [0.35, 0.35],
        }
    }

    fn full(u: f64, m: f64) -> Load {
        Load { sm_util: u, dram_util: m, alpha: 1.0, cov: 100.0, cov_alone: 100.0 }
    }

    fn run(p: &ContentionParams, loads: &[Load]) -> Vec<f64> {
        let (mut k, mut d) = (Vec::new(), Vec::new());
        slowdowns(p, 100.0, loads, &[], &mut k, &mut d);
        k
    }

    #[test]
    fn alone_no_slowdown() {
        assert_eq!(run(&params(0.2), &[full(0.9, 0.3)]), vec![1.0]);
    }

    #[test]
    fn two_compute_bound_on_same_sms_share_issue() {
        let s = run(&params(0.2), &[full(0.9, 0.1), full(0.9, 0.1)]);
        assert!((s[0] - 1.8).abs() < 1e-9 && (s[1] - 1.8).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn compute_and_memory_bound_barely_interfere() {
        let s = run(&params(0.2), &[full(0.9, 0.1), full(0.2, 0.85)]);
        assert!(s[0] < 1.15 && s[1] < 1.0 + 1e-9, "{s:?}");
    }

    #[test]
    fn two_memory_bound_kernels_share_bandwidth() {
        let s = run(&params(0.2), &[full(0.2, 0.7), full(0.2, 0.7)]);
        assert!((s[0] - 1.4).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn small_kernels_on_disjoint_sms_do_not_contend_for_issue() {
        let small = Load { sm_util: 0.27, dram_util: 0.0, alpha: 1.0, cov: 30.0, cov_alone: 30.0 };
        assert_eq!(run(&params(0.2), &[small, small]), vec![1.0, 1.0]);
    }

    #[test]
    fn small_kernel_inside_a_saturating_one_is_slowed() {
        // 30 SMs at 90% locally, sharing with a kernel that saturates every SM.
        let small = Load { sm_util: 0.27, dram_util: 0.0, alpha: 1.0, cov: 30.0, cov_alone: 30.0 };
        let s = run(&params(0.2), &[small, full(0.9, 0.0)]);
        assert!((s[0] - 1.8).abs() < 1e-9, "{s:?}");
        // The big kernel only shares 30 of its 100 SMs: it sees 0.9 + 0.9*30/100 = 1.17.
        assert!((s[1] - 1.17).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn latency_bound_kernel_hides_moderate_contention() {
        let s = run(&params(0.5), &[full(0.3, 0.1), full(0.9, 0.1)]);
        assert_eq!(s[0], 1.0);
    }
}

#[cfg(test)]
mod clamp_tests {
    use super::*;

    #[test]
    fn an_inconsistent_utilisation_never_slows_a_kernel_alone() {
        // 4 blocks claiming 98% of the whole device's issue capacity.
        let p = ContentionParams {
            latency_floor: 0.2,
            dram_efficiency: 0.9,
            colocation_penalty: 0.0,
            compute_class_util: [0.75, 0.25],
            memory_class_util: [0.25, 0.75],
            unknown_class_util: [0.35, 0.35],
        };
        let l = Load { sm_util: 0.98, dram_util: 0.0, alpha: 1.0, cov: 4.0, cov_alone: 4.0 };
        let (mut k, mut d) = (Vec::new(), Vec::new());
        slowdowns(&p, 132.0, &[l], &[], &mut k, &mut d);
        assert_eq!(k, vec![1.0]);
    }
}

#[cfg(test)]
mod alone_tests {
    use super::*;

    #[test]
    fn a_kernel_drawing_more_than_the_concurrent_efficiency_is_not_slowed_alone() {
        let p = ContentionParams {
            latency_floor: 0.2,
            dram_efficiency: 0.9,
            colocation_penalty: 0.0,
            compute_class_util: [0.75, 0.25],
            memory_class_util: [0.25, 0.75],
            unknown_class_util: [0.35, 0.35],
        };
        let l = Load { sm_util: 0.1, dram_util: 0.96, alpha: 1.0, cov: 132.0, cov_alone: 132.0 };
        let (mut k, mut d) = (Vec::new(), Vec::new());
        slowdowns(&p, 132.0, &[l], &[], &mut k, &mut d);
        assert_eq!(k, vec![1.0]);
        // With a second one, the two share what the first alone could draw.
        slowdowns(&p, 132.0, &[l, l], &[], &mut k, &mut d);
        assert!((k[0] - 2.0).abs() < 1e-9, "{k:?}");
    }
}
