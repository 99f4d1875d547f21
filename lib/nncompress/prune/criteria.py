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
* :func:`taylor_importance` - first-order Taylor estimate of the loss change when a channel
  is removed (Molchanov, Mallya, Tyree, Frosio & Kautz 2019, "Importance Estimation for
  Neural Network Pruning", eq. 8 on the BN gate: I_c = (gamma_c dL/dgamma_c + beta_c dL/dbeta_c)^2,
  summed over mini-batches; without a BN, the producer's weights and bias of the channel).
* :func:`global_keep` - one threshold over the scores of ALL layers (network slimming's
  global |gamma| threshold, Liu et al. 2017, sec. 4): the per-layer widths are found, not set.

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
STRUCTURED_CRITERIA = (*CRITERIA, "bn_gamma", "apoz", "taylor", "random")


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


def _labelled_batches(data, batch_size: int):
    if hasattr(data, "batches"):
        yield from data.batches(batch_size, shuffle=False)
    elif isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
    else:
        yield from data


def taylor_importance(model: nn.Module, data, *, batch_size: int = 128) -> dict[str, torch.Tensor]:
    """``{unit: per-channel Taylor importance}`` (Molchanov et al. 2019, eq. 8); higher = keep.

    For every mini-batch of ``data`` (a ``DeviceData``, an ``(x, y)`` pair of tensors or an
    iterable of ``(x, y)`` batches) the cross-entropy gradient is taken with the model in
    eval mode; the channel's score is the square of sum_{s in channel} g_s * w_s over its
    gating parameters - the BN's gamma and beta after the producer, or (no BN) the
    producer's filter and bias - accumulated over the batches.  It estimates the squared
    change of the loss when the channel is set to zero.
    """
    mods = dict(model.named_modules())
    groups = {}
    for u in units(model):
        owner = mods[u["bn"]] if u["bn"] is not None else mods[u["producer"]]
        groups[u["name"]] = [p for p in (owner.weight, owner.bias) if p is not None]
    scores = {n: None for n in groups}
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for batch in _labelled_batches(data, batch_size):
            x, y = batch[0].to(dev), batch[1].to(dev)
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            for n, params in groups.items():
                contrib = sum((p.grad * p.detach()).flatten(1).sum(1) if p.dim() > 1 else p.grad * p.detach()
                              for p in params)
                s = contrib.detach().pow(2).cpu()
                scores[n] = s if scores[n] is None else scores[n] + s
            seen += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if seen == 0:
        raise ValueError("taylor_importance: data yielded no labelled batches")
    return scores


def global_keep(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """``{unit: sorted indices to KEEP}`` by ONE threshold over every unit's scores: the
    fraction ``ratio`` of all channels with the lowest scores goes, wherever it lies (network
    slimming, Liu et al. 2017, sec. 4: "a global threshold across all layers").  At least one
    channel of each unit is kept (its highest-scoring one)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio={ratio!r} is not allowed: expected a float in [0, 1)")
    if not scores:
        raise ValueError("global_keep: scores is empty")
    allv = torch.cat([s.flatten().float() for s in scores.values()])
    k = int(round(ratio * allv.numel()))
    keep = {}
    for n, s in scores.items():
        if k == 0:
            idx = torch.arange(len(s))
        else:
            thr = torch.kthvalue(allv, k).values
            idx = torch.nonzero(s.float() > thr).flatten()
            if idx.numel() == 0:
                idx = s.argmax().reshape(1)
        keep[n] = idx.sort().values
    return keep


def unit_scores(model: nn.Module, criterion: str = "l1", data=None) -> dict[str, torch.Tensor]:
    """``{unit: per-channel score}`` (higher = keep) for a structured criterion.

    ``"l1"``, ``"l2"``, ``"fpgm"`` use the producer's filters; ``"bn_gamma"`` the BN's |gamma|;
    ``"apoz"`` is 1 - APoZ of the unit's post-ReLU output on ``data``; ``"taylor"`` the
    first-order Taylor importance on labelled ``data`` (:func:`taylor_importance`); ``"random"``
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
        elif criterion == "taylor":
            continue
        elif criterion == "apoz":
            if data is None:
                raise ValueError("criterion='apoz' needs data=")
            tap = mods[u["bn"]] if u["bn"] is not None else prod  # ReLU(BN(conv)) or ReLU(linear)
            out[u["name"]] = 1.0 - apoz(model, tap, data)
        else:
            out[u["name"]] = torch.rand(out_dim(prod), generator=g)
    if criterion == "taylor":
        if data is None:
            raise ValueError("criterion='taylor' needs labelled data= (a DeviceData or an (x, y) pair)")
        out = taylor_importance(model, data)
    return out
