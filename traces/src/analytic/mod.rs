//! Analytic traces: kernel sequences generated from the models' layer shapes (being written).

use crate::device::DeviceSpec;
use crate::trace::Trace;
use crate::workload::{Model, WorkKind};

/// Generates the analytic trace of one request (inference) or iteration (training).
pub fn generate(model: Model, kind: WorkKind, batch: u32, device: &DeviceSpec) -> Trace {
    let _ = (model, kind, batch, device);
    todo!("analytic generator")
}
