//! Training iterations: backward lowering, gradient accumulation, `zero_grad` and the
//! optimizer step.
//!
//! An iteration is, in issue order: the host-to-device copies of the inputs and labels,
//! `optimizer.zero_grad()`, the forward pass in train mode (batch-norm statistics, dropout),
//! the loss, `loss.backward()` (a fill of the seed gradient, then every op's backward in
//! reverse order, gradients of tensors used several times summed where they fork), the
//! optimizer step (its first kernel is `TraceMeta::update_start`), and `loss.item()`: a
//! device-to-host copy of the loss and a synchronisation.
//!
//! Two framework behaviours are modelled (see [`Framework`]):
//!
//! * [`Framework::Modern`] (PyTorch 2.x defaults): `zero_grad(set_to_none=True)` launches
//!   nothing and the backward pass writes fresh gradients; the optimizer is the `foreach`
//!   implementation, a few `multi_tensor_apply_kernel` launches per step (SGD with momentum
//!   0.9 and weight decay for the CNNs: 4 list ops; AdamW for BERT and Transformer-XL: 8 list
//!   ops), each split into launches the way `multi_tensor_apply` splits them (65536-element
//!   chunks, at most 320 blocks and 110/64/48/36/30 tensors per launch for 1-5 lists).
//! * [`Framework::OrionArtifact`] (PyTorch 1.x as in Orion's artifact): `zero_grad()` fills
//!   every gradient with zeros (one kernel per parameter), autograd accumulates each new
//!   gradient into it (one add per parameter), and the optimizer loops over parameters: plain
//!   SGD (one kernel per parameter) for the CNNs, Adam (8 kernels per parameter) for BERT and
//!   Transformer-XL. This reproduces the kernel counts of Orion's profiles (e.g. ResNet-50
//!   batch 32: 946).

use super::Framework;
use super::kernels::{Emitter, Gemm, GemmOp, Host, Mem, Spec, names};
use super::layers::{Conv, F32, Net, Op, Pw};
use crate::op::OpKind;
use crate::workload::Model;

/// Elements per `multi_tensor_apply` chunk (one block each).
const MTA_CHUNK: u64 = 65536;
/// Blocks per `multi_tensor_apply` launch.
const MTA_MAX_BLOCKS: u64 = 320;
/// Tensors per launch by number of lists (1..=5).
const MTA_MAX_TENSORS: [u64; 5] = [110, 64, 48, 36, 30];
/// Tensors per launch for ops with a list of scalars.
const MTA_MAX_TENSORS_SCALARLIST: [u64; 5] = [96, 64, 48, 36, 30];

/// The optimizer a model trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Optimizer {
    /// SGD (momentum 0.9 and weight decay in the modern setup; plain in Orion's artifact).
    Sgd,
    /// AdamW (modern) / Adam (Orion's artifact).
    Adam,
}

fn optimizer_of(model: Model) -> Optimizer {
    match model {
        Model::ResNet50 | Model::ResNet101 | Model::MobileNetV2 => Optimizer::Sgd,
        Model::Bert | Model::Transformer => Optimizer::Adam,
    }
}

/// One `torch._foreach_*` op: which lists it touches and how.
struct ForeachOp {
    /// Number of tensor lists (`TensorListMetadata<depth>`).
    depth: usize,
    /// Functor and op template arguments of the kernel name.
    functor: &'static str,
    /// Uses a list of scalars (`TensorListScalarListMetadata`).
    scalar_list: bool,
    /// Full-size tensors read plus written per element.
    tensors: f64,
}

const fn fe(depth: usize, functor: &'static str, scalar_list: bool, tensors: f64) -> ForeachOp {
    ForeachOp { depth, functor, scalar_list, tensors }
}

/// `torch.optim.SGD(momentum=0.9, weight_decay=1e-4, foreach=True)`, steady state.
const SGD_FOREACH: [ForeachOp; 4] = [
    // grads = torch._foreach_add(grads, params, alpha=weight_decay)
    fe(3, "BinaryOpListAlphaFunctor<float, 3, 2, 2>, std::plus<float>", false, 3.0),
    // torch._foreach_mul_(bufs, momentum)
    fe(1, "BinaryOpScalarFunctor<float, 1, 1, 0>, std::multiplies<float>", false, 2.0),
    // torch._foreach_add_(bufs, grads, alpha=1 - dampening)
    fe(2, "BinaryOpListAlphaFunctor<float, 2, 2, 0>, std::plus<float>", false, 3.0),
    // torch._foreach_add_(params, bufs, alpha=-lr)
    fe(2, "BinaryOpListAlphaFunctor<float, 2, 2, 0>, std::plus<float>", false, 3.0),
];

