"""Residual networks: the CIFAR ResNets of He et al. 2016 and WideResNets."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F

from .base import FeatureModel, conv_bn_relu, stages_then_pool


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs); 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


RESNET_PRESETS = {
    **{f"resnet{d}": dict(depth=d) for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": dict(depth=8, widths=(64, 128, 256), stem=32),
    "resnet32x4": dict(depth=32, widths=(64, 128, 256), stem=32),
}


class CifarResNet(FeatureModel):
    """CIFAR ResNet-(6n+2) (He et al. 2016, sec. 4.2): three stages of n basic blocks.

    ``widths`` defaults to (16, 32, 64); the RepDistiller ``x4`` variants use
    (64, 128, 256) with a 32-channel stem.  Features ``stem``, ``stage1``-``stage3``
    (after each stage) and ``pool``.
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64),
                 stem: int | None = None, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"depth={depth} is not allowed: CIFAR ResNets have depth 6n+2 >= 8")
        n = (depth - 2) // 6
        stem = stem or widths[0]
        self.stem = conv_bn_relu(in_channels, stem)
        stages, cin = [], stem
        for i, w in enumerate(widths):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, w, 2 if (b == 0 and i > 0) else 1))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(cin, num_classes)
        self.feature_names = ("stem", "stage1", "stage2", "stage3", "pool")

    def forward_features(self, x):
        x = self.stem(x)
        return stages_then_pool(x, self.stages, self.head, OrderedDict(stem=x))

    def arch_config(self) -> dict:
        """The ``build`` config, read from the layers: the residual widths (each block's
        ``conv2`` output, which channel pruning leaves alone) and the stem."""
        depth = 6 * len(self.stages[0]) + 2
        if f"resnet{depth}" not in RESNET_PRESETS:
            raise ValueError(f"depth={depth} has no resnet preset: expected one of {', '.join(RESNET_PRESETS)}")
        return {"arch": f"resnet{depth}", "num_classes": self.head.out_features,
                "widths": [st[-1].conv2.out_channels for st in self.stages],
                "stem": self.stem[0].out_channels, "in_channels": self.stem[0].in_channels}


class WideBlock(nn.Module):
    """Pre-activation wide basic block (BN-ReLU-conv x2), Zagoruyko & Komodakis 2016."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(self.dropout(F.relu(self.bn2(y))))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


class WideResNet(FeatureModel):
    """WRN-depth-k: depth = 6n+4, widths 16k, 32k, 64k.  Features ``stage1``-``stage3``, ``pool``."""

    def __init__(self, depth: int = 16, widen: int = 2, num_classes: int = 10,
                 dropout: float = 0.0, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth={depth} is not allowed: WRN depth is 6n+4")
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        stages, cin = [], 16
        for i, w in enumerate(widths):
            blocks = []
            for b in range(n):
                blocks.append(WideBlock(cin, w, 2 if (b == 0 and i > 0) else 1, dropout))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.bn = nn.BatchNorm2d(cin)
        self.head = nn.Linear(cin, num_classes)
        self.feature_names = ("stage1", "stage2", "stage3", "pool")

    def forward_features(self, x):
        feats = OrderedDict()
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[f"stage{i + 1}"] = x
        x = F.relu(self.bn(x))
        pooled = x.mean(dim=(2, 3))
        feats["pool"] = pooled
        return self.head(pooled), feats

    def arch_config(self) -> dict:
        """The ``build`` config, read from the layers."""
        dropout = self.stages[0][0].dropout
        return {"arch": "wrn", "depth": 6 * len(self.stages[0]) + 4, "widen": self.stages[0][0].conv1.out_channels // 16,
                "num_classes": self.head.out_features, "dropout": dropout.p if isinstance(dropout, nn.Dropout) else 0.0,
                "in_channels": self.stem.in_channels}
