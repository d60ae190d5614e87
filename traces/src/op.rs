//! One GPU operation of a client, with the profile a scheduler needs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What kind of GPU operation an op is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A kernel launch.
    Kernel,
    /// Host-to-device copy.
    #[serde(rename = "copy_h2d")]
    CopyH2D,
    /// Device-to-host copy.
    #[serde(rename = "copy_d2h")]
    CopyD2H,
    /// Device-to-device copy.
    #[serde(rename = "copy_d2d")]
    CopyD2D,
    /// A memset.
    Memset,
    /// A device allocation.
    Malloc,
    /// A device free.
    Free,
    /// A host-side synchronisation point: the client waits for all its earlier ops.
    Sync,
}

impl OpKind {
    /// All kinds, in the order of their textual names.
    pub const ALL: [OpKind; 8] = [
        OpKind::Kernel,
        OpKind::CopyH2D,
        OpKind::CopyD2H,
        OpKind::CopyD2D,
        OpKind::Memset,
        OpKind::Malloc,
        OpKind::Free,
        OpKind::Sync,
    ];

    /// The name used in trace files.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Kernel => "kernel",
            OpKind::CopyH2D => "copy_h2d",
            OpKind::CopyD2H => "copy_d2h",
            OpKind::CopyD2D => "copy_d2d",
            OpKind::Memset => "memset",
            OpKind::Malloc => "malloc",
            OpKind::Free => "free",
            OpKind::Sync => "sync",
        }
    }

    /// Whether the op is a kernel launch (the only kind Orion's SM and class rules apply to).
    pub fn is_kernel(self) -> bool {
        self == OpKind::Kernel
    }

    /// Whether the op does work on the GPU (kernels, copies, memsets); allocations, frees and
    /// syncs only cost host time.
    pub fn uses_gpu(self) -> bool {
        !matches!(self, OpKind::Malloc | OpKind::Free | OpKind::Sync)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OpKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OpKind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            format!("unknown op kind `{s}` (expected one of: {})", OpKind::ALL.map(|k| k.as_str()).join(", "))
        })
    }
}

/// Orion's classification of a kernel by the resource that bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KernelClass {
    /// Compute-bound (above the roofline knee, or SM throughput >= 60% of peak).
    Compute,
    /// Memory-bound (DRAM throughput >= 60% of peak).
    Memory,
    /// Neither clearly; Orion treats it as compatible with anything.
    #[default]
    Unknown,
}

impl KernelClass {
    /// The name used in trace files.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelClass::Compute => "compute",
            KernelClass::Memory => "memory",
            KernelClass::Unknown => "unknown",
        }
    }

    /// Orion's `Profile` column value: 1 compute, 0 memory, -1 unknown.
    pub fn orion_profile(self) -> i32 {
        match self {
            KernelClass::Compute => 1,
            KernelClass::Memory => 0,
            KernelClass::Unknown => -1,
        }
    }

    /// The class from Orion's `Profile` column value.
    pub fn from_orion_profile(v: i64) -> Option<Self> {
        match v {
            1 => Some(KernelClass::Compute),
            0 => Some(KernelClass::Memory),
            -1 => Some(KernelClass::Unknown),
            _ => None,
        }
    }

    /// Orion's classification rule. `arithmetic_intensity` is FLOPs per DRAM byte and
    /// `roofline_knee` the device's peak FLOP/s divided by its DRAM bandwidth; throughputs are
    /// percentages of peak.
    pub fn classify(
        arithmetic_intensity: Option<f64>,
        roofline_knee: f64,
        sm_throughput_pct: Option<f64>,
        dram_throughput_pct: Option<f64>,
    ) -> KernelClass {
        if let Some(ai) = arithmetic_intensity
            && ai.is_finite()
            && ai > roofline_knee
        {
            return KernelClass::Compute;
        }
        if sm_throughput_pct.is_some_and(|p| p >= 60.0) {
            return KernelClass::Compute;
        }
        if dram_throughput_pct.is_some_and(|p| p >= 60.0) {
            return KernelClass::Memory;
        }
        KernelClass::Unknown
    }
}

impl fmt::Display for KernelClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KernelClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "compute" => Ok(KernelClass::Compute),
            "memory" => Ok(KernelClass::Memory),
            "unknown" => Ok(KernelClass::Unknown),
            _ => Err(format!("unknown kernel class `{s}` (expected compute, memory or unknown)")),
        }
    }
}

/// A CUDA grid or block dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dim3 {
    /// x extent.
    pub x: u32,
    /// y extent.
    pub y: u32,
    /// z extent.
    pub z: u32,
}

impl Dim3 {
    /// A one-dimensional extent.
    pub const fn linear(x: u32) -> Self {
        Dim3 { x, y: 1, z: 1 }
    }

    /// A three-dimensional extent.
    pub const fn new(x: u32, y: u32, z: u32) -> Self {
        Dim3 { x, y, z }
    }

    /// Total number of elements (blocks of a grid, threads of a block).
    pub fn count(self) -> u64 {
        self.x as u64 * self.y as u64 * self.z as u64
    }
}

impl fmt::Display for Dim3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.x, self.y, self.z)
    }
}

