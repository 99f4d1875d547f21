"""Specialist ensembles (Hinton 2015 sec. 5) and peer / generation distillation (DML, BAN, TA, refinery)."""
import math

import pytest
import torch
import torch.nn.functional as F

import nncompress as nc
from nncompress.data.device import DeviceData
from nncompress.distill import ensembles, peers

torch.set_num_threads(1)


def _probs(n, c, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return F.softmax(torch.randn(n, c, generator=g) * scale, dim=1)


def test_kl_zero_for_identical_and_positive_otherwise():
    p, q = _probs(16, 7, 0), _probs(16, 7, 1)
    assert torch.allclose(ensembles.kl_rows(p, p), torch.zeros(16), atol=1e-6)
    assert (ensembles.kl_rows(p, q) > 0).all()
    onehot = F.one_hot(torch.arange(4), 4).float()  # 0 ln 0 = 0
    assert torch.allclose(ensembles.kl_rows(onehot, onehot), torch.zeros(4))
    assert torch.allclose(ensembles.kl_rows(p, q), F.kl_div(q.log(), p, reduction="none").sum(1), atol=1e-5)
    z = torch.randn(5, 6)
    y = torch.randint(0, 6, (5,))
    l1, l2 = peers.dml_losses([z, z.clone()], y)
    assert torch.allclose(l1, F.cross_entropy(z, y), atol=1e-6)  # identical peers: the KL term is zero
    assert torch.allclose(l2, F.cross_entropy(z, y), atol=1e-6)


def test_groups_found_on_constructed_covariance():
    # three blocks of classes that co-vary strongly inside the block, not across
    blocks = [[0, 3, 5], [1, 2], [4, 6, 7]]
    cov = torch.zeros(8, 8)
    for b in blocks:
        for i in b:
            for j in b:
                cov[i, j] = 1.0 if i == j else 0.6
    assert ensembles.confusable_groups(None, 3, covariance=cov) == sorted(blocks, key=lambda b: b[0])
    with pytest.raises(ValueError, match="k=9"):
        ensembles.confusable_groups(None, 9, covariance=cov)
    # and from predicted distributions: mass shared inside pairs (0,1) and (2,3)
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(400):
        pair = [(0, 1), (2, 3)][int(torch.randint(2, (1,), generator=g))]
        w = float(torch.rand(1, generator=g))
        p = torch.full((5,), 0.01)
        p[pair[0]], p[pair[1]] = w, 1 - w
        rows.append(p / p.sum())
    groups = ensembles.confusable_groups(torch.stack(rows), 3)
    assert [0, 1] in groups and [2, 3] in groups


def test_combination_reduces_to_generalist_when_no_specialist_fires():
    p_g = _probs(10, 6, 0)
    groups = [[0, 1], [2, 3]]
    sp = [_probs(10, 3, 1), _probs(10, 3, 2)]
    q = ensembles.combine_specialists(p_g, sp, groups, active=torch.zeros(10, 2, dtype=torch.bool), steps=20)
    assert torch.allclose(q, p_g, atol=1e-6)
    # a specialist that agrees with the generalist (aggregated) changes nothing either
    agree = [ensembles.aggregate_to_group(p_g, g) for g in groups]
    q2 = ensembles.combine_specialists(p_g, agree, groups, active=torch.ones(10, 2, dtype=torch.bool), steps=50)
    assert torch.allclose(q2, p_g, atol=1e-3)


def test_combination_objective_decreases_and_moves_toward_specialist():
    p_g = _probs(32, 6, 0, scale=1.0)
    groups = [[0, 1, 2], [3, 4]]
    sp = [_probs(32, 4, 3, scale=3.0), _probs(32, 3, 4, scale=3.0)]
    active = torch.ones(32, 2, dtype=torch.bool)
    q, hist = ensembles.combine_specialists(p_g, sp, groups, active=active, steps=150,
                                            return_history=True)
    assert hist[-1] < hist[0] - 1e-3
    assert all(b <= a + 1e-6 for a, b in zip(hist, hist[1:]))  # gradient descent: monotone
    assert torch.allclose(q.sum(1), torch.ones(32), atol=1e-5)
    before = ensembles.kl_rows(sp[0], ensembles.aggregate_to_group(p_g, groups[0])).mean()
    after = ensembles.kl_rows(sp[0], ensembles.aggregate_to_group(q, groups[0])).mean()
    assert after < before
    # default activation: only specialists whose group holds the generalist's top class
    act = ensembles.active_specialists(p_g, groups, top_n=1)
    top = p_g.argmax(1)
    assert torch.equal(act[:, 0], top < 3) and torch.equal(act[:, 1], (top == 3) | (top == 4))


def test_specialist_data_half_special_half_rest_with_dustbin():
    y = torch.arange(10).repeat(20)
    data = DeviceData(torch.randn(200, 40), y)
    sub, idx = ensembles.specialist_data(data, [2, 7], seed=0)
    assert len(sub) == 80  # 40 special + 40 others
    assert (sub.y < 2).sum() == 40 and (sub.y == 2).sum() == 40
    assert torch.equal(sub.y[y[idx] == 7], torch.ones_like(sub.y[y[idx] == 7]))
    assert torch.equal(ensembles.specialist_targets(torch.tensor([2, 7, 0, 9]), [2, 7]), torch.tensor([0, 1, 2, 2]))


def test_specialist_from_generalist_matches_generalist_on_its_classes():
    torch.manual_seed(0)
    gen = nc.models.build({"arch": "conv1d", "widths": [8, 8, 8], "num_classes": 10})
    spec = ensembles.specialist_from_generalist(gen, [1, 4, 6])
    x = torch.randn(5, 40)
    zg, zs = gen(x), spec(x)
    assert zs.shape == (5, 4)
    assert torch.allclose(zs[:, :3], zg[:, [1, 4, 6]], atol=1e-5)
    assert spec.head is not gen.head and gen.head.out_features == 10


def _tiny_splits():
    return nc.data.load("mnist1d", seed=0, n_train=400, n_test=100, n_val=50)


def test_dml_with_one_peer_equals_plain_ce_training():
    splits = _tiny_splits()
    cfg = nc.train.TrainConfig(epochs=2, batch_size=50, lr=1e-2)
    mc = {"arch": "conv1d", "widths": [8, 8, 8]}
    torch.manual_seed(3)
    alone = nc.models.for_data(mc, splits)
    group = peers.PeerGroup([nc.models.for_data(mc, splits)])
    group.peers[0].load_state_dict(alone.state_dict())
    nc.train.fit(alone, splits.train, cfg, seed=5, device="cpu", progress=False)
    nc.train.fit(group, splits.train, cfg, objective=peers.DMLObjective(), seed=5, device="cpu", progress=False)
    for a, b in zip(alone.parameters(), group.peers[0].parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_dml_step_alternating_and_joint_update_train_both_peers():
    splits = _tiny_splits()
    torch.manual_seed(0)
    ps = [nc.models.for_data({"arch": "conv1d", "widths": [8, 8, 8]}, splits) for _ in range(2)]
    before = [p.head.weight.clone() for p in ps]
    opts = [torch.optim.SGD(p.parameters(), lr=0.1) for p in ps]
    batch = next(splits.train.batches(64))
    losses = peers.dml_step(ps, opts, batch)
    assert len(losses) == 2 and all(l > 0 for l in losses)
    assert all(not torch.equal(b, p.head.weight) for b, p in zip(before, ps))
    # the ensemble forward is a log-probability
    g = peers.PeerGroup(ps)
    assert torch.allclose(g(batch[0]).exp().sum(1), torch.ones(len(batch[0])), atol=1e-5)


def test_label_entropy_and_refine_labels():
    assert peers.label_entropy(F.one_hot(torch.tensor([0, 2]), 3).float()) == pytest.approx(0.0)
    assert peers.label_entropy(torch.full((4, 5), 0.2)) == pytest.approx(torch.log(torch.tensor(5.0)).item(), abs=1e-5)
    splits = _tiny_splits()
    torch.manual_seed(0)
    m = nc.models.for_data({"arch": "conv1d", "widths": [8, 8, 8]}, splits)
    lab = peers.refine_labels(m, splits.test, device="cpu")
    assert lab.shape == (100, 10) and torch.allclose(lab.sum(1), torch.ones(100), atol=1e-5)


def test_born_again_ta_and_refinery_run_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path))
    splits = _tiny_splits()
    cfg = nc.train.TrainConfig(epochs=1, batch_size=50, lr=1e-2)
    mc = {"arch": "conv1d", "widths": [8, 8, 8]}
    gens = peers.born_again("t-ban", mc, splits, cfg, seed=0, generations=2, n_labelled=200,
                            device="cpu", progress=False)
    assert len(gens) == 3 and len({g[0].cache_key for g in gens}) == 3
    again = peers.born_again("t-ban", mc, splits, cfg, seed=0, generations=1, n_labelled=200,
                             device="cpu", progress=False)
    assert [g[0].cache_key for g in again] == [g[0].cache_key for g in gens[:2]]
    chain = peers.teacher_assistant_kd("t-ta", [{"arch": "conv1d", "widths": [16, 16, 16]}, mc], gens[0][0],
                                       splits, cfg, seed=0, n_labelled=200, device="cpu", progress=False)
    assert len(chain) == 2 and chain[-1].head.in_features == 8
    rounds = peers.label_refinery("t-ref", mc, splits, cfg, seed=0, rounds=1, n_labelled=200,
                                  device="cpu", progress=False)
    assert peers.label_entropy(rounds[0][1]) == pytest.approx(0.0) and peers.label_entropy(rounds[1][1]) > 0
    ps, hist, cached = peers.train_peers("t-dml", [mc, mc], splits, cfg, seed=0, n_labelled=200,
                                         device="cpu", progress=False)
    assert len(ps) == 2 and not cached
    assert peers.train_peers("t-dml", [mc, mc], splits, cfg, seed=0, n_labelled=200,
                             device="cpu", progress=False)[2]


