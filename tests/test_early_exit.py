import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nncompress import early_exit as ee, models
from nncompress.data.device import DeviceData
from nncompress.train import fit

torch.set_num_threads(1)

CONFIGS = {
    "conv1d": ({"backbone": "conv1d", "widths": [8, 16, 16], "num_classes": 5}, (40,)),
    "cnn": ({"backbone": "cnn", "widths": [4, 8, 8], "num_classes": 4, "in_channels": 3}, (3, 16, 16)),
}


def _build(cfg):
    return models.build({"arch": "multi-exit", **cfg})


def _model(kind, seed=0):
    torch.manual_seed(seed)
    cfg, shape = CONFIGS[kind]
    m = _build(cfg).eval()
    # sharpen the untrained heads a little so that the exits disagree in confidence
    with torch.no_grad():
        for head in m.exits:
            head[-1].weight.mul_(8.0)
    return m, shape


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_forward_variants_agree(kind):
    m, shape = _model(kind)
    x = torch.randn(6, *shape)
    outs = m.forward_all(x)
    assert len(outs) == m.num_exits == 3
    logits, feats = m(x, return_features=True)
    assert torch.equal(logits, outs[-1]) and torch.equal(m(x), outs[-1])
    assert list(feats) == ["exit1", "exit2", "exit3"]


@pytest.mark.parametrize("kind", list(CONFIGS))
@pytest.mark.parametrize("criterion,level", [("confidence", 0.4), ("confidence", 0.8), ("entropy", 0.3),
                                             ("entropy", 0.7)])
def test_early_exit_matches_evaluating_every_exit(kind, criterion, level):
    m, shape = _model(kind)
    x = torch.randn(64, *shape)
    all_logits = torch.stack(m.forward_all(x))
    # a threshold that lets some, not all, samples out at the first exit
    first = ee.exit_scores(all_logits[0], criterion)
    threshold = first.quantile(level if criterion == "confidence" else 1 - level).item()
    exit_ref, pred_ref = ee.apply_rule(all_logits, threshold, criterion)
    out = ee.early_exit_predict(m, x, threshold, criterion)
    assert torch.equal(out["exit"], exit_ref)
    assert torch.equal(out["pred"], pred_ref)
    assert torch.allclose(out["logits"], all_logits[exit_ref, torch.arange(64)], atol=1e-5)
    # the rule by hand: first exit whose score passes, else the last
    scores = ee.exit_scores(all_logits, criterion)
    for i in range(64):
        ok = [(s >= threshold if criterion == "confidence" else s <= threshold) for s in scores[:, i].tolist()]
        first = next((j for j, o in enumerate(ok[:-1]) if o), len(ok) - 1)
        assert exit_ref[i] == first
    assert len(set(exit_ref.tolist())) > 1, "test setting should spread samples over the exits"


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_per_sample_flops_are_the_stages_actually_run(kind):
    m, shape = _model(kind)
    costs = ee.exit_costs(m, shape)
    assert costs["cumulative"] == [sum(costs["segment"][:j + 1]) + sum(costs["exit"][:j + 1]) for j in range(3)]
    # the segments are the model's stages: together they cost what the full forward pass does
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        m.forward_all(torch.randn(1, *shape))
    assert costs["cumulative"][-1] == counter.get_total_flops()
    x = torch.randn(50, *shape)
    threshold = ee.exit_scores(m.forward_all(x)[0]).median().item()
    out = ee.early_exit_predict(m, x, threshold, "confidence", costs)
    assert torch.equal(out["flops"], torch.tensor(costs["cumulative"])[out["exit"]])
    # count the dynamic run itself: only the work for the samples still active is done
    counter = FlopCounterMode(display=False)
    with counter:
        ee.early_exit_predict(m, x, threshold, "confidence", costs)
    assert counter.get_total_flops() == int(out["flops"].sum())
    assert 0 < out["flops"].float().mean() < costs["cumulative"][-1]


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_extreme_thresholds(kind):
    m, shape = _model(kind)
    x = torch.randn(40, *shape)
    costs = ee.exit_costs(m, shape)
    for t in (1.0 + 1e-6, 1.5):
        out = ee.early_exit_predict(m, x, t, "confidence", costs)
        assert (out["exit"] == m.num_exits - 1).all()
        assert torch.equal(out["pred"], m(x).argmax(1))
        assert (out["flops"] == costs["cumulative"][-1]).all()
    out = ee.early_exit_predict(m, x, 0.0, "confidence", costs)
    assert (out["exit"] == 0).all() and (out["flops"] == costs["cumulative"][0]).all()
    assert torch.equal(out["pred"], m.forward_all(x)[0].argmax(1))
    # entropy: <= 0 keeps everyone to the end, >= ln C lets everyone out first
    assert (ee.early_exit_predict(m, x, -1e-9, "entropy")["exit"] == m.num_exits - 1).all()
    assert (ee.early_exit_predict(m, x, ee.max_entropy(CONFIGS[kind][0]["num_classes"]) + 1e-6,
                                  "entropy")["exit"] == 0).all()


