import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune as tprune

from nncompress import models, prune
from nncompress.data import DeviceData, Splits
from nncompress.metrics import count_flops, count_params


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.randn(n, generator=g) * 0.1
            m.running_mean = torch.randn(n, generator=g) * 0.1
            m.running_var = torch.rand(n, generator=g) + 0.5
    return model.eval()


# ----------------------------------------------------------------------------- criteria

def test_l1_l2_scores():
    w = torch.tensor([[1.0, -2.0], [3.0, 4.0], [0.0, 0.5]])
    assert torch.allclose(prune.filter_importance(w, "l1"), torch.tensor([3.0, 7.0, 0.5]))
    assert torch.allclose(prune.filter_importance(w, "l2"), torch.tensor([5 ** 0.5, 5.0, 0.5]))


def test_fpgm_picks_the_median_filter():
    # five 1x(2x2) filters on a line; the middle one is the geometric median and the
    # largest-norm-but-one: L1 keeps it, FPGM prunes it first.
    base = torch.ones(1, 2, 2)
    w = torch.stack([base * c for c in (1.0, 2.0, 3.0, 4.0, 5.0)])[:, :, :, :]  # (5, 1, 2, 2)
    w[2] = base * 3.0
    fp = prune.filter_importance(w, "fpgm")
    assert fp.argmin().item() == 2
    assert prune.filter_importance(w, "l1").argmin().item() == 0


def test_unknown_criterion_names_allowed_values():
    with pytest.raises(ValueError, match="criterion='l3'.*'l1'"):
        prune.filter_importance(torch.ones(2, 2), "l3")


def test_bn_gamma_and_l1_penalty_subgradient():
    m = models.SimpleCNN(3, 10, (4, 8))
    m.stages[0][0][1].weight.data = torch.tensor([1.0, -2.0, 0.5, 0.0])
    assert torch.allclose(prune.bn_gamma_importance(m.stages[0][0][1]), torch.tensor([1.0, 2.0, 0.5, 0.0]))
    pen = prune.bn_l1_penalty(m, 0.1)
    assert abs(pen.item() - 0.1 * (3.5 + 8)) < 1e-5
    pen.backward()
    assert torch.allclose(m.stages[0][0][1].weight.grad, 0.1 * torch.tensor([1.0, -1.0, 1.0, 0.0]))


def test_apoz_on_constructed_input():
    lin = nn.Linear(2, 3, bias=False)
    lin.weight.data = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    model = nn.Sequential(lin, nn.ReLU())
    x = torch.tensor([[1.0, 1.0], [2.0, -1.0], [-1.0, 1.0], [3.0, 1.0]])
    # channel 0: x0 > 0 in 3 of 4 -> APoZ 1/4; channel 1: -x0 > 0 in 1 of 4 -> 3/4; channel 2: 1/4
    got = prune.apoz(model, "1", x)
    assert torch.allclose(got, torch.tensor([0.25, 0.75, 0.25]))


# ----------------------------------------------------------------------------- unstructured

@pytest.mark.parametrize("amount", [0.3, 0.5, 0.9])
def test_layer_masks_equal_torch_prune(amount):
    torch.manual_seed(0)
    m = models.MLP(20, [16, 8], 4)
    ref = copy.deepcopy(m)
    prune.magnitude_prune(m, amount, scope="layer")
    for (a, _), (b, _) in zip(prune.prunable(m), prune.prunable(ref)):
        tprune.l1_unstructured(b, "weight", amount=amount)
        assert torch.equal(a.weight_mask, b.weight_mask)


def test_global_masks_equal_torch_prune_and_reach_target():
    torch.manual_seed(0)
    m = models.SimpleCNN(3, 10, (4, 8))
    ref = copy.deepcopy(m)
    prune.magnitude_prune(m, 0.6, scope="global")
    tprune.global_unstructured(prune.prunable(ref), pruning_method=tprune.L1Unstructured, amount=0.6)
    for (a, _), (b, _) in zip(prune.prunable(m), prune.prunable(ref)):
        assert torch.equal(a.weight_mask, b.weight_mask)
    m2 = models.SimpleCNN(3, 10, (4, 8))
    for target in (0.5, 0.8, 0.8, 0.9):  # repeated and increasing targets compose
        prune.prune_to_sparsity(m2, target, scope="global")
        assert abs(prune.sparsity(m2) - target) < 1e-3
    prune.remove_masks(m2)
    assert not any(hasattr(x, "weight_mask") for x in m2.modules())
    assert abs(prune.sparsity(m2) - 0.9) < 1e-3


