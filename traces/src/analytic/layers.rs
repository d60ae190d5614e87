//! The layer-level IR: what the model builders produce and the lowering consumes.
//!
//! A model is a [`Net`]: its forward pass as a list of framework-level ops ([`Op`], one PyTorch
//! call each, e.g. one `nn.Conv2d` or one `torch.add`), the tensors copied in before it and out
//! after it, and (for training) the loss ops. Shapes are element counts; all tensors are fp32
//! (4 bytes) unless an op says otherwise.

/// Bytes of one fp32 element.
pub(crate) const F32: f64 = 4.0;

/// Shape of a 2-D convolution with a square kernel (NCHW input, KCRS weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conv {
    /// Batch.
    pub n: u64,
    /// Input channels.
    pub c: u64,
    /// Input height.
    pub h: u64,
    /// Input width.
    pub w: u64,
    /// Output channels.
    pub k: u64,
    /// Kernel size (R = S).
    pub r: u64,
    /// Stride.
    pub stride: u64,
    /// Zero padding.
    pub pad: u64,
    /// Groups (C for a depthwise convolution).
    pub groups: u64,
    /// Whether the input needs a gradient (false for the first layer of a network).
    pub input_grad: bool,
}

impl Conv {
    /// A dense convolution of `n x c x h x w` to `k` channels.
    pub fn new(n: u64, c: u64, hw: u64, k: u64, r: u64, stride: u64) -> Conv {
        Conv { n, c, h: hw, w: hw, k, r, stride, pad: r / 2, groups: 1, input_grad: true }
    }

    /// A depthwise convolution (groups = channels).
    pub fn depthwise(n: u64, c: u64, hw: u64, r: u64, stride: u64) -> Conv {
        Conv { groups: c, ..Conv::new(n, c, hw, c, r, stride) }
    }

    /// Output height.
    pub fn p(&self) -> u64 {
        (self.h + 2 * self.pad - self.r) / self.stride + 1
    }

    /// Output width.
    pub fn q(&self) -> u64 {
        (self.w + 2 * self.pad - self.r) / self.stride + 1
    }

    /// Input elements.
    pub fn in_elems(&self) -> u64 {
        self.n * self.c * self.h * self.w
    }

    /// Output elements.
    pub fn out_elems(&self) -> u64 {
        self.n * self.k * self.p() * self.q()
    }

    /// Weight elements.
    pub fn weight_elems(&self) -> u64 {
        self.k * (self.c / self.groups) * self.r * self.r
    }

    /// Multiply-adds times two.
    pub fn flops(&self) -> f64 {
        2.0 * (self.out_elems() * (self.c / self.groups) * self.r * self.r) as f64
    }

    /// Whether this is a depthwise convolution (run by PyTorch's own kernels, not cuDNN).
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.c && self.k == self.c
    }
}

/// A pointwise (elementwise) PyTorch op and what its backward launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pw {
    /// `relu` (in place; PyTorch 2 lowers it to `clamp_min`).
    Relu,
    /// `relu6` (`hardtanh`).
    Relu6,
    /// Fused `gelu`.
    Gelu,
    /// `a + b`, same shapes, both need gradients (residual add): the gradient passes through.
    Add,
    /// `a + m` where the broadcast operand `m` needs no gradient (attention mask).
    AddMask,
    /// `a + p` where `p` is a broadcast parameter owned by this op (bias).
    AddParam,
    /// `a + p` where `p` is a broadcast parameter shared with (and counted by) another op.
    AddSharedParam,
    /// `p * a` where `p` is a broadcast parameter owned by this op (layer-norm weight).
    MulParam,
    /// `a * b`, same shapes, both need gradients.
    Mul,
    /// `a - b` with `b` broadcast (per-row statistics), both need gradients.
    SubRows,
    /// `a / b` with `b` broadcast, both need gradients.
    DivRows,
    /// `a.pow(2)`.
    Pow2,
    /// `sqrt(a)`.
    Sqrt,
    /// `erf(a)`.
    Erf,
    /// `a + scalar`.
    AddScalar,
    /// `a * scalar` (or in-place `mul_`).
    MulScalar,
    /// `a / scalar`.
    DivScalar,
    /// `-a`.
    Neg,
    /// `masked_fill_(mask, value)`.
    MaskedFill,
    /// A pointwise op whose result needs no gradient (casts, comparisons, `rsub` of masks,
    /// `arange`, `clamp_` of labels, sinusoids).
    NoGrad(NoGradPw),
}

