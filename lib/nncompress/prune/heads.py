"""Structured pruning of a :class:`TinyGPT`: attention heads and MLP width, removed physically.

* Head importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?", sec. 3):
  the increase of the validation loss when one head's gate ``head_mask[h]`` is set to 0.
* MLP unit importance: the L1 norm of its row of ``fc1`` (Li et al. 2017's filter criterion).
* :func:`prune_structure` slices q/k/v rows, ``out`` columns, fc1 rows and fc2 columns, so the
  result is a smaller dense model (``arch_config()`` records the new shapes).
"""
from __future__ import annotations

import copy

import torch

from ..models.transformer import TinyGPT, bits_per_byte


@torch.no_grad()
def head_importance(model: TinyGPT, data) -> dict[tuple[int, int], float]:
    """``{(layer, head): bits-per-byte increase on data when that head is masked}``."""
    base = bits_per_byte(model, data)
    out = {}
    for i, b in enumerate(model.blocks):
        for h in range(b.attn.n_heads):
            b.attn.head_mask[h] = 0.0
            out[(i, h)] = bits_per_byte(model, data) - base
            b.attn.head_mask[h] = 1.0
    return out


def mlp_importance(model: TinyGPT) -> dict[int, torch.Tensor]:
    """``{layer: L1 norm of every fc1 row}``."""
    return {i: b.fc1.weight.detach().abs().sum(1) for i, b in enumerate(model.blocks)}


def _rows(lin, idx):
    lin.weight = torch.nn.Parameter(lin.weight.detach()[idx].clone())
    if lin.bias is not None:
        lin.bias = torch.nn.Parameter(lin.bias.detach()[idx].clone())
    lin.out_features = len(idx)


def _cols(lin, idx):
    lin.weight = torch.nn.Parameter(lin.weight.detach()[:, idx].clone())
    lin.in_features = len(idx)


def prune_structure(model: TinyGPT, keep_heads: dict[int, list[int]], keep_mlp: dict[int, list[int]]) -> TinyGPT:
    """A copy keeping heads ``keep_heads[layer]`` and MLP units ``keep_mlp[layer]`` (others removed)."""
    model = copy.deepcopy(model)
    for i, b in enumerate(model.blocks):
        at, hd = b.attn, b.attn.head_dim
        heads = sorted(keep_heads.get(i, range(at.n_heads)))
        idx = torch.tensor([h * hd + j for h in heads for j in range(hd)], dtype=torch.long)
        for lin in (at.q, at.k, at.v):
            _rows(lin, idx)
        _cols(at.out, idx)
        at.head_mask = at.head_mask[heads].clone()
        at.n_heads = len(heads)
        units = torch.tensor(sorted(keep_mlp.get(i, range(b.fc1.out_features))), dtype=torch.long)
        _rows(b.fc1, units)
        _cols(b.fc2, units)
    return model


def prune_by_importance(model: TinyGPT, head_scores: dict, head_frac: float, mlp_frac: float) -> TinyGPT:
    """Remove the ``head_frac`` least important heads (globally, one head kept per layer) and
    the ``mlp_frac`` lowest-L1 MLP units of every layer."""
    if not (0 <= head_frac < 1 and 0 <= mlp_frac < 1):
        raise ValueError(f"head_frac={head_frac!r}, mlp_frac={mlp_frac!r}: expected fractions in [0, 1)")
    order = sorted(head_scores, key=head_scores.get)
    drop = set(order[: int(len(order) * head_frac)])
    keep_heads = {}
    for i, b in enumerate(model.blocks):
        kept = [h for h in range(b.attn.n_heads) if (i, h) not in drop]
        keep_heads[i] = kept or [max(range(b.attn.n_heads), key=lambda h: head_scores[(i, h)])]
    keep_mlp = {}
    for i, score in mlp_importance(model).items():
        k = max(1, round(len(score) * (1 - mlp_frac)))
        keep_mlp[i] = sorted(torch.topk(score, k).indices.tolist())
    return prune_structure(model, keep_heads, keep_mlp)
