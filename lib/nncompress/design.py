"""Efficient architecture design: the building blocks of MobileNet, ShuffleNet and SqueezeNet.

Every block comes with closed-form parameter and multiply-accumulate (MAC) formulas, so a
notebook can do the arithmetic of the lecture notes by hand and check it against PyTorch.
Notation: ``k`` kernel size, ``I`` input channels, ``O`` output channels, ``H x W`` the
*output* spatial size.  Biases are off in every conv that is followed by BatchNorm; BN
adds ``2C`` trainable parameters (scale and shift) per ``C`` channels (``bn=True`` in the
formulas counts them).

* Standard conv (per output position): ``k^2 * I * O`` MACs and weights.
* Depthwise separable conv (Howard et al. 2017, "MobileNets", sec. 3.1, eqs. 2-5): a
  ``k x k`` depthwise conv (one filter per input channel, ``k^2 * I``) followed by a
  ``1 x 1`` pointwise conv (``I * O``): ``k^2 * I + I * O`` per position, a fraction
  ``(k^2 I + I O) / (k^2 I O) = 1/O + 1/k^2`` of the standard conv (eq. 5) - about 8-9x
  fewer for ``k = 3``.  :class:`DepthwiseSeparable`.
* Inverted residual with linear bottleneck (Sandler et al. 2018, "MobileNetV2", sec. 3.3,
  table 1): ``1x1`` expand ``I -> tI`` + ReLU6, ``k x k`` depthwise + ReLU6, ``1x1`` linear
  projection ``tI -> O`` (no activation); a skip connection when stride 1 and ``I == O``.
  Cost per position ``h w t I (I + k^2 + O)`` (the paper's ``h*w*d'*t*(d' + k^2 + d'')``).
  :class:`InvertedResidual`.
* ShuffleNet unit (Zhang et al. 2018, "ShuffleNet", sec. 3.2, fig. 2): ``1x1`` *group*
  conv (``g`` groups) ``I -> M``, channel shuffle, ``3x3`` depthwise, ``1x1`` group conv
  ``M -> O``; per position ``I M / g + 9 M + M O / g`` (the paper's ``hw(2cm/g + 9m)``).
  :func:`channel_shuffle`, :class:`ShuffleUnit`.
* Fire module (Iandola et al. 2016, "SqueezeNet", sec. 3.2): ``1x1`` squeeze ``I -> s``,
  then ``1x1`` (``e1``) and ``3x3`` (``e3``) expand filters side by side, concatenated.
  :class:`Fire`.
* Low-rank factorisation of a linear layer ``I -> O`` through a rank-``K`` bottleneck:
  ``K (I + O)`` instead of ``I O`` weights (lecture notes 002/004).

:class:`DesignNet` stacks any of these blocks into a small MobileNet-style network for
32 x 32 inputs, with the MobileNet width multiplier ``alpha`` (every layer's channels x
alpha, sec. 3.3) and resolution multiplier ``rho`` (the input is resized to ``rho * 32``
pixels, sec. 3.4).  It follows :class:`nncompress.models.FeatureModel`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import FeatureModel, stages_then_pool

BLOCKS = ("standard", "separable", "inverted", "shuffle", "fire")


# --------------------------------------------------------------------------- formulas

def _bn(c: int, bn: bool) -> int:
    return 2 * c if bn else 0


def standard_conv_params(k: int, cin: int, cout: int, *, bias: bool = False, bn: bool = False) -> int:
    """Weights of a ``k x k`` conv ``I -> O``: ``k^2 * I * O`` (+ ``O`` bias, + ``2 O`` BN)."""
    return k * k * cin * cout + (cout if bias else 0) + _bn(cout, bn)


def separable_conv_params(k: int, cin: int, cout: int, *, bn: bool = False) -> int:
    """Depthwise separable conv (MobileNets eq. 4 without the spatial factor):
    ``k^2 * I`` (depthwise) ``+ I * O`` (pointwise), + ``2I + 2O`` with BN after each."""
    return k * k * cin + cin * cout + _bn(cin, bn) + _bn(cout, bn)


def separable_ratio(k: int, cout: int) -> float:
    """Cost of a separable conv over a standard conv (MobileNets eq. 5): ``1/O + 1/k^2``."""
    return 1.0 / cout + 1.0 / (k * k)


def conv_macs(k: int, cin: int, cout: int, h_out: int, w_out: int, *, groups: int = 1) -> int:
    """MACs of a (grouped) conv: ``k^2 * (I/g) * O * H * W`` (MobileNets eq. 1 for ``g = 1``)."""
    return k * k * (cin // groups) * cout * h_out * w_out


def separable_conv_macs(k: int, cin: int, cout: int, h_out: int, w_out: int) -> int:
    """MobileNets eq. 4: ``k^2 * I * H * W + I * O * H * W``."""
    return (k * k * cin + cin * cout) * h_out * w_out


def inverted_residual_params(cin: int, cout: int, expand: int, *, k: int = 3, bn: bool = True) -> int:
    """MobileNetV2 block: ``I*tI + k^2*tI + tI*O`` (+ BN ``2tI + 2tI + 2O``); with ``t = 1``
    the expansion conv is left out (as in the paper's first block): ``k^2*I + I*O``."""
    hidden = cin * expand
    p = k * k * hidden + hidden * cout + _bn(hidden, bn) + _bn(cout, bn)
    if expand != 1:
        p += cin * hidden + _bn(hidden, bn)
    return p


def inverted_residual_macs(cin: int, cout: int, expand: int, h_in: int, w_in: int, *,
                           stride: int = 1, k: int = 3) -> int:
    """MACs of :class:`InvertedResidual` (MobileNetV2 sec. 3.3: ``h w t d' (d' + k^2 + d'')``
    at stride 1; the expansion runs at the input resolution, the rest at the output's)."""
    hidden = cin * expand
    h_out, w_out = -(-h_in // stride), -(-w_in // stride)
    expand_macs = cin * hidden * h_in * w_in if expand != 1 else 0
    return expand_macs + (k * k * hidden + hidden * cout) * h_out * w_out


def shuffle_unit_params(cin: int, cout: int, groups: int, *, mid: int | None = None,
                        stride: int = 1, bn: bool = True) -> int:
    """ShuffleNet unit: ``I*M/g + 9M + M*O'/g`` (+ BN ``2M + 2M + 2O'``), where the last
    group conv makes ``O' = O`` channels at stride 1 (residual add) and ``O' = O - I`` at
    stride 2 (concatenated with the 3x3 average-pooled input).  ``M`` defaults to ``O // 4``
    (the paper's bottleneck ratio), rounded to a multiple of ``g``."""
    mid = mid if mid is not None else _shuffle_mid(cout, groups)
    out = cout if stride == 1 else cout - cin
    return cin * mid // groups + 9 * mid + mid * out // groups + _bn(mid, bn) * 2 + _bn(out, bn)


def fire_params(cin: int, squeeze: int, e1: int, e3: int) -> int:
    """SqueezeNet fire module (convs with biases): ``(I + 1) s + (s + 1) e1 + (9 s + 1) e3``."""
    return (cin + 1) * squeeze + (squeeze + 1) * e1 + (9 * squeeze + 1) * e3


def low_rank_params(cin: int, cout: int, rank: int, *, bias: bool = True) -> int:
    """Linear ``I -> K -> O`` (no activation in between): ``K (I + O)`` (+ ``K + O`` biases)."""
    return rank * (cin + cout) + ((rank + cout) if bias else 0)


# --------------------------------------------------------------------------- blocks

class ConvBNAct(nn.Sequential):
    """conv (no bias) -> BN -> activation (``relu``, ``relu6`` or ``none``)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: str = "relu"):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif act == "relu6":
            layers.append(nn.ReLU6(inplace=True))
        elif act != "none":
            raise ValueError(f"act={act!r} is not allowed: expected 'relu', 'relu6' or 'none'")
        super().__init__(*layers)


class StandardConv(ConvBNAct):
    """A plain ``k x k`` conv-BN-ReLU (the baseline): :func:`standard_conv_params` with ``bn=True``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, k: int = 3):
        super().__init__(cin, cout, k, stride)


class DepthwiseSeparable(nn.Sequential):
    """MobileNetV1 layer (Howard et al. 2017, fig. 3): depthwise ``k x k`` conv-BN-ReLU, then
    pointwise ``1 x 1`` conv-BN-ReLU.  Parameters: :func:`separable_conv_params` (``bn=True``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, k: int = 3):
        super().__init__(OrderedDict(depthwise=ConvBNAct(cin, cin, k, stride, groups=cin),
                                     pointwise=ConvBNAct(cin, cout, 1)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block (Sandler et al. 2018, table 1): expand ``1x1`` (ReLU6), depthwise
    ``k x k`` (ReLU6), *linear* ``1x1`` projection; identity skip when stride 1 and ``I == O``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 6, k: int = 3):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride={stride!r} is not allowed: expected 1 or 2")
        hidden = cin * expand
        layers = [] if expand == 1 else [ConvBNAct(cin, hidden, 1, act="relu6")]
        layers += [ConvBNAct(hidden, hidden, k, stride, groups=hidden, act="relu6"),
                   ConvBNAct(hidden, cout, 1, act="none")]
        self.conv = nn.Sequential(*layers)
        self.use_skip = stride == 1 and cin == cout

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_skip else out


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle (Zhang et al. 2018, sec. 3.1, fig. 1c): reshape the
    channels to ``(g, C/g)``, transpose to ``(C/g, g)``, flatten - so the next group conv
    sees channels from every group."""
    n, c, *rest = x.shape
    if c % groups:
        raise ValueError(f"groups={groups!r} must divide the {c} channels")
    return x.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(n, c, *rest)


def _shuffle_mid(cout: int, groups: int) -> int:
    return max(groups, (cout // 4) // groups * groups)


class ShuffleUnit(nn.Module):
    """ShuffleNet unit (Zhang et al. 2018, fig. 2b/c): group ``1x1`` conv-BN-ReLU, channel
    shuffle, depthwise ``3x3`` conv-BN, group ``1x1`` conv-BN; stride 1: ``relu(x + f(x))``;
    stride 2: ``relu(cat(avgpool3x3(x), f(x)))``.  Parameters: :func:`shuffle_unit_params`."""

    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 2, mid: int | None = None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride={stride!r} is not allowed: expected 1 or 2")
        if stride == 1 and cin != cout:
            raise ValueError(f"a stride-1 ShuffleUnit adds its input: cin={cin} must equal cout={cout}")
        mid = mid if mid is not None else _shuffle_mid(cout, groups)
        out = cout if stride == 1 else cout - cin
        for name, c in (("cin", cin), ("mid", mid), ("out", out)):
            if c <= 0 or c % groups:
                raise ValueError(f"{name}={c} channels is not allowed with groups={groups}: expected a positive multiple")
        self.groups, self.stride = groups, stride
        self.gconv1 = ConvBNAct(cin, mid, 1, groups=groups)
        self.dw = ConvBNAct(mid, mid, 3, stride, groups=mid, act="none")
        self.gconv2 = ConvBNAct(mid, out, 1, groups=groups, act="none")

    def forward(self, x):
        out = self.gconv2(self.dw(channel_shuffle(self.gconv1(x), self.groups)))
        if self.stride == 1:
            return F.relu(x + out)
        return F.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), out], 1))