/// Pointwise ops on tensors that need no gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoGradPw {
    /// `.to(float)` of an integer or boolean tensor.
    Cast,
    /// `1.0 - x`.
    Rsub,
    /// `x * scalar`.
    Mul,
    /// `torch.arange`.
    Arange,
    /// `clamp_` of label indices.
    Clamp,
    /// `sin` / `cos`.
    Sin,
    /// `a >= b` / `a < b` / `a & b` comparisons.
    Compare,
    /// `triu` of a mask.
    Triu,
}

/// One framework-level op of the forward pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// A convolution (cuDNN, or PyTorch's depthwise kernels), no bias.
    Conv(Conv),
    /// `nn.BatchNorm2d` (eval: inference kernel; train: statistics + `num_batches_tracked`).
    BatchNorm {
        /// Batch.
        n: u64,
        /// Channels.
        c: u64,
        /// Height times width.
        hw: u64,
    },
    /// A pointwise op over `elems` elements; `small` is the broadcast operand's size (0: none).
    Pw {
        /// Which op.
        f: Pw,
        /// Elements of the output.
        elems: u64,
        /// Elements of the broadcast operand (bias, statistics, mask), 0 when there is none.
        small: u64,
    },
    /// A tensor used by `ways` later ops: no forward kernel; its gradients are summed in the
    /// backward pass (`ways - 1` adds).
    Fork {
        /// Elements of the tensor.
        elems: u64,
        /// Number of uses.
        ways: u32,
    },
    /// `mean` over trailing dimensions (also global average pooling).
    Mean {
        /// Input elements.
        in_elems: u64,
        /// Output elements.
        out_elems: u64,
    },
    /// `nn.MaxPool2d` (square window).
    MaxPool {
        /// Batch.
        n: u64,
        /// Channels.
        c: u64,
        /// Input height = width.
        hw: u64,
        /// Window.
        k: u64,
        /// Stride.
        stride: u64,
    },
    /// `nn.Linear` on `rows` rows.
    Linear {
        /// Rows (batch times tokens).
        rows: u64,
        /// Input features.
        inf: u64,
        /// Output features.
        outf: u64,
        /// Whether there is a bias.
        bias: bool,
        /// Whether the input needs a gradient.
        input_grad: bool,
        /// The weight is a row slice of a (tied) parameter with this many elements, owned
        /// elsewhere: its gradient is scattered into a zero tensor of the full size.
        slice_of: Option<u64>,
    },
    /// Batched matmul `[batch, m, k] x [batch, k, n]`.
    Bmm {
        /// Batch of matrices.
        batch: u64,
        /// Rows.
        m: u64,
        /// Columns.
        n: u64,
        /// Inner dimension.
        k: u64,
    },
    /// Softmax (or log-softmax) over the last dimension.
    Softmax {
        /// Rows.
        rows: u64,
        /// Columns (the softmax dimension).
        cols: u64,
        /// `log_softmax`.
        log: bool,
    },
    /// Fused `nn.LayerNorm` over the last dimension.
    LayerNorm {
        /// Rows.
        rows: u64,
        /// Normalised dimension.
        cols: u64,
    },
    /// `nn.Embedding` lookup (an `index_select`), whose table is a parameter.
    Embedding {
        /// Looked-up rows.
        tokens: u64,
        /// Table rows.
        vocab: u64,
        /// Row width.
        dim: u64,
    },
    /// `nn.Dropout` (no kernel in eval mode).
    Dropout {
        /// Elements.
        elems: u64,
    },
    /// A copy: `.contiguous()` of a permuted view, or `torch.cat` (`cat`), into `elems`
    /// elements; `grad` says whether the backward pass copies the gradient back.
    Copy {
        /// Elements written.
        elems: u64,
        /// A `torch.cat` (its gradient is a view: no backward kernel).
        cat: bool,
        /// Whether the result needs a gradient.
        grad: bool,
    },
    /// A fill (`zeros`, `ones`, `zeros_like`): no gradient.
    Fill {
        /// Elements.
        elems: u64,
    },
    /// `F.cross_entropy`: log-softmax plus NLL, mean reduction.
    CrossEntropy {
        /// Rows (samples).
        rows: u64,
        /// Classes.
        classes: u64,
    },
    /// `mask.nonzero()`: a count, read back by the host (a device-to-host copy and a
    /// synchronisation), then the selection.
    Nonzero {
        /// Elements of the mask.
        elems: u64,
    },
    /// `index_select` of `rows` rows of width `cols` out of a `src_rows`-row tensor.
    IndexSelect {
        /// Selected rows.
        rows: u64,
        /// Row width.
        cols: u64,
        /// Rows of the source.
        src_rows: u64,
        /// Whether the source needs a gradient (backward: zeros + `index_add_`).
        grad: bool,
    },
    /// `gather` of one element per row.
    Gather {
        /// Rows.
        rows: u64,
        /// Row width of the source.
        cols: u64,
    },
    /// `index_copy_` of `rows` elements into a tensor.
    IndexCopy {
        /// Copied elements.
        rows: u64,
    },
}

