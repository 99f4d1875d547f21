"""The channel groups ("units") of a model that structured pruning can shrink.

A unit is a producer layer whose output channels are removed, the BatchNorm after it
(if any) and the consumer layer whose input channels follow.  Our model families are
simple, so we read the units off the layers instead of tracing a dependency graph as
Torch-Pruning does (Fang et al. 2023): in :class:`~nncompress.models.MLP` and
:class:`~nncompress.models.SimpleCNN` a unit's output feeds exactly one next layer; in
:class:`~nncompress.models.CifarResNet` only the inner channel of a basic block is a unit
(conv1/bn1 outputs -> conv2 inputs) and the residual widths stay, because the shortcut
ties every block's output width of a stage together.
"""
from __future__ import annotations

import torch.nn as nn

from ..models import MLP, CifarResNet, Conv1DNet, SimpleCNN


def units(model: nn.Module) -> list[dict]:
    """The prunable channel groups of ``model``, in order.

    Each unit: ``name``, ``producer`` (path of the layer whose output channels are
    removed), ``bn`` (path or None) and ``consumer`` (path of the layer whose input
    channels follow).
    """
    out = []
    if isinstance(model, MLP):
        for i in range(len(model.hidden)):
            nxt = (f"hidden.{i + 1}" if i + 1 < len(model.hidden) else "head")
            out.append(dict(name=f"hidden.{i}", producer=f"hidden.{i}", bn=None, consumer=nxt))
    elif isinstance(model, SimpleCNN):
        seq = [f"stages.{i}.{j}" for i, st in enumerate(model.stages) for j in range(len(st))]
        for k, p in enumerate(seq):
            nxt = f"{seq[k + 1]}.0" if k + 1 < len(seq) else "head"
            out.append(dict(name=p, producer=f"{p}.0", bn=f"{p}.1", consumer=nxt))
    elif isinstance(model, CifarResNet):
        for i, st in enumerate(model.stages):
            for b in range(len(st)):
                p = f"stages.{i}.{b}"
                out.append(dict(name=p, producer=f"{p}.conv1", bn=f"{p}.bn1", consumer=f"{p}.conv2"))
    elif isinstance(model, Conv1DNet) and not model.separable:
        for i in range(len(model.stages)):
            nxt = f"stages.{i + 1}.0" if i + 1 < len(model.stages) else "head"
            out.append(dict(name=f"stages.{i}", producer=f"stages.{i}.0", bn=None, consumer=nxt))
    else:
        raise TypeError(f"structured pruning supports MLP, SimpleCNN, CifarResNet and (non-separable) Conv1DNet, "
                        f"not {type(model).__name__}")
    return out


def out_dim(layer: nn.Module) -> int:
    """Output channels (``out_channels``) or features (``out_features``) of a layer."""
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def unit_names(model: nn.Module) -> list[str]:
    """Names of the channel groups :func:`~nncompress.prune.prune_channels` can shrink."""
    return [u["name"] for u in units(model)]


def channel_counts(model: nn.Module) -> dict[str, int]:
    """``{unit name: current number of channels}``."""
    return {u["name"]: out_dim(model.get_submodule(u["producer"])) for u in units(model)}
