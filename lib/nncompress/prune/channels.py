"""Structured pruning: physically remove channels, and save / load the smaller model.

:func:`prune_channels` slices the layers of every unit (:mod:`nncompress.prune.units`) and
returns a smaller ordinary ``nn.Module`` - a speed-up on any hardware, no masks.  Channels
are chosen by a criterion (:mod:`nncompress.prune.criteria`, Li et al. 2017; He et al.
2019; Liu et al. 2017; Hu et al. 2016); :func:`recalibrate_bn` re-estimates the BatchNorm
statistics after a cut (EagleEye's adaptive BN, Li et al. 2020, sec. 3.2).
:func:`save_pruned` / :func:`load_pruned` store the model as its family's config, the
channel counts and the weights, and check a file against that config before building it.
"""
from __future__ import annotations

import copy
from typing import Mapping

import torch
import torch.nn as nn

from ..cache import load_checkpoint, save_checkpoint
from ..models import build
from .checks import check_ratio
from .criteria import run_inputs, unit_scores
from .masks import has_masks
from .units import channel_counts, out_dim, units


def _made_on(device: torch.device) -> torch.device | None:
    """Where a sliced layer is constructed: on ``meta`` for a ``meta`` source (no memory, see
    :func:`load_pruned`), else on the CPU as always (its random init, overwritten at once,
    draws from the CPU generator wherever the model lives, so reruns stay reproducible)."""
    return device if device.type == "meta" else None


def _slice_layer(m: nn.Module, out_idx=None, in_idx=None) -> nn.Module:
    """A copy of Linear/Conv ``m`` with only the output rows ``out_idx`` / input columns
    ``in_idx``, on ``m``'s device and dtype."""
    w = m.weight.detach()
    b = m.bias.detach() if m.bias is not None else None
    if out_idx is not None:
        w = w[out_idx]
        b = b[out_idx] if b is not None else None
    if in_idx is not None:
        w = w[:, in_idx]
    made_on = _made_on(w.device)
    if isinstance(m, nn.Linear):
        new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=made_on)
    else:
        new = type(m)(w.shape[1] * m.groups, w.shape[0], m.kernel_size, m.stride, m.padding,
                      m.dilation, m.groups, bias=b is not None, padding_mode=m.padding_mode, device=made_on)
    new = new.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    new.train(m.training)
    return new


def _slice_bn(bn: nn.modules.batchnorm._BatchNorm, idx) -> nn.Module:
    """A copy of ``bn`` with only the channels ``idx`` (affine and running statistics)."""
    device = next(iter([*bn.parameters(), *bn.buffers()])).device
    new = type(bn)(len(idx), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                   track_running_stats=bn.track_running_stats, device=_made_on(device)).to(device)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[idx]); new.bias.copy_(bn.bias[idx])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[idx]); new.running_var.copy_(bn.running_var[idx])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


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
        check_ratio(f"ratio[{name!r}]" if isinstance(ratio, Mapping) else "ratio", r)
        n_keep = max(1, len(s) - int(round(r * len(s))))
        keep[name] = torch.topk(s, n_keep).indices.sort().values
    return keep


def prune_channels(model: nn.Module, keep: Mapping[str, torch.Tensor]) -> nn.Module:
    """A smaller copy of ``model`` with only the channels in ``keep[unit]`` (physically removed).

    Slices the producer's output rows (and bias), its BatchNorm (gamma, beta, running
    statistics) and the consumer's input columns.  The result is an ordinary module of
    the same class - no masks, no hooks - so it is faster on any hardware.
    """
    if has_masks(model):
        raise ValueError("prune_channels: the model carries torch pruning masks; call remove_masks first")
    new = copy.deepcopy(model)
    by_name = {u["name"]: u for u in units(new)}
    unknown = set(keep) - set(by_name)
    if unknown:
        raise ValueError(f"keep has unknown unit(s) {sorted(unknown)}: expected names from {list(by_name)}")
    for name, idx in keep.items():
        u = by_name[name]
        idx = torch.as_tensor(idx, dtype=torch.long).cpu()
        new.set_submodule(u["producer"], _slice_layer(new.get_submodule(u["producer"]), out_idx=idx))
        if u["bn"] is not None:
            new.set_submodule(u["bn"], _slice_bn(new.get_submodule(u["bn"]), idx))
        new.set_submodule(u["consumer"], _slice_layer(new.get_submodule(u["consumer"]), in_idx=idx))
    return new