def test_per_layer_target_removes_the_smallest_weights():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 6))
    w = m[0].weight.detach().clone()
    prune.remove_masks(prune.prune_to_sparsity(m, {"0": 0.75}, scope="layer"))
    s = prune.layer_sparsities(m)
    assert set(s) == {"0", "2"}
    assert s["0"] == pytest.approx(0.75, abs=1 / w.numel()) and s["2"] == 0
    kept = m[0].weight != 0
    assert w.abs()[kept].min() >= w.abs()[~kept].max()
    # an absolute target: the zeros already there count, a growing target prunes on, a smaller one never revives
    prune.prune_to_sparsity(m, {"0": 0.9, "2": 0.5}, scope="layer")
    assert prune.layer_sparsities(m)["0"] == pytest.approx(0.9, abs=1 / w.numel())
    prune.prune_to_sparsity(m, {"0": 0.5}, scope="layer")
    assert prune.layer_sparsities(m)["0"] == pytest.approx(0.9, abs=1 / w.numel())
    assert prune.layer_sparsities(m)["2"] == pytest.approx(0.5, abs=1 / 240)
    with pytest.raises(ValueError, match="target=1.5"):
        prune.prune_to_sparsity(m, 1.5, scope="layer")
    with pytest.raises(ValueError, match=r"target\['0'\]=1.5"):
        prune.prune_to_sparsity(m, {"0": 1.5}, scope="layer")
    with pytest.raises(ValueError, match="unknown layer"):
        prune.prune_to_sparsity(m, {"nope": 0.5}, scope="layer")
    with pytest.raises(ValueError, match="scope='global'"):
        prune.prune_to_sparsity(m, {"0": 0.5}, scope="global")


def test_per_layer_amounts_equal_torch_prune():
    torch.manual_seed(0)
    m = models.MLP(20, [16, 8], 4)
    ref = copy.deepcopy(m)
    prune.magnitude_prune(m, {"hidden.0": 0.5, "head": 3})
    tprune.l1_unstructured(ref.hidden[0], "weight", amount=0.5)
    tprune.l1_unstructured(ref.head, "weight", amount=3)
    assert torch.equal(m.hidden[0].weight_mask, ref.hidden[0].weight_mask)
    assert torch.equal(m.head.weight_mask, ref.head.weight_mask)
    assert not hasattr(m.hidden[1], "weight_mask")  # layers the mapping leaves out are not pruned
    with pytest.raises(ValueError, match="scope='global'"):
        prune.magnitude_prune(m, {"head": 0.5}, scope="global")


def test_agp_schedule_endpoints_and_shape():
    assert prune.agp_sparsity(0, 10, 0.9) == 0.0
    assert abs(prune.agp_sparsity(10, 10, 0.9) - 0.9) < 1e-12
    assert abs(prune.agp_sparsity(5, 10, 0.8, 0.2) - (0.8 + (0.2 - 0.8) * 0.5 ** 3)) < 1e-12
    s = [prune.agp_sparsity(t, 10, 0.9) for t in range(11)]
    steps = [b - a for a, b in zip(s, s[1:])]
    assert all(x > 0 for x in steps) and all(b < a for a, b in zip(steps, steps[1:]))  # fast, then slow


def test_masked_training_keeps_zeros():
    from nncompress.train import TrainConfig, fit

    torch.manual_seed(0)
    x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
    m = models.MLP(10, [16], 3)
    prune.prune_to_sparsity(m, 0.7, scope="layer")
    mk = prune.masks(m)
    fit(m, DeviceData(x, y), TrainConfig(epochs=2, batch_size=16, lr=1e-2), device="cpu", progress=False,
        callbacks=[prune.keep_masks_callback()])
    for name, mod in m.named_modules():
        if name in mk:
            assert torch.all(mod.weight_orig[mk[name] == 0] == 0)
    assert abs(prune.sparsity(m) - 0.7) < 0.01


