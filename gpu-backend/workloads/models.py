"""The seed paper's five workloads as PyTorch models with random weights (no downloads).

Each workload is built by :func:`build` and exposes :meth:`Workload.step`, which runs exactly
one request (inference) or one iteration (training), ending with a host synchronisation:

* inference request: host-to-device copy of every input (from pinned host memory), forward
  pass in eval mode under ``torch.no_grad()``, ``.cpu()`` of every output;
* training iteration: host-to-device copy of inputs and labels, ``zero_grad(set_to_none=True)``,
  forward, loss, backward, optimizer step, ``loss.item()``.

The models (names as in the Rust side, ``traces/src/workload.rs``):

* ``resnet50``, ``mobilenetv2``, ``resnet101``: torchvision, ``weights=None``, 1000 classes;
  images ``batch x 3 x 224 x 224`` float32; cross-entropy on random labels; SGD (momentum
  0.9, weight decay 1e-4).
* ``bert``: BERT-base (hidden 768, 12 layers, 12 heads, intermediate 3072, vocabulary 30522,
  512 positions, 2 token types) as ``transformers.BertForQuestionAnswering``, sequence length
  384 (Orion ran SQuAD question answering at 384). Inputs ``input_ids``, ``token_type_ids``,
  ``attention_mask`` (int64, ``batch x 384``); outputs the start and end logits; training adds
  random start/end positions and uses the model's own loss (mean of the start and end
  cross-entropies); AdamW. Attention is the ``eager`` implementation by default (explicit
  matmul + softmax, as NVIDIA's ``modeling.py`` that Orion ran); ``bert_attn="sdpa"`` or
  ``"default"`` switch it.
* ``transformer``: a stand-in for Orion's Transformer-XL base (NVIDIA DeepLearningExamples,
  WikiText-103): a causal ``torch.nn.TransformerEncoder`` LM, 16 post-norm layers, d_model
  512, 8 heads, d_inner 2048, ReLU, dropout 0.1, segment length 192, vocabulary 267735, token
  embedding scaled by sqrt(d_model) plus fixed sinusoidal positions, and a plain ``Linear``
  output head whose weight is tied to the embedding (Transformer-XL ties them too). Inputs are
  token ids and targets (int64, ``batch x 192``); both modes compute the mean cross-entropy of
  the targets, and an inference request returns that loss (the artifact's inference is the
  evaluation loop, which is also what the analytic trace in ``traces/src/analytic`` models),
  so the 267735-wide logits are not copied to the host. AdamW.

  Simplifications against Transformer-XL: no segment-level recurrence memory (attention over
  the 192 tokens of the segment, not 192 + 192 memorised ones), absolute sinusoidal positions
  instead of relative positional attention (no ``r_net``, ``r_w_bias``/``r_r_bias``, relative
  shift), and a full softmax over the vocabulary instead of the adaptive softmax (cutoffs
  19997/39997/199997; no ``nonzero()`` read-backs to the host in the middle of the request).
  The kernel mix therefore differs: fewer, larger GEMMs at the head and no mid-request syncs.

Default batch sizes (the paper's): inference 4 (BERT 2); training ResNet50 32, MobileNetV2 64,
ResNet101 32, BERT 8, Transformer 8.
"""

import math
import os

# Building from configs needs no network; make sure nothing tries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ("resnet50", "mobilenetv2", "resnet101", "bert", "transformer")
MODES = ("inference", "training")

IMAGE = 224
CLASSES = 1000
BERT_SEQ = 384
BERT_VOCAB = 30522
TXL_SEQ = 192
TXL_VOCAB = 267735

_ALIASES = {
    "resnet50": "resnet50",
    "mobilenetv2": "mobilenetv2",
    "mobilenet": "mobilenetv2",
    "resnet101": "resnet101",
    "bert": "bert",
    "bertbase": "bert",
    "transformer": "transformer",
    "transformerxl": "transformer",
}


def canonical_model(name):
    """The canonical model name (``mobilenet_v2`` -> ``mobilenetv2``, as the Rust side)."""
    key = "".join(c for c in str(name).strip().lower() if c not in "-_")
    if key not in _ALIASES:
        raise ValueError("unknown model `%s` (expected one of %s)" % (name, ", ".join(MODELS)))
    return _ALIASES[key]


def canonical_mode(mode):
    m = str(mode).strip().lower()
    if m in ("inference", "infer", "inf", "eval"):
        return "inference"
    if m in ("training", "train"):
        return "training"
    raise ValueError("unknown mode `%s` (expected inference or training)" % mode)


def default_batch(model, mode):
    """The paper's batch sizes (same table as ``Model::default_batch`` in Rust)."""
    model, mode = canonical_model(model), canonical_mode(mode)
    if mode == "inference":
        return 2 if model == "bert" else 4
    return {"resnet50": 32, "mobilenetv2": 64, "resnet101": 32, "bert": 8, "transformer": 8}[model]


