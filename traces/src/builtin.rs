//! The built-in workloads: the paper's five models as inference and training traces, so that
//! `orion-sim` works on a fresh clone with no files.

use crate::device::DeviceSpec;
use crate::trace::Trace;
use crate::workload::{Model, WorkKind};

/// The built-in trace of `model` in `kind` at `batch` on `device`. Until measured traces exist
/// for a device, this is the analytic estimate (labelled `analytic` in its metadata).
pub fn builtin_trace(model: Model, kind: WorkKind, batch: u32, device: &DeviceSpec) -> Trace {
    crate::analytic::generate(model, kind, batch, device)
}
