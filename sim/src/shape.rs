//! What the GPU model needs to know about an op, derived once per trace row from its record and
//! the device: blocks, per-block resources, per-wave time, and how hard it drives the SMs and
//! DRAM.

use crate::gpu::contention;
use orion_traces::occupancy::occupancy;
use orion_traces::{DeviceSpec, KernelClass, OpKind, OpRecord};

/// Indices of the per-block resource vector.
pub const RESOURCES: usize = 4;

/// A vector of SM resources: threads, registers, shared memory bytes, block slots.
pub type Res = [u64; RESOURCES];

/// How the GPU model executes an op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Exec {
    /// A kernel: blocks dispatched to SMs.
    Kernel(KernelShape),
    /// A host-device copy on the copy engine of one direction (0: H2D, 1: D2H); `work_ns` is
    /// its standalone duration.
    Copy {
        /// Direction index.
        dir: usize,
        /// Standalone duration, ns.
        work_ns: f64,
    },
    /// A device-side DMA operation (device-to-device copy, memset): no SMs, draws DRAM
    /// bandwidth.
    Dma {
        /// Standalone duration, ns.
        work_ns: f64,
        /// Fraction of peak DRAM bandwidth it draws alone.
        dram: f64,
    },
    /// Completes as soon as it reaches the head of its stream (allocation, free).
    Instant,
}

/// A kernel as the block dispatcher sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelShape {
    /// Thread blocks in the grid.
    pub blocks: u64,
    /// Resources one block holds while resident (the binding resource rounded up so that the
    /// kernel alone gets exactly `blocks_per_sm` blocks per SM).
    pub per_block: Res,
    /// Blocks per SM alone.
    pub blocks_per_sm: u32,
    /// Time of one full wave of blocks alone, ns (a partial last wave alone takes the fraction
    /// of it the contention model gives its lighter load: the full waves and the partial one
    /// add up to the standalone duration).
    pub block_time_ns: f64,
    /// Blocks resident at once when alone: min(blocks, blocks_per_sm x SMs).
    pub resident_alone: u64,
    /// Time of the partial last wave alone, in full waves (1 when there is none).
    pub last_wave: f64,
    /// Issue demand alone on each SM the kernel covers, as a fraction of one SM's issue
    /// capacity: its measured issue utilisation there (at most 1), or, from a class default,
    /// the class's per-block demand times its blocks per SM (above 1 when each of several
    /// co-resident blocks would saturate the SM by itself: the kernel's standalone time already
    /// includes that self-contention).
    pub issue_load: f64,
    /// DRAM bandwidth utilisation alone, fraction of peak (0..1).
    pub dram_util: f64,
    /// DRAM demand alone (Little's law): the bandwidth its resident warps would draw if DRAM
    /// answered at its unloaded latency, as a fraction of peak (above 1 for a kernel that
    /// saturates DRAM). See [`crate::gpu::contention`].
    pub dram_demand: f64,
    /// DRAM latency at that demand alone, relative to unloaded
    /// ([`dram_latency`](crate::gpu::contention::dram_latency)).
    pub dram_latency_alone: f64,
}

/// Capacity of the whole GPU as a resource vector.
pub fn gpu_capacity(device: &DeviceSpec) -> Res {
    let s = device.sm_count as u64;
    [
        s * device.sm.max_threads as u64,
        s * device.sm.registers as u64,
        s * device.sm.shared_mem_bytes as u64,
        s * device.sm.max_blocks as u64,
    ]
}

