"""VGG-style conv stacks with width/depth knobs."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F

from .base import FeatureModel, conv_bn_relu


class SimpleCNN(FeatureModel):
    """VGG-style CNN: ``len(widths)`` stages of ``depth`` conv-BN-ReLU, 2x2 max-pool between.

    Features ``stage1`` ... ``stageK`` (before pooling) and ``pool`` (global average).
    2-D images only; MNIST-1D uses :class:`~nncompress.models.MLP` or
    :class:`~nncompress.models.Conv1DNet`.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10,
                 widths: Sequence[int] = (16, 32, 64), depth: int = 1):
        super().__init__()
        stages, cin = [], in_channels
        for w in widths:
            layers = [conv_bn_relu(cin, w)] + [conv_bn_relu(w, w) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(cin, num_classes)
        self.feature_names = tuple(f"stage{i + 1}" for i in range(len(widths))) + ("pool",)

    def forward_features(self, x):
        feats = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[f"stage{i + 1}"] = x
            if i < len(self.stages) - 1:
                x = F.max_pool2d(x, 2)
        pooled = x.mean(dim=(2, 3))
        feats["pool"] = pooled
        return self.head(pooled), feats

    def arch_config(self) -> dict:
        """The ``build`` config, read from the layers.  After channel pruning the convs of a
        stage may differ in width; a stage's width is then its widest conv's, the smallest
        family member that holds the pruned one."""
        return {"arch": "cnn", "in_channels": self.stages[0][0][0].in_channels,
                "num_classes": self.head.out_features,
                "widths": [max(block[0].out_channels for block in st) for st in self.stages],
                "depth": len(self.stages[0])}