# ----------------------------------------------------------------------------- structured

def test_physical_pruning_equals_zeroed_channels_cnn():
    torch.manual_seed(0)
    m = _randomize_bn(models.SimpleCNN(3, 10, (8, 16, 32), depth=2))
    keep = prune.select_channels(m, 0.5, "l1")
    small = prune.prune_channels(m, keep).eval()
    masked = prune.zero_channels(copy.deepcopy(m), keep).eval()
    x = torch.randn(4, 3, 16, 16)
    assert torch.allclose(small(x), masked(x), atol=1e-5)
    assert count_params(small) < count_params(m)
    assert type(small) is type(m) and not list(small._forward_pre_hooks.values())


def test_physical_pruning_resnet_inner_channels_only():
    torch.manual_seed(0)
    m = _randomize_bn(models.CifarResNet(8, 10))
    keep = prune.select_channels(m, 0.5, "fpgm")
    small = prune.prune_channels(m, keep).eval()
    masked = prune.zero_channels(copy.deepcopy(m), keep).eval()
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(small(x), masked(x), atol=1e-5)
    assert [st[-1].conv2.out_channels for st in small.stages] == [16, 32, 64]  # residual widths untouched
    assert [st[0].conv1.out_channels for st in small.stages] == [8, 16, 32]


def test_pruned_mlp_parameter_count_closed_form():
    a, h1, h2, c = 20, 12, 10, 4
    m = models.MLP(a, [h1, h2], c)
    keep = prune.select_channels(m, {"hidden.0": 0.25, "hidden.1": 0.5})
    small = prune.prune_channels(m, keep)
    k1, k2 = 9, 5
    assert count_params(small) == (a * k1 + k1) + (k1 * k2 + k2) + (k2 * c + c)
    x = torch.randn(3, a)
    assert torch.allclose(small(x), prune.zero_channels(copy.deepcopy(m), keep)(x), atol=1e-6)


def test_pruned_cnn_parameter_count_and_flops_closed_form():
    cin, w1, w2, c = 3, 8, 16, 10
    m = models.SimpleCNN(cin, c, (w1, w2))
    small = prune.structured_prune(m, 0.5, "l2")
    k1, k2 = w1 // 2, w2 // 2
    expect = (9 * cin * k1 + 2 * k1) + (9 * k1 * k2 + 2 * k2) + (k2 * c + c)
    assert count_params(small) == expect
    assert prune.channel_counts(small) == {"stages.0.0": k1, "stages.1.0": k2}
    # conv FLOPs on 8x8 input: 2 * 9 * cin * cout * H * W per conv (stage 2 after 2x2 pooling)
    conv_flops = 2 * 9 * cin * k1 * 64 + 2 * 9 * k1 * k2 * 16
    assert count_flops(small, (cin, 8, 8)) == conv_flops + 2 * k2 * c


def test_bn_gamma_and_apoz_channel_selection():
    m = _randomize_bn(models.SimpleCNN(3, 10, (4, 8)))
    m.stages[0][0][1].weight.data = torch.tensor([1.0, 0.01, 2.0, 0.02])
    keep = prune.select_channels(m, 0.5, "bn_gamma")
    assert keep["stages.0.0"].tolist() == [0, 2]
    keep = prune.select_channels(m, 0.5, "apoz", data=torch.randn(8, 3, 8, 8))
    assert len(keep["stages.0.0"]) == 2


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    for m in (_randomize_bn(models.SimpleCNN(3, 10, (8, 16), depth=2)), models.MLP(12, [10, 6], 3),
              _randomize_bn(models.CifarResNet(8, 10, widths=(8, 16, 32)))):
        small = prune.structured_prune(m, 0.4, "l1").eval()
        path = tmp_path / f"{type(m).__name__}.pt"
        prune.save_pruned(small, path)
        back = prune.load_pruned(path)
        assert prune.channel_counts(back) == prune.channel_counts(small)
        x = torch.randn(2, 3, 8, 8) if not isinstance(m, models.MLP) else torch.randn(2, 12)
        assert torch.allclose(back(x), small(x), atol=1e-6)


