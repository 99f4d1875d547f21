"""One entry point that builds every model family from a JSON-able config.

A config names its family with ``"arch"`` (``mlp``, ``cnn``, ``conv1d``, ``wrn``, a ResNet
preset, ``design``, ``multi-exit``); the config dicts are part of cache keys
(:func:`nncompress.cache.cache_key`), so their keys and defaults never change.  Every
model's ``arch_config()`` gives back a config :func:`build` accepts.
"""
from __future__ import annotations

import torch

from .base import FeatureModel
from .cnn import SimpleCNN
from .conv1d import Conv1DNet
from .design_net import DesignNet
from .mlp import MLP
from .multi_exit import multi_exit_net
from .resnet import RESNET_PRESETS, CifarResNet, WideResNet
from .transformer import TinyGPT, gpt

ARCHS = ("mlp", "cnn", "conv1d", "wrn", *RESNET_PRESETS, "design", "multi-exit", "gpt")
DESIGN_SETTINGS = ("in_channels", "num_classes", "block", "widths", "strides", "depth", "stem",
                   "alpha", "rho", "expand", "groups")


def design_net(config: dict) -> DesignNet:
    """A :class:`DesignNet` from its settings (unknown keys are refused, so a typo cannot
    silently build the default network)."""
    unknown = sorted(set(config) - set(DESIGN_SETTINGS))
    if unknown:
        raise ValueError(f"unknown DesignNet setting(s) {unknown}; allowed: {', '.join(DESIGN_SETTINGS)}")
    return DesignNet(**config)


def build(config: dict) -> torch.nn.Module:
    """Build a model from a JSON-able config, e.g. ``{"arch": "mlp", "in_dim": 40,
    "hidden": [256, 256], "num_classes": 10}``, ``{"arch": "resnet20", "num_classes": 10}``,
    ``{"arch": "design", "block": "separable", "alpha": 0.5}`` or
    ``{"arch": "multi-exit", "backbone": "conv1d", "widths": [16, 32], "num_classes": 10}``."""
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
    if arch == "design":
        return design_net(cfg)
    if arch == "multi-exit":
        return multi_exit_net(cfg)
    if arch == "gpt":
        return gpt(cfg)
    raise ValueError(f"arch={arch!r} is not a known architecture: expected one of {', '.join(ARCHS)}")


def for_data(arch_config: dict, splits) -> FeatureModel:
    """Build ``arch_config`` with input size and class count filled in from ``splits``
    (``in_dim`` for an MLP, ``in_channels`` for images)."""
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