def test_train_specialist_hard_and_soft_are_cached_and_start_from_the_generalist():
    splits = _tiny_splits()
    cfg = nc.train.TrainConfig(epochs=1, batch_size=50, lr=1e-3)
    gen, _, _ = nc.train.get_or_train("t-gen", {"arch": "conv1d", "widths": [8, 8, 8]}, splits, cfg, seed=0,
                                      device="cpu", progress=False)
    for soft in (False, True):
        spec, hist, cached = ensembles.train_specialist("t-spec", gen, [1, 7], splits, cfg, seed=0, soft=soft,
                                                        device="cpu", progress=False)
        assert spec.head.out_features == 3 and not cached and len(hist.epoch) == 1
        assert ensembles.train_specialist("t-spec", gen, [1, 7], splits, cfg, seed=0, soft=soft,
                                          device="cpu", progress=False)[2]
    obj = ensembles.SpecialistObjective(temperature=2.0, alpha=1.0)
    z = torch.randn(4, 3)
    p = F.softmax(z / 2.0, dim=1)
    model = lambda x: x  # noqa: E731 - identity "model": the logits are the input
    loss, _ = obj(model, (z, torch.zeros(4, dtype=torch.long), p))
    assert abs(loss.item()) < 1e-5  # soft targets equal to the model's own output: zero loss


