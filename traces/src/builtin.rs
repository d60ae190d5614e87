//! The built-in workloads: the paper's five models as inference and training traces, so that
//! `orion-sim` works on a fresh clone with no files, and the named HP/BE pairs built from them.

use crate::arrival::ArrivalProcess;
use crate::device::{BuiltinTraces, DeviceSpec};
use crate::error::{Location, Result, TraceError};
use crate::format::{read_trace, read_trace_str};
use crate::scenario::{ClientSpec, DEFAULT_WARMUP, Scenario, Stop};
use crate::trace::Trace;
use crate::workload::{Model, Pair, Role, WorkKind};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The built-in trace of `model` in `kind` at `batch` on `device`: the measured trace of
/// [`MEASURED`] when there is one for this device, model, mode and batch (and the device's
/// `builtin_traces` allows it), else the analytic estimate. Each is labelled in its metadata
/// (`source`: `measured` or `analytic`), and reports print it.
pub fn builtin_trace(model: Model, kind: WorkKind, batch: u32, device: &DeviceSpec) -> Trace {
    if device.builtin_traces == BuiltinTraces::MeasuredWhenAvailable
        && let Some(t) = measured_trace(model, kind, batch, &device.name)
    {
        return t;
    }
    crate::analytic::generate(model, kind, batch, device)
}

/// The measured traces compiled in (from `model_kernels/`, so a fresh clone needs no files at
/// run time): device name, model, mode, batch, the trace file's text.
///
/// Every trace listed has Orion's classes from Nsight Compute (kernels ncu did not profile stay
/// `unknown`; each file's header counts them).
pub const MEASURED: [(&str, Model, WorkKind, u32, &str); 10] = [
    (
        "h100",
        Model::ResNet50,
        WorkKind::Inference,
        4,
        include_str!("../../model_kernels/h100/resnet50-inference-b4.csv"),
    ),
    (
        "h100",
        Model::MobileNetV2,
        WorkKind::Inference,
        4,
        include_str!("../../model_kernels/h100/mobilenetv2-inference-b4.csv"),
    ),
    (
        "h100",
        Model::ResNet101,
        WorkKind::Inference,
        4,
        include_str!("../../model_kernels/h100/resnet101-inference-b4.csv"),
    ),
    ("h100", Model::Bert, WorkKind::Inference, 2, include_str!("../../model_kernels/h100/bert-inference-b2.csv")),
    (
        "h100",
        Model::Transformer,
        WorkKind::Inference,
        4,
        include_str!("../../model_kernels/h100/transformer-inference-b4.csv"),
    ),
    (
        "h100",
        Model::ResNet50,
        WorkKind::Training,
        32,
        include_str!("../../model_kernels/h100/resnet50-training-b32.csv"),
    ),
    (
        "h100",
        Model::MobileNetV2,
        WorkKind::Training,
        64,
        include_str!("../../model_kernels/h100/mobilenetv2-training-b64.csv"),
    ),
    (
        "h100",
        Model::ResNet101,
        WorkKind::Training,
        32,
        include_str!("../../model_kernels/h100/resnet101-training-b32.csv"),
    ),
    ("h100", Model::Bert, WorkKind::Training, 8, include_str!("../../model_kernels/h100/bert-training-b8.csv")),
    (
        "h100",
        Model::Transformer,
        WorkKind::Training,
        8,
        include_str!("../../model_kernels/h100/transformer-training-b8.csv"),
    ),
];

/// The embedded measured trace for a device name, model, mode and batch, parsed once.
pub fn measured_trace(model: Model, kind: WorkKind, batch: u32, device: &str) -> Option<Trace> {
    static PARSED: OnceLock<Vec<Option<Trace>>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        MEASURED
            .iter()
            .map(|(dev, m, k, b, text)| {
                let origin = Location::file(format!("<built-in {dev}/{}-{}-b{b}>", m.as_str(), k.as_str()));
                read_trace_str(text, origin).ok()
            })
            .collect()
    });
    MEASURED
        .iter()
        .zip(parsed)
        .find(|((dev, m, k, b, _), _)| dev.eq_ignore_ascii_case(device) && *m == model && *k == kind && *b == batch)
        .and_then(|(_, t)| t.clone())
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

/// A workload ([`workload_clients`]) as a whole scenario on `device`: named after the workload
/// (a trace file by its stem), seed 1, [`Stop::DEFAULT`], the default warm-up, no policy.
/// Callers change what they state otherwise.
pub fn workload_scenario(
    name: &str,
    mode: Option<WorkKind>,
    device: DeviceSpec,
    device_source: String,
) -> Result<Scenario> {
    let clients = workload_clients(name, mode, &device)?;
    Ok(Scenario {
        name: Path::new(name).file_stem().map_or(name.to_string(), |s| s.to_string_lossy().into_owned()),
        clients,
        device,
        device_source,
        seed: 1,
        stop: Stop::DEFAULT,
        warmup: DEFAULT_WARMUP,
        policy: None,
        policy_params: Default::default(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceSource;

    #[test]
    fn every_embedded_trace_parses_and_is_measured() {
        for (dev, m, k, b, text) in MEASURED {
            let t = read_trace_str(text, Location::file("embedded")).unwrap();
            assert_eq!(t.meta.source, TraceSource::Measured, "{dev} {m} {k}");
            assert_eq!((t.meta.mode, t.meta.batch_size), (Some(k), Some(b)));
            assert_eq!(t.meta.model.as_deref(), Some(m.as_str()));
            assert!(t.kernel_count() > 100);
            assert!(measured_trace(m, k, b, dev).is_some());
        }
    }

    #[test]
    fn h100_uses_measured_traces_unless_told_otherwise() {
        let mut dev = DeviceSpec::preset("h100").unwrap();
        let t = builtin_trace(Model::ResNet50, WorkKind::Inference, 4, &dev);
        assert_eq!(t.meta.source, TraceSource::Measured);
        assert_eq!(builtin_trace(Model::Bert, WorkKind::Training, 8, &dev).meta.source, TraceSource::Measured);
        // Another batch and another device: analytic.
        assert_eq!(builtin_trace(Model::ResNet50, WorkKind::Inference, 8, &dev).meta.source, TraceSource::Analytic);
        assert_eq!(builtin_trace(Model::ResNet50, WorkKind::Training, 64, &dev).meta.source, TraceSource::Analytic);
        let v100 = DeviceSpec::preset("v100").unwrap();
        assert_eq!(builtin_trace(Model::ResNet50, WorkKind::Inference, 4, &v100).meta.source, TraceSource::Analytic);
        dev.builtin_traces = BuiltinTraces::Analytic;
        assert_eq!(builtin_trace(Model::ResNet50, WorkKind::Inference, 4, &dev).meta.source, TraceSource::Analytic);
    }
}