impl Op {
    /// Element counts of the parameter tensors this op owns, in registration order.
    pub fn params(&self) -> Vec<u64> {
        match *self {
            Op::Conv(c) => vec![c.weight_elems()],
            Op::BatchNorm { c, .. } => vec![c, c],
            Op::Pw { f: Pw::AddParam | Pw::MulParam, small, .. } => vec![small],
            Op::Linear { inf, outf, bias, slice_of, .. } => {
                let mut v = Vec::new();
                if slice_of.is_none() {
                    v.push(inf * outf);
                }
                if bias {
                    v.push(outf);
                }
                v
            }
            Op::LayerNorm { cols, .. } => vec![cols, cols],
            Op::Embedding { vocab, dim, .. } => vec![vocab * dim],
            _ => Vec::new(),
        }
    }
}

/// A host-device transfer at the start or end of a request or iteration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transfer {
    /// What is copied (`images`, `labels`, `logits`...).
    pub label: &'static str,
    /// Bytes.
    pub bytes: u64,
}

/// A model instantiated at a batch size: what the lowering needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Net {
    /// Host-to-device copies before the forward pass (training: inputs and labels).
    pub inputs: Vec<Transfer>,
    /// The forward pass, in program order.
    pub forward: Vec<Op>,
    /// Training only: the loss computation after the forward pass.
    pub loss: Vec<Op>,
    /// Inference only: device-to-host copies of the outputs.
    pub outputs: Vec<Transfer>,
    /// Extra parameter tensors not owned by any op (shared biases), element counts.
    pub extra_params: Vec<u64>,
}

impl Net {
    /// Appends a forward op.
    pub fn push(&mut self, op: Op) {
        self.forward.push(op);
    }

    /// Appends a pointwise op.
    pub fn pw(&mut self, f: Pw, elems: u64) {
        self.push(Op::Pw { f, elems, small: 0 });
    }

    /// Appends a pointwise op with a broadcast operand of `small` elements.
    pub fn pw_bcast(&mut self, f: Pw, elems: u64, small: u64) {
        self.push(Op::Pw { f, elems, small });
    }

    /// Appends a fork of a tensor used `ways` times.
    pub fn fork(&mut self, elems: u64, ways: u32) {
        if ways > 1 {
            self.push(Op::Fork { elems, ways });
        }
    }

    /// Appends a `nn.Linear`.
    pub fn linear(&mut self, rows: u64, inf: u64, outf: u64, bias: bool) {
        self.push(Op::Linear { rows, inf, outf, bias, input_grad: true, slice_of: None });
    }

    /// Appends a contiguous copy that carries a gradient.
    pub fn copy(&mut self, elems: u64) {
        self.push(Op::Copy { elems, cat: false, grad: true });
    }

    /// All parameter tensors (element counts), in registration order.
    pub fn params(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.forward.iter().flat_map(Op::params).collect();
        v.extend(self.loss.iter().flat_map(Op::params));
        v.extend(self.extra_params.iter().copied());
        v
    }
}