def test_aggregate_logits_softmax_at_T_is_the_summed_probabilities_at_T():
    # derivation: exp(z_d / T) = sum_{j not in g} exp(z_j / T)  =>  softmax(z_agg / T) = aggregated softmax(z / T)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20, 7, generator=g, dtype=torch.float64) * 3
    for group in ([1, 4], [0], [2, 3, 5, 6]):
        for T in (1.0, 2.0, 5.0):
            agg = ensembles.aggregate_logits(z, group, T)
            assert agg.shape == (20, len(group) + 1)
            want = ensembles.aggregate_to_group(F.softmax(z / T, 1), group)
            assert torch.allclose(F.softmax(agg / T, 1), want, atol=1e-12)
    # hand-computed case: z = [0, ln 2, ln 3], group [0]: the T = 1 dustbin logit is ln(2 + 3) = ln 5,
    # the T = 2 one is 2 ln(sqrt 2 + sqrt 3) = ln 9.899 > ln 5
    z = torch.tensor([[0.0, math.log(2), math.log(3)]], dtype=torch.float64)
    assert ensembles.aggregate_logits(z, [0], 1.0)[0, 1].item() == pytest.approx(math.log(5))
    assert ensembles.aggregate_logits(z, [0], 2.0)[0, 1].item() == pytest.approx(2 * math.log(math.sqrt(2) + math.sqrt(3)))
    with pytest.raises(ValueError, match="temperature=0"):
        ensembles.aggregate_logits(z, [0], 0)
    with pytest.raises(ValueError, match="no dustbin"):
        ensembles.aggregate_logits(z, [0, 1, 2], 1.0)


