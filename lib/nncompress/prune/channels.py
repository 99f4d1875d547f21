"""Pruning: importance criteria, masks, physical channel removal, schedules, lottery tickets.

**Criteria** (one score per output channel / neuron, higher = keep):

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

**Unstructured pruning** sits on top of ``torch.nn.utils.prune``: its masks (a
``weight_mask`` buffer, ``weight_orig`` parameter and a forward pre-hook) are the
masks of this module; :func:`prune_to_sparsity` only translates "reach sparsity s"
into the ``amount`` torch expects (a count of the weights still unpruned).

**Structured pruning** (:func:`prune_channels`) physically removes channels and
returns a smaller ordinary ``nn.Module`` (a speed-up on any hardware).  We slice the
layers ourselves instead of using Torch-Pruning's dependency graph (Fang et al. 2023):
no extra dependency, and our model families are simple - in :class:`~nncompress.models.MLP`
and :class:`~nncompress.models.SimpleCNN` a unit's output feeds exactly one next layer;
in :class:`~nncompress.models.CifarResNet` we prune only the inner channel of a basic
block (conv1/bn1 outputs -> conv2 inputs) and leave the residual widths alone, because
the shortcut ties every block's output width of a stage together.

**Schedules**: one-shot, iterative prune + fine-tune, and AGP (Zhu & Gupta 2017, eq. 1:
s_t = s_f + (s_i - s_f)(1 - t/n)^3).  **Lottery tickets**: iterative magnitude pruning
with rewinding (Frankle & Carbin 2019; Frankle et al. 2020) and its controls (random
re-init, random mask, sign-preserving re-init of Zhou et al. 2019), each level cached.
**Rethinking** (Liu et al. 2019): :func:`scratch_epochs` gives Scratch-E / Scratch-B budgets.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import prune as tprune

from .cache import cpu_state

CRITERIA = ("l1", "l2", "fpgm")
STRUCTURED_CRITERIA = (*CRITERIA, "bn_gamma", "apoz", "random")
SCOPES = ("layer", "global")
PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)
CONTROLS = ("ticket", "reinit", "random_mask", "sign")


def _check(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed: expected one of {', '.join(map(repr, allowed))}")


def _check_ratio(name: str, value: float, high_inclusive: bool = False) -> None:
    ok = 0.0 <= value <= 1.0 if high_inclusive else 0.0 <= value < 1.0
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: expected a float in [0, 1{']' if high_inclusive else ')'}")


# ----------------------------------------------------------------------------- criteria

def filter_importance(weight: torch.Tensor, criterion: str = "l1") -> torch.Tensor:
    """One score per output channel (row of a Linear, filter of a conv); higher = keep.

    ``"l1"``: sum |W_j| (Li et al. 2017); ``"l2"``: ||W_j||_2; ``"fpgm"``: sum_k ||W_j - W_k||_2,
    the distance of filter j to all others (He et al. 2019) - the filter nearest the
    geometric median gets the LOWEST score and is pruned first.
    """
    _check("criterion", criterion, CRITERIA)
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


def _iter_inputs(data, batch_size: int = 512):
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
        dev = next(model.parameters()).device
        for x in _iter_inputs(data, batch_size):
            model(x.to(dev))
    finally:
        handle.remove()
        model.train(was_training)
    if zeros is None:
        raise ValueError("apoz: data yielded no samples")
    return (zeros / count).cpu()


# ----------------------------------------------------------------------------- unstructured

def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every Linear / Conv1d / Conv2d (biases and BN are not pruned)."""
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