def default_hp_rate(model):
    """The paper's HP Poisson rate (requests/s): MobileNetV2 40, every other model 15."""
    return 40.0 if canonical_model(model) == "mobilenetv2" else 15.0


def default_be_rate(model):
    """The rate of a model as a BE inference job in the paper's fig10 experiment."""
    return {"resnet50": 80.0, "mobilenetv2": 100.0, "resnet101": 40.0, "bert": 8.0, "transformer": 20.0}[
        canonical_model(model)
    ]


class TransformerLM(nn.Module):
    """Causal Transformer encoder LM standing in for Transformer-XL base (see module doc)."""

    def __init__(self, vocab=TXL_VOCAB, d_model=512, n_head=8, d_inner=2048, n_layer=16, dropout=0.1,
                 seq_len=TXL_SEQ, tie_weights=True):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab, d_model)
        nn.init.normal_(self.embed.weight, mean=0.0, std=0.02)  # Transformer-XL's init_std
        self.scale = math.sqrt(d_model)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, n_head, dim_feedforward=d_inner, dropout=dropout, activation="relu",
            batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, vocab)
        if tie_weights:
            self.head.weight = self.embed.weight
        pos = torch.arange(seq_len, dtype=torch.float32).unsqueeze(1)
        inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(seq_len, d_model)
        pe[:, 0::2] = torch.sin(pos * inv_freq)
        pe[:, 1::2] = torch.cos(pos * inv_freq)
        self.register_buffer("pos_emb", pe, persistent=False)
        mask = torch.triu(torch.full((seq_len, seq_len), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, ids):
        s = ids.size(1)
        x = self.embed(ids) * self.scale + self.pos_emb[:s]
        x = self.drop(x)
        x = self.encoder(x, mask=self.causal_mask[:s, :s], is_causal=True)
        return self.head(x)


def _build_bert(bert_attn):
    import transformers  # noqa: F401  (imported here: slow, and only BERT needs it)
    from transformers import BertConfig, BertForQuestionAnswering

    kw = dict(vocab_size=BERT_VOCAB, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
              intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
              hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    notes = []
    want = None if bert_attn in (None, "", "default") else bert_attn
    config = None
    if want is not None:
        try:
            config = BertConfig(attn_implementation=want, **kw)
        except Exception as e:  # older/newer config signatures
            notes.append("BertConfig(attn_implementation=%s) failed: %s" % (want, e))
            config = None
    if config is None:
        config = BertConfig(**kw)
    model = BertForQuestionAnswering(config)
    got = getattr(model.config, "_attn_implementation", None)
    if want is not None and got != want:
        try:
            if hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation(want)
            else:
                model.config._attn_implementation = want
        except Exception as e:
            notes.append("could not switch attention to %s: %s" % (want, e))
        got = getattr(model.config, "_attn_implementation", None)
    info = {"attn_implementation": got, "transformers": transformers.__version__}
    if notes:
        info["notes"] = notes
    return model, info


def _build_module(model, bert_attn, device):
    """The ``nn.Module`` and facts about it (built on the CPU, except the Transformer, whose
    137M-parameter embedding is initialised faster on ``device``)."""
    if model in ("resnet50", "mobilenetv2", "resnet101"):
        import torchvision

        fn = {"resnet50": torchvision.models.resnet50, "mobilenetv2": torchvision.models.mobilenet_v2,
              "resnet101": torchvision.models.resnet101}[model]
        return fn(weights=None), {"torchvision": torchvision.__version__}
    if model == "bert":
        return _build_bert(bert_attn)
    if model == "transformer":
        with device:
            m = TransformerLM()
        return m, {"stand_in_for": "Transformer-XL base", "layers": 16, "d_model": 512, "heads": 8,
                   "d_inner": 2048, "seq_len": TXL_SEQ, "vocab": TXL_VOCAB, "tied_head": True,
                   "memory": False, "adaptive_softmax": False}
    raise ValueError("unknown model `%s`" % model)


def _pinned(t):
    return t.pin_memory() if torch.cuda.is_available() else t


def _host_inputs(model, mode, batch, gen):
    """Random host tensors in pinned memory: (inputs, labels) as ordered dicts of name -> tensor."""
    inputs, labels = {}, {}
    if model in ("resnet50", "mobilenetv2", "resnet101"):
        inputs["images"] = torch.randn(batch, 3, IMAGE, IMAGE, generator=gen)
        if mode == "training":
            labels["labels"] = torch.randint(0, CLASSES, (batch,), generator=gen, dtype=torch.int64)
    elif model == "bert":
        inputs["input_ids"] = torch.randint(0, BERT_VOCAB, (batch, BERT_SEQ), generator=gen, dtype=torch.int64)
        tt = torch.zeros(batch, BERT_SEQ, dtype=torch.int64)
        tt[:, BERT_SEQ // 2:] = 1  # question, then context
        inputs["token_type_ids"] = tt
        inputs["attention_mask"] = torch.ones(batch, BERT_SEQ, dtype=torch.int64)
        if mode == "training":
            labels["start_positions"] = torch.randint(0, BERT_SEQ, (batch,), generator=gen, dtype=torch.int64)
            labels["end_positions"] = torch.randint(0, BERT_SEQ, (batch,), generator=gen, dtype=torch.int64)
    elif model == "transformer":
        inputs["data"] = torch.randint(0, TXL_VOCAB, (batch, TXL_SEQ), generator=gen, dtype=torch.int64)
        # The target is an input in both modes (the evaluation loop computes the loss too).
        inputs["target"] = torch.randint(0, TXL_VOCAB, (batch, TXL_SEQ), generator=gen, dtype=torch.int64)
    return ({k: _pinned(v) for k, v in inputs.items()}, {k: _pinned(v) for k, v in labels.items()})


def _optimizer(model, params):
    if model in ("resnet50", "mobilenetv2", "resnet101"):
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
        desc = "SGD(lr=0.01, momentum=0.9, weight_decay=1e-4)"
    elif model == "bert":
        opt = torch.optim.AdamW(params, lr=3e-5, weight_decay=0.01)
        desc = "AdamW(lr=3e-5, weight_decay=0.01)"
    else:
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        desc = "AdamW(lr=1e-4, weight_decay=0.01)"
    return opt, desc


class Workload:
    """One model in one mode at one batch size, ready to run requests or iterations."""

    def __init__(self, model, mode, batch, device, net, host_inputs, host_labels, optimizer, info):
        self.model = model
        self.mode = mode
        self.batch = batch
        self.device = device
        self.net = net
        self.host_inputs = host_inputs
        self.host_labels = host_labels
        self.optimizer = optimizer
        self.info = info

    def _to_device(self, tensors):
        return {k: v.to(self.device, non_blocking=True) for k, v in tensors.items()}

    def _forward(self, x):
        """Forward pass; returns (outputs as a tuple of tensors, loss or None)."""
        m = self.model
        if m in ("resnet50", "mobilenetv2", "resnet101"):
            logits = self.net(x["images"])
            loss = F.cross_entropy(logits, x["labels"]) if "labels" in x else None
            return (logits,), loss
        if m == "bert":
            kw = dict(input_ids=x["input_ids"], token_type_ids=x["token_type_ids"],
                      attention_mask=x["attention_mask"])
            if "start_positions" in x:
                kw["start_positions"] = x["start_positions"]
                kw["end_positions"] = x["end_positions"]
            out = self.net(**kw)
            if "start_positions" in x:
                loss = out.loss if hasattr(out, "loss") else out[0]
                return (), loss
            if hasattr(out, "start_logits"):
                return (out.start_logits, out.end_logits), None
            return (out[0], out[1]), None
        if m == "transformer":
            logits = self.net(x["data"])
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x["target"].reshape(-1))
            return (loss,), loss
        raise ValueError(m)

    def step(self):
        """One request (returns the outputs on the host) or training iteration (returns the
        loss as a float). Ends with the host synchronised with the GPU work of this step."""
        if self.mode == "inference":
            with torch.no_grad():
                x = self._to_device(self.host_inputs)
                outputs, _ = self._forward(x)
                return [o.cpu() for o in outputs]
        x = self._to_device(self.host_inputs)
        x.update(self._to_device(self.host_labels))
        self.optimizer.zero_grad(set_to_none=True)
        _, loss = self._forward(x)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def input_bytes(self):
        ts = list(self.host_inputs.values()) + list(self.host_labels.values())
        return int(sum(t.numel() * t.element_size() for t in ts))

    def output_bytes(self):
        """Bytes copied back to the host per step."""
        if self.mode == "training" or self.model == "transformer":
            return 4
        if self.model == "bert":
            return 2 * self.batch * BERT_SEQ * 4
        return self.batch * CLASSES * 4

    def close(self):
        self.net = None
        self.optimizer = None
        self.host_inputs = {}
        self.host_labels = {}


def build(model, mode, batch=None, device="cuda", seed=1, bert_attn="eager"):
    """Builds a workload: the model with random weights on ``device``, its optimizer (training)
    and random pinned host inputs. Weights and inputs depend only on ``seed``."""
    model, mode = canonical_model(model), canonical_mode(mode)
    batch = int(batch) if batch else default_batch(model, mode)
    if batch < 1:
        raise ValueError("batch must be at least 1")
    device = torch.device(device)
    torch.manual_seed(seed)
    net, info = _build_module(model, bert_attn, device)
    info = dict(info)
    info["params"] = int(sum(p.numel() for p in net.parameters()))
    net = net.to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    host_inputs, host_labels = _host_inputs(model, mode, batch, gen)
    optimizer = None
    if mode == "training":
        net.train()
        optimizer, info["optimizer"] = _optimizer(model, net.parameters())
    else:
        net.eval()
    return Workload(model, mode, batch, device, net, host_inputs, host_labels, optimizer, info)