def test_soft_targets_are_consistent_at_T1_and_the_T_summed_ones_over_predict_the_dustbin():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(50, 10, generator=g, dtype=torch.float64) * 2
    group, T = [2, 5, 7], 2.0
    at_t1 = ensembles.aggregate_to_group(F.softmax(z, 1), group)  # what the generalist says at inference
    # a specialist that matched the targets exactly has logits log(targets) * T + const; read it at T = 1
    new = ensembles.specialist_soft_targets(z, group, T)
    assert torch.allclose(new.sum(1), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(F.softmax(T * new.log(), 1), at_t1, atol=1e-10)
    old = ensembles.aggregate_to_group(F.softmax(z / T, 1), group)  # the defect: summed at T
    old_at_t1 = F.softmax(T * old.log(), 1)
    assert (old_at_t1[:, -1] > at_t1[:, -1] + 1e-6).all()  # T logsumexp(z/T) > logsumexp(z) for T > 1
    # at T = 1 both constructions agree
    assert torch.allclose(ensembles.specialist_soft_targets(z, group, 1.0), at_t1, atol=1e-12)


def test_dustbin_log_shift_undoes_the_oversampling_prior_shift():
    # 30 % of the labels in the group; the specialist's data is 50/50: shift = ln(0.7 / 0.3)
    y = torch.tensor([0] * 30 + [1] * 70)
    assert ensembles.dustbin_log_shift(y, [0]) == pytest.approx(math.log(0.7 / 0.3))
    # a majority group (80 %): all 80 inside + the 20 others, nothing oversampled: no shift
    y = torch.tensor([0] * 80 + [1] * 20)
    assert ensembles.dustbin_log_shift(y, [0]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="group"):
        ensembles.dustbin_log_shift(torch.zeros(5, dtype=torch.long), [0])
    # prior shift by hand: true posterior p, trained on the oversampled set the model learns p * w (renormalised);
    # adding the shift to the dustbin logit gives p back
    pi, rho = 0.3, 0.5
    p = torch.tensor([[0.2, 0.8], [0.6, 0.4]], dtype=torch.float64)  # [special, dustbin]
    w = torch.tensor([rho / pi, (1 - rho) / (1 - pi)], dtype=torch.float64)
    biased = p * w / (p * w).sum(1, keepdim=True)
    fixed = F.softmax(ensembles.correct_dustbin(biased.log(), math.log(rho * (1 - pi) / (pi * (1 - rho)))), 1)
    assert torch.allclose(fixed, p, atol=1e-12)
    z = torch.zeros(2, 3)
    assert torch.equal(ensembles.correct_dustbin(z, 1.5)[:, -1], torch.full((2,), 1.5)) and z.sum() == 0


def test_clustering_matrix_is_what_confusable_groups_clusters():
    p = _probs(200, 6, 3)
    cov = ensembles.prediction_covariance(p)
    corr = ensembles.clustering_matrix(p)
    assert torch.allclose(corr.diagonal(), torch.ones(6), atol=1e-5)
    assert torch.allclose(ensembles.clustering_matrix(p, normalize=False), cov)
    assert ensembles.confusable_groups(p, 3, seed=0) == ensembles.confusable_groups(None, 3, seed=0, covariance=cov)
    with pytest.raises(ValueError, match="probs or covariance"):
        ensembles.clustering_matrix()
