"""Weight sharing, pruning, BinaryConnect, int8 and low-rank factorisation."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nncompress import quantize as q


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 6))


def test_prune_magnitude_removes_the_smallest_weights():
    m = _mlp()
    w = m[0].weight.detach().clone()
    q.prune_magnitude(m, {"0": 0.75})
    q.make_pruning_permanent(m)
    s = q.sparsity(m)
    assert s["0"] == pytest.approx(0.75, abs=1 / w.numel()) and s["2"] == 0
    kept = m[0].weight != 0
    assert w.abs()[kept].min() >= w.abs()[~kept].max()
    with pytest.raises(ValueError, match="amount=1.5"):
        q.prune_magnitude(_mlp(), 1.5)
    with pytest.raises(ValueError, match="unknown layer"):
        q.prune_magnitude(_mlp(), {"nope": 0.5})


def test_kmeans_linear_init_and_convergence():
    v = torch.cat([torch.randn(500) * 0.1 - 1, torch.randn(500) * 0.1 + 1])
    assert torch.allclose(q.linear_init(v, 3), torch.tensor([v.min(), (v.min() + v.max()) / 2, v.max()]))
    c, a = q.kmeans_1d(v, 2)
    assert torch.allclose(c, torch.tensor([v[:500].mean(), v[500:].mean()]), atol=1e-4)
    assert (a[:500] == 0).all() and (a[500:] == 1).all()


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_sharing_uses_at_most_2_pow_bits_values_and_keeps_zeros(bits):
    m = _mlp()
    q.prune_magnitude(m, 0.5)
    q.make_pruning_permanent(m)
    shared = q.share_weights(m, bits)
    dense = q.dense_state_dict(shared)
    for name in ("0", "2"):
        w0, w = m.get_submodule(name).weight, dense[f"{name}.weight"]
        assert torch.equal(w == 0, w0 == 0), "pruned weights must stay zero, kept ones non-zero"
        assert torch.unique(w).numel() <= 2**bits
    assert max(q.distinct_values(shared).values()) <= 2**bits - 1


def test_centroid_gradient_is_sum_of_member_gradients():
    m = _mlp()
    q.prune_magnitude(m, 0.5)
    q.make_pruning_permanent(m)
    shared = q.share_weights(m, 3)
    x, y = torch.randn(32, 16), torch.randint(0, 6, (32,))
    F.cross_entropy(shared(x), y).backward()
    layer = q.shared_layers(shared)["0"]
    # the same loss through a plain layer with the same weights gives dL/dW
    w = layer.shared_weight().detach().requires_grad_()
    h = F.relu(F.linear(x, w, layer.module.bias))
    F.cross_entropy(shared[2](h), y).backward()
    want = q.centroid_grad(w.grad, layer.index, len(layer.codebook))
    assert torch.allclose(layer.codebook.grad, want, atol=1e-6)
    manual = torch.stack([w.grad[layer.index == k].sum() for k in range(len(layer.codebook))])
    assert torch.allclose(want, manual, atol=1e-6)


def test_fine_tuning_centroids_keeps_zeros_and_value_count():
    m = _mlp()
    q.prune_magnitude(m, 0.6)
    q.make_pruning_permanent(m)
    shared = q.share_weights(m, 2)
    opt = torch.optim.SGD(shared.parameters(), lr=0.1)
    x, y = torch.randn(64, 16), torch.randint(0, 6, (64,))
    before = q.dense_state_dict(shared)["0.weight"]
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(shared(x), y).backward()
        opt.step()
    after = q.dense_state_dict(shared)["0.weight"]
    assert not torch.equal(before, after)
    assert torch.equal(after == 0, m[0].weight == 0)
    assert torch.unique(after[after != 0]).numel() <= 3


def test_binarize_deterministic_and_stochastic():
    w = torch.tensor([-2.0, -0.3, 0.0, 0.4, 3.0])
    assert q.binarize(w).tolist() == [-1, -1, 1, 1, 1]
    g = torch.Generator().manual_seed(0)
    wb = torch.stack([q.binarize(torch.full((1,), 0.5), stochastic=True, generator=g) for _ in range(4000)])
    assert set(wb.unique().tolist()) == {-1.0, 1.0}
    assert (wb == 1).float().mean().item() == pytest.approx(0.75, abs=0.03)  # hard_sigmoid(0.5)
    assert (q.binarize(torch.full((100,), 2.0), stochastic=True) == 1).all()


def test_ste_passes_gradient_straight_through_inside_the_clip():
    w = torch.tensor([-1.5, -0.5, 0.2, 0.9, 1.2], requires_grad=True)
    out = q.BinarizeSTE.apply(w, 1.0, False)
    assert out.tolist() == [-1, -1, 1, 1, 1]
    (out * torch.arange(5.0)).sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 2.0, 3.0, 0.0]


def test_binary_linear_uses_pm_scale_and_clips_real_weights():
    layer = q.BinaryLinear(8, 4, scale=1.0)
    with torch.no_grad():
        layer.weight.mul_(10)
    x = torch.randn(3, 8)
    out = layer(x)  # training mode: clips first
    assert layer.weight.abs().max() <= 1.0
    assert torch.allclose(out, F.linear(x, torch.sign(layer.weight) + (layer.weight == 0), layer.bias))
    layer.eval()
    with torch.no_grad():
        assert torch.equal(layer(x), out.detach())  # cached inference path, same result
        layer.weight.mul_(-1)  # an in-place update invalidates the cache
        assert torch.allclose(layer(x), F.linear(x, torch.where(layer.weight >= 0, 1.0, -1.0), layer.bias))
    m = q.binarize_model(_mlp())
    assert all(isinstance(m[i], q.BinaryLinear) for i in (0, 2))
    assert q.binary_bytes(m) == (16 * 40 + 7) // 8 + 4 + 40 * 4 + (40 * 6 + 7) // 8 + 4 + 6 * 4


def test_int8_dynamic_is_close_and_smaller():
    from nncompress.metrics import model_bytes
    import warnings

    m = _mlp().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the helper must not leak deprecation warnings
        qm = q.int8_dynamic(m)
    x = torch.randn(20, 16)
    assert torch.allclose(qm(x), m(x), atol=0.05)
    big = nn.Sequential(nn.Linear(256, 256))
    assert model_bytes(q.int8_dynamic(big)) < model_bytes(big) / 2.5


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_low_rank_param_count_and_full_rank_exactness(rank):
    layer = nn.Linear(10, 6)
    lr = q.low_rank_linear(layer, rank)
    assert sum(p.numel() for p in lr.parameters()) == q.low_rank_params(10, 6, rank) == rank * 16 + 6
    x = torch.randn(5, 10)
    if rank == 6:
        assert torch.allclose(lr(x), layer(x), atol=1e-5)
    with pytest.raises(ValueError, match="rank=7"):
        q.low_rank_linear(layer, 7)


def test_low_rank_error_is_the_dropped_singular_values():
    layer = nn.Linear(12, 8)
    S = torch.linalg.svdvals(layer.weight.detach())
    pair = q.low_rank_linear(layer, 3)
    w = pair[1].weight @ pair[0].weight
    assert torch.linalg.matrix_norm(layer.weight.detach() - w).item() == pytest.approx(S[3:].norm().item(), rel=1e-4)
    m = q.factorize(_mlp(), {"0": 4})
    assert isinstance(m[0], nn.Sequential)
    with pytest.raises(ValueError, match="not a Linear"):
        q.factorize(_mlp(), {"1": 2})
