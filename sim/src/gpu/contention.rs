//! The contention model: how much slower a resident kernel runs because of what shares the GPU.
//!
//! Each resident kernel `k` is described by how hard it drives the SMs it covers and DRAM when
//! alone (its [`Load`]), and by its footprint now: resident blocks against resident blocks
//! alone (`alpha`), SMs covered now and alone (`cov`, `cov_alone`).
//!
//! * **Issue contention is local to SMs.** Kernel `j` puts an issue demand
//!   `lambda_j = issue_load_j * alpha_j * cov_alone_j / cov_j` on each SM it covers (its
//!   demand alone, times its blocks per SM now over its blocks per SM alone). Blocks are spread
//!   over idle SMs first, so two kernels share `max(0, cov_j + cov_k - S)` SMs; the demand on
//!   `k`'s SMs is `L_k = lambda_k + sum_j lambda_j * overlap(j, k) / cov_k`. Co-resident blocks
//!   share their SM's issue slots in proportion to demand, so `k`'s issue-bound work runs
//!   `s_c = max(1, L_k) / max(1, issue_load_k)` times slower than alone (alone it already
//!   shared its SMs with its own blocks: two blocks per SM that would each saturate it take
//!   twice as long as one, and the standalone time includes that).
//! * **DRAM latency rises with load** (Little's law). A kernel's resident warps keep a number
//!   of bytes in flight; at DRAM's unloaded latency they would draw `D` (its *demand*, a
//!   fraction of peak bandwidth that can exceed 1). Together, demands `D_tot` are delivered
//!   `X(D_tot) = E * (1 - exp(-D_tot / E))`: linear while DRAM is lightly loaded, saturating at
//!   `E` (`dram_efficiency`, the fraction of peak the device sustains). Every request then
//!   waits `lat(D_tot) = D_tot / X(D_tot)` (relative to unloaded), and each kernel gets
//!   bandwidth in proportion to its bytes in flight, so `k`'s memory-bound work runs
//!   `s_m = lat(D_tot) / lat(D_k)` times slower than alone. Two kernels that each draw 69% of
//!   peak alone slow each other 1.7x (not 1.5x: DRAM nears saturation), two that draw 8% 1.05x
//!   (latency already rises a little). A measured kernel's demand is the one whose delivered
//!   bandwidth matches its measured utilisation ([`dram_demand_of`]); DMA ops (device copies,
//!   memsets) add their demand and are slowed the same way.
//! * **A kernel's time scales with its bottleneck** (roofline): with `b_c = min(1, issue_load)`
//!   and `b_m = min(1, dram_util * S / cov_alone)` (DRAM bandwidth per SM covered),
//!   `sigma_k = max(theta, b_c s_c, b_m s_m) / max(theta, b_c, b_m)`, where `theta`
//!   (`latency_floor`) is the utilisation below which a kernel is latency-bound and hides
//!   contention; times `1 + colocation_penalty` per other kernel sharing its SMs.
//! * **Sparse waves run faster.** `sigma` is relative to the kernel's full waves alone, so it
//!   falls below 1 where the kernel has fewer blocks per SM, or meets less DRAM load, than
//!   there: the partial last wave of a kernel of four saturating blocks per SM, spread one per
//!   SM, runs four times as fast (the shape's block time accounts for that alone, see
//!   [`alone`]), and so do blocks left over when another kernel held some slots.
//!
//! This is a fluid model: rates are recomputed whenever the set of resident blocks changes.
//! It captures the phenomena of `gpu-model.md` at a few operations per event, and its
//! parameters are fitted by the validation suite's calibration step.

use orion_traces::device::ContentionParams;

/// Delivered over requested bandwidth at which a kernel (or copy) alone counts as saturating
/// DRAM: `1 - exp(-SATURATED)` of `dram_efficiency`. Its demand is then `SATURATED *
/// dram_efficiency` (any measurement at or above that level gives the same demand).
pub const SATURATED: f64 = 4.0;

/// One resident kernel's load, as the contention model sees it.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Issue demand alone on each SM it covers (see
    /// [`KernelShape::issue_load`](crate::shape::KernelShape::issue_load)).
    pub issue_load: f64,
    /// DRAM utilisation alone, fraction of peak.
    pub dram_util: f64,
    /// DRAM demand alone (Little's law), fraction of peak.
    pub dram_demand: f64,
    /// [`dram_latency`] at `dram_demand` (computed once per kernel shape).
    pub dram_latency_alone: f64,
    /// Resident blocks now / resident blocks alone.
    pub alpha: f64,
    /// SMs covered now.
    pub cov: f64,
    /// SMs covered alone.
    pub cov_alone: f64,
}

