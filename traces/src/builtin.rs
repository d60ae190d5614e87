//! The built-in workloads: the paper's five models as inference and training traces, so that
//! `orion-sim` works on a fresh clone with no files, and the named HP/BE pairs built from them.

use crate::arrival::ArrivalProcess;
use crate::device::DeviceSpec;
use crate::error::{Result, TraceError};
use crate::format::read_trace;
use crate::scenario::ClientSpec;
use crate::trace::Trace;
use crate::workload::{Model, Pair, Role, WorkKind};
use std::path::Path;
use std::sync::Arc;

/// The built-in trace of `model` in `kind` at `batch` on `device`. Until measured traces exist
/// for a device, this is the analytic estimate (labelled `analytic` in its metadata).
pub fn builtin_trace(model: Model, kind: WorkKind, batch: u32, device: &DeviceSpec) -> Trace {
    crate::analytic::generate(model, kind, batch, device)
}

/// A built-in inference client of `model` at its default batch, arriving by `arrival`.
pub fn inference_client(model: Model, role: Role, arrival: ArrivalProcess, device: &DeviceSpec) -> ClientSpec {
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
        inference_client(pair.hp, Role::Hp, ArrivalProcess::Poisson { rate: pair.hp.default_hp_rate() }, device),
        training_client(pair.be, Role::Be, device),
    ]
}

/// The clients a workload name stands for:
/// * a pair `HP_BE` such as `resnet50_bert` ([`pair_clients`]);
/// * a single model name: one HP client, inference at its default rate (or training with
///   `mode`);
/// * a path to a trace file: one HP client running it (inference at 15 requests/s, or closed
///   loop when the trace or `mode` says training).
pub fn workload_clients(name: &str, mode: Option<WorkKind>, device: &DeviceSpec) -> Result<Vec<ClientSpec>> {
    let path = Path::new(name);
    if path.extension().is_some() || path.exists() {
        let trace = read_trace(path)?;
        let kind = mode.or(trace.meta.mode).unwrap_or(WorkKind::Inference);
        let arrival = match kind {
            WorkKind::Inference => ArrivalProcess::Poisson { rate: Model::ResNet50.default_hp_rate() },
            WorkKind::Training => ArrivalProcess::ClosedLoop,
        };
        return Ok(vec![ClientSpec {
            name: trace.meta.name.clone(),
            role: Role::Hp,
            kind,
            trace: Arc::new(trace),
            first_trace: None,
            arrival,
            max_requests: None,
        }]);
    }
    if name.contains('_') {
        let pair: Pair = name.parse()?;
        if mode.is_some() {
            return Err(TraceError::Unknown {
                what: "mode for a pair",
                name: name.to_string(),
                expected: vec!["no --mode: a pair is HP inference + BE training".into()],
            });
        }
        return Ok(pair_clients(pair, device));
    }
    let model: Model = name.parse()?;
    Ok(vec![match mode.unwrap_or(WorkKind::Inference) {
        WorkKind::Inference => {
            inference_client(model, Role::Hp, ArrivalProcess::Poisson { rate: model.default_hp_rate() }, device)
        }
        WorkKind::Training => training_client(model, Role::Hp, device),
    }])
}