def _saved(tmp_path, small, **change):
    from nncompress.cache import load_checkpoint, save_checkpoint

    path = tmp_path / "pruned.pt"
    prune.save_pruned(small, path)
    entry = load_checkpoint(path)
    for key, value in change.items():
        entry[key] = value(entry[key])
    bad = tmp_path / "bad.pt"
    save_checkpoint(entry, bad)
    return bad


def test_load_pruned_validates_the_file_before_allocating(tmp_path, monkeypatch):
    small = prune.structured_prune(models.MLP(12, [10, 6], 3), 0.4, "l1")
    # an impossible width must fail fast: nothing of that size may ever be allocated
    allocated = []
    real_linear_init = nn.Linear.__init__

    def spy(self, cin, cout, *a, **kw):
        allocated.append(cin * cout)
        real_linear_init(self, cin, cout, *a, **kw)

    monkeypatch.setattr(nn.Linear, "__init__", spy)
    bad = _saved(tmp_path, small, channels=lambda c: {**c, "hidden.0": 10**9})
    width = small.arch_config()["hidden"][0]  # the family member the file describes
    with pytest.raises(ValueError, match=rf"bad\.pt.*channels\['hidden.0'\]=1000000000.*\[1, {width}\]"):
        prune.load_pruned(bad)
    assert max(allocated) < 10**6
    monkeypatch.undo()
    for channels, match in ((lambda c: {**c, "hidden.1": 0}, r"channels\['hidden.1'\]=0"),
                            (lambda c: {**c, "hidden.1": 2.5}, r"channels\['hidden.1'\]=2.5"),
                            (lambda c: {**c, "hidden.7": 2}, r"unknown unit.*hidden.7")):
        with pytest.raises(ValueError, match=r"bad\.pt.*" + match):
            prune.load_pruned(_saved(tmp_path, small, channels=channels))
    wrong = lambda sd: {**sd, "head.weight": torch.zeros(3, 1)}
    with pytest.raises(ValueError, match=r"bad\.pt.*state_dict.*head\.weight"):
        prune.load_pruned(_saved(tmp_path, small, state_dict=wrong))
    extra = lambda sd: {**sd, "stray.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"bad\.pt.*unexpected \['stray\.weight'\]"):
        prune.load_pruned(_saved(tmp_path, small, state_dict=extra))
    with pytest.raises(ValueError, match=r"bad\.pt.*architecture"):
        prune.load_pruned(_saved(tmp_path, small, arch=lambda a: {**a, "arch": "vgg"}))
    assert torch.equal(prune.load_pruned(_saved(tmp_path, small))(torch.ones(1, 12)), small.eval()(torch.ones(1, 12)))


def test_save_pruned_deep_cnn_whose_stage_widths_differ(tmp_path):
    torch.manual_seed(0)
    m = _randomize_bn(models.SimpleCNN(3, 5, (8, 16), depth=2))
    small = prune.prune_channels(m, prune.select_channels(m, {"stages.1.0": 0.25, "stages.1.1": 0.75})).eval()
    prune.save_pruned(small, tmp_path / "deep.pt")
    back = prune.load_pruned(tmp_path / "deep.pt")
    x = torch.randn(2, 3, 8, 8)
    assert prune.channel_counts(back) == prune.channel_counts(small) and torch.allclose(back(x), small(x), atol=1e-6)


def test_sensitivity_prunes_one_layer_at_a_time():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 3, (32,))
    m = _randomize_bn(models.SimpleCNN(3, 3, (4, 8)))
    s = prune.sensitivity(m, DeviceData(x, y), [0.0, 0.5], device="cpu")
    assert set(s) == {"stages.0.0", "stages.1.0"} and all(len(v) == 2 for v in s.values())
    base = (m(x).argmax(1) == y).float().mean().item()
    assert all(abs(v[0] - base) < 1e-6 for v in s.values())


