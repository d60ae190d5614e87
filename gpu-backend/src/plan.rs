//! What each op of a trace becomes on the real GPU: the launch shape of its synthetic kernel
//! (grid, block, the dynamic shared memory that pins its occupancy to the record's) or the size
//! of its copy or memset. Everything here is plain arithmetic, testable without a GPU.

use orion_traces::device::SmLimits;
use orion_traces::occupancy::occupancy;
use orion_traces::{DeviceSpec, Dim3, KernelClass, OpKind, OpRecord};
use serde::{Deserialize, Serialize};

/// Which synthetic kernel reproduces a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthKind {
    /// Dependent FMA chains (`compute` records).
    Compute,
    /// DRAM streaming (`memory` records).
    Memory,
    /// Streaming plus FMAs (`unknown` records).
    Mixed,
}

impl SynthKind {
    /// The kernel for a record's class.
    pub fn of(class: KernelClass) -> SynthKind {
        match class {
            KernelClass::Compute => SynthKind::Compute,
            KernelClass::Memory => SynthKind::Memory,
            KernelClass::Unknown => SynthKind::Mixed,
        }
    }

    /// Index into [`KERNEL_NAMES`](crate::kernels::KERNEL_NAMES).
    pub fn index(self) -> usize {
        match self {
            SynthKind::Compute => 0,
            SynthKind::Memory => 1,
            SynthKind::Mixed => 2,
        }
    }

    /// Whether the kernel streams through the buffer (its launch offset must move on).
    pub fn streams(self) -> bool {
        self != SynthKind::Compute
    }
}

/// The launch shape of a synthetic kernel: what its calibration is cached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Which kernel.
    pub kind: SynthKind,
    /// Grid, as recorded.
    pub grid: Dim3,
    /// Block, as recorded.
    pub block: Dim3,
    /// Dynamic shared memory per block, bytes (pins the occupancy).
    pub smem: u32,
}

impl Shape {
    /// A total order for stable output (cache files).
    pub fn sort_key(&self) -> (SynthKind, [u32; 3], [u32; 3], u32) {
        let (g, b) = (self.grid, self.block);
        (self.kind, [g.x, g.y, g.z], [b.x, b.y, b.z], self.smem)
    }

    /// Threads per block.
    pub fn threads(&self) -> u32 {
        self.block.count() as u32
    }

    /// Blocks in the grid.
    pub fn blocks(&self) -> u64 {
        self.grid.count()
    }

    /// Threads in the grid.
    pub fn grid_threads(&self) -> u64 {
        self.blocks() * self.threads() as u64
    }
}

/// Blocks per SM assumed for a kernel record that gives no launch shape (Orion's CSV has only
/// `sm_needed`), with [`FALLBACK_THREADS`] threads per block.
pub const FALLBACK_BLOCKS_PER_SM: u32 = 4;
/// Threads per block assumed for a kernel record that gives no launch shape.
pub const FALLBACK_THREADS: u32 = 256;

/// The grid, block and target blocks per SM of a kernel record. A record without a grid or a
/// block gets [`FALLBACK_THREADS`] threads per block and [`FALLBACK_BLOCKS_PER_SM`] blocks per
/// SM, `sm_needed` times that many blocks, so that its `sm_needed` is reproduced; a record with
/// a shape but no `blocks_per_sm` gets the occupancy the calculator gives for its registers and
/// shared memory.
pub fn kernel_geometry(rec: &OpRecord, sm: &SmLimits) -> (Dim3, Dim3, u32) {
    match (rec.grid, rec.block) {
        (Some(g), Some(b)) => {
            let bps = rec.blocks_per_sm.unwrap_or_else(|| {
                occupancy(
                    sm,
                    b.count() as u32,
                    rec.registers_per_thread.unwrap_or(0),
                    rec.shared_mem_per_block.unwrap_or(0),
                )
                .blocks_per_sm
                .max(1)
            });
            (g, b, bps.max(1))
        }
        _ => {
            let blocks = rec.sm_needed.max(1) as u64 * FALLBACK_BLOCKS_PER_SM as u64;
            (Dim3::linear(blocks.min(u32::MAX as u64) as u32), Dim3::linear(FALLBACK_THREADS), FALLBACK_BLOCKS_PER_SM)
        }
    }
}

/// Why a record's occupancy cannot be reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreproducible {
    /// The most blocks of this size an SM holds with no shared memory.
    pub max_blocks_per_sm: u32,
}

