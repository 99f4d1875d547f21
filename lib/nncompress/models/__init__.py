"""Model families used across the course, all built from a JSON-able config.

Every model here returns logits from ``model(x)`` and, with
``model(x, return_features=True)``, ``(logits, features)`` where ``features`` is an
ordered dict of named intermediate activations (``model.feature_names``) - the taps
that FitNets, attention transfer, RKD and early exits attach to without editing
the model.

* :class:`MLP` - fully connected nets (LeNet-300-100 is ``MLP(784, [300, 100], 10)``).
* :class:`SimpleCNN` - VGG-style conv stacks with width/depth knobs.
* :class:`CifarResNet` - the CIFAR ResNets of He et al. 2016 (depth 6n+2: resnet8 ...
  resnet110) with the ``x4`` wide variants used by CRD/RepDistiller
  (resnet8x4, resnet32x4).
* :class:`WideResNet` - WRN-d-k (Zagoruyko & Komodakis 2016).

:func:`build` turns ``{"arch": "mlp", ...}`` into a model, so a cache key can
describe a model and rebuild it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class FeatureModel(nn.Module):
    """Base class: ``forward(x, return_features=False)`` with named feature taps."""

    feature_names: tuple[str, ...] = ()

    def forward_features(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

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


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SimpleCNN(FeatureModel):
    """VGG-style CNN: ``len(widths)`` stages of ``depth`` conv-BN-ReLU, 2x2 max-pool between.

    Features ``stage1`` ... ``stageK`` (before pooling) and ``pool`` (global average).
    Works for 1-D signals too when ``in_channels`` inputs have shape ``(N, C, L)``? No:
    2-D images only; MNIST-1D uses :class:`MLP` or :class:`Conv1DNet`.
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


RESNET_PRESETS = {
    **{f"resnet{d}": dict(depth=d) for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": dict(depth=8, widths=(64, 128, 256), stem=32),
    "resnet32x4": dict(depth=32, widths=(64, 128, 256), stem=32),
}
ARCHS = ("mlp", "cnn", "conv1d", "wrn", *RESNET_PRESETS)


def build(config: dict) -> FeatureModel:
    """Build a model from a JSON-able config, e.g. ``{"arch": "mlp", "in_dim": 40,
    "hidden": [256, 256], "num_classes": 10}`` or ``{"arch": "resnet20", "num_classes": 10}``."""
    cfg = dict(config)
    arch = cfg.pop("arch", None)
    if arch == "mlp":
        return MLP(cfg["in_dim"], cfg.get("hidden", ()), cfg["num_classes"], cfg.get("dropout", 0.0))
    if arch == "cnn":
        return SimpleCNN(cfg.get("in_channels", 3), cfg["num_classes"], cfg.get("widths", (16, 32, 64)),
                         cfg.get("depth", 1))
    if arch == "conv1d":
        return Conv1DNet(cfg["num_classes"], cfg.get("widths", (32, 32, 32)), separable=cfg.get("separable", False))
    if arch == "wrn":
        return WideResNet(cfg.get("depth", 16), cfg.get("widen", 2), cfg["num_classes"],
                          cfg.get("dropout", 0.0), cfg.get("in_channels", 3))
    if arch in RESNET_PRESETS:
        kw = {**RESNET_PRESETS[arch], **{k: v for k, v in cfg.items() if k in ("widths", "stem", "in_channels")}}
        return CifarResNet(num_classes=cfg["num_classes"], **kw)
    raise ValueError(f"arch={arch!r} is not a known architecture: expected one of {', '.join(ARCHS)}")


def for_data(arch_config: dict, splits) -> FeatureModel:
    """Build ``arch_config`` with input size and class count filled in from ``splits``."""
    cfg = dict(arch_config)
    cfg.setdefault("num_classes", splits.num_classes)
    shape = splits.input_shape
    if cfg.get("arch") == "mlp":
        cfg.setdefault("in_dim", int(torch.tensor(shape).prod()))
    elif len(shape) == 3:
        cfg.setdefault("in_channels", shape[0])
    return build(cfg)


# Named configurations the chapters refer to by a short, readable name.
NAMED = {
    "mlp-64": {"arch": "mlp", "hidden": [64]},
    "mlp-256": {"arch": "mlp", "hidden": [256]},
    "mlp-300-100": {"arch": "mlp", "hidden": [300, 100]},  # LeNet-300-100
    "mlp-1200": {"arch": "mlp", "hidden": [1200, 1200], "dropout": 0.2},  # Hinton 2015's big net
    "conv1d-8": {"arch": "conv1d", "widths": [8, 8, 8]},
    "conv1d-16": {"arch": "conv1d", "widths": [16, 16, 16]},
    "conv1d-32": {"arch": "conv1d", "widths": [32, 32, 32]},
    "conv1d-64": {"arch": "conv1d", "widths": [64, 64, 64]},
    "conv1d-64-sep": {"arch": "conv1d", "widths": [64, 64, 64], "separable": True},  # MobileNet-style
    "cnn-tiny": {"arch": "cnn", "widths": [8, 16, 32]},
    "cnn-small": {"arch": "cnn", "widths": [16, 32, 64]},
    "cnn-large": {"arch": "cnn", "widths": [32, 64, 128], "depth": 2},
    "wrn-16-2": {"arch": "wrn", "depth": 16, "widen": 2},
    "wrn-40-2": {"arch": "wrn", "depth": 40, "widen": 2},
    **{name: {"arch": name} for name in RESNET_PRESETS},
}


def named_config(name: str) -> dict:
    """The config dict of a named model (e.g. ``"conv1d-16"``, ``"resnet8x4"``)."""
    if name not in NAMED:
        raise ValueError(f"model={name!r} is not a known model name: expected one of {', '.join(NAMED)}")
    return dict(NAMED[name])
