"""Weight sharing (on top of magnitude pruning), BinaryConnect and int8."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nncompress import prune, quantize as q


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 6))


def test_kmeans_linear_init_and_convergence():
    v = torch.cat([torch.randn(500) * 0.1 - 1, torch.randn(500) * 0.1 + 1])
    assert torch.allclose(q.linear_init(v, 3), torch.tensor([v.min(), (v.min() + v.max()) / 2, v.max()]))
    c, a = q.kmeans_1d(v, 2)
    assert torch.allclose(c, torch.tensor([v[:500].mean(), v[500:].mean()]), atol=1e-4)
    assert (a[:500] == 0).all() and (a[500:] == 1).all()


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_sharing_uses_at_most_2_pow_bits_values_and_keeps_zeros(bits):
    m = _mlp()
    prune.remove_masks(prune.prune_to_sparsity(m, 0.5, scope="layer"))
    shared = q.share_weights(m, bits)
    dense = q.dense_state_dict(shared)
    for name in ("0", "2"):
        w0, w = m.get_submodule(name).weight, dense[f"{name}.weight"]
        assert torch.equal(w == 0, w0 == 0), "pruned weights must stay zero, kept ones non-zero"
        assert torch.unique(w).numel() <= 2**bits
    assert max(q.distinct_values(shared).values()) <= 2**bits - 1


def test_sharing_refuses_a_model_with_pruning_masks():
    with pytest.raises(ValueError, match="remove_masks"):
        q.share_weights(prune.prune_to_sparsity(_mlp(), 0.5, scope="layer"), 3)


def test_centroid_gradient_is_sum_of_member_gradients():
    m = _mlp()
    prune.remove_masks(prune.prune_to_sparsity(m, 0.5, scope="layer"))
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
    prune.remove_masks(prune.prune_to_sparsity(m, 0.6, scope="layer"))
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


# --------------------------------------------------------------------------- int8 static / QAT

def _cnn(seed=0, widths=(8, 16)):
    from nncompress.models import SimpleCNN

    torch.manual_seed(seed)
    m = SimpleCNN(3, 5, widths)
    # non-trivial BN statistics and affine parameters, so that folding BN into the conv matters
    with torch.no_grad():
        for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return m.eval()


def _images(n, seed=1, size=16):
    """Structured inputs: smooth random blobs (like images), not white noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 4, 4, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def _quantized_kinds(model):
    return {type(m).__name__ for m in q.quantized_layers(model).values()}