/// Bandwidth delivered, fraction of peak, to a total DRAM `demand` on a device that sustains
/// `efficiency` of peak: `efficiency * (1 - exp(-demand / efficiency))`.
pub fn dram_delivered(demand: f64, efficiency: f64) -> f64 {
    if demand <= 0.0 {
        return 0.0;
    }
    -efficiency * (-demand / efficiency).exp_m1()
}

/// The demand that is delivered `util` of peak alone (the inverse of [`dram_delivered`]);
/// `SATURATED * efficiency` for a utilisation at or past the saturation level.
pub fn dram_demand_of(util: f64, efficiency: f64) -> f64 {
    let y = (util / efficiency).max(0.0);
    if y >= -(-SATURATED).exp_m1() { SATURATED * efficiency } else { -efficiency * (-y).ln_1p() }
}

/// DRAM latency at a total `demand`, relative to the unloaded latency (1 at no load):
/// `demand / delivered(demand)`.
pub fn dram_latency(demand: f64, efficiency: f64) -> f64 {
    let y = demand / efficiency;
    if y < 1e-9 { 1.0 + y / 2.0 } else { y / -(-y).exp_m1() }
}

/// The factor by which a kernel alone on the GPU, with `load`, runs slower than its full waves:
/// 1 in a full wave, below 1 in a lighter partial wave (fewer blocks per SM, less DRAM load).
pub fn alone(params: &ContentionParams, sm_count: f64, load: Load) -> f64 {
    let (mut k, mut d) = (Vec::with_capacity(1), Vec::new());
    slowdowns(params, sm_count, &[load], &[], &mut k, &mut d);
    k[0]
}

