//! Which profile record a captured op gets: the record at the op's position in its request
//! when its kind (and, for kernels, name and grid) agree; else the first record with the same
//! (name, grid); else an `unknown` fallback record. The outcome of each is counted.

use orion_policies::ProfileRef;
use orion_traces::{Dim3, KernelClass, OpKind, OpRecord};
use std::collections::HashMap;

/// Table index of the fallback records in every client's profile tables.
pub const FALLBACK_TABLE: u16 = 1;

/// How an op's profile was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOutcome {
    /// The record at the op's position.
    Position,
    /// The (name, grid) lookup.
    Lookup,
    /// No record: the fallback.
    Unknown,
}

/// A captured op as far as matching is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpKey {
    /// Kind.
    pub kind: OpKind,
    /// Kernel name (empty for other ops or when unknown).
    pub name: String,
    /// Grid (kernels).
    pub grid: Option<Dim3>,
    /// Blocks in the grid (kernels).
    pub blocks: u64,
}

/// One client's profile (table 0) and the fallback records (table 1).
#[derive(Debug, Clone)]
pub struct Matcher {
    profile: Vec<OpRecord>,
    by_name_grid: HashMap<(String, Option<Dim3>), u32>,
    sm_count: u32,
}

/// The fallback table: rows 0..sm_count-1 are `unknown` kernels needing 1..=sm_count SMs
/// (zero duration: nothing is known of it), then one row per non-kernel kind.
pub fn fallback_table(sm_count: u32) -> Vec<OpRecord> {
    let mut v: Vec<OpRecord> = (1..=sm_count.max(1))
        .map(|s| OpRecord::kernel(format!("unknown-kernel-{s}sm"), 0, s, KernelClass::Unknown))
        .collect();
    for kind in NON_KERNEL {
        v.push(OpRecord::new(kind, format!("unknown-{}", kind.as_str()), 0, 0, KernelClass::Unknown));
    }
    v
}

const NON_KERNEL: [OpKind; 7] =
    [OpKind::CopyH2D, OpKind::CopyD2H, OpKind::CopyD2D, OpKind::Memset, OpKind::Malloc, OpKind::Free, OpKind::Sync];

impl Matcher {
    /// A matcher over `profile` (may be empty) on a device of `sm_count` SMs.
    pub fn new(profile: Vec<OpRecord>, sm_count: u32) -> Self {
        let mut by_name_grid = HashMap::new();
        for (i, r) in profile.iter().enumerate() {
            if r.kind.is_kernel() {
                by_name_grid.entry((r.name.clone(), r.grid)).or_insert(i as u32);
            }
        }
        Matcher { profile, by_name_grid, sm_count: sm_count.max(1) }
    }

    /// The profile table (table 0).
    pub fn profile(&self) -> &[OpRecord] {
        &self.profile
    }

    /// The profile of the op at `index` of its request.
    pub fn find(&self, index: usize, op: &OpKey) -> (ProfileRef, MatchOutcome) {
        if let Some(r) = self.profile.get(index)
            && r.kind == op.kind
            && (!op.kind.is_kernel() || (r.name == op.name && (r.grid.is_none() || r.grid == op.grid)))
        {
            return (ProfileRef { table: 0, row: index as u32 }, MatchOutcome::Position);
        }
        if op.kind.is_kernel()
            && let Some(&row) = self.by_name_grid.get(&(op.name.clone(), op.grid))
        {
            return (ProfileRef { table: 0, row }, MatchOutcome::Lookup);
        }
        let row = if op.kind.is_kernel() {
            // At least one block per SM until the grid fills the device.
            op.blocks.clamp(1, self.sm_count as u64) as u32 - 1
        } else {
            self.sm_count + NON_KERNEL.iter().position(|&k| k == op.kind).unwrap_or(0) as u32
        };
        (ProfileRef { table: FALLBACK_TABLE, row }, MatchOutcome::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(name: &str, grid: u32) -> OpRecord {
        let mut r = OpRecord::kernel(name, 1000, 4, KernelClass::Compute);
        r.grid = Some(Dim3::linear(grid));
        r
    }

    fn key(name: &str, grid: u32) -> OpKey {
        OpKey { kind: OpKind::Kernel, name: name.into(), grid: Some(Dim3::linear(grid)), blocks: grid as u64 }
    }

    #[test]
    fn position_then_lookup_then_unknown() {
        let m = Matcher::new(vec![kernel("a", 8), kernel("b", 16)], 132);
        assert_eq!(m.find(0, &key("a", 8)), (ProfileRef { table: 0, row: 0 }, MatchOutcome::Position));
        // Same position, other name: found by (name, grid).
        assert_eq!(m.find(0, &key("b", 16)), (ProfileRef { table: 0, row: 1 }, MatchOutcome::Lookup));
        // Right name, wrong grid: unknown, sized by its grid.
        assert_eq!(m.find(1, &key("b", 20)), (ProfileRef { table: FALLBACK_TABLE, row: 19 }, MatchOutcome::Unknown));
        assert_eq!(m.find(5, &key("c", 1000)).0, ProfileRef { table: FALLBACK_TABLE, row: 131 });
        let copy = OpKey { kind: OpKind::CopyD2H, name: String::new(), grid: None, blocks: 0 };
        let (p, o) = m.find(0, &copy);
        assert_eq!(o, MatchOutcome::Unknown);
        assert_eq!(fallback_table(132)[p.row as usize].kind, OpKind::CopyD2H);
    }
}