/// `torch.optim.AdamW(foreach=True)`, steady state (step counters on the CPU).
const ADAMW_FOREACH: [ForeachOp; 8] = [
    // torch._foreach_mul_(params, 1 - lr * weight_decay)
    fe(1, "BinaryOpScalarFunctor<float, 1, 1, 0>, std::multiplies<float>", false, 2.0),
    // torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    fe(2, "TernaryOpScalarFunctor<float, 2, 2, 0>, at::native::LerpFunctor<float>", false, 3.0),
    // torch._foreach_mul_(exp_avg_sqs, beta2)
    fe(1, "BinaryOpScalarFunctor<float, 1, 1, 0>, std::multiplies<float>", false, 2.0),
    // torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    fe(3, "PointwiseOpScalarFunctor<float, 3, 3, 0>, std::multiplies<float>", false, 3.0),
    // exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs)
    fe(2, "UnaryOpFunctor<float, 2, 1, 1>, at::native::Sqrt<float>", false, 2.0),
    // torch._foreach_div_(exp_avg_sq_sqrt, bias_correction2_sqrt)
    fe(1, "BinaryOpScalarListFunctor<float, 1, 1, 0>, std::divides<float>", true, 2.0),
    // torch._foreach_add_(exp_avg_sq_sqrt, eps)
    fe(1, "BinaryOpScalarFunctor<float, 1, 1, 0>, std::plus<float>", false, 2.0),
    // torch._foreach_addcdiv_(params, exp_avgs, exp_avg_sq_sqrt, step_size)
    fe(3, "PointwiseOpScalarListFunctor<float, 3, 3, 0>, std::divides<float>", true, 4.0),
];

/// Emits one training iteration of `net`; returns the index of the first optimizer op.
pub(crate) fn iteration(em: &mut Emitter<'_>, net: &Net, model: Model) -> usize {
    let params = net.params();
    super::emit_inputs(em, net);

    // optimizer.zero_grad()
    match em.framework {
        Framework::Modern => em.add_host(em.dev.host.simple_op_ns as f64 + params.len() as f64 * 100.0),
        Framework::OrionArtifact => {
            for &p in &params {
                em.begin(Host::Simple);
                em.fill(p);
            }
        }
    }

    // Forward pass and loss.
    for op in net.forward.iter().chain(&net.loss) {
        em.forward(op, true);
    }

    // loss.backward(): entering the autograd engine costs about a convolution call on the
    // host; the engine starts with the seed gradient (ones).
    em.begin(Host::Conv);
    em.fill(1);
    em.host_scale = em.dev.host.backward_factor;
    for op in net.forward.iter().chain(&net.loss).rev() {
        em.backward(op);
    }
    em.host_scale = 1.0;

    // optimizer.step()
    let update_start = em.ops.len();
    let opt = optimizer_of(model);
    match em.framework {
        Framework::Modern => {
            // Grouping the parameters by device and dtype, state lookups.
            em.add_host(em.dev.host.simple_op_ns as f64 * 2.0 + params.len() as f64 * 150.0);
            let list: &[ForeachOp] = match opt {
                Optimizer::Sgd => &SGD_FOREACH,
                Optimizer::Adam => &ADAMW_FOREACH,
            };
            for f in list {
                em.foreach(f, &params);
            }
        }
        Framework::OrionArtifact => {
            for &p in &params {
                match opt {
                    Optimizer::Sgd => {
                        // p.add_(p.grad, alpha=-lr)
                        em.begin(Host::Simple);
                        em.ew(names::ADD, 3, p, 3.0, 0.0);
                    }
                    Optimizer::Adam => em.adam_param(p),
                }
            }
        }
    }

    // loss.item()
    em.begin(Host::Simple);
    em.copy(OpKind::CopyD2H, "loss", 4);
    em.sync();
    update_start
}