/// The dynamic shared memory per block that makes the occupancy calculator give exactly
/// `target` blocks per SM for blocks of `threads` threads using `registers` registers, on an
/// SM with limits `sm`. `Err` when the block size (or registers) alone allow fewer than
/// `target` blocks: then no shared memory reproduces it.
pub fn smem_for_blocks_per_sm(sm: &SmLimits, threads: u32, registers: u32, target: u32) -> Result<u32, Unreproducible> {
    let natural = occupancy(sm, threads, registers, 0).blocks_per_sm;
    if natural < target || target == 0 {
        return Err(Unreproducible { max_blocks_per_sm: natural });
    }
    if natural == target {
        return Ok(0);
    }
    // The largest allocation that still lets `target` blocks fit is the best choice: it is the
    // furthest from letting `target + 1` blocks fit.
    let unit = sm.shared_mem_alloc_unit.max(1);
    let per_block = (sm.shared_mem_bytes / target) / unit * unit;
    let mut smem = per_block.saturating_sub(sm.reserved_shared_mem_per_block).min(sm.max_shared_mem_per_block);
    // Rounding can leave room for one more block only through the reserved part; walk down
    // until the calculator agrees (at most a few steps).
    while smem > 0 && occupancy(sm, threads, registers, smem).blocks_per_sm < target {
        smem -= unit.min(smem);
    }
    if occupancy(sm, threads, registers, smem).blocks_per_sm == target {
        Ok(smem)
    } else {
        Err(Unreproducible { max_blocks_per_sm: natural })
    }
}

/// Which transfer a copy op is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyKind {
    /// Pinned host to device.
    HostToDevice,
    /// Device to pinned host.
    DeviceToHost,
    /// Device to device.
    DeviceToDevice,
    /// A memset.
    Memset,
}

/// The bytes of a copy or memset record: `copy_bytes`, else what its duration moves at the
/// device's bandwidth.
pub fn copy_bytes(rec: &OpRecord, device: &DeviceSpec) -> u64 {
    if let Some(b) = rec.copy_bytes {
        return b;
    }
    let gbs = match rec.kind {
        OpKind::CopyH2D => device.h2d_bandwidth_gbs,
        OpKind::CopyD2H => device.d2h_bandwidth_gbs,
        // Counting bytes read and written.
        _ => device.d2d_bandwidth_gbs / 2.0,
    };
    (rec.duration_ns as f64 * gbs).round().max(4.0) as u64
}

/// The copy kind of an op kind (`None` for kernels and host-only ops).
pub fn copy_kind(kind: OpKind) -> Option<CopyKind> {
    match kind {
        OpKind::CopyH2D => Some(CopyKind::HostToDevice),
        OpKind::CopyD2H => Some(CopyKind::DeviceToHost),
        OpKind::CopyD2D => Some(CopyKind::DeviceToDevice),
        OpKind::Memset => Some(CopyKind::Memset),
        _ => None,
    }
}

/// An op made ready to submit: what the executor launches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreparedOp {
    /// A synthetic kernel.
    Kernel(KernelLaunch),
    /// A copy or memset of this many bytes.
    Copy {
        /// Which.
        kind: CopyKind,
        /// Bytes.
        bytes: u64,
    },
    /// No GPU work (allocation, free): only the completion event, so that it completes in order.
    Marker,
}

/// A synthetic kernel launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelLaunch {
    /// Shape.
    pub shape: Shape,
    /// Work, 1/256 iterations per block.
    pub q: u32,
}

