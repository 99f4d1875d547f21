"""Unstructured (weight-level) magnitude pruning on top of ``torch.nn.utils.prune``.

Its masks (a ``weight_mask`` buffer, a ``weight_orig`` parameter and a forward pre-hook)
are the masks of this module.  :func:`magnitude_prune` removes a fraction of the weights
still unpruned (torch's relative ``amount``); :func:`prune_to_sparsity` reaches an absolute
sparsity - one threshold over all layers (``scope="global"``, Han et al. 2015; Frankle &
Carbin 2019) or the same fraction of every layer, or a fraction per layer
(``scope="layer"``, Deep Compression's per-layer rates, Han, Mao & Dally 2016, sec. 2).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn as nn
from torch.nn.utils import prune as tprune

from .checks import check_choice, check_ratio

SCOPES = ("layer", "global")
PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: module}`` of every Linear / Conv1d / Conv2d: the layers whose weights are
    pruned (and weight-shared by :mod:`nncompress.quantize`); biases and BN are not.  A layer
    whose weight became a :class:`~nncompress.quantize.SharedWeight` codebook has none left."""
    return {n: m for n, m in model.named_modules() if isinstance(m, PRUNABLE) and hasattr(m, "weight")}


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every layer of :func:`weight_layers` (torch's parameter list)."""
    return [(m, "weight") for m in weight_layers(model).values()]


def per_layer_values(value, names: list[str], what: str) -> dict:
    """``{layer: value}``: one value for every layer, or a ``{layer: value}`` mapping (its
    layers must be among ``names``; layers it leaves out are left out)."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what}: unknown layer(s) {sorted(unknown)}; layers: {', '.join(names)}")
        return {n: value[n] for n in names if n in value}
    return {n: value for n in names}


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the prunable weights (seeing through torch masks)."""
    zeros = total = 0
    for m, n in prunable(model):
        w = getattr(m, n)
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / max(total, 1)


def layer_sparsities(model: nn.Module) -> dict[str, float]:
    """``{layer name: fraction of zero weights}`` for each prunable layer (seeing through masks)."""
    return {name: float((m.weight == 0).float().mean()) for name, m in weight_layers(model).items()}


def magnitude_prune(model: nn.Module, amount: float | int | Mapping[str, float | int], *,
                    scope: str = "layer") -> nn.Module:
    """Prune ``amount`` of the (still unpruned) weights by magnitude, in place.

    ``scope="layer"``: ``prune.l1_unstructured`` on each layer (each loses ``amount``, or
    ``amount[layer]`` for a ``{layer: amount}`` mapping - layers it leaves out are not
    pruned); ``scope="global"``: ``prune.global_unstructured`` with ``L1Unstructured``
    (one threshold over all layers).  Repeated calls compose as torch does: ``amount`` is
    a fraction (float) or a count (int) of what is left.
    """
    check_choice("scope", scope, SCOPES)
    if scope == "layer":
        layers = weight_layers(model)
        for name, a in per_layer_values(amount, list(layers), "amount").items():
            tprune.l1_unstructured(layers[name], "weight", amount=a)
    else:
        if isinstance(amount, Mapping):
            raise ValueError("amount={...} (one amount per layer) is not allowed with scope='global': "
                             "expected one float or int, or scope='layer'")
        tprune.global_unstructured(prunable(model), pruning_method=tprune.L1Unstructured, amount=amount)
    return model


def prune_to_sparsity(model: nn.Module, target: float | Mapping[str, float], *,
                      scope: str = "global") -> nn.Module:
    """Magnitude-prune until a fraction ``target`` of the prunable weights is zero (in place).

    ``target`` is absolute: the zeros already there (earlier pruning) count towards it, so
    calling this with growing targets is iterative pruning; it never un-prunes.  It is
    translated into torch's relative ``amount`` (an integer count of still-unpruned weights
    to remove).  ``scope="global"``: one threshold over all layers; ``scope="layer"``: every
    layer reaches ``target``, or ``target[layer]`` for a ``{layer: sparsity}`` mapping
    (layers it leaves out are not pruned).  Masks stay attached (pruned weights stay zero
    while fine-tuning); :func:`remove_masks` makes the zeros permanent.
    """
    check_choice("scope", scope, SCOPES)
    if scope == "layer":
        layers = weight_layers(model)
        per_layer = per_layer_values(target, list(layers), "target")
        for name, t in per_layer.items():
            check_ratio(f"target[{name!r}]" if isinstance(target, Mapping) else "target", t)
        for name, t in per_layer.items():
            k = _count_to_prune(round(t * layers[name].weight.numel()), [layers[name]])
            tprune.l1_unstructured(layers[name], "weight", amount=k)
        return model
    if isinstance(target, Mapping):
        raise ValueError("target={...} (one sparsity per layer) is not allowed with scope='global': "
                         "expected one float, or scope='layer'")
    check_ratio("target", target)
    params = prunable(model)
    total = sum(m.weight.numel() for m, _ in params)
    k = _count_to_prune(round(target * total), [m for m, _ in params])
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=k)
    return model


def _count_to_prune(n_zeros: int, layers: list[nn.Module]) -> int:
    """torch's ``amount`` that leaves ``n_zeros`` zero weights in ``layers`` (0 if there are
    that many already: never un-prune).  torch removes ``amount`` of the entries its masks
    still keep, smallest |w| first - zeros a mask does not cover (e.g. after
    :func:`remove_masks`) among them - so the count is ``n_zeros`` minus what masks removed."""
    if sum(int((m.weight == 0).sum()) for m in layers) >= n_zeros:
        return 0
    masked = sum(int((m.weight_mask == 0).sum()) for m in layers if hasattr(m, "weight_mask"))
    return n_zeros - masked


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{module name: weight_mask}`` of every layer pruned with ``torch.nn.utils.prune``."""
    return {name: m.weight_mask.detach().clone() for name, m in model.named_modules()
            if hasattr(m, "weight_mask")}


def has_masks(model: nn.Module) -> bool:
    """Whether any layer of ``model`` carries a ``torch.nn.utils.prune`` mask."""
    return any(hasattr(m, "weight_mask") for m in model.modules())


def apply_masks(model: nn.Module, mask_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Attach the given masks with ``prune.custom_from_mask`` (in place)."""
    mods = dict(model.named_modules())
    for name, mask in mask_dict.items():
        m = mods[name]
        tprune.custom_from_mask(m, "weight", mask.to(m.weight.device))
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Make pruning permanent: ``prune.remove`` on every pruned parameter (zeros stay)."""
    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, tprune.BasePruningMethod):
                tprune.remove(m, hook._tensor_name)
    return model


def keep_masks_callback() -> Callable[[int, nn.Module], None]:
    """A ``fit`` callback: after each epoch set ``weight_orig *= weight_mask``.

    The forward pre-hook of ``torch.nn.utils.prune`` already multiplies by the mask in
    every forward pass, so training never uses a pruned weight; this keeps the stored
    ``weight_orig`` sparse too, so :func:`remove_masks` or a mask change cannot revive
    stale values.
    """
    @torch.no_grad()
    def callback(epoch: int, model: nn.Module) -> None:
        for m in model.modules():
            if hasattr(m, "weight_mask") and hasattr(m, "weight_orig"):
                m.weight_orig.mul_(m.weight_mask)
    return callback