def _effective(module: nn.Module, name: str = "weight") -> torch.Tensor:
    return getattr(module, name)


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the prunable weights (seeing through torch masks)."""
    zeros = total = 0
    for m, n in prunable(model):
        w = _effective(m, n)
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / max(total, 1)


def layer_sparsities(model: nn.Module) -> dict[str, float]:
    """``{module name: fraction of zero weights}`` for each prunable layer."""
    return {name: float((m.weight == 0).float().mean()) for name, m in model.named_modules()
            if isinstance(m, PRUNABLE)}


def magnitude_prune(model: nn.Module, amount: float | int, *, scope: str = "layer") -> nn.Module:
    """Prune ``amount`` of the (still unpruned) weights by magnitude, in place.

    ``scope="layer"``: ``prune.l1_unstructured`` on each layer (each loses ``amount``);
    ``scope="global"``: ``prune.global_unstructured`` with ``L1Unstructured`` (one
    threshold over all layers - Han et al. 2015; Frankle & Carbin 2019).  Repeated calls
    compose as torch does: ``amount`` is a fraction of what is left.
    """
    _check("scope", scope, SCOPES)
    params = prunable(model)
    if scope == "layer":
        for m, n in params:
            tprune.l1_unstructured(m, n, amount=amount)
    else:
        tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    return model


def prune_to_sparsity(model: nn.Module, target: float, *, scope: str = "global") -> nn.Module:
    """Magnitude-prune until a fraction ``target`` of the prunable weights is zero (in place).

    Translates the absolute target into torch's relative ``amount`` (an integer count of
    still-unpruned weights to remove, per layer or globally).  Never un-prunes.
    """
    _check_ratio("target", target, high_inclusive=False)
    _check("scope", scope, SCOPES)
    params = prunable(model)
    if scope == "layer":
        for m, n in params:
            w = getattr(m, n)
            k = max(0, round(target * w.numel()) - int((w == 0).sum()))
            tprune.l1_unstructured(m, n, amount=k)
    else:
        total = sum(getattr(m, n).numel() for m, n in params)
        zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in params)
        k = max(0, round(target * total) - zeros)
        tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=k)
    return model


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{module name: weight_mask}`` of every layer pruned with ``torch.nn.utils.prune``."""
    return {name: m.weight_mask.detach().clone() for name, m in model.named_modules()
            if hasattr(m, "weight_mask")}


def apply_masks(model: nn.Module, mask_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Attach the given masks with ``prune.custom_from_mask`` (in place)."""
    mods = dict(model.named_modules())
    for name, mask in mask_dict.items():
        m = mods[name]
        tprune.custom_from_mask(m, "weight", mask.to(m.weight.device))
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Make pruning permanent: ``prune.remove`` on every pruned parameter (zeros stay)."""
    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, tprune.BasePruningMethod):
                tprune.remove(m, hook._tensor_name)
    return model


def keep_masks_callback() -> Callable[[int, nn.Module], None]:
    """A ``fit`` callback: after each epoch set ``weight_orig *= weight_mask``.

    The forward pre-hook of ``torch.nn.utils.prune`` already multiplies by the mask in
    every forward pass, so training never uses a pruned weight; this keeps the stored
    ``weight_orig`` sparse too, so :func:`remove_masks` or a mask change cannot revive
    stale values.
    """
    @torch.no_grad()
    def callback(epoch: int, model: nn.Module) -> None:
        for m in model.modules():
            if hasattr(m, "weight_mask") and hasattr(m, "weight_orig"):
                m.weight_orig.mul_(m.weight_mask)
    return callback


