//! Transformer-XL base as NVIDIA's DeepLearningExamples runs it on WikiText-103 (Orion's
//! artifact workload "Transformer"), fp32.
//!
//! Configuration ([`TXL_BASE`]): 16 layers, d_model 512, 8 heads of 64, d_inner 2048,
//! tgt_len 192, mem_len 192 (attention over 384 keys), vocabulary 267735 with an adaptive
//! softmax (cutoffs 19997, 39997, 199997, div_val 1, output weights tied to the embedding),
//! dropout 0.1, dropatt 0. Inference and training both compute the loss for the batch's
//! targets (the artifact's inference is the evaluation loop).
//!
//! Per layer (relative partial learnable attention): `cat(mems, w)`, the fused QKV linear over
//! the 384 keys, the relative-position linear `r_net`, the two biased queries (`+ r_w_bias`,
//! `+ r_r_bias`), the content (AC) and position (BD) score batched GEMMs with their operands
//! made contiguous, the relative shift (zero pad, cat, view), `AC + BD`, scale, causal
//! `masked_fill_`, softmax, the context batched GEMM, the output linear, dropout, residual add,
//! layer norm, and the position-wise feed-forward (linear, ReLU, dropout, linear, dropout,
//! residual add, layer norm). The memories are updated after the layers (one `cat` per layer
//! plus one, no gradient).
//!
//! The adaptive softmax computes the head (19997 words + 3 cluster logits) for every token
//! and each tail cluster only for the tokens whose target falls in it: `mask.nonzero()` (which
//! reads the count back to the host: a device-to-host copy and a synchronisation), gathers,
//! the cluster's linear and log-softmax, and `index_copy_` into the per-token loss. The share
//! of targets per cluster is fixed at [`CLUSTER_SHARE`] (WikiText-103's word frequencies,
//! roughly).

use super::layers::{Net, NoGradPw, Op, Pw, Transfer};

/// Transformer-XL hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxlConfig {
    pub layers: u64,
    pub d_model: u64,
    pub heads: u64,
    pub d_head: u64,
    pub d_inner: u64,
    pub tgt_len: u64,
    pub mem_len: u64,
    pub vocab: u64,
    /// Cluster boundaries of the adaptive softmax, from 0 to the vocabulary size.
    pub cutoffs: [u64; 5],
}

/// NVIDIA's Transformer-XL base for WikiText-103.
pub(crate) const TXL_BASE: TxlConfig = TxlConfig {
    layers: 16,
    d_model: 512,
    heads: 8,
    d_head: 64,
    d_inner: 2048,
    tgt_len: 192,
    mem_len: 192,
    vocab: 267735,
    cutoffs: [0, 19997, 39997, 199997, 267735],
};

/// Share of target tokens in the head and in each tail cluster.
pub(crate) const CLUSTER_SHARE: [f64; 4] = [0.89, 0.045, 0.055, 0.01];

fn layer(net: &mut Net, cfg: &TxlConfig, b: u64, first: bool) {
    let (q, k, d) = (cfg.tgt_len, cfg.tgt_len + cfg.mem_len, cfg.d_model);
    let hd = cfg.heads * cfg.d_head;
    let t = q * b;
    let td = t * d;
    let scores = b * cfg.heads * q * k;
    let bias = if first { Pw::AddParam } else { Pw::AddSharedParam };
    net.fork(td, 2); // w feeds cat(mems, w) and the residual
    net.push(Op::Copy { elems: k * b * d, cat: true, grad: true });
    net.linear(k * b, d, 3 * hd, false);
    net.push(Op::Linear { rows: k, inf: d, outf: hd, bias: false, input_grad: false, slice_of: None });
    net.fork(t * hd, 2); // w_head_q feeds both biased queries
    // AC = einsum('ibnd,jbnd->bnij', q + r_w_bias, k)
    net.pw_bcast(bias, t * hd, hd);
    net.copy(t * hd);
    net.copy(k * b * hd);
    net.push(Op::Bmm { batch: b * cfg.heads, m: q, n: k, k: cfg.d_head });
    // BD = einsum('ibnd,jnd->bnij', q + r_r_bias, r_head_k)
    net.pw_bcast(bias, t * hd, hd);
    net.copy(t * hd);
    net.copy(k * hd);
    net.push(Op::Bmm { batch: cfg.heads, m: q * b, n: k, k: cfg.d_head });
    // _rel_shift: zero pad, cat, view.
    net.push(Op::Fill { elems: b * cfg.heads * q });
    net.push(Op::Copy { elems: b * cfg.heads * q * (k + 1), cat: true, grad: true });
    net.pw(Pw::Add, scores);
    net.pw(Pw::MulScalar, scores);
    net.pw_bcast(Pw::MaskedFill, scores, q * k);
    net.push(Op::Softmax { rows: b * cfg.heads * q, cols: k, log: false });
    net.copy(k * b * hd);
    net.push(Op::Bmm { batch: b * cfg.heads, m: q, n: cfg.d_head, k });
    net.copy(t * hd);
    net.linear(t, hd, d, false);
    net.push(Op::Dropout { elems: td });
    net.pw(Pw::Add, td);
    net.push(Op::LayerNorm { rows: t, cols: d });
    // Position-wise feed-forward.
    net.fork(td, 2);
    net.linear(t, d, cfg.d_inner, true);
    net.pw(Pw::Relu, t * cfg.d_inner);
    net.push(Op::Dropout { elems: t * cfg.d_inner });
    net.linear(t, cfg.d_inner, d, true);
    net.push(Op::Dropout { elems: td });
    net.pw(Pw::Add, td);
    net.push(Op::LayerNorm { rows: t, cols: d });
}