def test_sweep_and_overthinking():
    y = torch.tensor([0, 1, 2, 0])
    # exit 1 right on samples 0,1; exit 2 right on 0,2,3 -> sample 1 is overthought
    e1 = F.one_hot(torch.tensor([0, 1, 1, 1]), 3).float() * torch.tensor([[5.0], [5.0], [0.1], [0.1]])
    e2 = F.one_hot(torch.tensor([0, 0, 2, 0]), 3).float() * 5
    all_logits = torch.stack([e1, e2])
    o = ee.overthinking(all_logits, y)
    assert o["overthink"] == 0.25 and o["mask"].tolist() == [False, True, False, False]
    assert o["per_exit_acc"] == [0.5, 0.75] and o["oracle_acc"] == 1.0
    costs = {"cumulative": [10, 30]}
    rows = ee.sweep(all_logits, y, [0.0, 0.9, 1.5], costs)
    assert rows[0]["flops"] == 10 and rows[0]["acc"] == 0.5 and rows[0]["exit_frac"] == [1.0, 0.0]
    assert rows[2]["flops"] == 30 and rows[2]["acc"] == 0.75
    assert rows[1]["exit_frac"] == [0.5, 0.5] and rows[1]["acc"] == 1.0 and rows[1]["flops"] == 20


def test_objective_weights_and_kd():
    m, shape = _model("conv1d")
    x, y = torch.randn(8, *shape), torch.randint(0, 5, (8,))
    outs = m.forward_all(x)
    ces = [F.cross_entropy(o, y) for o in outs]
    loss, logits = ee.multi_exit_objective()(m, (x, y))
    assert torch.allclose(loss, sum(ces) / 3) and torch.equal(logits, outs[-1])
    loss, _ = ee.multi_exit_objective([1.0, 0.0, 0.0])(m, (x, y))
    assert torch.allclose(loss, ces[0])
    kd, _ = ee.multi_exit_objective([1.0, 0.0, 0.0], kd_alpha=1.0, kd_temperature=2.0)(m, (x, y))
    want = 4.0 * F.kl_div(F.log_softmax(outs[0] / 2, -1), F.softmax(outs[2] / 2, -1), reduction="batchmean")
    assert torch.allclose(kd, want, atol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        ee.multi_exit_objective([1.0])(m, (x, y))
    with pytest.raises(ValueError, match="kd_alpha"):
        ee.multi_exit_objective(kd_alpha=2.0)


def test_joint_training_learns_every_exit():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 40, generator=g)
    y = (x[:, :20].mean(1) > 0).long() + 2 * (x[:, 20:].mean(1) > 0).long()
    data = DeviceData(x, y, name="toy")
    m = _build({"backbone": "conv1d", "widths": [8, 8], "num_classes": 4})
    fit(m, data, dict(epochs=15, batch_size=50, lr=1e-2), objective=ee.multi_exit_objective(),
        device="cpu", progress=False)
    acc = (ee.all_exit_logits(m, data, device="cpu").argmax(-1) == y).float().mean(1)
    assert (acc > 0.6).all(), acc


def test_single_exit_and_bad_configs():
    m = _build({"backbone": "conv1d", "widths": [8, 16], "num_classes": 3, "exit_after": [-1]})
    assert m.num_exits == 1 and m(torch.randn(2, 40)).shape == (2, 3)
    with pytest.raises(ValueError, match="backbone='mlp'"):
        _build({"backbone": "mlp", "num_classes": 3})
    with pytest.raises(ValueError, match="exit_after"):
        _build({"widths": [8, 8], "num_classes": 3, "exit_after": [0]})
    with pytest.raises(ValueError, match="criterion='margin'"):
        ee.exit_scores(torch.randn(2, 3), "margin")
    assert ee.max_entropy(10) == pytest.approx(math.log(10))
