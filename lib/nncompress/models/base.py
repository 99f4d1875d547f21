"""What every model family shares: the :class:`FeatureModel` interface (logits, or logits
and named feature taps) and the two layer patterns several families are made of."""
from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn


class FeatureModel(nn.Module):
    """Base class: ``forward(x, return_features=False)`` with named feature taps.

    Subclasses implement :meth:`forward_features` and :meth:`arch_config` (the
    :func:`nncompress.models.build` config that rebuilds the family member).
    """

    feature_names: tuple[str, ...] = ()

    def forward_features(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def arch_config(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not describe its build config")

    def forward(self, x, return_features: bool = False):
        logits, feats = self.forward_features(x)
        return (logits, feats) if return_features else logits


def stages_then_pool(x, stages, head, feats: OrderedDict):
    """Run ``stages`` in order (tapping ``stage1``, ``stage2``, ...), global-average-pool
    (tapping ``pool``) and apply ``head``; returns ``(logits, feats)``."""
    for i, stage in enumerate(stages):
        x = stage(x)
        feats[f"stage{i + 1}"] = x
    pooled = x.mean(dim=(2, 3))
    feats["pool"] = pooled
    return head(pooled), feats


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) -> BatchNorm -> ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
