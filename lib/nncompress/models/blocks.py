"""The building blocks of MobileNet, ShuffleNet and SqueezeNet (the layers; their
closed-form parameter and MAC counts are in :mod:`nncompress.design`).

* :class:`DepthwiseSeparable` - Howard et al. 2017, "MobileNets", sec. 3.1, fig. 3.
* :class:`InvertedResidual` - Sandler et al. 2018, "MobileNetV2", sec. 3.3, table 1.
* :func:`channel_shuffle`, :class:`ShuffleUnit` - Zhang et al. 2018, "ShuffleNet", sec. 3.
* :class:`Fire` - Iandola et al. 2016, "SqueezeNet", sec. 3.2.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

BLOCKS = ("standard", "separable", "inverted", "shuffle", "fire")


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


def shuffle_mid(cout: int, groups: int) -> int:
    """ShuffleNet's bottleneck width: ``O // 4`` rounded down to a multiple of ``g`` (at least ``g``)."""
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
        mid = mid if mid is not None else shuffle_mid(cout, groups)
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
