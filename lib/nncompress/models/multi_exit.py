"""Multi-exit networks (BranchyNet, Teerapittayanon et al. 2016; MSDNet, Huang et al. 2018):
a backbone cut into stages with an internal classifier after each.  The exit rules,
cost accounting and training objective are in :mod:`nncompress.early_exit`."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

BACKBONES = ("conv1d", "cnn")


class MultiExitNet(nn.Module):
    """Stages with a classifier after each (or after those in ``exit_after``).

    ``model(x)`` returns the final exit's logits (so :func:`nncompress.train.evaluate`
    works); ``model(x, return_features=True)`` returns ``(logits, {"exit1": ..., ...})``;
    :meth:`forward_all` returns the list of every exit's logits.
    """

    def __init__(self, stages: Sequence[nn.Module], exits: Sequence[nn.Module], exit_after: Sequence[int]):
        super().__init__()
        if len(exits) != len(exit_after) or not exits:
            raise ValueError(f"exit_after={list(exit_after)} must name one stage per exit ({len(exits)} exits)")
        if list(exit_after) != sorted(set(exit_after)) or exit_after[-1] != len(stages) - 1:
            raise ValueError(f"exit_after={list(exit_after)} must be increasing and end at the last stage "
                             f"({len(stages) - 1})")
        self.stages = nn.ModuleList(stages)
        self.exits = nn.ModuleList(exits)
        self.exit_after = tuple(int(i) for i in exit_after)
        self.feature_names = tuple(f"exit{j + 1}" for j in range(len(exits)))
        self.settings: dict | None = None  # the config, when built by :func:`multi_exit_net`

    def arch_config(self) -> dict:
        """The ``build`` config of a network made by :func:`multi_exit_net` (``arch="multi-exit"``)."""
        if self.settings is None:
            raise ValueError("arch_config: this MultiExitNet was assembled from modules, not built from a "
                             "config; build it with nncompress.models.build({'arch': 'multi-exit', ...})")
        return {"arch": "multi-exit", **self.settings}

    @property
    def num_exits(self) -> int:
        return len(self.exits)

    def segments(self) -> list[nn.Sequential]:
        """The backbone cut into one piece per exit: piece ``j`` runs the stages after exit
        ``j-1`` up to and including the stage exit ``j`` is attached to."""
        out, start = [], 0
        for end in self.exit_after:
            out.append(nn.Sequential(*self.stages[start:end + 1]))
            start = end + 1
        return out

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for seg, head in zip(self.segments(), self.exits):
            x = seg(x)
            outs.append(head(x))
        return outs

    def forward(self, x, return_features: bool = False):
        outs = self.forward_all(x)
        if return_features:
            return outs[-1], dict(zip(self.feature_names, outs))
        return outs[-1]


def backbone_stage(backbone: str, cin: int, cout: int, first: bool) -> nn.Module:
    """One stage: stride-2 conv1d-BN-ReLU (``"conv1d"``) or [2x2 max-pool, unless ``first``]
    3x3 conv-BN-ReLU (``"cnn"``)."""
    if backbone == "conv1d":
        return nn.Sequential(nn.Conv1d(cin, cout, 5, stride=2, padding=2, bias=False),
                             nn.BatchNorm1d(cout), nn.ReLU(inplace=True))
    layers = [] if first else [nn.MaxPool2d(2)]
    layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Unsqueeze1d(nn.Module):
    """``(N, L)`` -> ``(N, 1, L)`` for 1-D signals (MNIST-1D)."""

    def forward(self, x):
        return x[:, None, :] if x.dim() == 2 else x


def exit_head(backbone: str, cin: int, num_classes: int, pool: int) -> nn.Module:
    """An internal classifier: average-pool to ``pool`` positions per spatial dimension,
    flatten, one linear layer."""
    if backbone == "conv1d":
        return nn.Sequential(nn.AdaptiveAvgPool1d(pool), nn.Flatten(), nn.Linear(cin * pool, num_classes))
    return nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(cin * pool * pool, num_classes))


def multi_exit_net(config: dict) -> MultiExitNet:
    """A multi-exit network from a JSON-able config, e.g.
    ``{"backbone": "conv1d", "widths": [16, 32, 64], "num_classes": 10}``.

    * ``backbone``: ``"conv1d"`` (stride-2 conv1d-BN-ReLU stages, for MNIST-1D) or ``"cnn"``
      (conv-BN-ReLU stages with 2x2 max-pooling between, for 32x32 images);
    * ``widths``: channels of each stage; ``in_channels`` (default 1 / 3);
    * ``exit_after``: stage indices with an exit (default: every stage; ``[-1]`` for the
      last only, i.e. an ordinary single-exit network);
    * ``exit_pool``: each exit head average-pools to ``exit_pool`` positions per spatial
      dimension, flattens and applies a linear layer (default 4 for conv1d, 1 for cnn).
    """
    cfg = dict(config)
    cfg.pop("arch", None)
    allowed = ("backbone", "widths", "num_classes", "in_channels", "exit_after", "exit_pool")
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown multi-exit setting(s) {unknown}; allowed: {', '.join(allowed)}")
    backbone = cfg.get("backbone", "conv1d")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r} is not allowed: expected one of {', '.join(BACKBONES)}")
    widths = list(cfg.get("widths", (16, 32, 64)))
    if not widths:
        raise ValueError("widths=[] is not allowed: expected at least one stage")
    n = len(widths)
    exit_after = [i % n for i in cfg.get("exit_after", range(n))]
    pool = cfg.get("exit_pool", 4 if backbone == "conv1d" else 1)
    cin = cfg.get("in_channels", 1 if backbone == "conv1d" else 3)
    stages = []
    for i, w in enumerate(widths):
        stages.append(backbone_stage(backbone, cin, w, i == 0))
        cin = w
    if backbone == "conv1d":
        stages[0] = nn.Sequential(Unsqueeze1d(), *stages[0])
    exits = [exit_head(backbone, widths[i], cfg["num_classes"], pool) for i in exit_after]
    net = MultiExitNet(stages, exits, exit_after)
    net.settings = cfg
    return net