impl KernelLaunch {
    /// Buffer elements (`float4`) one launch touches, by which the next launch's offset moves.
    pub fn elements(&self) -> u64 {
        if self.shape.kind.streams() { self.shape.grid_threads() * (self.q as u64).div_ceil(256) } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> DeviceSpec {
        DeviceSpec::preset("h100").unwrap()
    }

    #[test]
    fn smem_pins_every_reachable_occupancy() {
        let d = h100();
        for threads in (32..=1024).step_by(32) {
            let natural = occupancy(&d.sm, threads, 32, 0).blocks_per_sm;
            for target in 1..=natural {
                let smem = smem_for_blocks_per_sm(&d.sm, threads, 32, target).unwrap();
                assert_eq!(occupancy(&d.sm, threads, 32, smem).blocks_per_sm, target, "{threads} threads, {target}");
                assert!(smem <= d.sm.max_shared_mem_per_block);
            }
        }
    }

    #[test]
    fn unreachable_occupancy_is_reported() {
        let d = h100();
        // 1024 threads: at most 2 blocks per SM.
        assert_eq!(smem_for_blocks_per_sm(&d.sm, 1024, 32, 3), Err(Unreproducible { max_blocks_per_sm: 2 }));
        assert_eq!(smem_for_blocks_per_sm(&d.sm, 1024, 32, 2), Ok(0));
        assert!(smem_for_blocks_per_sm(&d.sm, 128, 32, 0).is_err());
    }

    #[test]
    fn one_block_per_sm_takes_the_whole_shared_memory() {
        let d = h100();
        let smem = smem_for_blocks_per_sm(&d.sm, 128, 32, 1).unwrap();
        assert_eq!(smem, d.sm.shared_mem_bytes - d.sm.reserved_shared_mem_per_block);
    }

    #[test]
    fn records_without_shape_get_the_fallback() {
        let d = h100();
        let r = OpRecord::kernel("k", 50_000, 10, KernelClass::Compute);
        let (g, b, bps) = kernel_geometry(&r, &d.sm);
        assert_eq!(b.count(), FALLBACK_THREADS as u64);
        assert_eq!(g.count().div_ceil(bps as u64), 10);
    }

    #[test]
    fn copy_sizes_come_from_the_record_or_the_bandwidth() {
        let d = h100();
        let mut r = OpRecord::new(OpKind::CopyH2D, "in", 10_000, 0, KernelClass::Unknown);
        assert_eq!(copy_bytes(&r, &d), 500_000);
        r.copy_bytes = Some(1234);
        assert_eq!(copy_bytes(&r, &d), 1234);
    }

    #[test]
    fn streaming_launches_move_their_offset() {
        let shape = Shape { kind: SynthKind::Memory, grid: Dim3::linear(10), block: Dim3::linear(128), smem: 0 };
        assert_eq!(KernelLaunch { shape, q: 512 }.elements(), 2560);
        assert_eq!(KernelLaunch { shape, q: 300 }.elements(), 2560);
        let compute = Shape { kind: SynthKind::Compute, ..shape };
        assert_eq!(KernelLaunch { shape: compute, q: 512 }.elements(), 0);
    }
}

/// What replaying a trace involves, computed without a GPU (occupancy from the device
/// description and the synthetic kernels' register count).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanSummary {
    /// Trace name.
    pub trace: String,
    /// Ops.
    pub ops: usize,
    /// Kernels.
    pub kernels: usize,
    /// Kernels longer than 10 us.
    pub kernels_over_10us: usize,
    /// Distinct launch shapes.
    pub shapes: usize,
    /// Distinct (shape, duration) pairs: the calibrations needed.
    pub calibrations: usize,
    /// Kernels whose `blocks_per_sm` the block size cannot reach.
    pub unreproducible_occupancy: usize,
    /// Copies and memsets.
    pub copies: usize,
    /// Sum of kernel durations, ms.
    pub kernel_ms: f64,
}

/// Plans a trace on `device` without a GPU.
pub fn plan_summary(trace: &orion_traces::Trace, device: &DeviceSpec) -> PlanSummary {
    let mut s = PlanSummary { trace: trace.meta.name.clone(), ops: trace.ops.len(), ..Default::default() };
    let mut shapes = std::collections::HashSet::new();
    let mut cals = std::collections::HashSet::new();
    for r in &trace.ops {
        if r.kind.is_kernel() {
            s.kernels += 1;
            s.kernel_ms += r.duration_ns as f64 / 1e6;
            if r.duration_ns > 10_000 {
                s.kernels_over_10us += 1;
            }
            let (grid, block, bps) = kernel_geometry(r, &device.sm);
            let smem =
                match smem_for_blocks_per_sm(&device.sm, block.count() as u32, crate::kernels::MAX_REGISTERS, bps) {
                    Ok(smem) => smem,
                    Err(_) => {
                        s.unreproducible_occupancy += 1;
                        0
                    }
                };
            let shape = Shape { kind: SynthKind::of(r.class), grid, block, smem };
            shapes.insert(shape);
            cals.insert((shape, r.duration_ns));
        } else if copy_kind(r.kind).is_some() {
            s.copies += 1;
        }
    }
    s.shapes = shapes.len();
    s.calibrations = cals.len();
    s.kernel_ms = (s.kernel_ms * 1000.0).round() / 1000.0;
    s
}
