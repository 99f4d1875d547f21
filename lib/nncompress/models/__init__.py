"""Model families used across the course, all built from a JSON-able config.

Every model here returns logits from ``model(x)`` and, with
``model(x, return_features=True)``, ``(logits, features)`` where ``features`` is an
ordered dict of named intermediate activations (``model.feature_names``) - the taps
that FitNets, attention transfer, RKD and early exits attach to without editing
the model.

* :class:`MLP` (:mod:`.mlp`) - fully connected nets (LeNet-300-100 is ``MLP(784, [300, 100], 10)``).
* :class:`SimpleCNN` (:mod:`.cnn`) - VGG-style conv stacks with width/depth knobs.
* :class:`Conv1DNet` (:mod:`.conv1d`) - small 1-D CNNs for MNIST-1D, optionally separable.
* :class:`CifarResNet` (:mod:`.resnet`) - the CIFAR ResNets of He et al. 2016 (depth 6n+2:
  resnet8 ... resnet110) with the ``x4`` wide variants used by CRD/RepDistiller
  (resnet8x4, resnet32x4); :class:`WideResNet` - WRN-d-k (Zagoruyko & Komodakis 2016).
* :class:`DesignNet` (:mod:`.design_net`, blocks in :mod:`.blocks`) - MobileNet-style
  networks of chapter 10; :class:`MultiExitNet` (:mod:`.multi_exit`) - the early-exit
  networks of chapter 11.

:func:`build` turns ``{"arch": "mlp", ...}`` into a model of any family, so a cache key
can describe a model and rebuild it; ``model.arch_config()`` goes the other way.
"""
from __future__ import annotations

from .base import FeatureModel, conv_bn_relu, stages_then_pool
from .blocks import (BLOCKS, ConvBNAct, DepthwiseSeparable, Fire, InvertedResidual, ShuffleUnit,
                     StandardConv, channel_shuffle, make_block, scale_channels, shuffle_mid)
from .cnn import SimpleCNN
from .conv1d import Conv1DNet
from .design_net import DesignNet
from .families import ARCHS, DESIGN_SETTINGS, NAMED, build, design_net, for_data, named_config
from .mlp import MLP
from .multi_exit import BACKBONES, MultiExitNet, backbone_stage, exit_head, multi_exit_net
from .resnet import RESNET_PRESETS, BasicBlock, CifarResNet, WideBlock, WideResNet
from .transformer import TinyGPT, bits_per_byte, gpt, lm_loss, lm_objective

__all__ = ["FeatureModel", "conv_bn_relu", "stages_then_pool", "BLOCKS", "ConvBNAct", "DepthwiseSeparable",
           "Fire", "InvertedResidual", "ShuffleUnit", "StandardConv", "channel_shuffle", "make_block",
           "scale_channels", "shuffle_mid", "SimpleCNN", "Conv1DNet", "DesignNet", "ARCHS", "DESIGN_SETTINGS",
           "NAMED", "build", "design_net", "for_data", "named_config", "MLP", "BACKBONES", "MultiExitNet",
           "backbone_stage", "exit_head", "multi_exit_net", "RESNET_PRESETS", "BasicBlock", "CifarResNet",
           "WideBlock", "WideResNet", "TinyGPT", "bits_per_byte", "gpt", "lm_loss", "lm_objective"]
