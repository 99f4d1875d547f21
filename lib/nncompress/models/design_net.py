"""A small MobileNet-style network for 32 x 32 inputs built from any block of
:mod:`nncompress.models.blocks` (Howard et al. 2017, width and resolution multipliers)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import FeatureModel, stages_then_pool
from .blocks import BLOCKS, ConvBNAct, make_block, scale_channels


class DesignNet(FeatureModel):
    """A small MobileNet-style network for 32 x 32 inputs.

    A ``3x3`` conv stem (``stem`` channels, stride 1), then one stage per entry of
    ``widths``/``strides``: ``depth`` blocks of kind ``block`` (the first with the stage's
    stride), global average pooling and a linear classifier.  ``alpha`` scales every
    width (MobileNets' width multiplier, sec. 3.3: cost ~ alpha^2); ``rho`` resizes the
    input to ``round(rho * size)`` pixels (resolution multiplier, sec. 3.4: cost ~ rho^2).
    Features ``stage1`` ... ``stageK`` and ``pool``.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, block: str = "separable",
                 widths: Sequence[int] = (32, 64, 128), strides: Sequence[int] = (1, 2, 2),
                 depth: int = 1, stem: int = 16, alpha: float = 1.0, rho: float = 1.0,
                 expand: int = 6, groups: int = 2):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block={block!r} is not allowed: expected one of {', '.join(BLOCKS)}")
        if len(widths) != len(strides):
            raise ValueError(f"widths={list(widths)} and strides={list(strides)} must have the same length")
        if not 0 < alpha <= 4:
            raise ValueError(f"alpha={alpha!r} is not allowed: expected a width multiplier in (0, 4]")
        if not 0 < rho <= 4:
            raise ValueError(f"rho={rho!r} is not allowed: expected a resolution multiplier in (0, 4]")
        div = 4 if block != "shuffle" else 4 * groups
        self.alpha, self.rho, self.block = alpha, rho, block
        self.settings = {"in_channels": in_channels, "num_classes": num_classes, "block": block,
                         "widths": list(widths), "strides": list(strides), "depth": depth, "stem": stem,
                         "alpha": alpha, "rho": rho, "expand": expand, "groups": groups}
        c = scale_channels(stem, alpha, div)
        self.stem = ConvBNAct(in_channels, c, 3, 1)
        stages = []
        for w, s in zip(widths, strides):
            cout = scale_channels(w, alpha, div)
            blocks = [make_block(block, c, cout, s, expand=expand, groups=groups)]
            blocks += [make_block(block, cout, cout, 1, expand=expand, groups=groups) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            c = cout
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c, num_classes)
        self.feature_names = tuple(f"stage{i + 1}" for i in range(len(stages))) + ("pool",)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.rho == 1.0:
            return x
        size = max(4, round(self.rho * x.shape[-1]))
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    def forward_features(self, x):
        return stages_then_pool(self.stem(self.resize(x)), self.stages, self.head, OrderedDict())

    def arch_config(self) -> dict:
        """The ``build`` config (``arch="design"`` and every constructor setting; the widths
        are the ones before the multiplier ``alpha``)."""
        return {"arch": "design", **self.settings}
