"""Small 1-D CNNs for MNIST-1D, plain or depthwise separable."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch.nn as nn

from .base import FeatureModel


class Conv1DNet(FeatureModel):
    """Small 1-D CNN for MNIST-1D (input ``(N, L)`` or ``(N, 1, L)``): per stage a
    kernel-5, stride-2 convolution and a ReLU.

    ``separable=True`` makes each convolution depthwise separable (MobileNet, Howard et
    al. 2017, sec. 3.1): a per-channel kernel-5 filter followed by a 1x1 pointwise
    convolution, ``5 * c_in + c_in * c_out`` weights instead of ``5 * c_in * c_out``.
    """

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (32, 32, 32), length: int = 40,
                 separable: bool = False):
        super().__init__()
        layers, cin = [], 1
        self.separable = bool(separable)
        for w in widths:
            if self.separable:
                layers.append(nn.Sequential(nn.Conv1d(cin, cin, 5, stride=2, padding=2, groups=cin, bias=False),
                                            nn.Conv1d(cin, w, 1), nn.ReLU()))
            else:
                layers.append(nn.Sequential(nn.Conv1d(cin, w, 5, stride=2, padding=2), nn.ReLU()))
            cin = w
        self.stages = nn.ModuleList(layers)
        self.head = nn.Linear(cin, num_classes)
        self.feature_names = tuple(f"stage{i + 1}" for i in range(len(widths))) + ("pool",)

    def forward_features(self, x):
        if x.dim() == 2:
            x = x[:, None, :]
        feats = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[f"stage{i + 1}"] = x
        pooled = x.mean(dim=2)
        feats["pool"] = pooled
        return self.head(pooled), feats

    def arch_config(self) -> dict:
        """The ``build`` config, read from the layers (a stage's width: its output conv's)."""
        return {"arch": "conv1d", "num_classes": self.head.out_features,
                "widths": [st[-2 if self.separable else 0].out_channels for st in self.stages],
                "separable": self.separable}
