//! BERT-base for SQuAD question answering, as NVIDIA's DeepLearningExamples `modeling.py`
//! runs it in fp32 without apex (Orion's artifact workload).
//!
//! Configuration ([`BERT_BASE`]): 12 layers, hidden 768, 12 heads of 64, intermediate 3072,
//! sequence length 384, vocabulary 30522, 512 positions, 2 token types; a 768 -> 2 QA head
//! (start and end logits) and, for training, the mean of the two cross-entropy losses.
//!
//! Per layer: Q, K and V linears; the heads' permuted views made contiguous for `matmul`
//! (copies of Q, K and V), the scores batched GEMM, `/ sqrt(64)`, `+ mask`, softmax, dropout,
//! the context batched GEMM, a contiguous copy of the permuted context, the output linear,
//! dropout, residual add and layer norm; the intermediate linear (no bias) with the
//! TorchScript `bias_gelu` (bias add and the erf formula), the output linear, dropout,
//! residual add and layer norm. Without apex the layer norm is the Python `BertLayerNorm`
//! (mean, subtract, square, mean, add eps, sqrt, subtract, divide, scale, shift: 10 kernels)
//! and `bias_gelu` is not fused (6 kernels): [`BertConfig::fused_layer_norm`] and
//! [`BertConfig::fused_bias_gelu`] switch to the fused kernels.

use super::layers::{Net, NoGradPw, Op, Pw, Transfer};

/// BERT hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BertConfig {
    pub layers: u64,
    pub hidden: u64,
    pub heads: u64,
    pub intermediate: u64,
    pub seq_len: u64,
    pub vocab: u64,
    pub max_positions: u64,
    pub token_types: u64,
    /// apex `FusedLayerNorm` instead of the Python layer norm.
    pub fused_layer_norm: bool,
    /// A fused `bias_gelu` instead of its unfused TorchScript graph.
    pub fused_bias_gelu: bool,
}

/// BERT-base on SQuAD with sequence length 384, as in Orion's artifact.
pub(crate) const BERT_BASE: BertConfig = BertConfig {
    layers: 12,
    hidden: 768,
    heads: 12,
    intermediate: 3072,
    seq_len: 384,
    vocab: 30522,
    max_positions: 512,
    token_types: 2,
    fused_layer_norm: false,
    fused_bias_gelu: false,
};

/// Layer norm over `cols` of `rows` rows, fused or as the Python `BertLayerNorm`.
fn layer_norm(net: &mut Net, cfg: &BertConfig, rows: u64, cols: u64) {
    if cfg.fused_layer_norm {
        net.push(Op::LayerNorm { rows, cols });
        return;
    }
    let e = rows * cols;
    net.fork(e, 3); // x feeds mean(x) and both (x - u)
    net.push(Op::Mean { in_elems: e, out_elems: rows });
    net.fork(rows, 2); // u is subtracted twice
    net.pw_bcast(Pw::SubRows, e, rows);
    net.pw(Pw::Pow2, e);
    net.push(Op::Mean { in_elems: e, out_elems: rows });
    net.pw(Pw::AddScalar, rows);
    net.pw(Pw::Sqrt, rows);
    net.pw_bcast(Pw::SubRows, e, rows);
    net.pw_bcast(Pw::DivRows, e, rows);
    net.pw_bcast(Pw::MulParam, e, cols);
    net.pw_bcast(Pw::AddParam, e, cols);
}

