"""AWQ: activation-aware weight quantization (Lin et al. 2024), for :class:`TinyGPT` blocks.

For a group of Linear layers that read the same input ``x`` (q/k/v after LN1; fc1 after
LN2; ``out`` after v; fc2 after ReLU(fc1)), with the per-input-channel activation scale
``a_j = mean_tokens |x_j|`` (reference ``get_act_scale``):

    s = a^alpha,  s <- s / sqrt(max(s) * min(s)),
    Q(W diag(s)) (diag(s)^-1 x)   instead of   Q(W) x,

and ``alpha`` is chosen on a grid ``{0, 1/n, ..., 1}`` by the mean squared error of the
group's outputs against the float outputs on *calibration* activations (training text).
``diag(s)^-1`` is folded exactly into the previous operator (LayerNorm weight and bias,
the rows of v, the rows of fc1 - ReLU commutes with positive scales).  Differences from
the paper's code: the error is measured on the Linear outputs, not on the whole attention /
MLP module's output, and there is no weight-clipping search (``auto_clip``).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from .weight_only import fake_quantize, quantize_linears


def act_scale(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute activation per input channel (the last dimension)."""
    return x.abs().reshape(-1, x.shape[-1]).mean(0)


def awq_scales(a: torch.Tensor, alpha: float) -> torch.Tensor:
    """``s = a^alpha`` normalised by ``sqrt(max * min)`` (alpha = 0 gives all ones)."""
    s = a.clamp(min=1e-4).pow(alpha).clamp(min=1e-4)
    return s / (s.max() * s.min()).sqrt()


@torch.no_grad()
def search_alpha(linears: list[nn.Linear], x: torch.Tensor, bits: int, group_size: int | None,
                 n_grid: int = 20) -> tuple[float, torch.Tensor, list[float]]:
    """``(best alpha, its scales, the error per grid point)`` for layers sharing input ``x``."""
    x = x.reshape(-1, x.shape[-1])
    ref = [l(x) for l in linears]
    a = act_scale(x)
    errors = []
    for i in range(n_grid + 1):
        s = awq_scales(a, i / n_grid)
        err = 0.0
        for l, r in zip(linears, ref):
            w_hat = fake_quantize(l.weight * s, bits, group_size) / s
            err += float(((x @ w_hat.T + (0 if l.bias is None else l.bias)) - r).pow(2).mean())
        errors.append(err)
    best = min(range(n_grid + 1), key=errors.__getitem__)
    return best / n_grid, awq_scales(a, best / n_grid), errors


def _capture(model, modules, tokens):
    """The inputs of ``modules`` during ``model(tokens)``."""
    seen, hooks = {}, []
    for m in modules:
        hooks.append(m.register_forward_hook(lambda mod, inp, out, m=m: seen.__setitem__(m, inp[0].detach())))
    try:
        model(tokens)
    finally:
        for h in hooks:
            h.remove()
    return [seen[m] for m in modules]


@torch.no_grad()
def awq_scale_model(model: nn.Module, calib_tokens: torch.Tensor, bits: int, group_size: int | None,
                    n_grid: int = 20) -> tuple[nn.Module, dict]:
    """A float copy of a :class:`TinyGPT` with AWQ scales applied (same function up to
    rounding), and ``{group name: alpha}``.  Quantize it afterwards with RTN."""
    model = copy.deepcopy(model).cpu().eval()
    alphas = {}
    for i, b in enumerate(model.blocks):
        at = b.attn
        groups = [("qkv", [at.q, at.k, at.v], b.ln1), ("out", [at.out], at.v),
                  ("fc1", [b.fc1], b.ln2), ("fc2", [b.fc2], b.fc1)]
        for name, linears, prev in groups:
            if linears[0].in_features == 0:
                continue
            x = _capture(model, [linears[0]], calib_tokens)[0]
            alpha, s, _ = search_alpha(linears, x, bits, group_size, n_grid)
            for l in linears:
                l.weight.mul_(s)
            prev.weight.div_(s.view(-1, *([1] * (prev.weight.dim() - 1))))
            if prev.bias is not None:
                prev.bias.div_(s)
            alphas[f"blocks.{i}.{name}"] = alpha
    return model, alphas


def awq_quantize(model, calib_tokens, bits, group_size, n_grid: int = 20, include=lambda n: True):
    """AWQ scaling then round-to-nearest of the block Linears: ``(quantized model, alphas)``."""
    scaled, alphas = awq_scale_model(model, calib_tokens, bits, group_size, n_grid)
    return quantize_linears(scaled, bits, group_size, include), alphas