/// The GPU-model shape of an op on `device`.
pub fn shape_of(rec: &OpRecord, device: &DeviceSpec) -> Exec {
    match rec.kind {
        OpKind::Kernel => Exec::Kernel(kernel_shape(rec, device)),
        OpKind::CopyH2D => Exec::Copy { dir: 0, work_ns: rec.duration_ns as f64 },
        OpKind::CopyD2H => Exec::Copy { dir: 1, work_ns: rec.duration_ns as f64 },
        OpKind::CopyD2D | OpKind::Memset => {
            let dram = match (rec.dram_throughput_pct, rec.copy_bytes) {
                (Some(p), _) => p / 100.0,
                (None, Some(b)) if rec.duration_ns > 0 => {
                    // Bytes moved per second against peak (a D2D copy reads and writes each byte).
                    let factor = if rec.kind == OpKind::CopyD2D { 2.0 } else { 1.0 };
                    factor * b as f64 / rec.duration_ns as f64 / device.dram_bandwidth_gbs
                }
                // Nothing known: what a memory-class kernel filling every SM would draw.
                _ => contention::dram_delivered(
                    device.contention.memory_class_util[1],
                    device.contention.dram_efficiency,
                ),
            };
            Exec::Dma { work_ns: rec.duration_ns as f64, dram: dram.clamp(0.0, 1.0) }
        }
        OpKind::Malloc | OpKind::Free | OpKind::Sync => Exec::Instant,
    }
}

