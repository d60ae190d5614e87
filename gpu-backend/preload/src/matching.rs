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
    /// The record at the op's position (same kind; kernels: same name and grid).
    Position,
    /// The record at the op's position, a kernel of the same grid whose name agrees once
    /// lambda and anonymous-namespace spellings (which demanglers write differently) are
    /// dropped.
    PositionLoose,
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
    /// Rows of the ops the interposer captures (kernels, copies, memsets), in order: the
    /// op at index `i` of a request is compared with row `captured_rows[i]` (profiles also
    /// list syncs, which are not queued).
    captured_rows: Vec<u32>,
    /// Normalised names of the profile's rows.
    names: Vec<String>,
    by_name_grid: HashMap<(String, Option<Dim3>), u32>,
    sm_count: u32,
}

/// A kernel name without whitespace (demanglers differ in spaces, `> >` against `>>`).
pub fn normalise(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A normalised name without the parts demanglers spell differently: anything in braces
/// (`{lambda()#1}`) or square brackets (`[lambda() (instance 1)]`), and `(anonymous
/// namespace)`.
pub fn loose(name: &str) -> String {
    let n = normalise(name).replace("(anonymousnamespace)", "");
    let mut out = String::with_capacity(n.len());
    let mut depth = 0i32;
    for ch in n.chars() {
        match ch {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = (depth - 1).max(0),
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out
}

/// Whether the interposer queues ops of this kind.
fn captured_kind(k: OpKind) -> bool {
    k.is_kernel() || matches!(k, OpKind::CopyH2D | OpKind::CopyD2H | OpKind::CopyD2D | OpKind::Memset)
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
        let names: Vec<String> = profile.iter().map(|r| normalise(&r.name)).collect();
        for (i, r) in profile.iter().enumerate() {
            if r.kind.is_kernel() {
                by_name_grid.entry((names[i].clone(), r.grid)).or_insert(i as u32);
            }
        }
        let captured_rows =
            profile.iter().enumerate().filter(|(_, r)| captured_kind(r.kind)).map(|(i, _)| i as u32).collect();
        Matcher { profile, captured_rows, names, by_name_grid, sm_count: sm_count.max(1) }
    }

    /// The profile table (table 0).
    pub fn profile(&self) -> &[OpRecord] {
        &self.profile
    }

    /// The profile of the op at `index` of its request.
    pub fn find(&self, index: usize, op: &OpKey) -> (ProfileRef, MatchOutcome) {
        let name = if op.kind.is_kernel() { normalise(&op.name) } else { String::new() };
        if let Some(&row) = self.captured_rows.get(index) {
            let r = &self.profile[row as usize];
            let grid_ok = r.grid.is_none() || r.grid == op.grid;
            let at = ProfileRef { table: 0, row };
            if r.kind == op.kind && !op.kind.is_kernel() {
                return (at, MatchOutcome::Position);
            }
            if r.kind == op.kind && grid_ok && self.names[row as usize] == name {
                return (at, MatchOutcome::Position);
            }
            if r.kind == op.kind && grid_ok && loose(&self.names[row as usize]) == loose(&name) {
                return (at, MatchOutcome::PositionLoose);
            }
        }
        if op.kind.is_kernel()
            && let Some(&row) = self.by_name_grid.get(&(name, op.grid))
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

    #[test]
    fn positions_skip_uncaptured_rows_and_names_are_normalised() {
        let mut sync = OpRecord::new(OpKind::Sync, "sync", 0, 0, KernelClass::Unknown);
        sync.grid = None;
        let m = Matcher::new(vec![kernel("f<a, b> >(int)", 8), sync, kernel("g{lambda()#1}", 4)], 132);
        // The demangler wrote no spaces: still the record at position 0.
        assert_eq!(m.find(0, &key("f<a,b>>(int)", 8)).1, MatchOutcome::Position);
        // Index 1 is the kernel after the sync (which is not captured), written differently.
        assert_eq!(
            m.find(1, &key("g[lambda() (instance 1)]", 4)),
            (ProfileRef { table: 0, row: 2 }, MatchOutcome::PositionLoose)
        );
        // A different kernel at that position is not matched loosely.
        assert_eq!(m.find(1, &key("h", 4)).1, MatchOutcome::Unknown);
    }
}