impl FromStr for Dim3 {
    type Err = String;
    /// Parses `X`, `XxY`, `XxYxZ` (also with `:` or `,` between the parts, or in parentheses).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches(['(', '[']).trim_end_matches([')', ']']);
        let parts: Vec<&str> = t.split(['x', 'X', ':', ',', ' ']).filter(|p| !p.is_empty()).collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(format!("`{s}` is not a dimension (expected X, XxY or XxYxZ)"));
        }
        let mut v = [1u32; 3];
        for (i, p) in parts.iter().enumerate() {
            v[i] = p
                .parse::<u32>()
                .map_err(|_| format!("`{s}` is not a dimension: `{p}` is not a non-negative integer"))?;
            if v[i] == 0 {
                return Err(format!("`{s}` is not a dimension: extents must be at least 1"));
            }
        }
        Ok(Dim3::new(v[0], v[1], v[2]))
    }
}

/// One GPU operation of a client with its profile: what a scheduler knows about it before it runs.
///
/// The first five fields are always present; the rest are detail that richer traces carry
/// (measured by `orion-profile`, or computed by the analytic generator) and that Orion's CSV lacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// What the op is.
    pub kind: OpKind,
    /// Kernel name (mangled or demangled) or a label for non-kernel ops.
    pub name: String,
    /// Standalone duration on the GPU in nanoseconds (the GPU otherwise idle). For allocations,
    /// frees and syncs, the host time the call takes.
    pub duration_ns: u64,
    /// SMs needed for one wave: `ceil(blocks / blocks_per_sm)` (may exceed the SM count).
    pub sm_needed: u32,
    /// Compute-bound, memory-bound or unknown.
    pub class: KernelClass,
    /// Grid size in blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Dim3>,
    /// Block size in threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<Dim3>,
    /// Registers per thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registers_per_thread: Option<u32>,
    /// Shared memory per block in bytes (static plus dynamic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_mem_per_block: Option<u32>,
    /// Blocks of this kernel one SM holds at once (the occupancy limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_per_sm: Option<u32>,
    /// SM throughput while running alone, % of peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_throughput_pct: Option<f64>,
    /// DRAM throughput while running alone, % of peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dram_throughput_pct: Option<f64>,
    /// Floating-point operations executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<f64>,
    /// DRAM bytes read and written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<f64>,
    /// Host time between the previous op's issue and this one's, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_gap_ns: Option<u64>,
    /// Bytes moved by a copy or set by a memset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_bytes: Option<u64>,
}

impl OpRecord {
    /// A record with only the five fields every trace has.
    pub fn new(kind: OpKind, name: impl Into<String>, duration_ns: u64, sm_needed: u32, class: KernelClass) -> Self {
        OpRecord {
            kind,
            name: name.into(),
            duration_ns,
            sm_needed,
            class,
            grid: None,
            block: None,
            registers_per_thread: None,
            shared_mem_per_block: None,
            blocks_per_sm: None,
            sm_throughput_pct: None,
            dram_throughput_pct: None,
            flops: None,
            bytes: None,
            host_gap_ns: None,
            copy_bytes: None,
        }
    }

    /// A kernel record with only the five basic fields.
    pub fn kernel(name: impl Into<String>, duration_ns: u64, sm_needed: u32, class: KernelClass) -> Self {
        Self::new(OpKind::Kernel, name, duration_ns, sm_needed, class)
    }

    /// Number of thread blocks, when the grid is known.
    pub fn blocks(&self) -> Option<u64> {
        self.grid.map(Dim3::count)
    }

    /// Threads per block, when the block is known.
    pub fn threads_per_block(&self) -> Option<u64> {
        self.block.map(Dim3::count)
    }

    /// The host gap before this op, zero when unknown.
    pub fn host_gap(&self) -> u64 {
        self.host_gap_ns.unwrap_or(0)
    }

    /// Checks the record's internal consistency; the message names the offending field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let (Some(g), Some(b)) = (self.blocks(), self.blocks_per_sm)
            && self.kind.is_kernel()
        {
            if b == 0 {
                return Err(("blocks_per_sm", "must be at least 1".into()));
            }
            let expect = g.div_ceil(b as u64);
            if expect != self.sm_needed as u64 {
                return Err((
                    "sm_needed",
                    format!("is {} but ceil(blocks {g} / blocks_per_sm {b}) = {expect}", self.sm_needed),
                ));
            }
        }
        for (field, v) in
            [("sm_throughput_pct", self.sm_throughput_pct), ("dram_throughput_pct", self.dram_throughput_pct)]
        {
            if let Some(v) = v
                && !(0.0..=100.5).contains(&v)
            {
                return Err((field, format!("{v} is not a percentage in 0..=100")));
            }
        }
        for (field, v) in [("flops", self.flops), ("bytes", self.bytes)] {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0)
            {
                return Err((field, format!("{v} must be a finite non-negative number")));
            }
        }
        if self.kind.is_kernel() && self.sm_needed == 0 {
            return Err(("sm_needed", "a kernel needs at least one SM".into()));
        }
        Ok(())
    }
}
