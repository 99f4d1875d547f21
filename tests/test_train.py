import pytest
import torch

from nncompress import models, train
from nncompress.data import DeviceData, Splits


def _blobs(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    x = centers[y] + 0.5 * torch.randn(n, 2, generator=g)
    return DeviceData(x, y)


def _splits():
    d = _blobs()
    return Splits("blobs", d.subset(slice(0, 400)), d.subset(slice(400, 500)), d.subset(slice(500, 600)),
                  ["a", "b", "c"], {"n": 600})


def test_select_device():
    assert train.select_device("cpu").type == "cpu"
    assert train.select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device='tpu'"):
        train.select_device("tpu")


def test_fit_learns_and_records_history():
    s = _splits()
    torch.manual_seed(0)
    m = models.MLP(2, [16], 3)
    h = train.fit(m, s.train, dict(epochs=15, lr=1e-2, batch_size=32), val=s.val, device="cpu")
    assert len(h.epoch) == 15 and len(h.val_acc) == 15
    assert h.train_loss[-1] < h.train_loss[0]
    assert train.evaluate(m, s.test, device="cpu")["acc"] > 0.9


def test_fit_is_deterministic_given_seed():
    s = _splits()
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        m = models.MLP(2, [8], 3)
        train.fit(m, s.train, dict(epochs=3, batch_size=50), seed=5, device="cpu")
        outs.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(outs[0], outs[1])


def test_fit_accepts_a_dataloader_and_a_custom_objective():
    s = _splits()
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(s.train.x, s.train.y), batch_size=32,
                                     shuffle=True)
    seen = []

    def objective(model, batch):
        seen.append(len(batch))
        logits = model(batch[0])
        return torch.nn.functional.cross_entropy(logits, batch[1]), logits

    m = models.MLP(2, [16], 3)
    train.fit(m, dl, dict(epochs=10, lr=1e-2), objective=objective, device="cpu")
    assert seen and train.evaluate(m, s.test, device="cpu")["acc"] > 0.9


def test_lr_schedules():
    c = train.TrainConfig(schedule="cosine")
    assert c.lr_factor(0) == 1.0 and abs(c.lr_factor(1.0)) < 1e-12
    st = train.TrainConfig(schedule="step", milestones=(0.5, 0.75), gamma=0.1)
    assert st.lr_factor(0.4) == 1.0 and abs(st.lr_factor(0.6) - 0.1) < 1e-12 and abs(st.lr_factor(0.8) - 0.01) < 1e-12


@pytest.mark.parametrize("bad,match", [({"optimizer": "rmsprop"}, "optimizer='rmsprop'"),
                                       ({"epochs": -1}, "epochs=-1"), ({"lr": 0}, "lr=0"),
                                       ({"lrr": 1}, "unknown training setting")])
def test_train_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        train.TrainConfig.coerce(bad)


def test_get_or_train_reuses_the_checkpoint():
    s = _splits()
    cfg = {"arch": "mlp", "hidden": [8]}
    m1, h1, c1 = train.get_or_train("t", cfg, s, dict(epochs=2), seed=0, device="cpu")
    m2, h2, c2 = train.get_or_train("t", cfg, s, dict(epochs=2), seed=0, device="cpu")
    assert (c1, c2) == (False, True)
    assert h1.to_dict() == h2.to_dict()
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    _, _, c3 = train.get_or_train("t", cfg, s, dict(epochs=3), seed=0, device="cpu")
    assert not c3


def test_get_or_train_refuses_an_undescribed_objective():
    with pytest.raises(ValueError, match="objective_config"):
        train.get_or_train("t", {"arch": "mlp", "hidden": [4]}, _splits(), objective=lambda m, b: None)


def test_channels_last_learns_the_same_as_default():
    torch.manual_seed(0)
    x = torch.randn(64, 3, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()
    d = DeviceData(x, y)
    outs = []
    for cl in (False, True):
        torch.manual_seed(0)
        m = models.SimpleCNN(3, 2, (4, 8), 1)
        train.fit(m, d, dict(epochs=2, batch_size=16), device="cpu", channels_last=cl, seed=0)
        outs.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.allclose(outs[0], outs[1], atol=1e-4)


def test_fit_restores_the_processor_denormal_mode():
    """fit flushes denormals for speed while training, but leaves the global flag as it found it."""
    before = train.denormals_flushed()
    s = _splits()
    train.fit(models.MLP(2, [4], 3), s.train, dict(epochs=1), device="cpu")
    assert train.denormals_flushed() == before