/// One encoder layer over `t` tokens in `b` sequences.
fn layer(net: &mut Net, cfg: &BertConfig, b: u64) {
    let (s, h) = (cfg.seq_len, cfg.hidden);
    let t = b * s;
    let th = t * h;
    let heads = cfg.heads;
    let dh = h / heads;
    let scores = b * heads * s * s;
    // Self-attention.
    net.fork(th, 4); // Q, K, V and the residual
    for _ in 0..3 {
        net.linear(t, h, h, true);
    }
    net.copy(th); // query heads made contiguous for matmul
    net.copy(th); // key heads (transposed)
    net.push(Op::Bmm { batch: b * heads, m: s, n: s, k: dh });
    net.pw(Pw::DivScalar, scores);
    net.pw_bcast(Pw::AddMask, scores, b * s);
    net.push(Op::Softmax { rows: b * heads * s, cols: s, log: false });
    net.push(Op::Dropout { elems: scores });
    net.copy(th); // value heads
    net.push(Op::Bmm { batch: b * heads, m: s, n: dh, k: s });
    net.copy(th); // context permuted back and made contiguous
    net.linear(t, h, h, true);
    net.push(Op::Dropout { elems: th });
    net.pw(Pw::Add, th);
    layer_norm(net, cfg, t, h);
    // Feed-forward.
    net.fork(th, 2);
    let ti = t * cfg.intermediate;
    if cfg.fused_bias_gelu {
        net.linear(t, h, cfg.intermediate, true);
        net.pw(Pw::Gelu, ti);
    } else {
        net.linear(t, h, cfg.intermediate, false);
        net.pw_bcast(Pw::AddParam, ti, cfg.intermediate); // x = bias + y
        net.fork(ti, 2);
        net.pw(Pw::MulScalar, ti); // x * 0.5
        net.pw(Pw::DivScalar, ti); // x / 1.41421
        net.pw(Pw::Erf, ti);
        net.pw(Pw::AddScalar, ti); // 1.0 + erf(...)
        net.pw(Pw::Mul, ti);
    }
    net.linear(t, cfg.intermediate, h, true);
    net.push(Op::Dropout { elems: th });
    net.pw(Pw::Add, th);
    layer_norm(net, cfg, t, h);
}

/// BERT for question answering at batch `b`.
pub(crate) fn bert(cfg: &BertConfig, b: u64, training: bool) -> Net {
    let mut net = Net::default();
    let (s, h) = (cfg.seq_len, cfg.hidden);
    let t = b * s;
    for label in ["input_ids", "token_type_ids", "attention_mask"] {
        net.inputs.push(Transfer { label, bytes: t * 8 });
    }
    // Extended attention mask: (1.0 - mask.to(float)) * -10000.0.
    net.pw(Pw::NoGrad(NoGradPw::Cast), t);
    net.pw(Pw::NoGrad(NoGradPw::Rsub), t);
    net.pw(Pw::NoGrad(NoGradPw::Mul), t);
    // Embeddings.
    net.pw(Pw::NoGrad(NoGradPw::Arange), s); // position ids
    for vocab in [cfg.vocab, cfg.max_positions, cfg.token_types] {
        net.push(Op::Embedding { tokens: t, vocab, dim: h });
    }
    net.pw(Pw::Add, t * h);
    net.pw(Pw::Add, t * h);
    layer_norm(&mut net, cfg, t, h);
    net.push(Op::Dropout { elems: t * h });
    for _ in 0..cfg.layers {
        layer(&mut net, cfg, b);
    }
    // QA head: logits split into start and end, each made contiguous.
    net.linear(t, h, 2, true);
    net.copy(t);
    net.copy(t);
    if training {
        for label in ["start_positions", "end_positions"] {
            net.inputs.push(Transfer { label, bytes: b * 8 });
        }
        for _ in 0..2 {
            net.loss.push(Op::Pw { f: Pw::NoGrad(NoGradPw::Clamp), elems: b, small: 0 });
        }
        for _ in 0..2 {
            net.loss.push(Op::CrossEntropy { rows: b, classes: s });
        }
        net.loss.push(Op::Pw { f: Pw::Add, elems: 1, small: 0 });
        net.loss.push(Op::Pw { f: Pw::DivScalar, elems: 1, small: 0 });
    } else {
        for label in ["start_logits", "end_logits"] {
            net.outputs.push(Transfer { label, bytes: t * 4 });
        }
    }
    net
}