@torch.no_grad()
def zero_channels(model: nn.Module, keep: Mapping[str, torch.Tensor]) -> nn.Module:
    """The masked counterpart of :func:`prune_channels`, in place: zero every removed channel's
    filter, bias and BN gamma/beta.  Its outputs equal the pruned model's exactly."""
    by_name = {u["name"]: u for u in units(model)}
    for name, idx in keep.items():
        u = by_name[name]
        prod = model.get_submodule(u["producer"])
        drop = torch.ones(out_dim(prod), dtype=torch.bool)
        drop[torch.as_tensor(idx, dtype=torch.long)] = False
        drop = drop.to(prod.weight.device)
        prod.weight[drop] = 0
        if prod.bias is not None:
            prod.bias[drop] = 0
        if u["bn"] is not None:
            bn = model.get_submodule(u["bn"])
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
    "adaptive BN" evaluation of EagleEye (Li et al. 2020, sec. 3.2).  ``data`` as in
    :func:`~nncompress.prune.apoz`.
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
        run_inputs(model, data, batch_size)
    finally:
        for m, (mom, tr) in zip(bns, saved):
            m.momentum = mom
            m.train(tr)
        model.train(was_training)
    return model


def save_pruned(model: nn.Module, path) -> None:
    """Save a channel-pruned model: its architecture config + channel counts + state_dict.

    The config is ``model.arch_config()`` (the family member the pruned model was cut
    from, see :func:`nncompress.models.build`).  Written through
    :func:`nncompress.cache.save_checkpoint` (atomic, checksummed); :func:`load_pruned`
    rebuilds it with ``torch.load(weights_only=True)``.
    """
    if has_masks(model):
        raise ValueError("save_pruned: call remove_masks first")
    save_checkpoint({"arch": model.arch_config(), "channels": channel_counts(model),
                     "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)


def _skeleton(entry, path) -> nn.Module:
    """The pruned architecture of a :func:`save_pruned` entry on the ``meta`` device (no
    memory), after checking the channel counts against the unpruned family member."""
    if not (isinstance(entry, dict) and {"arch", "channels", "state_dict"} <= set(entry)):
        raise ValueError(f"load_pruned: {path} is not a save_pruned file: expected a dict with "
                         "'arch', 'channels' and 'state_dict'")
    try:
        with torch.device("meta"):
            full = build(entry["arch"])
        widths = channel_counts(full)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"load_pruned: {path} has an unusable architecture {entry['arch']!r}: {err}") from err
    channels = entry["channels"]
    unknown = sorted(set(channels) - set(widths))
    if unknown:
        raise ValueError(f"load_pruned: {path} names unknown unit(s) {unknown}: expected names from {list(widths)}")
    for name, n in channels.items():
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= widths[name]:
            raise ValueError(f"load_pruned: {path} has channels[{name!r}]={n!r}: expected an int in "
                             f"[1, {widths[name]}] (the unpruned width)")
    return prune_channels(full, {k: torch.arange(n) for k, n in channels.items()})


def load_pruned(path, device="cpu") -> nn.Module:
    """Rebuild and load a model written by :func:`save_pruned`.

    Before any memory is allocated the file is checked: its channel counts must be
    positive ints no larger than the unpruned architecture's widths, its units must exist,
    and its state_dict must match the pruned architecture key by key and shape by shape;
    otherwise a ``ValueError`` names the file.
    """
    entry = load_checkpoint(path)
    skeleton = _skeleton(entry, path)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    state = entry["state_dict"]
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if got != expected or len(got) != len(state):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise ValueError(f"load_pruned: {path} has a state_dict that does not fit its architecture: "
                         f"missing {missing}, unexpected {extra}, wrong shapes "
                         f"{[(k, got[k], expected[k]) for k in wrong]}")
    model = skeleton.to_empty(device="cpu")
    model.load_state_dict(state)
    return model.to(device).eval()
