"""A small decoder-only byte-level transformer (GPT-2 layout: pre-LN, learned positions).

Per block: ``x + Attn(LN1(x))`` then ``x + MLP(LN2(x))`` (Radford et al. 2019; Vaswani et al.
2017 eq. 1 for the attention).  Attention keeps separate ``q``, ``k``, ``v`` Linear layers whose
output rows are grouped head by head (``head_dim`` rows per head) and an ``out`` layer whose
input columns follow the same order, so a head can be removed physically by slicing those rows
and columns (:mod:`nncompress.prune.heads`).  ``head_mask`` (a buffer of ones) multiplies each
head's output - the gate of Michel et al. 2019 used to measure head importance.  The MLP uses
ReLU (as OPT does): it is positively homogeneous, so AWQ's per-channel scale of ``fc2``'s input
folds exactly into ``fc1`` (:mod:`nncompress.quantize.awq`).

Layers may differ in heads and MLP width after pruning: ``layer_heads`` / ``layer_mlp`` in the
config (``arch_config()`` writes them), so the cache and :func:`nncompress.models.build` can
rebuild a pruned model.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

SETTINGS = ("vocab", "context", "d_model", "n_layers", "n_heads", "head_dim", "d_mlp", "layer_heads", "layer_mlp")


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, head_dim: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.q, self.k, self.v = (nn.Linear(d_model, inner) for _ in range(3))
        self.out = nn.Linear(inner, d_model)
        self.register_buffer("head_mask", torch.ones(n_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        if self.n_heads == 0:
            return self.out.bias.expand(B, L, -1)
        def heads(t):
            return t.view(B, L, self.n_heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)), is_causal=True)
        y = y * self.head_mask.view(1, -1, 1, 1)
        return self.out(y.transpose(1, 2).reshape(B, L, self.n_heads * self.head_dim))


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, head_dim: int, d_mlp: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, head_dim)
        self.fc1, self.fc2 = nn.Linear(d_model, d_mlp), nn.Linear(d_mlp, d_model)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.relu(self.fc1(self.ln2(x))))


class TinyGPT(nn.Module):
    """``model(tokens (B, L)) -> logits (B, L, vocab)``; ``L <= context``."""

    def __init__(self, vocab: int = 256, context: int = 64, d_model: int = 64, n_layers: int = 2,
                 n_heads: int = 4, head_dim: int | None = None, d_mlp: int | None = None,
                 layer_heads=None, layer_mlp=None):
        super().__init__()
        for name, v in (("vocab", vocab), ("context", context), ("d_model", d_model), ("n_layers", n_layers),
                        ("n_heads", n_heads)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} is not allowed: expected an int >= 1")
        head_dim = head_dim or d_model // n_heads
        d_mlp = d_mlp or 4 * d_model
        layer_heads = list(layer_heads or [n_heads] * n_layers)
        layer_mlp = list(layer_mlp or [d_mlp] * n_layers)
        if len(layer_heads) != n_layers or len(layer_mlp) != n_layers:
            raise ValueError(f"layer_heads / layer_mlp need {n_layers} entries, got {layer_heads} / {layer_mlp}")
        self.config = {"vocab": vocab, "context": context, "d_model": d_model, "n_layers": n_layers,
                       "n_heads": n_heads, "head_dim": head_dim, "d_mlp": d_mlp}
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, h, head_dim, m) for h, m in zip(layer_heads, layer_mlp))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        L = tokens.shape[1]
        if L > self.config["context"]:
            raise ValueError(f"sequence of {L} tokens is longer than the context {self.config['context']}")
        x = self.tok(tokens) + self.pos(torch.arange(L, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def arch_config(self) -> dict:
        """A config :func:`nncompress.models.build` rebuilds this (possibly pruned) model from."""
        return {"arch": "gpt", **self.config, "layer_heads": [b.attn.n_heads for b in self.blocks],
                "layer_mlp": [b.fc1.out_features for b in self.blocks]}


def gpt(config: dict) -> TinyGPT:
    """A :class:`TinyGPT` from its settings; unknown keys are refused."""
    unknown = sorted(set(config) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown TinyGPT setting(s) {unknown}; allowed: {', '.join(SETTINGS)}")
    return TinyGPT(**config)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy in nats over every position (``reduction`` as in F.cross_entropy)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)


def lm_objective(model, batch):
    """:func:`nncompress.train.fit` objective for language modelling (no accuracy: logits None)."""
    return lm_loss(model(batch[0]), batch[1]), None


@torch.no_grad()
def bits_per_byte(model: nn.Module, data, batch_size: int = 64, per_window: bool = False):
    """Mean next-byte NLL in bits (bits per byte) of ``model`` on ``data`` (windows x, y);
    ``per_window=True`` returns one value per window (for paired intervals over the test text)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(data), batch_size):
        x, y = data.x[i:i + batch_size].to(device), data.y[i:i + batch_size].to(device)
        nll = F.cross_entropy(model(x).transpose(1, 2), y, reduction="none").mean(1)
        out.append(nll.cpu())
    vals = torch.cat(out) / torch.log(torch.tensor(2.0))
    return vals.tolist() if per_window else float(vals.mean())
