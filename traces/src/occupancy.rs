//! The CUDA occupancy calculation: how many blocks of a kernel one SM holds at once.

use crate::device::SmLimits;

/// Which resource bounds a kernel's occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccupancyLimit {
    /// Resident warps (threads).
    Warps,
    /// Registers.
    Registers,
    /// Shared memory.
    SharedMemory,
    /// The hardware's block slots.
    Blocks,
}

/// Result of the occupancy calculation for one launch shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    /// Blocks one SM holds at once (0: the block does not fit at all).
    pub blocks_per_sm: u32,
    /// The binding limit.
    pub limit: OccupancyLimit,
}

/// Blocks of a kernel with this launch shape that fit on one SM, following the CUDA
/// occupancy calculator: warps, registers (allocated per warp in `register_alloc_unit`
/// chunks), shared memory (plus the per-block reservation, in `shared_mem_alloc_unit` chunks)
/// and block slots.
pub fn occupancy(
    sm: &SmLimits,
    threads_per_block: u32,
    registers_per_thread: u32,
    shared_mem_per_block: u32,
) -> Occupancy {
    let threads = threads_per_block.max(1);
    let warps_per_block = threads.div_ceil(32);
    let mut best = (sm.max_blocks, OccupancyLimit::Blocks);
    let mut consider = |n: u32, limit: OccupancyLimit| {
        if n < best.0 {
            best = (n, limit);
        }
    };
    consider(sm.max_warps / warps_per_block, OccupancyLimit::Warps);
    consider(sm.max_threads / (warps_per_block * 32), OccupancyLimit::Warps);
    if registers_per_thread > 0 {
        if registers_per_thread > sm.max_registers_per_thread {
            consider(0, OccupancyLimit::Registers);
        } else {
            let unit = sm.register_alloc_unit.max(1);
            let regs_per_warp = (registers_per_thread * 32).div_ceil(unit) * unit;
            let warps_by_regs = sm.registers / regs_per_warp;
            consider(warps_by_regs / warps_per_block, OccupancyLimit::Registers);
        }
    }
    if shared_mem_per_block > 0 {
        if shared_mem_per_block > sm.max_shared_mem_per_block {
            consider(0, OccupancyLimit::SharedMemory);
        } else {
            let unit = sm.shared_mem_alloc_unit.max(1);
            let per_block = (shared_mem_per_block + sm.reserved_shared_mem_per_block).div_ceil(unit) * unit;
            consider(sm.shared_mem_bytes / per_block, OccupancyLimit::SharedMemory);
        }
    }
    Occupancy { blocks_per_sm: best.0, limit: best.1 }
}

/// `sm_needed` as Orion defines it: SMs needed to hold all blocks in one wave.
pub fn sm_needed(blocks: u64, blocks_per_sm: u32) -> u32 {
    blocks.div_ceil(blocks_per_sm.max(1) as u64).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;

    fn h100() -> SmLimits {
        DeviceSpec::preset("h100").unwrap().sm
    }

    #[test]
    fn thread_bound_kernel() {
        // 1024 threads, few registers: two blocks fill the SM's 2048 threads.
        let o = occupancy(&h100(), 1024, 16, 0);
        assert_eq!(o.blocks_per_sm, 2);
        assert_eq!(o.limit, OccupancyLimit::Warps);
    }

    #[test]
    fn register_bound_kernel() {
        // 256 threads x 128 registers = 32768 registers per block: two blocks per SM.
        let o = occupancy(&h100(), 256, 128, 0);
        assert_eq!(o.blocks_per_sm, 2);
        assert_eq!(o.limit, OccupancyLimit::Registers);
        // 168 registers round up to 168*32 = 5376 per warp (a multiple of 256): 12 warps fit,
        // one 256-thread (8-warp) block.
        assert_eq!(occupancy(&h100(), 256, 168, 0).blocks_per_sm, 1);
    }

    #[test]
    fn shared_memory_bound_kernel() {
        // 100 KB + 1 KB reserved per block on 228 KB: two blocks.
        let o = occupancy(&h100(), 128, 32, 100 * 1024);
        assert_eq!(o.blocks_per_sm, 2);
        assert_eq!(o.limit, OccupancyLimit::SharedMemory);
    }

    #[test]
    fn block_slot_bound_kernel() {
        let o = occupancy(&h100(), 32, 16, 0);
        assert_eq!(o.blocks_per_sm, 32);
        assert_eq!(o.limit, OccupancyLimit::Blocks);
    }

    #[test]
    fn oversized_block_does_not_fit() {
        assert_eq!(occupancy(&h100(), 128, 32, 300 * 1024).blocks_per_sm, 0);
        assert_eq!(occupancy(&h100(), 128, 300, 0).blocks_per_sm, 0);
    }

    #[test]
    fn sm_needed_rounds_up() {
        assert_eq!(sm_needed(1000, 8), 125);
        assert_eq!(sm_needed(1001, 8), 126);
        assert_eq!(sm_needed(1, 8), 1);
    }
}
