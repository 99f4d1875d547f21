"""Layer-wise pruning sensitivity (Li et al. 2017, "Pruning Filters for Efficient ConvNets",
sec. 3.2 and fig. 2): prune one layer alone at growing ratios and watch the accuracy."""
from __future__ import annotations

import copy
from typing import Sequence

import torch.nn as nn
from torch.nn.utils import prune as tprune

from .channels import recalibrate_bn, structured_prune
from .masks import weight_layers
from .units import unit_names


def sensitivity(model: nn.Module, data, ratios: Sequence[float], *, criterion: str = "l1",
                structured: bool = True, calib=None, device="cpu") -> dict[str, list[float]]:
    """Prune each layer ALONE at each ratio and measure accuracy on ``data`` (Li et al. 2017, fig. 2).

    ``structured=True``: remove a fraction of the unit's channels (:func:`prune_channels`);
    ``False``: magnitude-prune that layer's weights (torch masks).  With ``calib`` data the
    BatchNorm statistics are re-estimated after each cut (:func:`recalibrate_bn`).  Returns
    ``{layer: [acc at each ratio]}``; the model itself is not changed.
    """
    from ..train import evaluate

    out = {}
    if structured:
        for name in unit_names(model):
            accs = []
            for r in ratios:
                m = structured_prune(model, {name: r}, criterion)
                if calib is not None:
                    recalibrate_bn(m, calib)
                accs.append(evaluate(m, data, device=device)["acc"])
            out[name] = accs
    else:
        for name in weight_layers(model):
            accs = []
            for r in ratios:
                c = copy.deepcopy(model)
                tprune.l1_unstructured(c.get_submodule(name), "weight", amount=float(r))
                accs.append(evaluate(c, data, device=device)["acc"])
            out[name] = accs
    return out