@pytest.mark.parametrize("backend", ["x86", "qnnpack"])
def test_int8_static_is_close_to_float_and_really_int8(backend):
    import warnings

    if backend not in torch.backends.quantized.supported_engines:
        pytest.skip(f"optional: this torch build has no {backend} quantized engine")
    m = _cnn()
    x = _images(400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation notice may leak out of the library
        qm = q.int8_static(m, x[:256], n_calibration=256, backend=backend)
        with torch.no_grad():
            f, o = m(x[256:]), qm(x[256:])
    assert _quantized_kinds(qm) == {"ConvReLU2d", "Linear"}, "conv+bn+relu fused into int8 ConvReLU2d"
    assert q.quantized_weight_count(qm) == sum(p.numel() for n, p in m.named_parameters()
                                               if n.endswith("weight") and p.dim() > 1)
    assert qm.quant.scale.item() > 0 and o.dtype == torch.float32
    spread = (f.max() - f.min()).item()
    assert (f - o).abs().max().item() < 0.05 * spread, "int8 error must be a few grid steps, not more"
    margin = f.topk(2, dim=1).values
    clear = (margin[:, 0] - margin[:, 1]) > 0.05 * spread  # samples whose float decision is not a tie
    assert clear.sum() > 20
    agree = (f.argmax(1) == o.argmax(1))[clear].float().mean().item()
    assert agree >= 0.95


def test_int8_static_calibration_sets_scale_and_zero_point_from_min_max():
    x = _images(64) * 3 + 0.5
    x[32:] *= 2  # a wider range after the calibration samples
    qm = q.int8_static(_cnn(), x, n_calibration=32, backend="x86")
    lo, hi = min(x[:32].min().item(), 0.0), max(x[:32].max().item(), 0.0)
    S = (hi - lo) / 127  # x86: activations in [0, 127]
    assert qm.quant.scale.item() == pytest.approx(S, rel=1e-5)
    assert qm.quant.zero_point.item() == round(-lo / S)
    # only the first n_calibration samples are observed
    assert q.int8_static(_cnn(), x, n_calibration=64).quant.scale.item() > 1.5 * S


def test_int8_static_leaves_the_input_model_unchanged():
    m = _cnn()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    kinds = [type(x) for x in m.modules()]
    m.train()
    q.int8_static(m, _images(64), n_calibration=64)
    assert m.training, "the caller's train/eval mode is kept"
    assert [type(x) for x in m.modules()] == kinds, "no fused or observed modules in the input"
    assert not hasattr(m, "qconfig") and not any(hasattr(x, "activation_post_process") for x in m.modules())
    after = m.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_int8_static_state_dict_is_about_a_quarter_of_float():
    from nncompress.metrics import model_bytes

    m = _cnn(widths=(32, 64, 128))
    qm = q.int8_static(m, _images(64), n_calibration=64)
    n_weights = q.quantized_weight_count(qm)
    assert n_weights > 90_000
    float_bytes, int8_bytes = model_bytes(m), model_bytes(qm)
    assert n_weights < int8_bytes < 0.3 * float_bytes, (int8_bytes, float_bytes)


def test_int8_static_bad_arguments_are_named():
    m, x = _cnn(), _images(8)
    with pytest.raises(ValueError, match=r"backend='arm'.*'x86'"):
        q.int8_static(m, x, backend="arm")
    with pytest.raises(ValueError, match=r"n_calibration=0"):
        q.int8_static(m, x, n_calibration=0)
    with pytest.raises(ValueError, match=r"observer='mean'.*'minmax'"):
        q.int8_static(m, x, observer="mean")


def test_int8_static_refuses_residual_adds_clearly():
    from nncompress.models import CifarResNet

    with pytest.raises(TypeError, match="eager-mode quantization"):
        q.int8_static(CifarResNet(8, num_classes=3), _images(8), n_calibration=8)


def test_int8_static_mlp_and_conv1d_are_supported():
    from nncompress.models import MLP, Conv1DNet

    torch.manual_seed(0)
    mlp = MLP(48, [32], 4).eval()
    x = torch.randn(64, 48)
    qm = q.int8_static(mlp, x, n_calibration=64)
    assert _quantized_kinds(qm) == {"Linear"}
    assert torch.allclose(qm(x), mlp(x), atol=0.1 * (mlp(x).max() - mlp(x).min()).item())
    conv = Conv1DNet(4, (8, 8)).eval()
    qc = q.int8_static(conv, torch.randn(32, 40), n_calibration=32)
    assert "ConvReLU1d" in _quantized_kinds(qc)


def test_fusion_groups_find_conv_bn_relu_runs_in_sequentials():
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 2))
    assert q.fusion_groups(seq) == [["0", "1", "2"], ["3", "4"], ["6", "7"]]


def test_int8_qat_trains_converts_and_caches(tmp_path, monkeypatch):
    import warnings

    from nncompress.data.device import DeviceData

    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path))
    m = _cnn()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = _images(64)
    with torch.no_grad():
        y = m(x).argmax(1)
    data = DeviceData(x, y)
    cfg = {"epochs": 1, "batch_size": 32, "lr": 1e-3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qm = q.int8_qat(m, data, cfg, seed=0, progress=False, cache_key={"model": "test-cnn"})
    assert _quantized_kinds(qm) == {"ConvReLU2d", "Linear"}
    assert qm.history.epoch == [1] and len(qm.history.train_loss) == 1
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items()), "input model unchanged"
    with torch.no_grad():
        o, f = qm(x), m(x)
    assert (o - f).abs().max() < 0.5 * (f.max() - f.min()), "one short QAT epoch stays near the float model"
    assert list(tmp_path.glob("int8-qat-*")), "the fake-quant weights are cached"
    again = q.int8_qat(m, data, cfg, seed=0, progress=False, cache_key={"model": "test-cnn"})
    with torch.no_grad():
        assert torch.equal(again(x), o), "a rerun converts the cached weights"
    with pytest.raises(ValueError, match="backend='tpu'"):
        q.int8_qat(m, data, cfg, backend="tpu")
    with pytest.raises(ValueError, match="freeze_bn_after=-1"):
        q.int8_qat(m, data, cfg, freeze_bn_after=-1)


def test_quiet_torch_ao_filters_only_its_notices():
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with q.quiet_torch_ao():
            warnings.warn("torch.ao.quantization is deprecated and will be removed", DeprecationWarning)
            warnings.warn("something else is deprecated", DeprecationWarning)
            warnings.warn("torch.ao.quantization is deprecated and will be removed", UserWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated",
                                              "torch.ao.quantization is deprecated and will be removed"]
