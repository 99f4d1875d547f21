"""Deep Compression's weight sharing (Han, Mao & Dally 2016, "Deep Compression", sec. 3).

Per layer, k-means over the *non-zero* weights with **linear initialisation** (centroids
evenly spaced between the minimum and maximum weight - the paper's best init, fig. 4 /
sec. 3.1), :func:`kmeans_1d`, :func:`share_weights`.  The shared layer
(:class:`SharedWeight`) keeps a codebook and an index per weight; its forward uses
``W = C[I]`` so the **centroid gradient** is the sum of the gradients of the weights
assigned to it (eq. 3, :func:`centroid_grad`), and pruned weights (index -1) stay exactly
zero.  With ``bits`` b a layer has ``2**b - 1`` centroids: code 0 is reserved for zero (the
CSR filler), see :mod:`nncompress.storage`.  The pruning stage before it is
:func:`nncompress.prune.prune_to_sparsity` (``scope="layer"``).
"""
from __future__ import annotations

import copy
from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..prune.masks import has_masks, per_layer_values, weight_layers
from ..storage import dense_state_dict


def linear_init(values: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` centroids evenly spaced in ``[min, max]`` of ``values`` (Han et al. 2016, §3.1)."""
    return torch.linspace(float(values.min()), float(values.max()), k)


def kmeans_1d(values: torch.Tensor, k: int, *, iters: int = 30, init: str = "linear",
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means in 1-D: ``(centroids (k,), assignment (n,))``.

    ``init``: ``"linear"`` (paper's choice), ``"random"`` (k distinct samples) or ``"density"``
    (quantiles of the CDF).  Empty clusters keep their previous centroid.
    """
    values = values.detach().float().ravel()
    if values.numel() == 0:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    if init == "linear":
        c = linear_init(values, k)
    elif init == "density":
        c = torch.quantile(values, torch.linspace(0, 1, k))
    elif init == "random":
        g = torch.Generator().manual_seed(seed)
        c = values[torch.randperm(values.numel(), generator=g)[:k]].sort().values
    else:
        raise ValueError(f"init={init!r} is not allowed: expected 'linear', 'density' or 'random'")
    for _ in range(iters):
        c = c.sort().values
        assign = torch.bucketize(values, (c[1:] + c[:-1]) / 2)
        sums = torch.zeros(len(c)).index_add_(0, assign, values)
        counts = torch.bincount(assign, minlength=len(c)).float()
        new = torch.where(counts > 0, sums / counts.clamp(min=1), c)
        if torch.equal(new, c):
            break
        c = new
    c = c.sort().values
    return c, torch.bucketize(values, (c[1:] + c[:-1]) / 2)


class SharedWeight(nn.Module):
    """A Linear/Conv layer whose weight is ``codebook[index]`` (index -1: pruned, exactly 0).

    The codebook is the trainable parameter; autograd through the gather sums the gradients
    of all weights of a cluster into its centroid - Han et al. 2016, eq. 3.
    """

    def __init__(self, module: nn.Module, codebook: torch.Tensor, index: torch.Tensor):
        super().__init__()
        w = module.weight
        del module._parameters["weight"]  # the weight now lives in codebook + index
        self.module = module
        self.codebook = nn.Parameter(codebook.to(w.device, w.dtype).clone())
        self.register_buffer("index", index.to(w.device).long().reshape(w.shape))

    def shared_weight(self) -> torch.Tensor:
        w = self.codebook[self.index.clamp(min=0)]
        return torch.where(self.index >= 0, w, torch.zeros((), dtype=w.dtype, device=w.device))

    def forward(self, x):
        w, m = self.shared_weight(), self.module
        if isinstance(m, nn.Linear):
            return F.linear(x, w, m.bias)
        return m._conv_forward(x, w, m.bias)


def share_weights(model: nn.Module, bits: int | Mapping[str, int] = 5, *, init: str = "linear",
                  iters: int = 30) -> nn.Module:
    """A copy of ``model`` with every Linear/Conv weight replaced by a :class:`SharedWeight`.

    ``bits`` per layer (paper: 8 conv, 5 fc) gives ``2**bits - 1`` centroids over the layer's
    non-zero weights (code 0 is zero); zeros stay zero.  Pruning must be permanent already
    (:func:`nncompress.prune.remove_masks`).
    """
    if has_masks(model):
        raise ValueError("share_weights: the model carries torch pruning masks; call nncompress.prune.remove_masks first")
    model = copy.deepcopy(model)
    layers = weight_layers(model)
    for name, b in per_layer_values(bits, list(layers), "bits").items():
        if not 1 <= int(b) <= 16:
            raise ValueError(f"bits={b!r} for layer {name!r} is not allowed: expected 1 <= bits <= 16")
        m = layers[name]
        w = m.weight.detach().cpu()
        nz = w != 0
        c, assign = kmeans_1d(w[nz], 2**int(b) - 1, iters=iters, init=init)
        index = torch.full(w.shape, -1, dtype=torch.long)
        index[nz] = assign
        model.set_submodule(name, SharedWeight(m, c, index))
    return model


def shared_layers(model: nn.Module) -> dict[str, SharedWeight]:
    """``{name: layer}`` of every :class:`SharedWeight` in ``model``."""
    return {n: m for n, m in model.named_modules() if isinstance(m, SharedWeight)}


def centroid_grad(weight_grad: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 3 of Han et al. 2016: ``dL/dC_k = sum_{i,j: I_ij = k} dL/dW_ij`` (index -1 ignored)."""
    keep = index >= 0
    return torch.zeros(k, dtype=weight_grad.dtype).index_add_(0, index[keep], weight_grad[keep])


def distinct_values(model: nn.Module) -> dict[str, int]:
    """Number of distinct non-zero weight values per layer."""
    return {k.rsplit(".", 1)[0]: int(torch.unique(v[v != 0]).numel())
            for k, v in dense_state_dict(model).items() if k.endswith("weight") and v.dim() > 1}