/// Slowdown factors for each kernel in `loads` against its full waves alone (below 1 for a
/// kernel whose blocks are sparser, or meet less DRAM load, than in its full waves), plus for
/// each DMA op drawing the DRAM fractions in `dma` alone (at least 1). Writes kernel factors to `out_kernels` and DMA factors to
/// `out_dma`.
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
    let eff = params.dram_efficiency;
    let dma_demand = |m: f64| dram_demand_of(m, eff);
    let total: f64 =
        loads.iter().map(|l| l.dram_demand * l.alpha).sum::<f64>() + dma.iter().map(|&m| dma_demand(m)).sum::<f64>();
    let latency = dram_latency(total, eff);
    // Issue demand on each SM a kernel covers now.
    let lambda = |l: &Load| l.issue_load * l.alpha * l.cov_alone.max(1.0) / l.cov;
    for (k, lk) in loads.iter().enumerate() {
        if lk.cov <= 0.0 {
            out_kernels.push(1.0);
            continue;
        }
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
        let s_c = load.max(1.0) / lk.issue_load.max(1.0);
        let s_m = latency / lk.dram_latency_alone;
        let b_c = lk.issue_load.min(1.0);
        let b_m = (lk.dram_util * sm_count / lk.cov_alone.max(1.0)).min(1.0);
        let base = theta.max(b_c).max(b_m);
        let contended = theta.max(b_c * s_c).max(b_m * s_m);
        let sigma = if base > 0.0 { contended / base } else { 1.0 };
        out_kernels.push(sigma * (1.0 + params.colocation_penalty * sharers as f64));
    }
    for &m in dma {
        out_dma.push((latency / dram_latency(dma_demand(m), eff)).max(1.0));
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

    /// A kernel covering all 100 SMs at issue load `u` and DRAM demand `d`.
    fn full(u: f64, d: f64) -> Load {
        Load {
            issue_load: u,
            dram_util: dram_delivered(d, 1.0),
            dram_demand: d,
            dram_latency_alone: dram_latency(d, 1.0),
            alpha: 1.0,
            cov: 100.0,
            cov_alone: 100.0,
        }
    }

    /// A compute kernel covering 30 of the 100 SMs at issue load `u`, no DRAM traffic.
    fn on_30_sms(u: f64) -> Load {
        Load {
            issue_load: u,
            dram_util: 0.0,
            dram_demand: 0.0,
            dram_latency_alone: 1.0,
            alpha: 1.0,
            cov: 30.0,
            cov_alone: 30.0,
        }
    }

    fn run(p: &ContentionParams, loads: &[Load]) -> Vec<f64> {
        let (mut k, mut d) = (Vec::new(), Vec::new());
        slowdowns(p, 100.0, loads, &[], &mut k, &mut d);
        k
    }

    #[test]
    fn the_latency_curve_is_linear_when_light_and_saturates_at_the_efficiency() {
        // exp(-1) = 0.3679: a demand equal to the efficiency is delivered 63.2% of it.
        assert!((dram_delivered(0.9, 0.9) - 0.9 * (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        assert!((dram_delivered(1e-6, 0.9) - 1e-6).abs() < 1e-12);
        assert!(dram_delivered(100.0, 0.9) <= 0.9);
        assert_eq!(dram_delivered(0.0, 0.9), 0.0);
        // Latency: 1 unloaded; at demand = efficiency, 1 / 0.632.
        assert_eq!(dram_latency(0.0, 0.9), 1.0);
        assert!((dram_latency(0.9, 0.9) - 1.0 / (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        // The inverse, and the saturation clamp.
        for d in [0.01, 0.3, 0.9, 2.0] {
            assert!((dram_demand_of(dram_delivered(d, 0.9), 0.9) - d).abs() < 1e-9, "{d}");
        }
        assert_eq!(dram_demand_of(0.9, 0.9), SATURATED * 0.9);
        assert_eq!(dram_demand_of(1.0, 0.9), SATURATED * 0.9);
    }

    #[test]
    fn alone_no_slowdown() {
        assert_eq!(run(&params(0.2), &[full(0.9, 0.3)]), vec![1.0]);
        assert_eq!(run(&params(0.2), &[full(2.0, 3.0)]), vec![1.0]);
    }

    #[test]
    fn two_compute_bound_on_same_sms_share_issue() {
        let s = run(&params(0.2), &[full(0.9, 0.0), full(0.9, 0.0)]);
        assert!((s[0] - 1.8).abs() < 1e-9 && (s[1] - 1.8).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn saturating_blocks_share_their_sm_in_proportion() {
        // Two blocks per SM that would each saturate it (demand 2, alone already 2x
        // self-contended) next to one such block per SM (demand 1): 3 on every SM, so the
        // first runs 3/2 = 1.5x slower, the second 3x.
        let s = run(&params(0.0), &[full(2.0, 0.0), full(1.0, 0.0)]);
        assert!((s[0] - 1.5).abs() < 1e-9 && (s[1] - 3.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn compute_and_memory_bound_barely_interfere() {
        // Issue 0.9 + 0.2 = 1.1: the compute kernel 1.1x. The memory kernel is DRAM-bound
        // (b_m = 0.63 > b_c = 0.2) and its issue-bound side 0.2 * 1.1 stays below that.
        let s = run(&params(0.2), &[full(0.9, 0.0), full(0.2, 1.0)]);
        assert!((s[0] - 1.1).abs() < 1e-9, "{s:?}");
        assert!((s[1] - 1.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn two_memory_bound_kernels_share_bandwidth_by_latency() {
        // Each demands 1.0 (draws 0.632 alone, latency 1.582); together 2.0 is delivered
        // 0.865 at latency 2.313: each is 2.313 / 1.582 = 1.462x slower.
        let s = run(&params(0.2), &[full(0.2, 1.0), full(0.2, 1.0)]);
        let lat = |d: f64| d / (1.0 - (-d).exp());
        assert!((s[0] - lat(2.0) / lat(1.0)).abs() < 1e-9, "{s:?}");
        assert!((s[0] - 1.462).abs() < 1e-3, "{s:?}");
    }

    #[test]
    fn light_memory_kernels_feel_each_other_a_little() {
        // 0.1 each: 1 - exp(-0.1) = 0.09516 delivered alone (latency 1.0508), 0.2 together
        // at latency 1.1033: 5.0% slower, where a bandwidth cap would say nothing.
        let s = run(&params(0.0), &[full(0.05, 0.1), full(0.05, 0.1)]);
        assert!((s[0] - 1.1033 / 1.0508).abs() < 1e-3, "{s:?}");
    }

    #[test]
    fn a_light_kernel_next_to_a_saturating_one_waits_in_its_queue() {
        // A kernel that saturates DRAM (demand 4) and one demanding 0.1: latency rises from
        // 1.0508 to 4.1 / (1 - exp(-4.1)) = 4.169 for the light one (3.97x), the saturating one
        // barely notices (4.169 against 4.075 alone: 1.023x).
        let s = run(&params(0.0), &[full(0.05, 4.0), full(0.05, 0.1)]);
        let lat = |d: f64| d / (1.0 - (-d).exp());
        assert!((s[0] - lat(4.1) / lat(4.0)).abs() < 1e-9, "{s:?}");
        assert!((s[1] - lat(4.1) / lat(0.1)).abs() < 1e-9, "{s:?}");
        assert!(s[1] > 3.9 && s[0] < 1.03, "{s:?}");
    }

    #[test]
    fn small_kernels_on_disjoint_sms_do_not_contend_for_issue() {
        let small = on_30_sms(0.9);
        assert_eq!(run(&params(0.2), &[small, small]), vec![1.0, 1.0]);
    }

    #[test]
    fn small_kernel_inside_a_saturating_one_is_slowed() {
        // 30 SMs at 90% locally, sharing with a kernel that drives every SM at 90%.
        let small = on_30_sms(0.9);
        let s = run(&params(0.2), &[small, full(0.9, 0.0)]);
        assert!((s[0] - 1.8).abs() < 1e-9, "{s:?}");
        // The big kernel only shares 30 of its 100 SMs: it sees 0.9 + 0.9*30/100 = 1.17.
        assert!((s[1] - 1.17).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn fewer_blocks_per_sm_put_less_demand_on_each() {
        // A kernel alone at two blocks per SM (demand 2) with half its blocks resident on all
        // its SMs puts demand 1 on each; next to a kernel of demand 1 the SMs see 2, which is
        // what it had alone: not slowed. The other sees 2 against 1 alone: 2x.
        let half = Load { alpha: 0.5, ..full(2.0, 0.0) };
        let s = run(&params(0.0), &[half, full(1.0, 0.0)]);
        assert!((s[0] - 1.0).abs() < 1e-9 && (s[1] - 2.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn latency_bound_kernel_hides_moderate_contention() {
        let s = run(&params(0.5), &[full(0.3, 0.0), full(0.9, 0.0)]);
        assert_eq!(s[0], 1.0);
    }

    #[test]
    fn dma_feels_the_kernels_demand() {
        // A copy drawing 0.5 alone (demand ln 2 = 0.693) next to a kernel of demand 0.693:
        // total 1.386 at latency 1.386 / 0.75 = 1.848, against 0.693 / 0.5 = 1.386 alone.
        let p = params(0.0);
        let d = std::f64::consts::LN_2;
        let (mut k, mut out) = (Vec::new(), Vec::new());
        slowdowns(&p, 100.0, &[full(0.1, d)], &[0.5], &mut k, &mut out);
        assert!((out[0] - (2.0 * d / 0.75) / (d / 0.5)).abs() < 1e-9, "{out:?}");
        assert!((k[0] - out[0]).abs() < 1e-9, "{k:?}");
    }
}

#[cfg(test)]
mod clamp_tests {
    use super::*;

    #[test]
    fn an_inconsistent_utilisation_never_slows_a_kernel_alone() {
        // 4 blocks claiming to drive their SMs past capacity, and a DRAM figure past what the
        // device sustains.
        let p = ContentionParams {
            latency_floor: 0.2,
            dram_efficiency: 0.9,
            colocation_penalty: 0.0,
            compute_class_util: [0.75, 0.25],
            memory_class_util: [0.25, 0.75],
            unknown_class_util: [0.35, 0.35],
        };
        let l = Load {
            issue_load: 1.0,
            dram_util: 0.96,
            dram_demand: dram_demand_of(0.96, 0.9),
            dram_latency_alone: dram_latency(dram_demand_of(0.96, 0.9), 0.9),
            alpha: 1.0,
            cov: 4.0,
            cov_alone: 4.0,
        };
        let (mut k, mut d) = (Vec::new(), Vec::new());
        slowdowns(&p, 132.0, &[l], &[], &mut k, &mut d);
        assert_eq!(k, vec![1.0]);
        // Alone in its partial last wave (fewer blocks, less demand) it is not faster either.
        slowdowns(&p, 132.0, &[Load { alpha: 0.25, cov: 1.0, ..l }], &[], &mut k, &mut d);
        assert_eq!(k, vec![1.0]);
    }
}
