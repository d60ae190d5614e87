//! Forward lowering: the kernels PyTorch (eager, fp32, cuDNN) launches for each layer op.

use super::Framework;
use super::kernels::{Emitter, Gemm, GemmOp, Host, Mem, Pipe, Spec, names};
use super::layers::{Conv, F32, NoGradPw, Op, Pw};
use crate::op::OpKind;

impl Emitter<'_> {
    /// Lowers one forward op (`training`: train-mode batch norm and dropout).
    pub fn forward(&mut self, op: &Op, training: bool) {
        match *op {
            Op::Conv(c) => {
                self.begin(Host::Conv);
                self.conv_fwd(&c);
            }
            Op::BatchNorm { n, c, hw } => {
                let elems = n * c * hw;
                if training {
                    // `self.num_batches_tracked.add_(1)` precedes the batch_norm call.
                    self.begin(Host::Simple);
                    self.ew(names::ADD_SELF_LONG, 2, 1, 0.0, 16.0);
                    self.begin(Host::Norm);
                    self.bn_kernel(names::BN_FW_TR, n, c, hw, 512, elems as f64 * F32 * 3.0);
                } else {
                    self.begin(Host::Norm);
                    let blocks_y = (n * hw).div_ceil(512);
                    let s = Spec::mem(
                        names::BN_FW_INF.to_string(),
                        1,
                        128,
                        elems as f64 * F32 * 2.0 + c as f64 * 16.0,
                        elems as f64 * 2.0,
                        Mem::Stream,
                    )
                    .with_grid_xy(c, blocks_y)
                    .with_regs(24);
                    self.kernel(s);
                }
            }
            Op::Pw { f, elems, small } => {
                self.begin(Host::Simple);
                self.pw_fwd(f, elems, small);
            }
            Op::Fork { .. } => {}
            Op::Mean { in_elems, out_elems } => {
                self.begin(Host::Simple);
                self.reduce(names::MEAN_OPS, in_elems, out_elems);
            }
            Op::MaxPool { n, c, hw, k, stride } => {
                self.begin(Host::Simple);
                let p = (hw + 2 * (k / 2) - k) / stride + 1;
                let out = n * c * p * p;
                let bytes = (n * c * hw * hw) as f64 * F32 + out as f64 * (F32 + 8.0);
                let s = Spec::mem(
                    names::MAXPOOL_FW.to_string(),
                    out.div_ceil(256),
                    256,
                    bytes,
                    (out * k * k) as f64,
                    Mem::Strided,
                );
                self.kernel(s);
            }
            Op::Linear { rows, inf, outf, bias, .. } => {
                self.begin(Host::Gemm);
                if bias && self.framework == Framework::OrionArtifact {
                    // PyTorch 1.x addmm: the bias is broadcast-copied into the output, then a
                    // GEMM with beta = 1 accumulates onto it.
                    self.ew_strided(names::COPY, rows * outf, 1.0, outf as f64 * F32);
                }
                let bytes = (rows * inf + inf * outf + rows * outf) as f64 * F32;
                self.gemm(Gemm { m: rows, n: outf, k: inf, batch: 1, op: GemmOp::Blas("tn"), pipe: Pipe::Fp32, bytes });
            }
            Op::Bmm { batch, m, n, k } => {
                self.begin(Host::Gemm);
                self.bmm(batch, m, n, k, "nn");
            }
            Op::Softmax { rows, cols, log } => {
                self.begin(Host::Simple);
                self.softmax(rows, cols, log, false);
            }
            Op::LayerNorm { rows, cols } => {
                self.begin(Host::Norm);
                let bytes = (rows * cols) as f64 * F32 * 2.0 + rows as f64 * 8.0;
                let s =
                    Spec::mem(names::LAYER_NORM.to_string(), rows, 128, bytes, (rows * cols) as f64 * 8.0, Mem::Reduce)
                        .with_block_xy(32, 4)
                        .with_regs(36);
                self.kernel(s);
            }
            Op::Embedding { tokens, dim, .. } => {
                self.begin(Host::Simple);
                self.index_select(tokens, dim);
            }
            Op::Dropout { elems } => {
                if training {
                    self.begin(Host::Simple);
                    let blocks = elems.div_ceil(256).min(self.dev.sm_count as u64 * 8);
                    let s = Spec::mem(
                        names::DROPOUT.to_string(),
                        blocks,
                        256,
                        elems as f64 * (F32 * 2.0 + 1.0),
                        elems as f64 * 4.0,
                        Mem::Stream,
                    )
                    .with_regs(32);
                    self.kernel(s);
                }
            }
            Op::Copy { elems, cat, .. } => {
                self.begin(Host::Simple);
                if cat {
                    self.cat(elems, 2);
                } else {
                    self.copy_kernel(elems);
                }
            }
            Op::Fill { elems } => {
                self.begin(Host::Simple);
                self.fill(elems);
            }
            Op::CrossEntropy { rows, classes } => {
                self.begin(Host::Simple);
                self.softmax(rows, classes, true, false);
                let s =
                    Spec::mem(names::NLL_FW.to_string(), 1, 32, rows as f64 * (F32 + 8.0), rows as f64, Mem::Strided);
                self.kernel(s);
            }
            Op::Nonzero { elems } => {
                self.begin(Host::Simple);
                let sms = self.dev.sm_count as u64;
                let s = Spec::mem(
                    names::CUB_REDUCE.to_string(),
                    elems.div_ceil(256 * 16).min(sms * 5),
                    256,
                    elems as f64,
                    elems as f64,
                    Mem::Reduce,
                );
                self.kernel(s);
                let s = Spec::mem(names::CUB_REDUCE_TILE.to_string(), 1, 256, 4096.0, 1024.0, Mem::Reduce);
                self.kernel(s);
                // The count is read back before the output can be allocated.
                self.copy(OpKind::CopyD2H, "nonzero count", 8);
                self.sync();
                self.begin(Host::Simple);
                let s = Spec::mem(names::CUB_COMPACT_INIT.to_string(), 1, 128, 64.0, 0.0, Mem::Stream);
                self.kernel(s);
                let s = Spec::mem(
                    names::CUB_SELECT.to_string(),
                    elems.div_ceil(128 * 10),
                    128,
                    elems as f64 * 9.0,
                    elems as f64,
                    Mem::Strided,
                );
                self.kernel(s);
                let s = Spec::mem(
                    names::WRITE_INDICES.to_string(),
                    elems.div_ceil(512),
                    512,
                    elems as f64 * 8.0,
                    0.0,
                    Mem::Stream,
                );
                self.kernel(s);
            }
            Op::IndexSelect { rows, cols, .. } => {
                self.begin(Host::Simple);
                self.index_select(rows, cols);
            }
            Op::Gather { rows, .. } => {
                self.begin(Host::Simple);
                self.gather_like(names::GATHER, rows);
            }
            Op::IndexCopy { rows } => {
                self.begin(Host::Simple);
                let s = Spec::mem(
                    names::INDEX_COPY.to_string(),
                    rows.div_ceil(512),
                    128,
                    rows as f64 * 48.0,
                    0.0,
                    Mem::Strided,
                );
                self.kernel(s);
            }
        }
    }

    /// A forward convolution: cuDNN implicit GEMM (with the NCHW -> NHWC transform of the
    /// input on tensor-core devices), or PyTorch's depthwise kernel.
    fn conv_fwd(&mut self, c: &Conv) {
        if c.is_depthwise() {
            let out = c.out_elems();
            let s = Spec {
                pipe: Pipe::Fp32,
                eff: 0.25,
                ..Spec::mem(
                    format!(
                        "void at::native::(anonymous namespace)::conv_depthwise2d_forward_kernel<{}, float, int>",
                        c.r
                    ),
                    out.div_ceil(256).min(65536),
                    256,
                    (c.in_elems() + out + c.weight_elems()) as f64 * F32,
                    c.flops(),
                    Mem::Strided,
                )
            }
            .with_regs(40);
            self.kernel(s);
            return;
        }
        if self.tensor_convs {
            self.layout_transform(true, c.n, c.c, c.in_elems());
        }
        let variant = if c.r == 1 && c.stride == 1 {
            "interior"
        } else if c.p() * c.q() <= 196 {
            "small"
        } else {
            "medium"
        };
        self.gemm(Gemm {
            m: c.n * c.p() * c.q(),
            n: c.k,
            k: (c.c / c.groups) * c.r * c.r,
            batch: 1,
            op: GemmOp::Fprop(variant),
            pipe: self.conv_pipe(),
            bytes: (c.in_elems() + c.weight_elems() + c.out_elems()) as f64 * F32,
        });
    }

    /// A cuDNN batch-norm kernel (one block column per channel, 512 threads).
    pub(crate) fn bn_kernel(&mut self, name: &str, n: u64, c: u64, hw: u64, threads: u32, bytes: f64) {
        let per_channel = n * hw;
        let blocks_y = per_channel.div_ceil(512 * 8).clamp(1, 16);
        let s =
            Spec::mem(name.to_string(), 1, threads, bytes + c as f64 * 32.0, (n * c * hw) as f64 * 6.0, Mem::Reduce)
                .with_grid_xy(c, blocks_y)
                .with_regs(32)
                .with_smem(threads * 8);
        self.kernel(s);
    }

    /// A batched cuBLAS GEMM.
    pub(crate) fn bmm(&mut self, batch: u64, m: u64, n: u64, k: u64, op: &'static str) {
        let bytes = (batch * (m * k + k * n + m * n)) as f64 * F32;
        self.gemm(Gemm { m, n, k, batch, op: GemmOp::Blas(op), pipe: Pipe::Fp32, bytes });
    }

    /// Softmax or log-softmax over `cols` (or its backward): one warp per row up to 1024
    /// columns, one block per row beyond.
    pub(crate) fn softmax(&mut self, rows: u64, cols: u64, log: bool, backward: bool) {
        let elems = rows * cols;
        let tensors = if backward { 3.0 } else { 2.0 };
        if cols <= 1024 {
            let log2 = 64 - (cols.max(1) - 1).leading_zeros();
            let per_warp = if cols <= 128 { 2 } else { 1 };
            let rows_per_block = 4 * per_warp;
            let name = format!(
                "void (anonymous namespace)::softmax_warp_{}<float, float, float, {log2}, {log}, false>",
                if backward { "backward" } else { "forward" }
            );
            let s = Spec::mem(
                name,
                rows.div_ceil(rows_per_block),
                128,
                elems as f64 * F32 * tensors,
                elems as f64 * 5.0,
                Mem::Stream,
            )
            .with_block_xy(32, 4)
            .with_regs(48);
            self.kernel(s);
        } else {
            let epi = match (log, backward) {
                (true, false) => "LogSoftMaxForwardEpilogue>",
                (false, false) => "SoftMaxForwardEpilogue>",
                (true, true) => "LogSoftMaxBackwardEpilogue>",
                (false, true) => "SoftMaxBackwardEpilogue>",
            };
            let prefix = if backward { names::SOFTMAX_BLOCK_BW } else { names::SOFTMAX_BLOCK_FW };
            let s = Spec::mem(
                format!("{prefix}{epi}"),
                rows,
                1024,
                elems as f64 * F32 * (tensors + 1.0),
                elems as f64 * 5.0,
                Mem::Reduce,
            )
            .with_regs(40)
            .with_smem(32 * 4 * 2);
            self.kernel(s);
        }
    }

    /// `index_select` of `rows` rows of `cols` elements.
    pub(crate) fn index_select(&mut self, rows: u64, cols: u64) {
        let total = rows * cols;
        let blocks = total.div_ceil(128).min(self.dev.sm_count as u64 * 8);
        let s = Spec::mem(
            names::INDEX_SELECT.to_string(),
            blocks,
            128,
            total as f64 * F32 * 2.0 + rows as f64 * 8.0,
            0.0,
            Mem::Strided,
        )
        .with_regs(32);
        self.kernel(s);
    }

    /// A gather or scatter-add of one element per row.
    pub(crate) fn gather_like(&mut self, name: &str, rows: u64) {
        let s = Spec::mem(name.to_string(), rows.div_ceil(512), 128, rows as f64 * 48.0, rows as f64, Mem::Strided);
        self.kernel(s);
    }

    /// The forward kernel of a pointwise op.
    fn pw_fwd(&mut self, f: Pw, elems: u64, small: u64) {
        let sb = small as f64 * F32;
        let bcast = |functor: &str| format!("at::native::gpu_kernel_impl_nocast<{functor} >");
        match f {
            Pw::Relu | Pw::Relu6 => self.ew(names::RELU, 2, elems, 2.0, 0.0),
            Pw::Gelu => self.ew(names::GELU, 2, elems, 2.0, 0.0),
            Pw::Add => self.ew(names::ADD, 3, elems, 3.0, 0.0),
            Pw::Mul => self.ew(names::MUL, 3, elems, 3.0, 0.0),
            Pw::AddMask | Pw::AddParam | Pw::AddSharedParam | Pw::SubRows => {
                self.ew_strided(&bcast(names::ADD), elems, 2.0, sb)
            }
            Pw::MulParam => self.ew_strided(&bcast(names::MUL), elems, 2.0, sb),
            Pw::DivRows => self.ew_strided(&bcast(names::DIV), elems, 2.0, sb),
            Pw::Pow2 => self.ew(names::POW, 2, elems, 2.0, 0.0),
            Pw::Sqrt => self.ew(names::SQRT, 2, elems, 2.0, 0.0),
            Pw::Erf => self.ew(names::ERF, 2, elems, 2.0, 0.0),
            Pw::AddScalar => self.ew(names::ADD_SCALAR, 2, elems, 2.0, 0.0),
            Pw::MulScalar => self.ew(names::MUL_SCALAR, 2, elems, 2.0, 0.0),
            Pw::DivScalar => self.ew(names::DIV_SCALAR, 2, elems, 2.0, 0.0),
            Pw::Neg => self.ew(names::NEG, 2, elems, 2.0, 0.0),
            Pw::MaskedFill => self.ew_strided(names::MASKED_FILL, elems, 2.0, elems as f64),
            Pw::NoGrad(k) => match k {
                NoGradPw::Cast => self.ew_strided(names::CAST, elems, 3.0, 0.0),
                NoGradPw::Rsub => self.ew(names::RSUB, 2, elems, 2.0, 0.0),
                NoGradPw::Mul => self.ew(names::MUL_SCALAR, 2, elems, 2.0, 0.0),
                NoGradPw::Clamp => self.ew(names::CLAMP_LONG, 2, elems, 4.0, 0.0),
                NoGradPw::Sin => self.ew(names::SIN, 2, elems, 2.0, 0.0),
                NoGradPw::Compare => self.ew(names::COMPARE, 2, elems, 2.25, 0.0),
                NoGradPw::Arange => {
                    let s = Spec::mem(
                        names::ARANGE.to_string(),
                        elems.div_ceil(512),
                        128,
                        elems as f64 * 8.0,
                        0.0,
                        Mem::Stream,
                    );
                    self.kernel(s);
                }
                NoGradPw::Triu => {
                    let s = Spec::mem(
                        names::TRIU.to_string(),
                        elems.div_ceil(512),
                        128,
                        elems as f64 * 8.0,
                        0.0,
                        Mem::Stream,
                    );
                    self.kernel(s);
                }
            },
        }
    }
}
