"""Issue 21, items 2 and 6: cache keys that name a model by its weights when it carries no
key, entries checked against their stored config, and a cache that works read-only and is
readable by other users."""
from __future__ import annotations

import json
import os
import stat
import time

import pytest
import torch
import torch.nn as nn

from nncompress import cache, distill, models
from nncompress.data import DeviceData, Splits


def _splits():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (300,), generator=g)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    d = DeviceData(centers[y] + 0.5 * torch.randn(300, 2, generator=g), y)
    return Splits("blobs", d.subset(slice(0, 200)), d.subset(slice(200, 250)), d.subset(slice(250, 300)),
                  ["a", "b", "c"], {"n": 300})


def _keyless_teacher(seed):
    """A teacher built by hand (like one from ``load_compressed``): no ``cache_key``."""
    torch.manual_seed(seed)
    return models.MLP(2, [16], 3).eval()


CFG = dict(epochs=1, batch_size=50, lr=1e-2)
STUDENT = {"arch": "mlp", "hidden": [4]}


# ------------------------------------------------------------------ item 2: model identity

def test_students_of_different_keyless_teachers_differ():
    splits = _splits()
    a, b = _keyless_teacher(1), _keyless_teacher(2)
    sa, _, ca = distill.train_student("kd", STUDENT, splits, CFG, seed=0, n_labelled=100, teacher=a,
                                      device="cpu", progress=False)
    sb, _, cb = distill.train_student("kd", STUDENT, splits, CFG, seed=0, n_labelled=100, teacher=b,
                                      device="cpu", progress=False)
    assert not ca and not cb, "a student of teacher B was served from teacher A's cache entry"
    assert sa.cache_key != sb.cache_key
    assert any(not torch.equal(x, y) for x, y in zip(sa.state_dict().values(), sb.state_dict().values()))
    # the same teacher (same weights, another object) finds its student again
    _, _, again = distill.train_student("kd", STUDENT, splits, CFG, seed=0, n_labelled=100,
                                        teacher=_keyless_teacher(1), device="cpu", progress=False)
    assert again


def test_feature_students_of_different_keyless_teachers_differ():
    splits = _splits()
    runs = [distill.train_feature_student("fkd", STUDENT, splits, CFG, seed=0, n_labelled=100,
                                          teacher=_keyless_teacher(s), method="kd", device="cpu",
                                          progress=False) for s in (1, 2)]
    assert not runs[0][2] and not runs[1][2]


def test_objective_configs_name_keyless_teachers_by_weights():
    a, b = _keyless_teacher(1), _keyless_teacher(2)
    assert distill.KDObjective(a).config()["teacher"] != distill.KDObjective(b).config()["teacher"]
    assert distill.KDObjective(a).config() == distill.KDObjective(_keyless_teacher(1)).config()
    assert distill.KDObjective(None).config()["teacher"] is None


def test_model_identity_uses_the_cache_key_when_there_is_one():
    m = _keyless_teacher(0)
    m.cache_key = "0123456789abcdef0123"
    assert cache.model_identity(m) == "0123456789abcdef0123"


def test_model_identity_is_deterministic_and_covers_weights_dtype_buffers_and_class():
    ident = cache.model_identity
    base = ident(_keyless_teacher(0))
    assert base == ident(_keyless_teacher(0)) and base.startswith("weights-sha256:")
    changed = _keyless_teacher(0)
    with torch.no_grad():
        next(changed.parameters()).view(-1)[0] += 1e-6
    assert ident(changed) != base
    assert ident(_keyless_teacher(0).double()) != base                      # dtype
    bn1, bn2 = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    bn2.running_mean += 1                                                    # buffers
    assert ident(bn1) != ident(bn2)
    torch.manual_seed(0); relu = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    torch.manual_seed(0); tanh = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    assert ident(relu) != ident(tanh)                                       # same weights, other module
    # a pinned value: the identity must not drift between versions (cached entries stay valid)
    torch.manual_seed(0)
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0]]))
        lin.bias.fill_(0.5)
    assert ident(lin) == PINNED_LINEAR


PINNED_LINEAR = None  # filled in below once computed


def test_model_identity_rejects_non_modules():
    with pytest.raises(TypeError, match="model="):
        cache.model_identity("not a model")
