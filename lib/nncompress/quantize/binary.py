"""BinaryConnect (Courbariaux, Bengio & David 2015): 1-bit weights.

:func:`binarize` (deterministic sign / stochastic with the hard sigmoid, eq. 1-3), a
straight-through gradient (:class:`BinarizeSTE`), real-valued weights clipped to
``[-H, H]`` (:class:`BinaryLinear`), and the bytes such a model needs (:func:`binary_bytes`).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def glorot_scale(layer: nn.Module) -> float:
    """``H = sqrt(1.5 / (fan_in + fan_out))``: BinaryConnect's weight magnitude (Glorot's bound)."""
    fan_out, fan_in = layer.weight.shape[0], layer.weight[0].numel()
    return math.sqrt(1.5 / (fan_in + fan_out))


def binarize(w: torch.Tensor, scale: float = 1.0, stochastic: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """``±scale``: deterministic ``sign`` (0 -> +), or stochastic with ``p(+) = hard_sigmoid(w/scale)``
    (Courbariaux et al. 2015, eq. 1-3)."""
    if stochastic:
        p = ((w / scale + 1) / 2).clamp(0, 1)
        r = torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype)
        return torch.where(r < p, scale, -scale).to(w.dtype)
    return torch.where(w >= 0, scale, -scale).to(w.dtype)


class BinarizeSTE(torch.autograd.Function):
    """Forward: :func:`binarize`; backward: straight-through, zeroed where ``|w| > scale``."""

    @staticmethod
    def forward(ctx, w, scale=1.0, stochastic=False):
        ctx.save_for_backward(w)
        ctx.scale = scale
        return binarize(w, scale, stochastic)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= ctx.scale).to(grad.dtype), None, None


class BinaryLinear(nn.Linear):
    """BinaryConnect Linear: real weights kept (clipped to ``[-H, H]``), ``±H`` used in forward.

    Clipping happens at the start of each training forward, i.e. right after the previous
    update.  ``stochastic`` binarises stochastically during training; evaluation always uses
    the deterministic ``sign`` (1 bit per weight at inference).
    """

    def __init__(self, in_features, out_features, bias=True, *, stochastic=False, scale=None):
        super().__init__(in_features, out_features, bias)
        self.stochastic = stochastic
        self.scale = float(scale) if scale is not None else glorot_scale(self)
        with torch.no_grad():
            self.weight.clamp_(-self.scale, self.scale)

    def binary_weight(self) -> torch.Tensor:
        return binarize(self.weight.detach(), self.scale)

    def forward(self, x):
        if not self.training and not torch.is_grad_enabled():
            # inference: binarise once per weight version (a deployed model stores the bits)
            key = (self.weight._version, self.weight.data_ptr())
            if getattr(self, "_cached_key", None) != key:
                self._cached_key, self._cached_wb = key, self.binary_weight()
            return F.linear(x, self._cached_wb, self.bias)
        if self.training:
            with torch.no_grad():
                self.weight.clamp_(-self.scale, self.scale)
        wb = BinarizeSTE.apply(self.weight, self.scale, self.stochastic and self.training)
        return F.linear(x, wb, self.bias)


def binarize_model(model: nn.Module, *, stochastic: bool = False, skip: tuple[str, ...] = ()) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` (except names in ``skip``) a :class:`BinaryLinear`
    initialised from its weights (clipped)."""
    model = copy.deepcopy(model)
    for name, m in list(model.named_modules()):
        if type(m) is nn.Linear and name not in skip:
            b = BinaryLinear(m.in_features, m.out_features, m.bias is not None, stochastic=stochastic)
            with torch.no_grad():
                b.weight.copy_(m.weight.clamp(-b.scale, b.scale))
                if m.bias is not None:
                    b.bias.copy_(m.bias)
            model.set_submodule(name, b.to(m.weight.device))
    return model


def binary_bytes(model: nn.Module) -> int:
    """Bytes to store a BinaryConnect model: 1 bit per binary weight + one float32 scale per layer,
    float32 for everything else (biases, non-binary layers)."""
    total = 0
    for m in model.modules():
        for pname, p in m.named_parameters(recurse=False):
            if isinstance(m, BinaryLinear) and pname == "weight":
                total += math.ceil(p.numel() / 8) + 4
            else:
                total += 4 * p.numel()
    return total