fn kernel_shape(rec: &OpRecord, device: &DeviceSpec) -> KernelShape {
    let sm = &device.sm;
    let s = device.sm_count as u64;
    let cap_per_sm: Res =
        [sm.max_threads as u64, sm.registers as u64, sm.shared_mem_bytes as u64, sm.max_blocks as u64];
    let threads = rec.threads_per_block();
    // Blocks per SM: the record's, else the occupancy calculation from the launch shape, else
    // Orion's abstraction (one block per SM, `sm_needed` blocks).
    let blocks_per_sm = rec
        .blocks_per_sm
        .or_else(|| {
            threads.map(|t| {
                occupancy(sm, t as u32, rec.registers_per_thread.unwrap_or(32), rec.shared_mem_per_block.unwrap_or(0))
                    .blocks_per_sm
            })
        })
        .unwrap_or(1)
        .max(1);
    let blocks = rec.blocks().unwrap_or(rec.sm_needed.max(1) as u64 * blocks_per_sm as u64).max(1);
    // Per-block resources: what the launch shape allocates, each raised to at least the SM's
    // capacity divided by blocks_per_sm for the resources that bind (so the kernel alone packs
    // exactly blocks_per_sm per SM). Without a launch shape every resource binds.
    let mut per_block: Res = match threads {
        Some(t) => {
            let warps = t.div_ceil(32);
            let unit = sm.register_alloc_unit.max(1) as u64;
            let regs_per_warp = (rec.registers_per_thread.unwrap_or(32) as u64 * 32).div_ceil(unit) * unit;
            let smem = match rec.shared_mem_per_block.unwrap_or(0) as u64 {
                0 => 0,
                b => {
                    let u = sm.shared_mem_alloc_unit.max(1) as u64;
                    (b + sm.reserved_shared_mem_per_block as u64).div_ceil(u) * u
                }
            };
            [warps * 32, warps * regs_per_warp, smem, 1]
        }
        None => [0; RESOURCES],
    };
    for i in 0..RESOURCES {
        let share = cap_per_sm[i] / blocks_per_sm as u64;
        if threads.is_none() || cap_per_sm[i] / per_block[i].max(1) <= blocks_per_sm as u64 {
            per_block[i] = per_block[i].max(share);
        }
    }
    // A record that gives fewer blocks per SM than its recorded launch shape allows is bound by
    // something it does not record (typically dynamic shared memory, which the CSV formats do not
    // carry): hold shared memory as that resource, so that exactly `blocks_per_sm` fit.
    let fit_per_sm = (0..RESOURCES).filter(|&i| per_block[i] > 0).map(|i| cap_per_sm[i] / per_block[i]).min();
    if fit_per_sm.is_some_and(|n| n > blocks_per_sm as u64) {
        per_block[2] = per_block[2].max(cap_per_sm[2] / blocks_per_sm as u64);
    }
    let per_wave = blocks_per_sm as u64 * s;
    let full_waves = blocks / per_wave;
    let partial = blocks % per_wave;
    let resident_alone = blocks.min(per_wave);
    let duration = rec.duration_ns.max(1) as f64;
    // Blocks spread over idle SMs first: alone, the kernel covers this many SMs, with this many
    // blocks on each.
    let cov_alone = resident_alone.min(s).max(1) as f64;
    let blocks_per_covered_sm = resident_alone.max(1) as f64 / cov_alone;
    let c = &device.contention;
    let (issue_load, dram_util, dram_demand) = match (rec.sm_throughput_pct, rec.dram_throughput_pct) {
        (Some(u), Some(m)) => {
            // Measured device-wide averages: the issue utilisation of the SMs it covers, and the
            // demand that, on the device's latency curve, delivers the measured bandwidth.
            let m = (m / 100.0).clamp(0.0, 1.0);
            ((u / 100.0 * s as f64 / cov_alone).clamp(0.0, 1.0), m, contention::dram_demand_of(m, c.dram_efficiency))
        }
        (u, m) => {
            let d = match rec.class {
                KernelClass::Compute => c.compute_class_util,
                KernelClass::Memory => c.memory_class_util,
                KernelClass::Unknown => c.unknown_class_util,
            };
            // The class's issue demand is per resident block (a block of a compute-bound kernel
            // keeps its SM's schedulers busy by itself); its DRAM demand is per resident warp
            // (bytes in flight), given for an SM full of the kernel's warps. Without a launch
            // shape a block is a whole SM's worth of warps.
            let issue = match u {
                Some(v) => (v / 100.0 * s as f64 / cov_alone).clamp(0.0, 1.0),
                None => d[0] * blocks_per_covered_sm,
            };
            let max_warps = sm.max_warps.max(1) as f64;
            let warps_per_block =
                threads.map_or(max_warps / blocks_per_sm as f64, |t| t.div_ceil(32) as f64).min(max_warps);
            let warp_fill = resident_alone as f64 * warps_per_block / (s as f64 * max_warps);
            match m {
                Some(v) => {
                    let m = (v / 100.0).clamp(0.0, 1.0);
                    (issue, m, contention::dram_demand_of(m, c.dram_efficiency))
                }
                None => {
                    let demand = d[1] * warp_fill;
                    (issue, contention::dram_delivered(demand, c.dram_efficiency), demand)
                }
            }
        }
    };
    let mut shape = KernelShape {
        blocks,
        per_block,
        blocks_per_sm,
        block_time_ns: duration,
        resident_alone,
        last_wave: 1.0,
        issue_load,
        dram_util,
        dram_demand,
        dram_latency_alone: contention::dram_latency(dram_demand, c.dram_efficiency),
    };
    // The standalone duration is the full waves plus a partial last wave, which alone runs at
    // its own (lighter) load: the block time is that of a full wave.
    if full_waves > 0 {
        let last = if partial == 0 {
            0.0
        } else {
            let load = contention::Load {
                issue_load,
                dram_util,
                dram_demand,
                dram_latency_alone: shape.dram_latency_alone,
                alpha: partial as f64 / resident_alone as f64,
                cov: partial.min(s) as f64,
                cov_alone,
            };
            contention::alone(c, s as f64, load)
        };
        shape.block_time_ns = duration / (full_waves as f64 + last);
        if partial > 0 {
            shape.last_wave = last;
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion_traces::Dim3;

    fn h100() -> DeviceSpec {
        DeviceSpec::preset("h100").unwrap()
    }

    fn fits(cap: Res, need: Res) -> u64 {
        (0..RESOURCES).filter(|&i| need[i] > 0).map(|i| cap[i] / need[i]).min().unwrap()
    }

    #[test]
    fn kernel_alone_packs_exactly_blocks_per_sm() {
        let d = h100();
        for (threads, regs, smem) in [(256, 128, 0), (1024, 16, 0), (128, 32, 100 * 1024), (96, 40, 5000), (32, 16, 0)]
        {
            let mut r = OpRecord::kernel("k", 10_000, 1, KernelClass::Compute);
            r.grid = Some(Dim3::linear(100_000));
            r.block = Some(Dim3::linear(threads));
            r.registers_per_thread = Some(regs);
            r.shared_mem_per_block = Some(smem);
            let Exec::Kernel(k) = shape_of(&r, &d) else { panic!() };
            let occ = occupancy(&d.sm, threads, regs, smem).blocks_per_sm as u64;
            assert_eq!(k.blocks_per_sm as u64, occ);
            assert_eq!(fits(gpu_capacity(&d), k.per_block), occ * d.sm_count as u64, "{threads} {regs} {smem}");
        }
    }

    #[test]
    fn a_record_with_fewer_blocks_per_sm_than_its_shape_allows_holds_that_many() {
        // 256 threads at 32 registers would fit 8 per SM; the record says 4 (its dynamic shared
        // memory, which the trace does not carry, binds): 4 fit per SM, and 4 of another such
        // kernel's blocks fill an SM holding none of the first's.
        let d = h100();
        let mut r = OpRecord::kernel("k", 10_000, 1, KernelClass::Compute);
        r.grid = Some(Dim3::linear(1056));
        r.block = Some(Dim3::linear(256));
        r.registers_per_thread = Some(32);
        r.blocks_per_sm = Some(4);
        let Exec::Kernel(k) = shape_of(&r, &d) else { panic!() };
        assert_eq!(fits(gpu_capacity(&d), k.per_block), 4 * d.sm_count as u64);
        assert_eq!(k.resident_alone, 528);
        assert!((k.block_time_ns - 5_000.0).abs() < 1e-9);
    }

    #[test]
    fn orion_csv_kernel_occupies_whole_sms() {
        let d = h100();
        let r = OpRecord::kernel("k", 10_000, 40, KernelClass::Memory);
        let Exec::Kernel(k) = shape_of(&r, &d) else { panic!() };
        assert_eq!(k.blocks, 40);
        assert_eq!(fits(gpu_capacity(&d), k.per_block), d.sm_count as u64);
        assert!((k.block_time_ns - 10_000.0).abs() < 1e-9);
        // One block per SM: the class's per-block issue demand on each of the 40 SMs it covers.
        assert!((k.issue_load - 0.25).abs() < 1e-9);
        // The class's DRAM demand for a full GPU, scaled by the 40/132 SMs' worth of warps it
        // holds; it draws a little less than that alone (DRAM latency rises with load).
        assert!((k.dram_demand - 0.75 * 40.0 / 132.0).abs() < 1e-9);
        let e = d.contention.dram_efficiency;
        assert!((k.dram_util - e * (1.0 - (-k.dram_demand / e).exp())).abs() < 1e-12, "{k:?}");
    }

    #[test]
    fn class_issue_demand_is_per_block_and_dram_demand_per_warp() {
        // The calibration kernels' shape: 256 threads, 4 blocks per SM (8 of 64 warps each).
        let d = h100();
        let shaped = |blocks: u32| {
            let mut r = OpRecord::kernel("k", 10_000, blocks.div_ceil(4), KernelClass::Compute);
            r.grid = Some(Dim3::linear(blocks));
            r.block = Some(Dim3::linear(256));
            r.blocks_per_sm = Some(4);
            let Exec::Kernel(k) = shape_of(&r, &d) else { panic!() };
            k
        };
        let (u, m) = (d.contention.compute_class_util[0], d.contention.compute_class_util[1]);
        // 8 blocks: one on each of 8 SMs; 132: one on every SM; 264: two on every SM; 1056: two
        // waves of four on every SM.
        for (blocks, per_sm, resident) in [(8, 1.0, 8.0), (132, 1.0, 132.0), (264, 2.0, 264.0), (1056, 4.0, 528.0)] {
            let k = shaped(blocks);
            assert!((k.issue_load - u * per_sm).abs() < 1e-12, "{blocks}: {k:?}");
            let warp_fill = resident * 8.0 / (132.0 * 64.0);
            assert!((k.dram_demand - m * warp_fill).abs() < 1e-12, "{blocks}: {k:?}");
        }
    }

    #[test]
    fn multi_wave_kernel_splits_duration_per_wave() {
        let d = h100();
        let r = OpRecord::kernel("k", 30_000, 396, KernelClass::Compute);
        let Exec::Kernel(k) = shape_of(&r, &d) else { panic!() };
        assert_eq!(k.blocks, 396);
        assert!((k.block_time_ns - 10_000.0).abs() < 1e-9);
        assert_eq!(k.resident_alone, 132);
    }
}