/// The adaptive log-softmax loss over `t` tokens (per-token negative log-likelihood).
fn adaptive_softmax(net: &mut Net, cfg: &TxlConfig, t: u64) {
    let d = cfg.d_model;
    let clusters = cfg.cutoffs.len() - 1;
    let shortlist = cfg.cutoffs[1];
    let head = shortlist + (clusters as u64 - 1);
    let tied = cfg.vocab * d;
    net.fork(t * d, clusters as u32); // hidden feeds the head and every tail
    // Head weight and bias: cat(shortlist slice, cluster weight / bias).
    net.push(Op::Copy { elems: head * d, cat: true, grad: true });
    net.push(Op::Copy { elems: head, cat: true, grad: true });
    net.push(Op::Linear { rows: t, inf: d, outf: head, bias: true, input_grad: true, slice_of: Some(tied) });
    net.push(Op::Softmax { rows: t, cols: head, log: true });
    net.fork(t * head, clusters as u32); // head log-probs gathered per cluster
    net.push(Op::Fill { elems: t }); // nll = zeros_like(target)
    for (i, (share, bounds)) in CLUSTER_SHARE.iter().zip(cfg.cutoffs.windows(2)).enumerate() {
        let rows = ((t as f64 * share).round() as u64).max(1);
        let size = bounds[1] - bounds[0];
        // mask_i = (target >= l_idx) & (target < r_idx); indices_i = mask_i.nonzero()
        for _ in 0..3 {
            net.pw(Pw::NoGrad(NoGradPw::Compare), t);
        }
        net.push(Op::Nonzero { elems: t });
        net.push(Op::IndexSelect { rows, cols: 1, src_rows: t, grad: false });
        net.push(Op::IndexSelect { rows, cols: head, src_rows: t, grad: true });
        if i == 0 {
            net.push(Op::Gather { rows, cols: head });
        } else {
            net.push(Op::IndexSelect { rows, cols: d, src_rows: t, grad: true });
            net.push(Op::Linear { rows, inf: d, outf: size, bias: true, input_grad: true, slice_of: Some(tied) });
            net.push(Op::Softmax { rows, cols: size, log: true });
            net.pw(Pw::NoGrad(NoGradPw::Rsub), rows); // target_i - l_idx
            net.push(Op::Gather { rows, cols: size });
            net.pw(Pw::Add, rows); // head_logprob_i[:, -i] + tail
        }
        net.pw(Pw::Neg, rows);
        net.push(Op::IndexCopy { rows });
    }
}

/// Transformer-XL at batch `b` (one segment of `tgt_len` tokens per sequence).
pub(crate) fn transformer_xl(cfg: &TxlConfig, b: u64, training: bool) -> Net {
    let mut net = Net::default();
    let (q, k, d) = (cfg.tgt_len, cfg.tgt_len + cfg.mem_len, cfg.d_model);
    let t = q * b;
    for label in ["data", "target"] {
        net.inputs.push(Transfer { label, bytes: t * 8 });
    }
    let clusters = cfg.cutoffs.len() - 1;
    // The tied embedding / output weight and the output bias collect one gradient per use.
    net.fork(cfg.vocab * d, clusters as u32 + 1);
    net.fork(cfg.vocab, clusters as u32);
    net.push(Op::Embedding { tokens: t, vocab: cfg.vocab, dim: d });
    net.pw(Pw::MulScalar, t * d); // emb_scale
    // Sinusoidal relative position embedding.
    net.pw(Pw::NoGrad(NoGradPw::Arange), k);
    net.pw(Pw::NoGrad(NoGradPw::Mul), k * d / 2); // outer(pos_seq, inv_freq)
    net.pw(Pw::NoGrad(NoGradPw::Sin), k * d / 2);
    net.pw(Pw::NoGrad(NoGradPw::Sin), k * d / 2); // cos
    net.push(Op::Copy { elems: k * d, cat: true, grad: false });
    // Causal mask: triu(ones(qlen, klen), 1 + mlen).bool()
    net.push(Op::Fill { elems: q * k });
    net.pw(Pw::NoGrad(NoGradPw::Triu), q * k);
    net.pw(Pw::NoGrad(NoGradPw::Cast), q * k);
    net.push(Op::Dropout { elems: t * d });
    net.push(Op::Dropout { elems: k * d });
    for l in 0..cfg.layers {
        layer(&mut net, cfg, b, l == 0);
    }
    net.push(Op::Dropout { elems: t * d });
    // _update_mems: cat(mems[i], hids[i])[-mem_len:] for the embedding and every layer.
    for _ in 0..=cfg.layers {
        net.push(Op::Copy { elems: k * b * d, cat: true, grad: false });
    }
    adaptive_softmax(&mut net, cfg, t);
    // loss.mean()
    net.push(Op::Mean { in_elems: t, out_elems: 1 });
    // Output bias, cluster weight and cluster bias (r_w_bias and r_r_bias are counted by the
    // first layer's bias adds).
    net.extra_params = vec![cfg.vocab, (clusters as u64 - 1) * d, clusters as u64 - 1];
    if !training {
        net.outputs.push(Transfer { label: "loss", bytes: 4 });
    }
    net
}