class Fire(nn.Module):
    """SqueezeNet fire module (Iandola et al. 2016, fig. 1): squeeze ``1x1`` (``s``) + ReLU,
    expand ``1x1`` (``e1``) and ``3x3`` (``e3``) + ReLU, concatenated (``e1 + e3`` outputs).
    Convs carry biases, as in the paper.  Parameters: :func:`fire_params`."""

    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x):
        s = F.relu(self.squeeze(x))
        return F.relu(torch.cat([self.expand1(s), self.expand3(s)], 1))


class LowRankLinear(nn.Sequential):
    """``Linear(I, K)`` then ``Linear(K, O)``: a rank-``K`` factorisation of ``Linear(I, O)``."""

    def __init__(self, cin: int, cout: int, rank: int, bias: bool = True):
        super().__init__(nn.Linear(cin, rank, bias=bias), nn.Linear(rank, cout, bias=bias))


# --------------------------------------------------------------------------- networks

def scale_channels(c: int, alpha: float, divisor: int = 4) -> int:
    """``alpha * c`` rounded to a multiple of ``divisor`` (at least ``divisor``), as
    MobileNetV2's ``_make_divisible`` does (never more than 10 % below ``alpha * c``)."""
    v = max(divisor, int(alpha * c + divisor / 2) // divisor * divisor)
    if v < 0.9 * alpha * c:
        v += divisor
    return v


def make_block(block: str, cin: int, cout: int, stride: int, *, expand: int = 6, groups: int = 2) -> nn.Module:
    """One downsampling-or-not block of kind ``block`` (one of :data:`BLOCKS`)."""
    if block == "standard":
        return StandardConv(cin, cout, stride)
    if block == "separable":
        return DepthwiseSeparable(cin, cout, stride)
    if block == "inverted":
        return InvertedResidual(cin, cout, stride, expand)
    if block == "shuffle":
        if stride == 1 and cin != cout:  # a shuffle stage opens with a stride-2 unit; else 1x1 adapt
            return nn.Sequential(ConvBNAct(cin, cout, 1, groups=groups), ShuffleUnit(cout, cout, 1, groups))
        return ShuffleUnit(cin, cout, stride, groups)
    if block == "fire":
        sq = max(4, cout // 8)
        fire = Fire(cin, sq, cout // 2, cout - cout // 2)
        return nn.Sequential(nn.MaxPool2d(2), fire) if stride == 2 else fire
    raise ValueError(f"block={block!r} is not allowed: expected one of {', '.join(BLOCKS)}")


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


def build(config: dict) -> DesignNet:
    """A :class:`DesignNet` from a JSON-able config (``{"block": "separable", "alpha": 0.5, ...}``;
    an ``"arch"`` key, if present, must be ``"design"``)."""
    cfg = dict(config)
    arch = cfg.pop("arch", "design")
    if arch != "design":
        raise ValueError(f"arch={arch!r} is not allowed here: expected 'design'")
    allowed = ("in_channels", "num_classes", "block", "widths", "strides", "depth", "stem",
               "alpha", "rho", "expand", "groups")
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown DesignNet setting(s) {unknown}; allowed: {', '.join(allowed)}")
    return DesignNet(**cfg)


def for_data(config: dict, splits) -> DesignNet:
    """:func:`build` with ``in_channels`` and ``num_classes`` filled in from ``splits``."""
    cfg = dict(config)
    cfg.setdefault("num_classes", splits.num_classes)
    cfg.setdefault("in_channels", splits.input_shape[0])
    return build(cfg)


def get_or_train(name: str, config: dict, splits, train_config=None, *, seed: int = 0,
                 device="auto", progress: bool | None = None):
    """Train ``for_data(config, splits)`` once, then load it from the cache (as
    :func:`nncompress.train.get_or_train` does for the foundation models).
    Returns ``(model, history, cached)``."""
    from .train import train_cached

    key = {"model": {"arch": "design", **config}, "data": splits.config()}
    return train_cached(name, key, lambda: for_data(config, splits), splits.train, train_config,
                        val=splits.val if len(splits.val) else splits.test, seed=seed, device=device,
                        progress=progress)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass on one sample: :func:`nncompress.metrics.count_flops` / 2
    (PyTorch's flop counter counts a multiply-add as 2 FLOPs)."""
    from .metrics import count_flops

    return count_flops(model, input_shape) // 2


__all__ = ["BLOCKS", "standard_conv_params", "separable_conv_params", "separable_ratio", "conv_macs",
           "separable_conv_macs", "inverted_residual_params", "inverted_residual_macs",
           "shuffle_unit_params", "fire_params", "low_rank_params", "ConvBNAct", "StandardConv",
           "DepthwiseSeparable", "InvertedResidual", "channel_shuffle", "ShuffleUnit", "Fire",
           "LowRankLinear", "scale_channels", "make_block", "DesignNet", "build", "for_data",
           "get_or_train", "count_macs"]
