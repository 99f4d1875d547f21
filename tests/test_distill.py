import math

import pytest
import torch
import torch.nn.functional as F

from nncompress import distill


def test_softmax_t_reduces_to_softmax_and_sums_to_one():
    z = torch.randn(5, 10)
    assert torch.allclose(distill.softmax_t(z, 1.0), torch.softmax(z, -1))
    for T in (0.5, 2.0, 20.0):
        assert torch.allclose(distill.softmax_t(z, T).sum(-1), torch.ones(5))


def test_softmax_t_limits():
    z = torch.tensor([[3.0, 1.0, -2.0, 0.5]])
    assert torch.allclose(distill.softmax_t(z, 1e4), torch.full((1, 4), 0.25), atol=1e-3)
    assert distill.softmax_t(z, 1e-3)[0, 0] > 0.999
    ent = [-(p * p.log()).sum().item() for p in (distill.softmax_t(z, T)[0] for T in (1, 2, 4, 8))]
    assert all(a < b for a, b in zip(ent, ent[1:]))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_softmax_t_rejects_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature"):
        distill.softmax_t(torch.zeros(1, 3), bad)


def test_kd_loss_matches_its_definition():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    T, a = 3.0, 0.7
    p = torch.softmax(t / T, -1)
    log_q = torch.log_softmax(s / T, -1)
    kl = (p * (p.log() - log_q)).sum(-1).mean()  # KL(p || q), averaged over the batch
    expected = a * T * T * kl + (1 - a) * F.cross_entropy(s, y)
    assert torch.allclose(distill.kd_loss(s, t, y, T, a), expected, atol=1e-6)


def test_kd_loss_zero_when_student_equals_teacher():
    z = torch.randn(4, 10)
    assert distill.kd_loss(z, z.clone(), None, 4.0, 1.0).abs().item() < 1e-6


@pytest.mark.parametrize("T", [1.0, 2.0, 5.0, 20.0])
def test_kd_gradient_is_hintons_eq2_times_T2(T):
    """dL/dz_i = T^2 * (1/T)(q_i - p_i) / N  (Hinton 2015 eq. 2, batch mean over N)."""
    torch.manual_seed(1)
    n = 6
    s = torch.randn(n, 10, requires_grad=True)
    t = torch.randn(n, 10)
    distill.kd_loss(s, t, None, T, 1.0).backward()
    q = torch.softmax(s.detach() / T, -1)
    p = torch.softmax(t / T, -1)
    assert torch.allclose(s.grad, T * T * (q - p) / T / n, atol=1e-6)


def test_kd_high_temperature_limit_is_logit_matching():
    """For large T and zero-mean logits, T^2 (1/T)(q - p) -> (z - v)/K (Hinton 2015, sec. 2.1)."""
    torch.manual_seed(2)
    k, n, T = 10, 4, 500.0
    s = torch.randn(n, k); s = (s - s.mean(1, keepdim=True)).requires_grad_(True)
    t = torch.randn(n, k); t = t - t.mean(1, keepdim=True)
    distill.kd_loss(s, t, None, T, 1.0).backward()
    assert torch.allclose(s.grad * n, (s.detach() - t) / k, atol=1e-3)


def test_kd_loss_argument_checks():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="target=None"):
        distill.kd_loss(z, z, None, 4.0, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        distill.kd_loss(z, z, torch.zeros(2, dtype=torch.long), 4.0, 1.5)


def test_kd_objective_uses_cached_teacher_logits():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y, tl = torch.randn(5, 4), torch.randint(0, 3, (5,)), torch.randn(5, 3)
    obj = distill.KDObjective(None, 2.0, 0.5)
    loss, logits = obj(model, (x, y, tl))
    assert torch.allclose(loss, distill.kd_loss(model(x), tl, y, 2.0, 0.5))
    with pytest.raises(ValueError, match="teacher"):
        obj(model, (x, y))


def test_tune_class_bias_recovers_a_suppressed_class():
    torch.manual_seed(0)
    y = torch.randint(0, 4, (400,))
    logits = F.one_hot(y, 4).float() * 3 + 0.3 * torch.randn(400, 4)
    logits[:, 2] -= 4.0  # class 2 suppressed, as after a transfer set without it
    shift, acc = distill.tune_class_bias(logits, y, 2)
    assert 1.0 < shift < 7.0 and acc > 0.95  # any shift in (1, 7) undoes the -4
    base = (logits.argmax(1) == y).float().mean().item()
    assert acc > base


def test_labelled_subset_is_paired_and_can_drop_a_class():
    from nncompress.data import DeviceData

    d = DeviceData(torch.randn(100, 3), torch.arange(100) % 5)
    a, ia, _ = distill.labelled_subset(d, 30, seed=1)
    b, ib, _ = distill.labelled_subset(d, 30, seed=1)
    assert torch.equal(ia, ib) and len(a) == 30
    c, _, cfg = distill.labelled_subset(d, 30, seed=1, exclude_class=2)
    assert (c.y != 2).all() and cfg["exclude_class"] == 2
    with pytest.raises(ValueError, match="n_labelled"):
        distill.labelled_subset(d, 101, seed=0)
