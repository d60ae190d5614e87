//! The built-in workloads: the paper's five models as inference and training traces, so that
//! `orion-sim` works on a fresh clone with no files, and the named HP/BE pairs built from them.

use crate::arrival::ArrivalProcess;
use crate::device::DeviceSpec;
use crate::scenario::ClientSpec;
use crate::trace::Trace;
use crate::workload::{Model, Pair, Role, WorkKind};
use std::sync::Arc;

/// The built-in trace of `model` in `kind` at `batch` on `device`. Until measured traces exist
/// for a device, this is the analytic estimate (labelled `analytic` in its metadata).
pub fn builtin_trace(model: Model, kind: WorkKind, batch: u32, device: &DeviceSpec) -> Trace {
    crate::analytic::generate(model, kind, batch, device)
}

/// A built-in inference client of `model` at its default batch, arriving by `arrival`.
pub fn inference_client(
    model: Model,
    role: Role,
    arrival: ArrivalProcess,
    device: &DeviceSpec,
) -> ClientSpec {
    let batch = model.default_batch(WorkKind::Inference);
    ClientSpec {
        name: model.as_str().to_string(),
        role,
        kind: WorkKind::Inference,
        trace: Arc::new(builtin_trace(model, WorkKind::Inference, batch, device)),
        first_trace: None,
        arrival,
        max_requests: None,
    }
}

/// A built-in training client of `model` at its default batch.
pub fn training_client(model: Model, role: Role, device: &DeviceSpec) -> ClientSpec {
    let batch = model.default_batch(WorkKind::Training);
    ClientSpec {
        name: model.as_str().to_string(),
        role,
        kind: WorkKind::Training,
        trace: Arc::new(builtin_trace(model, WorkKind::Training, batch, device)),
        first_trace: None,
        arrival: ArrivalProcess::ClosedLoop,
        max_requests: None,
    }
}

/// The clients of a named pair: HP = the first model as inference at the paper's default
/// Poisson rate, BE = the second model training.
pub fn pair_clients(pair: Pair, device: &DeviceSpec) -> Vec<ClientSpec> {
    vec![
        inference_client(
            pair.hp,
            Role::Hp,
            ArrivalProcess::Poisson {
                rate: pair.hp.default_hp_rate(),
            },
            device,
        ),
        training_client(pair.be, Role::Be, device),
    ]
}
