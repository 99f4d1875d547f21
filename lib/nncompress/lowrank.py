"""Low-rank factorisation of linear layers (chapters 09 and 10).

A Linear ``W`` (``O x I``) is replaced by two Linears ``I -> K -> O`` with no activation
between them, so ``I * O`` weights become ``K * (I + O)``.  The best rank-``K``
approximation in the Frobenius (and spectral) norm is the truncated SVD
``W ~ U_K S_K V_K^T`` (Eckart & Young 1936); its error is the dropped singular values,
``||W - W_K||_F^2 = sum_{i > K} s_i^2``.  Denton et al. (2014) and Xue et al. (2013) use it
to compress trained layers, then fine-tune.

* :class:`LowRankLinear` - the factorised layer (``Linear(I, K, bias=False)`` then
  ``Linear(K, O)``: a bias between the two would be redundant, it folds into the second's).
* :func:`low_rank_params` - its parameter count ``K (I + O)`` (+ ``O`` bias).
* :func:`low_rank_linear` - the truncated-SVD :class:`LowRankLinear` of a trained Linear.
* :func:`factorize` - a copy of a model with named Linear layers factorised.
"""
from __future__ import annotations

import copy
from typing import Mapping

import torch
import torch.nn as nn


class LowRankLinear(nn.Sequential):
    """``Linear(in_features, rank, bias=False)`` then ``Linear(rank, out_features, bias)``:
    a rank-``K`` factorisation of ``Linear(in_features, out_features)``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        if not 1 <= rank <= min(in_features, out_features):
            raise ValueError(f"rank={rank!r} is not allowed: expected 1 <= rank <= {min(in_features, out_features)} "
                             f"(a {in_features} -> {out_features} layer)")
        super().__init__(nn.Linear(in_features, rank, bias=False), nn.Linear(rank, out_features, bias=bias))


def low_rank_params(in_features: int, out_features: int, rank: int, bias: bool = True) -> int:
    """Parameters of :class:`LowRankLinear`: ``K (I + O)`` (+ ``O`` bias)."""
    return rank * (in_features + out_features) + (out_features if bias else 0)


@torch.no_grad()
def low_rank_linear(layer: nn.Linear, rank: int) -> LowRankLinear:
    """Best rank-``K`` approximation (truncated SVD, Eckart-Young) of ``layer``.

    ``W ~ U_K S_K V_K^T``; the first Linear ``I -> K`` gets ``sqrt(S_K) V_K^T``, the second
    ``K -> O`` gets ``U_K sqrt(S_K)`` and the original bias.
    """
    n_out, n_in = layer.weight.shape
    out = LowRankLinear(n_in, n_out, rank, bias=layer.bias is not None)
    U, S, Vh = torch.linalg.svd(layer.weight.detach().float().cpu(), full_matrices=False)
    r = S[:rank].sqrt()
    out[0].weight.copy_(r[:, None] * Vh[:rank])
    out[1].weight.copy_(U[:, :rank] * r[None, :])
    if layer.bias is not None:
        out[1].bias.copy_(layer.bias.detach().cpu())
    return out.to(layer.weight.device)


def factorize(model: nn.Module, ranks: Mapping[str, int]) -> nn.Module:
    """A copy of ``model`` with each Linear named in ``ranks`` replaced by its rank-``K``
    :func:`low_rank_linear`."""
    model = copy.deepcopy(model)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    for name, k in ranks.items():
        if name not in linears:
            raise ValueError(f"ranks: {name!r} is not a Linear layer of the model; "
                             f"Linear layers: {', '.join(linears)}")
        model.set_submodule(name, low_rank_linear(linears[name], int(k)))
    return model
