//! Analytic traces: kernel sequences generated from the models' layer shapes, so that the
//! built-in workloads exist before any measured trace does. Every trace says so: its
//! `TraceMeta::source` is [`TraceSource::Analytic`] and `extra["generator"]` is
//! [`GENERATOR`].
//!
//! # How a trace is made
//!
//! 1. A model builder ([`resnet`], [`mobilenet`], [`bert`], [`transformer`]; the model
//!    configurations are constants there) lists the framework-level ops of the forward pass
//!    at the batch size (`layers::Op`: a convolution, a batch norm, an elementwise op...), the
//!    inputs copied in and the outputs copied out, and for training the loss.
//! 2. Each op is lowered to the kernels PyTorch launches for it (`forward.rs`, and for
//!    training `training.rs`: backward kernels, gradient sums, `zero_grad`, optimizer), with
//!    typical launch shapes (PyTorch's elementwise kernels: 128 threads, 512 elements per
//!    block; cuDNN batch norm: a block column per channel; GEMMs: CTA tiles picked by a
//!    heuristic that minimises the estimated time over tile shapes and split-K, as cuBLAS
//!    and cuDNN heuristics do).
//! 3. `kernels.rs` costs each kernel on the device: FLOPs and compulsory DRAM bytes, roofline
//!    time with wave quantisation and a bytes-in-flight limit for small grids, the occupancy
//!    calculator's blocks per SM, `sm_needed`, the achieved SM and DRAM throughput and Orion's
//!    class; and gives it the host gap of the framework call that launches it (from the
//!    device's `host` parameters; backward ops scaled by `host.backward_factor`; helper
//!    kernels of the same call only a launch cost).
//!
//! # Assumptions
//!
//! * PyTorch eager, fp32 tensors, NCHW. Convolutions run cuDNN's TF32 tensor-core kernels
//!   where the device has TF32 (PyTorch's default `allow_tf32=True` for cuDNN), at up to 55%
//!   of the dense TF32 peak; these kernels are NHWC, so each convolution's input is first
//!   transposed (`nchwToNhwcKernel`) and the kernel writes NCHW output. On devices without
//!   TF32 (V100) convolutions are FP32 SIMT implicit GEMMs (`volta_scudnn_*`) without
//!   helpers. Matmuls (linear layers, attention) are FP32 SIMT cuBLAS GEMMs (PyTorch's
//!   default `allow_tf32=False` for matmuls), at up to 80% of the FP32 peak. Efficiency drops
//!   for small problems through tile padding, short K loops and wave quantisation.
//! * Depthwise convolutions are PyTorch's `conv_depthwise2d` kernels: memory- and
//!   latency-bound. Elementwise kernels, copies, reductions and normalisations are
//!   memory-bound at 60-85% of the DRAM bandwidth when large; the L2 cache is not modelled
//!   (bytes are compulsory DRAM traffic).
//! * Inference requests: a host-to-device copy of each input (images: batch x 3 x 224 x 224
//!   fp32; token ids as int64), the forward pass in eval mode (no dropout kernels, batch norm
//!   with running statistics), a device-to-host copy of each output and a synchronisation.
//!   Copies take `2.5 us + bytes / bandwidth` (pinned memory). The first copy's host gap is
//!   the request's input handling (two simple ops).
//! * Training iterations: see `training.rs`. [`Framework`] selects between PyTorch 2.x
//!   defaults (`foreach` optimizers, `zero_grad(set_to_none=True)`) and the PyTorch 1.x
//!   behaviour of Orion's artifact (per-parameter optimizer loops, zero-filled gradients),
//!   which matches the kernel counts of Orion's published profiles.
//! * BERT is NVIDIA's BERT without apex (Python layer norm, unfused `bias_gelu`); the
//!   Transformer is NVIDIA's Transformer-XL base with its adaptive softmax (whose
//!   `nonzero()` calls synchronise the host mid-request); see their modules.
//!
//! Generating a trace is deterministic and takes well under 10 ms.

mod bert;
mod forward;
mod kernels;
mod layers;
mod mobilenet;
mod resnet;
#[cfg(test)]
mod tests;
mod training;
mod transformer;

use crate::device::DeviceSpec;
use crate::op::OpKind;
use crate::trace::{Trace, TraceMeta, TraceSource};
use crate::workload::{Model, WorkKind};
use kernels::{Emitter, Host};
use layers::Net;
use std::collections::BTreeMap;

/// The generator label written to `TraceMeta::extra["generator"]`.
pub const GENERATOR: &str = "analytic v1";