def agp_sparsity(step: int, n_steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta 2017, eq. 1: s_t = s_f + (s_i - s_f)(1 - t/n)^3, for t in [0, n]."""
    if n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} is not allowed: expected an int >= 1")
    t = min(max(step, 0), n_steps)
    return final + (initial - final) * (1 - t / n_steps) ** 3


def agp_callback(final: float, n_steps: int, *, initial: float = 0.0, scope: str = "global"):
    """A ``fit`` callback pruning to ``agp_sparsity(epoch + 1, n_steps, final, initial)`` after each epoch."""
    _check("scope", scope, SCOPES)

    def callback(epoch: int, model: nn.Module) -> None:
        prune_to_sparsity(model, agp_sparsity(epoch + 1, n_steps, final, initial), scope=scope)
    return callback


def iterative_prune(model: nn.Module, train, targets: Iterable[float], finetune_config, *,
                    scope: str = "global", val=None, device="cpu", seed: int = 0,
                    progress: bool | None = False) -> list[dict]:
    """Prune to each sparsity in ``targets`` in turn, fine-tuning after each step (in place).

    Han et al. 2015's prune / retrain loop.  Returns ``[{"sparsity", "acc"}]`` (``acc``
    on ``val`` after the fine-tuning, if given).
    """
    from .train import evaluate, fit

    out = []
    for i, s in enumerate(targets):
        prune_to_sparsity(model, s, scope=scope)
        fit(model, train, finetune_config, device=device, seed=seed + i, progress=progress,
            callbacks=[keep_masks_callback()], desc=f"fine-tune {s:.0%}")
        row = {"sparsity": sparsity(model)}
        if val is not None:
            row["acc"] = evaluate(model, val, device=device)["acc"]
        out.append(row)
    return out


# ----------------------------------------------------------------------------- structured

def _units(model: nn.Module) -> list[dict]:
    """The prunable channel groups of a model, in order.

    Each unit: ``name``, ``producer`` (layer whose output channels are removed), ``bn``
    (or None), ``consumer`` (layer whose input channels follow) and the attribute paths
    to replace them.
    """
    from .models import MLP, CifarResNet, Conv1DNet, SimpleCNN

    units = []
    if isinstance(model, MLP):
        for i, lin in enumerate(model.hidden):
            nxt = (f"hidden.{i + 1}" if i + 1 < len(model.hidden) else "head")
            units.append(dict(name=f"hidden.{i}", producer=f"hidden.{i}", bn=None, consumer=nxt))
    elif isinstance(model, SimpleCNN):
        seq = [f"stages.{i}.{j}" for i, st in enumerate(model.stages) for j in range(len(st))]
        for k, p in enumerate(seq):
            nxt = f"{seq[k + 1]}.0" if k + 1 < len(seq) else "head"
            units.append(dict(name=p, producer=f"{p}.0", bn=f"{p}.1", consumer=nxt))
    elif isinstance(model, CifarResNet):
        for i, st in enumerate(model.stages):
            for b in range(len(st)):
                p = f"stages.{i}.{b}"
                units.append(dict(name=p, producer=f"{p}.conv1", bn=f"{p}.bn1", consumer=f"{p}.conv2"))
    elif isinstance(model, Conv1DNet) and not model.separable:
        for i in range(len(model.stages)):
            nxt = f"stages.{i + 1}.0" if i + 1 < len(model.stages) else "head"
            units.append(dict(name=f"stages.{i}", producer=f"stages.{i}.0", bn=None, consumer=nxt))
    else:
        raise TypeError(f"structured pruning supports MLP, SimpleCNN, CifarResNet and (non-separable) Conv1DNet, "
                        f"not {type(model).__name__}")
    return units


def unit_names(model: nn.Module) -> list[str]:
    """Names of the channel groups :func:`prune_channels` can shrink."""
    return [u["name"] for u in _units(model)]


def channel_counts(model: nn.Module) -> dict[str, int]:
    """``{unit name: current number of channels}``."""
    mods = dict(model.named_modules())
    return {u["name"]: _out_dim(mods[u["producer"]]) for u in _units(model)}


def _out_dim(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _get(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def _set(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def _slice_layer(m: nn.Module, out_idx=None, in_idx=None) -> nn.Module:
    w = m.weight.detach()
    b = m.bias.detach() if m.bias is not None else None
    if out_idx is not None:
        w = w[out_idx]
        b = b[out_idx] if b is not None else None
    if in_idx is not None:
        w = w[:, in_idx]
    if isinstance(m, nn.Linear):
        new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    else:
        cls = type(m)
        new = cls(w.shape[1] * m.groups, w.shape[0], m.kernel_size, m.stride, m.padding,
                  m.dilation, m.groups, bias=b is not None, padding_mode=m.padding_mode)
    new = new.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    new.train(m.training)
    return new


def _slice_bn(bn: nn.modules.batchnorm._BatchNorm, idx) -> nn.Module:
    new = type(bn)(len(idx), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                   track_running_stats=bn.track_running_stats).to(bn.weight.device)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[idx]); new.bias.copy_(bn.bias[idx])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[idx]); new.running_var.copy_(bn.running_var[idx])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


def unit_scores(model: nn.Module, criterion: str = "l1", data=None) -> dict[str, torch.Tensor]:
    """``{unit: per-channel score}`` (higher = keep) for a structured criterion.

    ``"l1"``, ``"l2"``, ``"fpgm"`` use the producer's filters; ``"bn_gamma"`` the BN's |gamma|;
    ``"apoz"`` is 1 - APoZ of the unit's post-ReLU output on ``data``; ``"random"``
    a fixed random score (a baseline).
    """
    _check("criterion", criterion, STRUCTURED_CRITERIA)
    mods = dict(model.named_modules())
    out = {}
    g = torch.Generator().manual_seed(0)
    for u in _units(model):
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
            out[u["name"]] = torch.rand(_out_dim(prod), generator=g)
    return out


def select_channels(model: nn.Module, ratio: float | Mapping[str, float], criterion: str = "l1", *,
                    data=None) -> dict[str, torch.Tensor]:
    """``{unit: sorted indices of the channels to KEEP}``: drop a fraction ``ratio`` per unit.

    ``ratio`` is one float for every unit or ``{unit: ratio}`` (missing units keep all,
    which is how the sensitivity analysis prunes one layer alone).  At least one channel
    is always kept.
    """
    scores = unit_scores(model, criterion, data)
    keep = {}
    for name, s in scores.items():
        r = ratio.get(name, 0.0) if isinstance(ratio, Mapping) else ratio
        _check_ratio(f"ratio[{name!r}]" if isinstance(ratio, Mapping) else "ratio", r)
        n_keep = max(1, len(s) - int(round(r * len(s))))
        keep[name] = torch.topk(s, n_keep).indices.sort().values
    return keep


def prune_channels(model: nn.Module, keep: Mapping[str, torch.Tensor]) -> nn.Module:
    """A smaller copy of ``model`` with only the channels in ``keep[unit]`` (physically removed).

    Slices the producer's output rows (and bias), its BatchNorm (gamma, beta, running
    statistics) and the consumer's input columns.  The result is an ordinary module of
    the same class - no masks, no hooks - so it is faster on any hardware.
    """
    if any(hasattr(m, "weight_mask") for m in model.modules()):
        raise ValueError("prune_channels: the model carries torch pruning masks; call remove_masks first")
    new = copy.deepcopy(model)
    units = {u["name"]: u for u in _units(new)}
    unknown = set(keep) - set(units)
    if unknown:
        raise ValueError(f"keep has unknown unit(s) {sorted(unknown)}: expected names from {list(units)}")
    for name, idx in keep.items():
        u = units[name]
        idx = torch.as_tensor(idx, dtype=torch.long).cpu()
        _set(new, u["producer"], _slice_layer(_get(new, u["producer"]), out_idx=idx))
        if u["bn"] is not None:
            _set(new, u["bn"], _slice_bn(_get(new, u["bn"]), idx))
        _set(new, u["consumer"], _slice_layer(_get(new, u["consumer"]), in_idx=idx))
    return new


@torch.no_grad()
def zero_channels(model: nn.Module, keep: Mapping[str, torch.Tensor]) -> nn.Module:
    """The masked counterpart of :func:`prune_channels`, in place: zero every removed channel's
    filter, bias and BN gamma/beta.  Its outputs equal the pruned model's exactly."""
    units = {u["name"]: u for u in _units(model)}
    for name, idx in keep.items():
        u = units[name]
        prod = _get(model, u["producer"])
        drop = torch.ones(_out_dim(prod), dtype=torch.bool)
        drop[torch.as_tensor(idx, dtype=torch.long)] = False
        drop = drop.to(prod.weight.device)
        prod.weight[drop] = 0
        if prod.bias is not None:
            prod.bias[drop] = 0
        if u["bn"] is not None:
            bn = _get(model, u["bn"])
            bn.weight[drop] = 0
            bn.bias[drop] = 0
    return model