# ----------------------------------------------------------------------------- lottery / rethinking

def test_imp_sparsity_formula():
    assert prune.imp_sparsity(0.2, 0) == 0.0
    assert abs(prune.imp_sparsity(0.2, 3) - (1 - 0.8 ** 3)) < 1e-12
    assert abs(prune.imp_sparsity(0.5, 4) - 0.9375) < 1e-12


def _tiny_splits():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, 0] > 0).long()
    d = DeviceData(x, y, name="tiny")
    return Splits("tiny", d, d.subset(slice(0, 0)), d, ["a", "b"], {"n": 96})


def test_lottery_levels_reach_imp_sparsity_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path))
    splits = _tiny_splits()
    cfg = {"arch": "mlp", "hidden": [16]}
    tc = {"epochs": 2, "batch_size": 32, "lr": 1e-2}
    v = prune.lottery_level("t", cfg, splits, tc, level=3, rate=0.5, rewind_epoch=1, device="cpu")
    assert abs(v["sparsity"] - prune.imp_sparsity(0.5, 3)) < 0.01
    n_entries = len(list(tmp_path.glob("*.pt")))
    assert n_entries == 4  # levels 0..3, each cached
    again = prune.lottery_level("t", cfg, splits, tc, level=3, rate=0.5, rewind_epoch=1, device="cpu")
    assert again["acc"] == v["acc"] and len(list(tmp_path.glob("*.pt"))) == n_entries
    prev = prune.lottery_level("t", cfg, splits, tc, level=2, rate=0.5, rewind_epoch=1, device="cpu")
    assert all(torch.all(v["masks"][n] <= prev["masks"][n]) for n in v["masks"])  # masks nest
    for control in prune.CONTROLS:
        r = prune.control_run("t", cfg, splits, tc, level=2, control=control, rate=0.5, rewind_epoch=1,
                              device="cpu")
        assert 0.0 <= r["acc"] <= 1.0 and abs(r["sparsity"] - 0.75) < 0.01


def test_controls_get_the_tickets_total_training(tmp_path, monkeypatch):
    """Issue 17: theta_k already had ``rewind_epoch`` dense epochs, so a fresh init (reinit,
    sign) trains ``epochs`` while the ticket and the random mask train ``epochs - k``."""
    from nncompress.prune import lottery

    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path))
    assert prune.control_epochs("reinit", 5, 2) == 5 and prune.control_epochs("sign", 5, 2) == 5
    assert prune.control_epochs("ticket", 5, 2) == 3 and prune.control_epochs("random_mask", 5, 2) == 3
    with pytest.raises(ValueError, match="control"):
        prune.control_epochs("bogus", 5, 2)
    seen = []
    real = lottery._train_masked

    def spy(*args, epochs=None, **kw):
        seen.append(epochs)
        return real(*args, epochs=epochs, **kw)

    monkeypatch.setattr(lottery, "_train_masked", spy)
    splits, cfg = _tiny_splits(), {"arch": "mlp", "hidden": [16]}
    tc = {"epochs": 3, "batch_size": 32, "lr": 1e-2}
    common = dict(level=1, rate=0.5, rewind_epoch=1, device="cpu")
    prune.lottery_level("t", cfg, splits, tc, **common)
    assert seen == [2]                      # the ticket: 1 dense epoch before the rewind point + 2
    for control, expected in (("reinit", 3), ("sign", 3), ("random_mask", 2)):
        seen.clear()
        prune.control_run("t", cfg, splits, tc, control=control, **common)
        assert seen == [expected], control


def test_scratch_budgets():
    assert prune.scratch_epochs(10, 400, 100, "E") == 10
    assert prune.scratch_epochs(10, 400, 100, "B") == 40
    full = models.SimpleCNN(3, 10, (8, 16))
    small = prune.structured_prune(full, 0.5)
    b = prune.scratch_budgets(full, small, (3, 8, 8), 10)
    assert b["E"] == 10 and b["B"] == round(10 * b["full_flops"] / b["pruned_flops"]) > 10


