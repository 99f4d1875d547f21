"""Peer and generation distillation (nncompress.distill.peers): the born-again objective of
Furlanello et al. 2018 (teacher-only, no label term), its equivalence with a label-refinery
round (Bagherinezhad et al. 2018) without augmentation, the DML loss for K > 2 peers against
a hand-written formula (Zhang et al. 2018, eq. 10), the cache sharing that chapter 06's
paired comparisons rely on, and chapter 06's parameter cross-checks.

The general DML / TA / refinery smoke tests live in tests/test_distill_ensembles.py."""
import inspect
import math

import pytest
import torch
import torch.nn.functional as F

import nncompress as nc
from nncompress.course import chapters
from nncompress.distill import ensembles, kd, peers

torch.set_num_threads(1)

CONV8 = {"arch": "conv1d", "widths": [8, 8, 8]}


def _tiny_splits():
    return nc.data.load("mnist1d", seed=0, n_train=400, n_test=100, n_val=50)


def _kl_by_hand(p_rows, q_rows):
    """Mean over rows of sum_i p_i ln(p_i / q_i), in plain Python floats (0 ln 0 = 0)."""
    total = 0.0
    for p, q in zip(p_rows.tolist(), q_rows.tolist()):
        total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)
    return total / len(p_rows)


def test_born_again_objective_is_teacher_only_at_the_papers_setting():
    """BAN sec. 3 eq. 2: the student minimises a loss between its output and the teacher's,
    with no label term.  The library default (T = 1, alpha = 1) must not depend on y and must
    equal KL(p_teacher || p_student), computed here by hand."""
    torch.manual_seed(0)
    model = nc.models.build({**CONV8, "num_classes": 10})
    x = torch.randn(6, 40)
    t_logits = torch.randn(6, 10) * 3
    y = torch.randint(0, 10, (6,))
    obj = kd.KDObjective(None, temperature=1.0, alpha=1.0)
    loss, s_logits = obj(model, (x, y, t_logits))
    loss_other_labels, _ = obj(model, (x, (y + 3) % 10, t_logits))
    assert loss.item() == pytest.approx(loss_other_labels.item(), abs=1e-7)  # no label term
    expected = _kl_by_hand(F.softmax(t_logits, 1), F.softmax(s_logits.detach(), 1))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    defaults = inspect.signature(peers.born_again).parameters
    assert defaults["temperature"].default == 1.0 and defaults["alpha"].default == 1.0


def test_refinery_round_has_the_gradient_of_a_born_again_generation():
    """Soft-target cross-entropy -sum p ln q and KL(p || q) differ by H(p), a constant for the
    student: without augmentation a refinery round and a born-again generation (T = 1,
    alpha = 1) get the same gradient on the same batch."""
    torch.manual_seed(1)
    model = nc.models.build({**CONV8, "num_classes": 10})
    x = torch.randn(8, 40)
    y = torch.randint(0, 10, (8,))
    t_logits = torch.randn(8, 10) * 2
    p = F.softmax(t_logits, 1)

    def grads(objective, batch):
        model.zero_grad()
        loss, _ = objective(model, batch)
        loss.backward()
        return loss.item(), [q.grad.clone() for q in model.parameters()]

    l_ban, g_ban = grads(kd.KDObjective(None, 1.0, 1.0), (x, y, t_logits))
    l_ref, g_ref = grads(ensembles.soft_target_objective, (x, y, p))
    entropy = -(p * p.log()).sum(1).mean().item()
    assert l_ref - l_ban == pytest.approx(entropy, abs=1e-5)
    for a, b in zip(g_ban, g_ref):
        assert torch.allclose(a, b, atol=1e-6)


def test_dml_loss_for_three_peers_matches_the_formula():
    """Zhang et al. 2018 eq. 10 with K = 3: L_k = CE_k + (1/2) sum_{l != k} KL(p_l || p_k)."""
    torch.manual_seed(2)
    z = [torch.randn(4, 5) * 2 for _ in range(3)]
    y = torch.tensor([0, 3, 1, 4])
    losses = peers.dml_losses(z, y)
    for k in range(3):
        pk = F.softmax(z[k], 1)
        ce = -sum(math.log(pk[i, y[i]].item()) for i in range(4)) / 4
        kl = sum(_kl_by_hand(F.softmax(z[l], 1), pk) for l in range(3) if l != k) / 2
        assert losses[k].item() == pytest.approx(ce + kl, rel=1e-5)


def test_born_again_generation_zero_is_the_scratch_student_and_settings_are_keyed(tmp_path, monkeypatch):
    """Chapter 06 reads generation 0 as its 'alone' model (one cache entry), and a born-again
    generation trained with another T / alpha is a different cache entry."""
    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path))
    splits = _tiny_splits()
    cfg = nc.train.TrainConfig(epochs=1, batch_size=50, lr=1e-2)
    alone, _, cached = kd.train_student("t-s", CONV8, splits, cfg, seed=4, n_labelled=200,
                                        device="cpu", progress=False)
    assert not cached
    gens = peers.born_again("t-s", CONV8, splits, cfg, seed=4, generations=1, n_labelled=200,
                            device="cpu", progress=False)
    assert gens[0][0].cache_key == alone.cache_key
    for a, b in zip(alone.parameters(), gens[0][0].parameters()):
        assert torch.equal(a, b)
    hinton = peers.born_again("t-s", CONV8, splits, cfg, seed=4, generations=1, n_labelled=200,
                              temperature=4.0, alpha=0.9, device="cpu", progress=False)
    assert hinton[0][0].cache_key == alone.cache_key
    assert hinton[1][0].cache_key != gens[1][0].cache_key
    with pytest.raises(ValueError, match="generations"):
        peers.born_again("t-s", CONV8, splits, cfg, seed=4, generations=-1, device="cpu")


def test_a_single_dml_peer_is_the_scratch_student(tmp_path, monkeypatch):
    """The paired 'DML peer 0 vs alone' comparison needs the same initial weights, labelled
    subset and batch order: with K = 1 (no mutual term) train_peers must reproduce the scratch
    student of the same seed exactly."""
    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path))
    splits = _tiny_splits()
    cfg = nc.train.TrainConfig(epochs=2, batch_size=50, lr=1e-2)
    alone, _, _ = kd.train_student("t-s", CONV8, splits, cfg, seed=6, n_labelled=200,
                                   device="cpu", progress=False)
    (peer0,), _, _ = peers.train_peers("t-dml", [CONV8], splits, cfg, seed=6, n_labelled=200,
                                       device="cpu", progress=False)
    for a, b in zip(alone.parameters(), peer0.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def _ch06(**overrides):
    return nc.course.resolve("06_peers_and_generations", {"preset": "cpu", **overrides})


def test_chapter06_defaults_share_chapter01s_protocol_and_check_the_sweep():
    p, p01 = _ch06(), nc.course.resolve("01_knowledge_distillation", {"preset": "cpu"})
    for name in ("data", "n_train", "n_test", "n_val", "n_labelled", "teacher", "teacher_epochs",
                 "teacher_lr", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "seed"):
        assert p[name] == p01[name], name  # the teacher is chapter 01's cache entry
    assert p.teacher in p.teachers and p.sweep_seeds <= p.n_seeds and p.n_seeds >= 5
    with pytest.raises(nc.course.params.ParameterError, match="teachers"):
        _ch06(teachers=["conv1d-16", "conv1d-32"])
    assert _ch06(sweep_seeds=6, n_seeds=2).sweep_seeds == 6   # at most n_seeds are used: seeds[:6]