def structured_prune(model: nn.Module, ratio: float | Mapping[str, float], criterion: str = "l1", *,
                     data=None) -> nn.Module:
    """``prune_channels(model, select_channels(model, ratio, criterion))``: one-shot channel pruning."""
    return prune_channels(model, select_channels(model, ratio, criterion, data=data))


@torch.no_grad()
def recalibrate_bn(model: nn.Module, data, *, batch_size: int = 256) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on ``data`` (in place; no weights change).

    Removing channels of layer k changes the inputs of layer k+1, whose BN still holds the
    dense network's statistics; re-estimating them with forward passes (cumulative average,
    ``momentum=None``) recovers much of the accuracy before any fine-tuning - the
    "adaptive BN" evaluation of EagleEye (Li et al. 2020, sec. 3.2).  ``data`` as in :func:`apoz`.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    saved = [(m.momentum, m.training) for m in bns]
    was_training = model.training
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        dev = next(model.parameters()).device
        for x in _iter_inputs(data, batch_size):
            model(x.to(dev))
    finally:
        for m, (mom, tr) in zip(bns, saved):
            m.momentum = mom
            m.train(tr)
        model.train(was_training)
    return model


def arch_config(model: nn.Module) -> dict:
    """A :func:`nncompress.models.build` config for the unpruned family member of ``model``."""
    from .models import MLP, RESNET_PRESETS, CifarResNet, Conv1DNet, SimpleCNN

    if isinstance(model, Conv1DNet):
        return {"arch": "conv1d", "num_classes": model.head.out_features,
                "widths": [st[-2 if model.separable else 0].out_channels for st in model.stages],
                "separable": model.separable}
    if isinstance(model, MLP):
        p = model.dropout.p if isinstance(model.dropout, nn.Dropout) else 0.0
        return {"arch": "mlp", "in_dim": model.hidden[0].in_features if len(model.hidden) else model.head.in_features,
                "hidden": [l.out_features for l in model.hidden], "num_classes": model.head.out_features,
                "dropout": p}
    if isinstance(model, SimpleCNN):
        return {"arch": "cnn", "in_channels": model.stages[0][0][0].in_channels,
                "num_classes": model.head.out_features,
                "widths": [st[-1][0].out_channels for st in model.stages], "depth": len(model.stages[0])}
    if isinstance(model, CifarResNet):
        depth = 6 * len(model.stages[0]) + 2
        if f"resnet{depth}" not in RESNET_PRESETS:
            raise ValueError(f"no resnet preset of depth {depth}")
        return {"arch": f"resnet{depth}", "num_classes": model.head.out_features,
                "widths": [st[-1].conv2.out_channels for st in model.stages],
                "stem": model.stem[0].out_channels, "in_channels": model.stem[0].in_channels}
    raise TypeError(f"save_pruned supports MLP, SimpleCNN, CifarResNet and Conv1DNet, not {type(model).__name__}")