impl Emitter<'_> {
    /// Lowers the backward of one forward op.
    fn backward(&mut self, op: &Op) {
        match *op {
            Op::Conv(c) => {
                self.begin(Host::Conv);
                self.conv_bwd(&c);
            }
            Op::BatchNorm { n, c, hw } => {
                self.begin(Host::Norm);
                let elems = (n * c * hw) as f64;
                self.bn_kernel(names::BN_BW, n, c, hw, 512, elems * F32 * 5.0);
                self.accumulate(op);
            }
            Op::Pw { f, elems, small } => self.pw_bwd(f, elems, small),
            Op::Fork { elems, ways } => {
                for _ in 1..ways {
                    self.begin(Host::Simple);
                    self.ew(names::ADD, 3, elems, 3.0, 0.0);
                }
            }
            Op::Mean { in_elems, out_elems } => {
                // grad.expand(shape) / count
                self.begin(Host::Simple);
                let f = format!("at::native::gpu_kernel_impl_nocast<{} >", names::DIV_SCALAR);
                self.ew_strided(&f, in_elems, 1.0, out_elems as f64 * F32);
            }
            Op::MaxPool { n, c, hw, k, stride } => {
                self.begin(Host::Simple);
                let p = (hw + 2 * (k / 2) - k) / stride + 1;
                let input = n * c * hw * hw;
                let out = n * c * p * p;
                let bytes = input as f64 * F32 + out as f64 * (F32 + 8.0);
                let s = Spec::mem(
                    names::MAXPOOL_BW.to_string(),
                    input.div_ceil(256),
                    256,
                    bytes,
                    input as f64,
                    Mem::Strided,
                );
                self.kernel(s);
            }
            Op::Linear { rows, inf, outf, bias, input_grad, slice_of } => {
                self.begin(Host::Gemm);
                if input_grad {
                    let bytes = (rows * outf + outf * inf + rows * inf) as f64 * F32;
                    self.gemm(Gemm {
                        m: rows,
                        n: inf,
                        k: outf,
                        batch: 1,
                        op: GemmOp::Blas("nn"),
                        pipe: super::kernels::Pipe::Fp32,
                        bytes,
                    });
                }
                let bytes = (rows * outf + rows * inf + outf * inf) as f64 * F32;
                self.gemm(Gemm {
                    m: outf,
                    n: inf,
                    k: rows,
                    batch: 1,
                    op: GemmOp::Blas("nt"),
                    pipe: super::kernels::Pipe::Fp32,
                    bytes,
                });
                if bias {
                    self.sum_rows(rows * outf, outf);
                }
                if let Some(full) = slice_of {
                    // SliceBackward of a tied weight (and bias): zeros of the full parameter,
                    // then the slice's gradient copied in.
                    self.fill(full);
                    self.copy_kernel(inf * outf);
                    if bias {
                        self.fill(full / inf.max(1));
                        self.copy_kernel(outf);
                    }
                }
                self.accumulate(op);
            }
            Op::Bmm { batch, m, n, k } => {
                self.begin(Host::Gemm);
                // dA = dC B^T, dB = A^T dC.
                self.bmm(batch, m, k, n, "nt");
                self.bmm(batch, k, n, m, "tn");
            }
            Op::Softmax { rows, cols, log } => {
                self.begin(Host::Simple);
                self.softmax(rows, cols, log, true);
            }
            Op::LayerNorm { rows, cols } => {
                self.begin(Host::Norm);
                let elems = (rows * cols) as f64;
                let s = Spec::mem(
                    names::LAYER_NORM_BW_INPUT.to_string(),
                    rows,
                    128,
                    elems * F32 * 3.0 + rows as f64 * 8.0,
                    elems * 10.0,
                    Mem::Reduce,
                )
                .with_block_xy(32, 4)
                .with_regs(40);
                self.kernel(s);
                let s = Spec::mem(
                    names::LAYER_NORM_BW_GAMMA.to_string(),
                    cols.div_ceil(32),
                    1024,
                    elems * F32 * 2.0 + rows as f64 * 8.0,
                    elems * 4.0,
                    Mem::Reduce,
                )
                .with_block_xy(32, 32)
                .with_regs(40)
                .with_smem(32 * 33 * 4 * 2);
                self.kernel(s);
                self.accumulate(op);
            }
            Op::Embedding { tokens, vocab, dim } => {
                self.begin(Host::Simple);
                self.fill(vocab * dim);
                self.embedding_bwd(tokens, dim);
                self.accumulate(op);
            }
            Op::Dropout { elems } => {
                self.begin(Host::Simple);
                self.ew(names::MASKED_SCALE, 3, elems, 2.0, elems as f64);
            }
            Op::Copy { elems, cat, grad } => {
                if grad && !cat {
                    self.begin(Host::Simple);
                    self.copy_kernel(elems);
                }
            }
            Op::Fill { .. } | Op::Nonzero { .. } => {}
            Op::CrossEntropy { rows, classes } => {
                self.begin(Host::Simple);
                self.fill(rows * classes);
                let s =
                    Spec::mem(names::NLL_BW.to_string(), 1, 32, rows as f64 * (F32 + 8.0), rows as f64, Mem::Strided);
                self.kernel(s);
                self.softmax(rows, classes, true, true);
            }
            Op::IndexSelect { rows, cols, src_rows, grad } => {
                if grad {
                    self.begin(Host::Simple);
                    self.fill(src_rows * cols);
                    let total = rows * cols;
                    let blocks = total.div_ceil(128).min(self.dev.sm_count as u64 * 8);
                    let s = Spec::mem(
                        names::INDEX_ADD.to_string(),
                        blocks,
                        128,
                        total as f64 * F32 * 3.0 + rows as f64 * 8.0,
                        total as f64,
                        Mem::Strided,
                    );
                    self.kernel(s);
                }
            }
            Op::Gather { rows, cols } => {
                self.begin(Host::Simple);
                self.fill(rows * cols);
                self.gather_like(names::SCATTER_ADD, rows);
            }
            Op::IndexCopy { rows } => {
                self.begin(Host::Simple);
                self.index_select(rows, 1);
            }
        }
    }

    /// Convolution backward: data gradient (unless the input needs none) then weight
    /// gradient; on tensor-core devices each is preceded by an NCHW -> NHWC transform.
    fn conv_bwd(&mut self, c: &Conv) {
        if c.is_depthwise() {
            let (inp, out) = (c.in_elems(), c.out_elems());
            if c.input_grad {
                let s = Spec {
                    eff: 0.25,
                    ..Spec::mem(
                        format!(
                            "void at::native::(anonymous namespace)::conv_depthwise2d_backward_kernel<{}, {}, float, int>",
                            c.r, c.stride
                        ),
                        inp.div_ceil(256).min(65536),
                        256,
                        (inp + out + c.weight_elems()) as f64 * F32,
                        c.flops(),
                        Mem::Strided,
                    )
                }
                .with_regs(40);
                self.kernel(s);
            }
            let threads = (c.n * 32).min(256) as u32;
            let s = Spec {
                eff: 0.12,
                ..Spec::mem(
                    "void at::native::(anonymous namespace)::conv_depthwise2d_grad_weight_kernel<float, float, int>"
                        .to_string(),
                    c.weight_elems(),
                    threads,
                    (inp + out + c.weight_elems()) as f64 * F32,
                    c.flops(),
                    Mem::Reduce,
                )
            }
            .with_regs(40)
            .with_smem(threads * 4);
            self.kernel(s);
            self.accumulate(&Op::Conv(*c));
            return;
        }
        let pipe = self.conv_pipe();
        let bytes = (c.in_elems() + c.weight_elems() + c.out_elems()) as f64 * F32;
        if self.tensor_convs {
            self.layout_transform(true, c.n, c.k, c.out_elems());
        }
        if c.input_grad {
            // Each input pixel receives from (r / stride)^2 outputs: as many FLOPs as fprop.
            self.gemm(Gemm {
                m: c.n * c.h * c.w,
                n: c.c,
                k: (c.k * c.r * c.r).div_ceil(c.stride * c.stride),
                batch: 1,
                op: GemmOp::Dgrad(c.r == 1 && c.stride == 1),
                pipe,
                bytes,
            });
        }
        if self.tensor_convs {
            self.layout_transform(true, c.n, c.c, c.in_elems());
        }
        let variant = if c.r == 1 && c.stride == 1 { "interior" } else { "small" };
        self.gemm(Gemm {
            m: c.k,
            n: c.c * c.r * c.r,
            k: c.n * c.p() * c.q(),
            batch: 1,
            op: GemmOp::Wgrad(variant),
            pipe,
            bytes,
        });
        self.accumulate(&Op::Conv(*c));
    }

    /// The backward kernels of a pointwise op.
    fn pw_bwd(&mut self, f: Pw, elems: u64, small: u64) {
        let sb = small as f64 * F32;
        let bcast = |functor: &str| format!("at::native::gpu_kernel_impl_nocast<{functor} >");
        if matches!(f, Pw::Add | Pw::AddMask | Pw::AddScalar | Pw::NoGrad(_)) {
            // The gradient passes through unchanged (or there is none): no kernel.
            return;
        }
        self.begin(Host::Simple);
        match f {
            Pw::Relu => self.ew(names::THRESHOLD_BW, 3, elems, 3.0, 0.0),
            Pw::Relu6 => self.ew(names::HARDTANH_BW, 3, elems, 3.0, 0.0),
            Pw::Gelu => self.ew(names::GELU_BW, 3, elems, 3.0, 0.0),
            Pw::Add | Pw::AddMask | Pw::AddScalar | Pw::NoGrad(_) => {}
            Pw::AddParam | Pw::AddSharedParam => self.sum_rows(elems, small),
            Pw::MulParam => {
                self.ew_strided(&bcast(names::MUL), elems, 2.0, sb);
                self.ew(names::MUL, 3, elems, 3.0, 0.0);
                self.sum_rows(elems, small);
            }
            Pw::Mul => {
                self.ew(names::MUL, 3, elems, 3.0, 0.0);
                self.ew(names::MUL, 3, elems, 3.0, 0.0);
            }
            Pw::SubRows => {
                self.ew(names::NEG, 2, elems, 2.0, 0.0);
                self.sum_rows(elems, small);
            }
            Pw::DivRows => {
                // grad / b, then -grad * ((a / b) / b) summed to b's shape.
                self.ew_strided(&bcast(names::DIV), elems, 2.0, sb);
                self.ew_strided(&bcast(names::DIV), elems, 2.0, sb);
                self.ew_strided(&bcast(names::DIV), elems, 2.0, sb);
                self.ew(names::MUL, 3, elems, 3.0, 0.0);
                self.ew(names::NEG, 2, elems, 2.0, 0.0);
                self.sum_rows(elems, small);
            }
            Pw::Pow2 => {
                // grad * (2 * x.pow(1))
                self.ew(names::POW, 2, elems, 2.0, 0.0);
                self.ew(names::MUL_SCALAR, 2, elems, 2.0, 0.0);
                self.ew(names::MUL, 3, elems, 3.0, 0.0);
            }
            Pw::Sqrt => {
                // grad / (2 * result)
                self.ew(names::MUL_SCALAR, 2, elems, 2.0, 0.0);
                self.ew(names::DIV, 3, elems, 3.0, 0.0);
            }
            Pw::Erf => {
                // 2 / sqrt(pi) * exp(-x^2) * grad
                self.ew(names::POW, 2, elems, 2.0, 0.0);
                self.ew(names::NEG, 2, elems, 2.0, 0.0);
                self.ew(names::EXP, 2, elems, 2.0, 0.0);
                self.ew(names::MUL_SCALAR, 2, elems, 2.0, 0.0);
                self.ew(names::MUL, 3, elems, 3.0, 0.0);
            }
            Pw::MulScalar => self.ew(names::MUL_SCALAR, 2, elems, 2.0, 0.0),
            Pw::DivScalar => self.ew(names::DIV_SCALAR, 2, elems, 2.0, 0.0),
            Pw::Neg => self.ew(names::NEG, 2, elems, 2.0, 0.0),
            Pw::MaskedFill => self.ew_strided(names::MASKED_FILL, elems, 2.0, elems as f64),
        }
        self.accumulate(&Op::Pw { f, elems, small });
    }

    /// The embedding's weight gradient: the direct per-feature kernel for up to 3072 indices,
    /// PyTorch's sort-based path beyond.
    fn embedding_bwd(&mut self, tokens: u64, dim: u64) {
        let total = tokens * dim;
        let bytes = total as f64 * F32 * 2.0 + tokens as f64 * 8.0;
        if tokens <= 3072 {
            let s =
                Spec::mem(names::EMB_BW_FEATURE.to_string(), dim.div_ceil(32), 1024, bytes, total as f64, Mem::Strided)
                    .with_block_xy(32, 32)
                    .with_regs(32)
                    .with_smem(32 * 32 * 4 + 32 * 32 * 8);
            self.kernel(s);
            return;
        }
        let idx = tokens as f64 * 8.0;
        for (name, blocks, b) in [
            (names::RADIX_SORT_HIST, tokens.div_ceil(4096), idx),
            (names::RADIX_SORT_ONESWEEP, tokens.div_ceil(4096), idx * 4.0),
            (names::RADIX_SORT_ONESWEEP, tokens.div_ceil(4096), idx * 4.0),
            (names::EMB_BW_PARTIALS, tokens.div_ceil(128), idx * 2.0),
            (names::EMB_BW_SEGMENT_OFFSETS, tokens.div_ceil(128), idx * 2.0),
            (names::EMB_BW_COMPUTE, (tokens * dim).div_ceil(512), bytes),
            (names::EMB_BW_SCATTER, (tokens * dim).div_ceil(512), total as f64 * F32 * 2.0),
        ] {
            let s = Spec::mem(name.to_string(), blocks, 128, b, 0.0, Mem::Strided).with_regs(40);
            self.kernel(s);
        }
    }

    /// Orion's artifact setup: autograd adds each new parameter gradient into the zeroed one.
    fn accumulate(&mut self, op: &Op) {
        if self.framework != Framework::OrionArtifact {
            return;
        }
        for p in op.params() {
            self.begin(Host::Simple);
            self.ew(names::ADD, 3, p, 3.0, 0.0);
        }
    }

    /// One `torch._foreach_*` op over all parameters, split into `multi_tensor_apply` launches.
    fn foreach(&mut self, f: &ForeachOp, params: &[u64]) {
        let depth = f.depth.clamp(1, 5);
        let (meta, max_tensors) = if f.scalar_list {
            (format!("TensorListScalarListMetadata<float, {depth}>"), MTA_MAX_TENSORS_SCALARLIST[depth - 1])
        } else {
            (format!("TensorListMetadata<{depth}>"), MTA_MAX_TENSORS[depth - 1])
        };
        let name = format!(
            "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous namespace)::{meta}, at::native::(anonymous namespace)::{}, float>",
            f.functor
        );
        self.begin(Host::Simple);
        let live: Vec<u64> = params.iter().copied().filter(|&p| p > 0).collect();
        let (mut blocks, mut tensors, mut elems) = (0u64, 0u64, 0u64);
        for (i, &numel) in live.iter().enumerate() {
            tensors += 1;
            let chunks = numel.div_ceil(MTA_CHUNK);
            for ch in 0..chunks {
                blocks += 1;
                elems += (numel - ch * MTA_CHUNK).min(MTA_CHUNK);
                let last_chunk = ch == chunks - 1;
                let tensors_full = tensors == max_tensors && last_chunk;
                let blocks_full = blocks == MTA_MAX_BLOCKS;
                let last = i == live.len() - 1 && last_chunk;
                if tensors_full || blocks_full || last {
                    let s = Spec::mem(
                        name.clone(),
                        blocks,
                        512,
                        elems as f64 * F32 * f.tensors,
                        elems as f64 * 2.0,
                        Mem::Stream,
                    )
                    .with_regs(32);
                    self.kernel(s);
                    blocks = 0;
                    elems = 0;
                    tensors = if last_chunk { 0 } else { 1 };
                }
            }
        }
    }

    /// PyTorch 1.x `Adam` for one parameter (`_single_tensor_adam`, no weight decay).
    fn adam_param(&mut self, p: u64) {
        let addcmul = "at::native::addcmul_cuda_scalar_tensor2_kernel_impl<float>(at::TensorIteratorBase&, c10::Scalar const&)::{lambda(float, float, float)#1}";
        let addcdiv = "at::native::addcdiv_cuda_kernel(at::TensorIteratorBase&, c10::Scalar const&)::{lambda()#2}::operator()() const::{lambda(float, float, float)#1}";
        let steps: [(&str, u32, f64); 8] = [
            (names::MUL_SCALAR, 2, 2.0), // exp_avg.mul_(beta1)
            (names::ADD, 3, 3.0),        // .add_(grad, alpha=1 - beta1)
            (names::MUL_SCALAR, 2, 2.0), // exp_avg_sq.mul_(beta2)
            (addcmul, 4, 3.0),           // .addcmul_(grad, grad, value=1 - beta2)
            (names::SQRT, 2, 2.0),       // exp_avg_sq.sqrt()
            (names::DIV_SCALAR, 2, 2.0), // / math.sqrt(bias_correction2)
            (names::ADD_SCALAR, 2, 2.0), // .add_(eps)
            (addcdiv, 4, 4.0),           // p.addcdiv_(exp_avg, denom, value=-step_size)
        ];
        for (functor, arity, tensors) in steps {
            self.begin(Host::Simple);
            self.ew(functor, arity, p, tensors, 0.0);
        }
    }
}
