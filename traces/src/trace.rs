//! A trace: the ops of one request (inference) or one iteration (training), with provenance.

use crate::op::{KernelClass, OpKind, OpRecord};
use crate::workload::WorkKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Where a trace's numbers come from; printed in every report so that estimates are never
/// mistaken for measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TraceSource {
    /// Generated from layer shapes by the analytic generator (an estimate).
    Analytic,
    /// Measured on a real GPU by `orion-profile`.
    Measured,
    /// Read from a user's file whose provenance the tool does not know.
    #[default]
    File,
}

impl TraceSource {
    /// The label used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceSource::Analytic => "analytic",
            TraceSource::Measured => "measured",
            TraceSource::File => "file",
        }
    }
}

impl fmt::Display for TraceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Descriptive metadata of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TraceMeta {
    /// Short name, e.g. `resnet50-inference-b4`.
    pub name: String,
    /// Model name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Inference request or training iteration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkKind>,
    /// Batch size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Device the durations hold for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Provenance of the numbers.
    #[serde(default)]
    pub source: TraceSource,
    /// For training traces: index of the first op of the optimizer update phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_start: Option<usize>,
    /// Free-form provenance (GPU, driver, CUDA, PyTorch version, date, command...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// The ops of one request or iteration, in program order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// What the trace is and where it comes from.
    pub meta: TraceMeta,
    /// The ops, in the order the client issues them.
    pub ops: Vec<OpRecord>,
}

impl Trace {
    /// A trace from metadata and ops.
    pub fn new(meta: TraceMeta, ops: Vec<OpRecord>) -> Self {
        Trace { meta, ops }
    }

    /// Number of kernel launches.
    pub fn kernel_count(&self) -> usize {
        self.ops.iter().filter(|o| o.kind.is_kernel()).count()
    }

    /// Sum of the standalone durations of the ops that run on the GPU.
    pub fn summed_gpu_ns(&self) -> u64 {
        self.ops.iter().filter(|o| o.kind.uses_gpu()).map(|o| o.duration_ns).sum()
    }

    /// Sum of the host gaps.
    pub fn summed_host_gap_ns(&self) -> u64 {
        self.ops.iter().map(OpRecord::host_gap).sum()
    }

    /// Largest `sm_needed` of any kernel (0 for a trace without kernels).
    pub fn max_sm_needed(&self) -> u32 {
        self.ops.iter().filter(|o| o.kind.is_kernel()).map(|o| o.sm_needed).max().unwrap_or(0)
    }

    /// Number of kernels of each class: (compute, memory, unknown).
    pub fn class_counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for o in self.ops.iter().filter(|o| o.kind.is_kernel()) {
            match o.class {
                KernelClass::Compute => c.0 += 1,
                KernelClass::Memory => c.1 += 1,
                KernelClass::Unknown => c.2 += 1,
            }
        }
        c
    }

    /// Number of ops of a kind.
    pub fn count_kind(&self, kind: OpKind) -> usize {
        self.ops.iter().filter(|o| o.kind == kind).count()
    }

    /// A one-line label for reports: name and provenance.
    pub fn label(&self) -> String {
        format!("{} ({})", self.meta.name, self.meta.source)
    }
}