def test_recalibrate_bn_matches_data_statistics():
    torch.manual_seed(0)
    m = _randomize_bn(models.SimpleCNN(3, 10, (4, 8)))
    x = torch.randn(32, 3, 8, 8) * 2 + 1
    prune.recalibrate_bn(m, x, batch_size=32)
    h = m.stages[0][0][0](x)
    assert torch.allclose(m.stages[0][0][1].running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not m.training and m.stages[0][0][1].momentum == 0.1


def test_conv1d_channel_pruning_equals_zeroed_and_roundtrips(tmp_path):
    torch.manual_seed(0)
    m = models.Conv1DNet(10, (8, 12, 16)).eval()
    keep = prune.select_channels(m, 0.5, "l1")
    small = prune.prune_channels(m, keep).eval()
    x = torch.randn(3, 40)
    assert torch.allclose(small(x), prune.zero_channels(copy.deepcopy(m), keep)(x), atol=1e-6)
    # closed form: conv k=5 weights 5*cin*cout + cout biases, head k3*10 + 10
    k1, k2, k3 = 4, 6, 8
    assert count_params(small) == (5 * 1 * k1 + k1) + (5 * k1 * k2 + k2) + (5 * k2 * k3 + k3) + (k3 * 10 + 10)
    prune.save_pruned(small, tmp_path / "c1d.pt")
    back = prune.load_pruned(tmp_path / "c1d.pt")
    assert torch.allclose(back(x), small(x), atol=1e-6)


def test_separable_conv1d_is_refused_by_channel_pruning():
    with pytest.raises(TypeError, match="Conv1DNet"):
        prune.select_channels(models.Conv1DNet(10, (8, 8), separable=True), 0.5)


# ----------------------------------------------------------------------------- Taylor, global threshold

def test_taylor_importance_is_the_squared_gradient_of_a_channel_gate():
    """Independent reference: scale channel c of the BN output by t; dL/dt at t = 1 equals
    sum over the BN's gamma, beta of g * w (Molchanov et al. 2019, eq. 8), squared."""
    torch.manual_seed(0)
    m = _randomize_bn(models.SimpleCNN(3, 3, (4, 6))).eval()
    x, y = torch.randn(10, 3, 8, 8), torch.randint(0, 3, (10,))
    scores = prune.taylor_importance(m, (x, y), batch_size=10)
    assert set(scores) == {"stages.0.0", "stages.1.0"}
    bn = m.get_submodule("stages.0.0.1")
    for c in range(4):
        t = torch.ones((), requires_grad=True)

        def gate(_mod, _inp, out, c=c):
            scale = torch.ones(out.shape[1])
            scale = torch.where(torch.arange(out.shape[1]) == c, t, scale)
            return out * scale.view(1, -1, 1, 1)

        h = bn.register_forward_hook(gate)
        torch.nn.functional.cross_entropy(m(x), y).backward()
        h.remove()
        assert abs(float(t.grad) ** 2 - float(scores["stages.0.0"][c])) < 1e-5 * max(1.0, float(t.grad) ** 2)
    thin = prune.structured_prune(m, 0.5, "taylor", data=(x, y))
    assert prune.channel_counts(thin) == {"stages.0.0": 2, "stages.1.0": 3}
    with pytest.raises(ValueError, match="taylor"):
        prune.unit_scores(m, "taylor")


def test_global_keep_uses_one_threshold_across_layers():
    scores = {"a": torch.tensor([0.1, 0.9, 0.2, 0.8]), "b": torch.tensor([0.05, 0.01]), "c": torch.tensor([0.5, 0.6])}
    keep = prune.global_keep(scores, 0.5)           # 4 of 8 go: 0.01, 0.05, 0.1, 0.2
    assert keep["a"].tolist() == [1, 3] and keep["c"].tolist() == [0, 1]
    assert keep["b"].tolist() == [0]                # every channel below the threshold: its best one stays
    assert {n: len(v) for n, v in prune.global_keep(scores, 0.0).items()} == {"a": 4, "b": 2, "c": 2}
    with pytest.raises(ValueError, match="ratio"):
        prune.global_keep(scores, 1.0)