/// Host cost of a request's input handling (tensor creation, pinning), in simple ops.
const INPUT_HANDLING_SIMPLE_OPS: f64 = 2.0;

/// Which framework behaviour the generator models for the parts that changed between PyTorch
/// versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Framework {
    /// PyTorch 2.x defaults (the default): cuBLASLt fuses the linear bias into the GEMM,
    /// `zero_grad()` sets gradients to `None` (no kernels), optimizers use the `foreach`
    /// implementation (a few `multi_tensor_apply_kernel` launches per step): SGD with
    /// momentum and weight decay for the CNNs, AdamW for BERT and Transformer-XL.
    #[default]
    Modern,
    /// PyTorch 1.x as in Orion's artifact: `addmm` copies the bias before the GEMM,
    /// `zero_grad()` zero-fills every gradient and autograd adds into it, and the optimizer
    /// loops over parameters (plain SGD for the CNNs, Adam for BERT and Transformer-XL). The
    /// kernel counts match Orion's profiles.
    OrionArtifact,
}

impl Framework {
    /// The label written to `TraceMeta::extra["framework"]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Modern => "pytorch2-defaults",
            Framework::OrionArtifact => "orion-artifact-pytorch1",
        }
    }
}

/// Generates the analytic trace of one request (inference) or iteration (training) of `model`
/// at `batch` on `device`, with PyTorch 2.x defaults ([`Framework::Modern`]). A batch of 0 is
/// treated as 1.
pub fn generate(model: Model, kind: WorkKind, batch: u32, device: &DeviceSpec) -> Trace {
    generate_with(model, kind, batch, device, Framework::default())
}

/// [`generate`] for a chosen framework behaviour.
pub fn generate_with(model: Model, kind: WorkKind, batch: u32, device: &DeviceSpec, framework: Framework) -> Trace {
    let batch = batch.max(1);
    let training = kind == WorkKind::Training;
    let net = build(model, batch as u64, training);
    let mut em = Emitter::new(device, framework);
    let update_start = if training {
        Some(training::iteration(&mut em, &net, model))
    } else {
        inference(&mut em, &net);
        None
    };
    let mut extra = BTreeMap::new();
    extra.insert("generator".to_string(), GENERATOR.to_string());
    extra.insert("framework".to_string(), framework.as_str().to_string());
    extra.insert(
        "assumptions".to_string(),
        format!(
            "estimated from layer shapes, not measured: PyTorch eager fp32; convolutions cuDNN {}, \
             matmuls FP32 SIMT cuBLAS; roofline time with wave quantisation; host gaps from the \
             device's host parameters",
            if em.tensor_convs { "TF32 tensor cores (NHWC, with layout transforms)" } else { "FP32 SIMT" }
        ),
    );
    let meta = TraceMeta {
        name: format!("{}-{}-b{}", model.as_str(), kind.as_str(), batch),
        model: Some(model.as_str().to_string()),
        mode: Some(kind),
        batch_size: Some(batch),
        device: Some(device.name.clone()),
        source: TraceSource::Analytic,
        update_start,
        extra,
    };
    Trace::new(meta, em.ops)
}

/// The model at batch `b`.
fn build(model: Model, b: u64, training: bool) -> Net {
    match model {
        Model::ResNet50 => resnet::resnet(resnet::RESNET50_BLOCKS, b, training),
        Model::ResNet101 => resnet::resnet(resnet::RESNET101_BLOCKS, b, training),
        Model::MobileNetV2 => mobilenet::mobilenet_v2(b, training),
        Model::Bert => bert::bert(&bert::BERT_BASE, b, training),
        Model::Transformer => transformer::transformer_xl(&transformer::TXL_BASE, b, training),
    }
}

/// The host-to-device copies that start a request or iteration.
pub(crate) fn emit_inputs(em: &mut Emitter<'_>, net: &Net) {
    for (i, t) in net.inputs.iter().enumerate() {
        if i == 0 {
            let ns = em.dev.host.simple_op_ns as f64 * INPUT_HANDLING_SIMPLE_OPS;
            em.begin(Host::Ns(ns));
        } else {
            em.begin(Host::Simple);
        }
        em.copy(OpKind::CopyH2D, t.label, t.bytes);
    }
}

/// One inference request: inputs in, forward in eval mode, outputs out, synchronise.
fn inference(em: &mut Emitter<'_>, net: &Net) {
    emit_inputs(em, net);
    for op in &net.forward {
        em.forward(op, false);
    }
    for t in &net.outputs {
        em.begin(Host::Simple);
        em.copy(OpKind::CopyD2H, t.label, t.bytes);
    }
    em.sync();
}
