"""Fully connected networks (LeNet-300-100 is ``MLP(784, [300, 100], 10)``)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F

from .base import FeatureModel


class MLP(FeatureModel):
    """Fully connected ReLU network; features ``fc1``, ``fc2``, ... (post-activation)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.in_dim = in_dim
        dims = [in_dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(dims[-1], num_classes)
        self.feature_names = tuple(f"fc{i + 1}" for i in range(len(hidden)))

    def forward_features(self, x):
        h = x.flatten(1)
        feats = OrderedDict()
        for name, layer in zip(self.feature_names, self.hidden):
            h = self.dropout(F.relu(layer(h)))
            feats[name] = h
        return self.head(h), feats

    def arch_config(self) -> dict:
        """The ``build`` config, read from the layers (so a channel-pruned MLP gives its
        pruned widths)."""
        p = self.dropout.p if isinstance(self.dropout, nn.Dropout) else 0.0
        return {"arch": "mlp", "in_dim": self.hidden[0].in_features if len(self.hidden) else self.head.in_features,
                "hidden": [lin.out_features for lin in self.hidden], "num_classes": self.head.out_features,
                "dropout": p}