def save_pruned(model: nn.Module, path) -> None:
    """Save a channel-pruned model: its architecture config + channel counts + state_dict.

    Written through :func:`nncompress.cache.save_checkpoint` (atomic, checksummed);
    :func:`load_pruned` rebuilds it with ``torch.load(weights_only=True)``.
    """
    from .cache import save_checkpoint

    if any(hasattr(m, "weight_mask") for m in model.modules()):
        raise ValueError("save_pruned: call remove_masks first")
    save_checkpoint({"arch": arch_config(model), "channels": channel_counts(model),
                     "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)


def load_pruned(path, device="cpu") -> nn.Module:
    """Rebuild and load a model written by :func:`save_pruned`."""
    from .cache import load_checkpoint
    from .models import build

    entry = load_checkpoint(path)
    model = build(entry["arch"])
    model = prune_channels(model, {k: torch.arange(int(n)) for k, n in entry["channels"].items()})
    model.load_state_dict(entry["state_dict"])
    return model.to(device).eval()


# ----------------------------------------------------------------------------- sensitivity

def sensitivity(model: nn.Module, data, ratios: Sequence[float], *, criterion: str = "l1",
                structured: bool = True, calib=None, device="cpu") -> dict[str, list[float]]:
    """Prune each layer ALONE at each ratio and measure accuracy on ``data`` (Li et al. 2017, fig. 2).

    ``structured=True``: remove a fraction of the unit's channels (:func:`prune_channels`);
    ``False``: magnitude-prune that layer's weights (torch masks).  With ``calib`` data the
    BatchNorm statistics are re-estimated after each cut (:func:`recalibrate_bn`).  Returns
    ``{layer: [acc at each ratio]}``; the model itself is not changed.
    """
    from .train import evaluate

    out = {}
    if structured:
        for name in unit_names(model):
            accs = []
            for r in ratios:
                m = structured_prune(model, {name: r}, criterion)
                if calib is not None:
                    recalibrate_bn(m, calib)
                accs.append(evaluate(m, data, device=device)["acc"])
            out[name] = accs
    else:
        for name, m in model.named_modules():
            if not isinstance(m, PRUNABLE):
                continue
            accs = []
            for r in ratios:
                c = copy.deepcopy(model)
                tprune.l1_unstructured(c.get_submodule(name), "weight", amount=float(r))
                accs.append(evaluate(c, data, device=device)["acc"])
            out[name] = accs
    return out


# ----------------------------------------------------------------------------- lottery tickets

def imp_sparsity(rate: float, levels: int) -> float:
    """Sparsity after ``levels`` rounds of removing a fraction ``rate`` of the remaining weights: 1 - (1 - r)^n."""
    return 1.0 - (1.0 - rate) ** levels


def _next_masks(trained: Mapping[str, torch.Tensor], prev: Mapping[str, torch.Tensor], rate: float,
                scope: str) -> dict[str, torch.Tensor]:
    """Remove a fraction ``rate`` of the surviving weights with the smallest |w| (global or per layer)."""
    new = {}
    if scope == "global":
        alive = torch.cat([trained[n].abs().flatten()[prev[n].flatten() > 0] for n in prev])
        k = int(round(rate * alive.numel()))
        thr = torch.kthvalue(alive, k).values if k > 0 else torch.tensor(-1.0)
        for n in prev:
            new[n] = ((trained[n].abs() > thr) & (prev[n] > 0)).float()
    else:
        for n in prev:
            alive = trained[n].abs().flatten()[prev[n].flatten() > 0]
            k = int(round(rate * alive.numel()))
            thr = torch.kthvalue(alive, k).values if k > 0 else torch.tensor(-1.0)
            new[n] = ((trained[n].abs() > thr) & (prev[n] > 0)).float()
    return new


def _train_masked(model_config, splits, train_config, start_state, mask_dict, *, seed, device, progress,
                  epochs=None):
    from .models import for_data
    from .train import TrainConfig, evaluate, fit

    cfg = TrainConfig.coerce(train_config)
    if epochs is not None:
        cfg = TrainConfig(**{**cfg.to_dict(), "epochs": epochs})
    model = for_data(model_config, splits)
    model.load_state_dict(start_state)
    if mask_dict:
        with torch.no_grad():
            for n, mk in mask_dict.items():
                model.get_submodule(n).weight.mul_(mk)
        apply_masks(model, mask_dict)
    hist = fit(model, splits.train, cfg, device=device, seed=seed, progress=progress,
               callbacks=[keep_masks_callback()] if mask_dict else (), desc="ticket")
    remove_masks(model)
    acc = evaluate(model, splits.test, device=device)["acc"]
    return model, hist, acc


def lottery_level(name: str, model_config: dict, splits, train_config, *, level: int, rate: float = 0.2,
                  rewind_epoch: int = 0, scope: str = "global", seed: int = 0, device="cpu",
                  progress: bool | None = False) -> dict:
    """Level ``level`` of iterative magnitude pruning with rewinding (cached, content-addressed).

    Level 0 trains the dense net from its seed's init theta_0 and keeps theta_k (the weights
    after ``rewind_epoch`` epochs; k = 0 is Frankle & Carbin 2019's reset to init, k > 0 the
    rewinding of Frankle et al. 2020).  Level n prunes ``rate`` of the surviving weights of
    level n-1's trained net by magnitude, resets the survivors to theta_k and retrains for
    ``epochs - k`` epochs (a fresh schedule of that length - a simplification).  Each level
    is one :func:`nncompress.cache.get_or_compute` entry computed from the previous one, so
    an interrupted run continues where it stopped.  Returns ``{"level", "sparsity", "acc",
    "masks", "state_dict", "rewind_state"}`` (``rewind_state`` at level 0 only).
    """
    from . import cache
    from .models import for_data
    from .train import TrainConfig, fit, evaluate

    _check("scope", scope, SCOPES)
    _check_ratio("rate", rate)
    cfg = TrainConfig.coerce(train_config)
    if not 0 <= rewind_epoch < max(cfg.epochs, 1):
        raise ValueError(f"rewind_epoch={rewind_epoch!r} is not allowed: expected an int in [0, {cfg.epochs})")
    key = {"model": model_config, "data": splits.config(), "train": cfg.to_dict(), "seed": seed,
           "rate": rate, "rewind_epoch": rewind_epoch, "scope": scope, "level": level}

    def compute():
        if level == 0:
            torch.manual_seed(seed)
            model = for_data(model_config, splits)
            rewind = {"state": cpu_state(model)}

            def grab(epoch, m):
                if epoch + 1 == rewind_epoch:
                    rewind["state"] = cpu_state(m)

            fit(model, splits.train, cfg, device=device, seed=seed, progress=progress, callbacks=[grab],
                desc="dense")
            acc = evaluate(model, splits.test, device=device)["acc"]
            masks0 = {n: torch.ones_like(m.weight, device="cpu") for n, m in model.named_modules()
                      if isinstance(m, PRUNABLE)}
            return {"level": 0, "sparsity": 0.0, "acc": acc, "masks": masks0,
                    "state_dict": cpu_state(model), "rewind_state": rewind["state"]}
        prev = lottery_level(name, model_config, splits, cfg, level=level - 1, rate=rate,
                             rewind_epoch=rewind_epoch, scope=scope, seed=seed, device=device, progress=progress)
        base = prev if level == 1 else lottery_level(name, model_config, splits, cfg, level=0, rate=rate,
                                                     rewind_epoch=rewind_epoch, scope=scope, seed=seed,
                                                     device=device, progress=progress)
        trained = {n: prev["state_dict"][n + ".weight"] for n in prev["masks"]}
        mk = _next_masks(trained, prev["masks"], rate, scope)
        model, _, acc = _train_masked(model_config, splits, cfg, base["rewind_state"], mk, seed=seed,
                                      device=device, progress=progress, epochs=cfg.epochs - rewind_epoch)
        total = sum(m.numel() for m in mk.values())
        sp = 1.0 - sum(float(m.sum()) for m in mk.values()) / total
        return {"level": level, "sparsity": sp, "acc": acc, "masks": mk, "state_dict": cpu_state(model)}

    value, _ = cache.get_or_compute(name, key, compute)
    return value


def control_run(name: str, model_config: dict, splits, train_config, *, level: int, control: str,
                rate: float = 0.2, rewind_epoch: int = 0, scope: str = "global", seed: int = 0,
                control_seed: int | None = None, device="cpu", progress: bool | None = False) -> dict:
    """Train a level's sparse network from a different start - the controls of the ticket (cached).

    ``"ticket"``: the winning ticket itself (rewound weights, IMP mask); ``"reinit"``: the
    IMP mask with a fresh random init (Frankle & Carbin 2019, sec. 2); ``"random_mask"``:
    rewound weights with a random mask of the same per-layer sparsity; ``"sign"``: fresh
    random magnitudes with the original init's signs (Zhou et al. 2019, "Deconstructing
    lottery tickets").  Returns ``{"acc", "sparsity"}``.
    """
    from . import cache
    from .models import for_data
    from .train import TrainConfig

    _check("control", control, CONTROLS)
    cfg = TrainConfig.coerce(train_config)
    control_seed = seed + 1000 if control_seed is None else control_seed
    common = dict(rate=rate, rewind_epoch=rewind_epoch, scope=scope, seed=seed, device=device, progress=progress)
    if control == "ticket":
        v = lottery_level(name, model_config, splits, cfg, level=level, **common)
        return {"acc": v["acc"], "sparsity": v["sparsity"]}
    key = {"model": model_config, "data": splits.config(), "train": cfg.to_dict(), "seed": seed,
           "rate": rate, "rewind_epoch": rewind_epoch, "scope": scope, "level": level,
           "control": control, "control_seed": control_seed}

    def compute():
        lv = lottery_level(name, model_config, splits, cfg, level=level, **common)
        base = lottery_level(name, model_config, splits, cfg, level=0, **common)
        mk = lv["masks"]
        start = dict(base["rewind_state"])
        g = torch.Generator().manual_seed(control_seed)
        if control in ("reinit", "sign"):
            torch.manual_seed(control_seed)
            fresh = cpu_state(for_data(model_config, splits))
            if control == "reinit":
                start = fresh
            else:
                init = base["rewind_state"]
                start = {k: (fresh[k].abs() * torch.sign(init[k]) if k.endswith("weight") and fresh[k].dim() > 1
                             else init[k]) for k in init}
        elif control == "random_mask":
            mk = {n: m.flatten()[torch.randperm(m.numel(), generator=g)].view_as(m) for n, m in mk.items()}
        _, _, acc = _train_masked(model_config, splits, cfg, start, mk, seed=seed, device=device,
                                  progress=progress, epochs=cfg.epochs - rewind_epoch)
        return {"acc": acc, "sparsity": lv["sparsity"]}

    value, _ = cache.get_or_compute(name + "-control", key, compute)
    return value


# ----------------------------------------------------------------------------- rethinking

def scratch_epochs(epochs: int, full_flops: float, pruned_flops: float, mode: str = "B") -> int:
    """Training budget of a pruned architecture trained from scratch (Liu et al. 2019, sec. 4).

    Scratch-E: the same number of epochs; Scratch-B: the same computation budget,
    ``epochs * full_flops / pruned_flops`` (rounded).
    """
    _check("mode", mode, ("E", "B"))
    if mode == "E":
        return int(epochs)
    if pruned_flops <= 0:
        raise ValueError(f"pruned_flops={pruned_flops!r} is not allowed: expected > 0")
    return int(round(epochs * full_flops / pruned_flops))


def scratch_budgets(full: nn.Module, pruned: nn.Module, input_shape, epochs: int) -> dict:
    """``{"full_flops", "pruned_flops", "E", "B"}`` from :func:`nncompress.metrics.count_flops`."""
    from .metrics import count_flops

    f, p = count_flops(full, input_shape), count_flops(pruned, input_shape)
    return {"full_flops": f, "pruned_flops": p, "E": scratch_epochs(epochs, f, p, "E"),
            "B": scratch_epochs(epochs, f, p, "B")}
