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
  ``K (I + O)`` instead of ``I O`` weights (lecture notes 002/004) - :mod:`nncompress.lowrank`.

:class:`DesignNet` stacks any of these blocks into a small MobileNet-style network for
32 x 32 inputs, with the MobileNet width multiplier ``alpha`` (every layer's channels x
alpha, sec. 3.3) and resolution multiplier ``rho`` (the input is resized to ``rho * 32``
pixels, sec. 3.4).  The layers live with the other model families
(:mod:`nncompress.models.blocks`, :mod:`nncompress.models.design_net`; built by
:func:`nncompress.models.build` with ``arch="design"``) and are re-exported here; this
module holds the closed-form counts and the chapter's training entry point.
"""
from __future__ import annotations

import torch.nn as nn

from . import models
from .models.blocks import (BLOCKS, ConvBNAct, DepthwiseSeparable, Fire, InvertedResidual, ShuffleUnit,
                            StandardConv, channel_shuffle, make_block, scale_channels, shuffle_mid)
from .models.design_net import DesignNet


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
    mid = mid if mid is not None else shuffle_mid(cout, groups)
    out = cout if stride == 1 else cout - cin
    return cin * mid // groups + 9 * mid + mid * out // groups + _bn(mid, bn) * 2 + _bn(out, bn)


def fire_params(cin: int, squeeze: int, e1: int, e3: int) -> int:
    """SqueezeNet fire module (convs with biases): ``(I + 1) s + (s + 1) e1 + (9 s + 1) e3``."""
    return (cin + 1) * squeeze + (squeeze + 1) * e1 + (9 * squeeze + 1) * e3


# --------------------------------------------------------------------------- networks

def for_data(config: dict, splits) -> DesignNet:
    """:func:`nncompress.models.for_data` for a :class:`DesignNet` config (``arch`` may be
    left out): ``in_channels`` and ``num_classes`` from ``splits``."""
    cfg = {"arch": "design", **config}
    if cfg["arch"] != "design":
        raise ValueError(f"arch={cfg['arch']!r} is not allowed here: expected 'design' (or no arch)")
    return models.for_data(cfg, splits)


def get_or_train(name: str, config: dict, splits, train_config=None, *, seed: int = 0,
                 device="auto", progress: bool | None = None):
    """Train ``for_data(config, splits)`` once, then load it from the cache (as
    :func:`nncompress.train.get_or_train` does for the foundation models).
    Returns ``(model, history, cached)``."""
    from .train import train_cached

    key = {"model": {"arch": "design", **config}, "data": splits.config()}  # unchanged cache key
    return train_cached(name, key, lambda: for_data(config, splits), splits.train, train_config,
                        val=splits.val if len(splits.val) else splits.test, seed=seed, device=device,
                        progress=progress)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass on one sample: :func:`nncompress.metrics.count_flops` / 2
    (PyTorch's flop counter counts a multiply-add as 2 FLOPs)."""
    from .metrics import count_flops

    return count_flops(model, input_shape) // 2


# --------------------------------------------------------------------------- width multiplier

def layer_macs(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """MACs of every conv and linear layer of one forward pass on one sample, with the layer's
    *kind* for the width multiplier (MobileNets sec. 3.3):

    * ``"stem"``: a conv that reads the image (its input channels do not scale with alpha);
    * ``"depthwise"``: ``groups == in_channels`` (``k^2 * alpha I`` per position);
    * ``"pointwise"``: a dense ``1 x 1`` conv (``alpha I * alpha O``);
    * ``"conv"`` / ``"grouped"``: any other dense / grouped conv (both sides scale);
    * ``"head"``: a Linear layer (its outputs are the classes).

    Stem, depthwise and head costs scale with alpha, the others with alpha^2
    (:func:`predicted_width_ratio`).
    Returns ``[{"name", "kind", "macs", "cin", "cout"}, ...]`` in execution order."""
    import torch

    rows, hooks = [], []

    def record(name):
        def hook(mod, inputs, output):
            if isinstance(mod, nn.Linear):
                kind, macs = "head", mod.in_features * mod.out_features
            else:
                h, w = output.shape[-2:]
                macs = conv_macs(mod.kernel_size[0], mod.in_channels, mod.out_channels, h, w, groups=mod.groups)
                if not rows:  # the first conv reads the image
                    kind = "stem"
                elif mod.groups == mod.in_channels and mod.groups > 1:
                    kind = "depthwise"
                elif mod.groups > 1:
                    kind = "grouped"
                else:
                    kind = "pointwise" if mod.kernel_size == (1, 1) else "conv"
            rows.append({"name": name, "kind": kind, "macs": int(macs), "cin": _channels(mod, "in"),
                         "cout": _channels(mod, "out")})
        return hook

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def _channels(mod: nn.Module, side: str) -> int:
    if isinstance(mod, nn.Linear):
        return mod.in_features if side == "in" else mod.out_features
    return mod.in_channels if side == "in" else mod.out_channels


def predicted_width_ratio(rows: list[dict], alpha_from: float, alpha_to: float,
                          rows_to: list[dict] | None = None) -> float:
    """Predicted ``MACs(alpha_to) / MACs(alpha_from)`` from the per-layer MACs ``rows`` of the
    network at ``alpha_from`` (:func:`layer_macs`; MobileNets sec. 3.3): stem, depthwise and
    head layers scale with the width ratio, pointwise (and other dense) convs with its square.

    Without ``rows_to`` every layer's width ratio is the nominal ``alpha_to / alpha_from``.
    With ``rows_to`` (:func:`layer_macs` of the network at ``alpha_to``) each layer uses the
    ratio of its *actual* channel counts, which channel rounding (:func:`scale_channels`)
    makes differ from the nominal one for narrow layers."""
    if alpha_from <= 0 or alpha_to <= 0:
        raise ValueError(f"alpha_from={alpha_from!r}, alpha_to={alpha_to!r}: expected multipliers > 0")
    total = sum(row["macs"] for row in rows)
    if total == 0:
        raise ValueError("rows hold no MACs: expected the output of layer_macs()")
    if rows_to is not None and [r["kind"] for r in rows_to] != [r["kind"] for r in rows]:
        raise ValueError("rows_to must list the same layers as rows (layer_macs of the same design at alpha_to)")
    out = 0.0
    for i, row in enumerate(rows):
        if rows_to is None:
            r_in = r_out = alpha_to / alpha_from
        else:
            r_in, r_out = rows_to[i]["cin"] / row["cin"], rows_to[i]["cout"] / row["cout"]
        kind = row["kind"]
        scale = {"stem": r_out, "depthwise": r_out, "head": r_in}.get(kind, r_in * r_out)
        out += row["macs"] * scale
    return out / total

__all__ = ["BLOCKS", "standard_conv_params", "separable_conv_params", "separable_ratio", "conv_macs",
           "separable_conv_macs", "inverted_residual_params", "inverted_residual_macs",
           "shuffle_unit_params", "fire_params", "ConvBNAct", "StandardConv",
           "DepthwiseSeparable", "InvertedResidual", "channel_shuffle", "ShuffleUnit", "Fire",
           "scale_channels", "make_block", "DesignNet", "for_data", "get_or_train", "count_macs",
           "layer_macs", "predicted_width_ratio"]
