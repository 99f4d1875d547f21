"""Importance criteria: one score per output channel / neuron, higher = keep.

* ``"l1"`` / ``"l2"`` - norm of each filter (Li et al. 2017, "Pruning Filters for Efficient
  ConvNets", sec. 3.1: s_j = sum |F_j|).
* ``"fpgm"`` - filter pruning via the geometric median (He et al. 2019, eq. 3-6): a filter
  close to the geometric median of its layer's filters can be represented by the others,
  so it is redundant; its score is the sum of its distances to all other filters (small
  = near the median = pruned first).
* :func:`bn_gamma_importance` - network slimming (Liu et al. 2017): |gamma| of the BN
  after the conv, made sparse by the L1 penalty :func:`bn_l1_penalty` (eq. 1,
  L = sum l(f(x), y) + lambda * sum |gamma|).
* :func:`apoz` - Average Percentage of Zeros after ReLU (Hu et al. 2016, eq. 1); a
  channel that is almost always 0 is pruned (high APoZ = prune, score 1 - APoZ).

:func:`unit_scores` applies a criterion to every channel group of a model
(:mod:`nncompress.prune.units`).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_choice
from .units import out_dim, units

CRITERIA = ("l1", "l2", "fpgm")
STRUCTURED_CRITERIA = (*CRITERIA, "bn_gamma", "apoz", "random")


def filter_importance(weight: torch.Tensor, criterion: str = "l1") -> torch.Tensor:
    """One score per output channel (row of a Linear, filter of a conv); higher = keep.

    ``"l1"``: sum |W_j| (Li et al. 2017); ``"l2"``: ||W_j||_2; ``"fpgm"``: sum_k ||W_j - W_k||_2,
    the distance of filter j to all others (He et al. 2019) - the filter nearest the
    geometric median gets the LOWEST score and is pruned first.
    """
    check_choice("criterion", criterion, CRITERIA)
    w = weight.detach().flatten(1).float()
    if criterion == "l1":
        return w.abs().sum(1)
    if criterion == "l2":
        return w.norm(dim=1)
    return torch.cdist(w[None], w[None])[0].sum(1)


def bn_gamma_importance(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """|gamma| per channel (network slimming, Liu et al. 2017); higher = keep."""
    return bn.weight.detach().abs().clone()


def bn_l1_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    """``lam * sum |gamma|`` over every BatchNorm of ``model`` (Liu et al. 2017, eq. 1).

    Add it to a loss; autograd's gradient of |x| is sign(x) (0 at 0), the sub-gradient
    the paper uses.  :func:`slimming_objective` wraps it as a ``fit`` objective.
    """
    terms = [m.weight.abs().sum() for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None]
    if not terms:
        return torch.zeros(())
    return lam * torch.stack(terms).sum()


def slimming_objective(lam: float) -> Callable:
    """Objective ``CE + lam * sum |gamma|`` for :func:`nncompress.train.fit`."""
    def objective(model, batch):
        logits = model(batch[0])
        return F.cross_entropy(logits, batch[1]) + bn_l1_penalty(model, lam), logits
    return objective


def input_batches(data, batch_size: int = 512):
    """The inputs of ``data`` batch by batch: a tensor of inputs (sliced), a ``DeviceData``
    (its batches, in order) or an iterable of ``(x, ...)`` batches or of inputs."""
    if isinstance(data, torch.Tensor):
        for i in range(0, len(data), batch_size):
            yield data[i:i + batch_size]
    elif hasattr(data, "batches"):
        for b in data.batches(batch_size, shuffle=False):
            yield b[0]
    else:
        for b in data:
            yield b[0] if isinstance(b, (tuple, list)) else b


@torch.no_grad()
def run_inputs(model: nn.Module, data, batch_size: int) -> None:
    """Forward every input batch of ``data`` (see :func:`input_batches`) through ``model`` on
    its device, for the side effects of hooks and BatchNorm statistics."""
    dev = next(model.parameters()).device
    for x in input_batches(data, batch_size):
        model(x.to(dev))


@torch.no_grad()
def apoz(model: nn.Module, layer: str | nn.Module, data, *, batch_size: int = 512) -> torch.Tensor:
    """Average Percentage of Zeros per channel of ``layer``'s output after ReLU (Hu et al. 2016).

    APoZ_c = mean over samples and positions of [ReLU(out)_c == 0].  ``layer`` is a module
    or its name in ``model.named_modules()``; ``data`` a tensor of inputs, a ``DeviceData``
    or an iterable of batches.  High APoZ = the channel is rarely active = prune it.
    """
    if isinstance(layer, str):
        mods = dict(model.named_modules())
        if layer not in mods:
            raise ValueError(f"layer={layer!r} is not a module of the model: expected one of "
                             + ", ".join(n for n in mods if n))
        layer = mods[layer]
    zeros, count = None, 0

    def hook(_m, _inp, out):
        nonlocal zeros, count
        z = (out <= 0).float().transpose(0, 1).flatten(1)  # (C, N * positions)
        zeros = z.sum(1) if zeros is None else zeros + z.sum(1)
        count += z.shape[1]

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        run_inputs(model, data, batch_size)
    finally:
        handle.remove()
        model.train(was_training)
    if zeros is None:
        raise ValueError("apoz: data yielded no samples")
    return (zeros / count).cpu()


def unit_scores(model: nn.Module, criterion: str = "l1", data=None) -> dict[str, torch.Tensor]:
    """``{unit: per-channel score}`` (higher = keep) for a structured criterion.

    ``"l1"``, ``"l2"``, ``"fpgm"`` use the producer's filters; ``"bn_gamma"`` the BN's |gamma|;
    ``"apoz"`` is 1 - APoZ of the unit's post-ReLU output on ``data``; ``"random"``
    a fixed random score (a baseline).
    """
    check_choice("criterion", criterion, STRUCTURED_CRITERIA)
    mods = dict(model.named_modules())
    out = {}
    g = torch.Generator().manual_seed(0)
    for u in units(model):
        prod = mods[u["producer"]]
        if criterion in CRITERIA:
            out[u["name"]] = filter_importance(prod.weight, criterion).cpu()
        elif criterion == "bn_gamma":
            if u["bn"] is None:
                raise ValueError(f"criterion='bn_gamma' needs a BatchNorm after {u['name']!r}")
            out[u["name"]] = bn_gamma_importance(mods[u["bn"]]).cpu()
        elif criterion == "apoz":
            if data is None:
                raise ValueError("criterion='apoz' needs data=")
            tap = mods[u["bn"]] if u["bn"] is not None else prod  # ReLU(BN(conv)) or ReLU(linear)
            out[u["name"]] = 1.0 - apoz(model, tap, data)
        else:
            out[u["name"]] = torch.rand(out_dim(prod), generator=g)
    return out
