"""Low-rank factorisation of linear layers (truncated SVD, Eckart-Young)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from nncompress import lowrank
from nncompress.metrics import count_params


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 6))


@pytest.mark.parametrize("cin,cout,rank", [(784, 300, 32), (100, 100, 10)])
def test_low_rank_counts(cin, cout, rank):
    assert count_params(lowrank.LowRankLinear(cin, cout, rank)) == lowrank.low_rank_params(cin, cout, rank)
    assert count_params(lowrank.LowRankLinear(cin, cout, rank, bias=False)) == rank * (cin + cout) == \
        lowrank.low_rank_params(cin, cout, rank, bias=False)


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_low_rank_param_count_and_full_rank_exactness(rank):
    layer = nn.Linear(10, 6)
    lr = lowrank.low_rank_linear(layer, rank)
    assert isinstance(lr, lowrank.LowRankLinear)
    assert sum(p.numel() for p in lr.parameters()) == lowrank.low_rank_params(10, 6, rank) == rank * 16 + 6
    x = torch.randn(5, 10)
    if rank == 6:
        assert torch.allclose(lr(x), layer(x), atol=1e-5)
    with pytest.raises(ValueError, match="rank=7"):
        lowrank.low_rank_linear(layer, 7)


def test_low_rank_error_is_the_dropped_singular_values():
    layer = nn.Linear(12, 8)
    S = torch.linalg.svdvals(layer.weight.detach())
    pair = lowrank.low_rank_linear(layer, 3)
    w = pair[1].weight @ pair[0].weight
    assert torch.linalg.matrix_norm(layer.weight.detach() - w).item() == pytest.approx(S[3:].norm().item(), rel=1e-4)
    m = lowrank.factorize(_mlp(), {"0": 4})
    assert isinstance(m[0], lowrank.LowRankLinear) and isinstance(_mlp()[0], nn.Linear)
    x = torch.randn(3, 16)
    assert m(x).shape == (3, 6)
    with pytest.raises(ValueError, match="not a Linear"):
        lowrank.factorize(_mlp(), {"1": 2})
