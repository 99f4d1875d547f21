"""Issue 21, items 2 and 6: cache keys that name a model by its weights when it carries no
key, entries checked against their stored config, and a cache that works read-only and is
readable by other users."""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

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


PINNED_LINEAR = "weights-sha256:924e7199673debaf21414b526d56dc30cca37182342606f872d87a9e73ed6a55"


def test_model_identity_sees_every_weight_of_a_quantized_model():
    """Quantized layers keep (weight, bias) in a tuple whose repr elides the middle: hash the bytes."""
    import warnings

    def quantized(delta):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(64, 64))
        with torch.no_grad():
            m[0].weight[30, 30] += delta
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)

    assert cache.model_identity(quantized(0.0)) == cache.model_identity(quantized(0.0))
    assert cache.model_identity(quantized(0.0)) != cache.model_identity(quantized(1.0))


def test_model_identity_rejects_non_modules():
    with pytest.raises(TypeError, match="model="):
        cache.model_identity("not a model")


def test_keyed_teachers_keep_their_keys_in_student_configs():
    """Existing keys do not change: a teacher with a ``cache_key`` is still named by it."""
    splits = _splits()
    teacher, _, _ = __import__("nncompress.train", fromlist=["get_or_train"]).get_or_train(
        "t", {"arch": "mlp", "hidden": [8]}, splits, CFG, seed=0, device="cpu", progress=False)
    assert distill.KDObjective(teacher).config()["teacher"] == teacher.cache_key


# ------------------------------------------------------------------ item 2: stored config checked

def test_entry_whose_stored_config_differs_is_refused(caplog):
    cache.store("e", {"k": 1}, {"w": torch.ones(2)})
    a, b = cache.entry_path("e", {"k": 1}), cache.entry_path("e", {"k": 2})
    for suffix in ("", ".sha256"):  # an entry under the wrong name (copied, or a key collision)
        b.with_name(b.name + suffix).write_bytes(a.with_name(a.name + suffix).read_bytes())
    with caplog.at_level("WARNING", logger="nncompress.cache"):
        assert cache.lookup("e", {"k": 2}) is None
    assert "stored for" in caplog.text
    value, cached = cache.get_or_compute("e", {"k": 2}, lambda: {"w": torch.zeros(2)})
    assert not cached and value["w"].sum() == 0
    assert cache.lookup("e", {"k": 2})["w"].sum() == 0 and cache.lookup("e", {"k": 1})["w"].sum() == 2


def test_entries_written_before_the_name_was_stored_still_load():
    path = cache.entry_path("old", {"k": 1})
    cache.save_checkpoint({"value": {"w": torch.ones(1)}, "config": json.dumps(cache._canonical({"k": 1}))}, path)
    assert cache.get_or_compute("old", {"k": 1}, lambda: pytest.fail("recomputed"))[1]


# ------------------------------------------------------------------ item 6: a shared cache

def _lock_files():
    return sorted(p.name for p in cache.cache_dir().glob("*.lock"))


def test_a_hit_creates_no_lock_file():
    cache.get_or_compute("h", {"k": 1}, lambda: {"w": torch.ones(1)})
    for p in cache.cache_dir().glob("*.lock"):
        p.unlink()
    value, cached = cache.get_or_compute("h", {"k": 1}, lambda: pytest.fail("recomputed"))
    assert cached and _lock_files() == []


def _make_read_only(monkeypatch):
    """The cache folder behaves as read-only (tests run as root, where chmod does not stop writes):
    ``os.access`` says so and every open for writing, unlink or rename inside it fails."""
    import errno

    root = str(cache.cache_dir())
    real_open, real_access = os.open, os.access
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def inside(path):
        return os.path.abspath(os.fsdecode(path)).startswith(root)

    def deny(path):
        raise PermissionError(errno.EACCES, "Permission denied (read-only test cache)", os.fsdecode(path))

    def fake_open(path, flags, *args, **kwargs):
        if inside(path) and flags & writes:
            deny(path)
        return real_open(path, flags, *args, **kwargs)

    def fake_access(path, mode, *args, **kwargs):
        if inside(path) and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    def guarded(fn):
        def wrapper(path, *args, **kwargs):
            if inside(path):
                deny(path)
            return fn(path, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "access", fake_access)
    monkeypatch.setattr(os, "unlink", guarded(os.unlink))
    monkeypatch.setattr(os, "replace", guarded(os.replace))
    return cache.cache_dir()


def _fill(names=("hit",)):
    for n in names:
        cache.get_or_compute(n, {"k": 1}, lambda: {"w": torch.arange(3.0)})
    for p in cache.cache_dir().glob("*.lock"):
        p.unlink()


def test_read_only_cache_serves_hits_and_computes_misses_without_storing(monkeypatch, caplog):
    _fill()
    before = sorted(p.name for p in cache.cache_dir().iterdir())
    ro = _make_read_only(monkeypatch)
    value, cached = cache.get_or_compute("hit", {"k": 1}, lambda: pytest.fail("recomputed"))
    assert cached and torch.equal(value["w"], torch.arange(3.0))
    with caplog.at_level("WARNING", logger="nncompress.cache"):
        value, cached = cache.get_or_compute("miss", {"k": 1}, lambda: {"w": torch.ones(2)})
    assert not cached and torch.equal(value["w"], torch.ones(2))
    assert "not writable" in caplog.text
    assert sorted(p.name for p in ro.iterdir()) == before


def test_read_only_cache_with_a_corrupt_entry_recomputes_without_crashing(monkeypatch):
    _fill()
    path = cache.entry_path("hit", {"k": 1})
    path.write_bytes(path.read_bytes()[:-10])
    _make_read_only(monkeypatch)
    value, cached = cache.get_or_compute("hit", {"k": 1}, lambda: {"w": torch.zeros(1)})
    assert not cached and value["w"].sum() == 0


_AS_NOBODY = """
import os, sys, torch
from nncompress import cache
value, cached = cache.get_or_compute("hit", {"k": 1}, lambda: sys.exit("hit recomputed"))
assert cached and torch.equal(value["w"], torch.arange(3.0)), (value, cached)
value, cached = cache.get_or_compute("miss", {"k": 1}, lambda: {"w": torch.ones(2)})
assert not cached and torch.equal(value["w"], torch.ones(2))
print("OK")
"""


@pytest.mark.skipif(not (hasattr(os, "geteuid") and os.geteuid() == 0 and __import__("shutil").which("setpriv")),
                    reason="needs root and setpriv to run a process as another user")
def test_another_user_can_use_a_read_only_filled_cache(monkeypatch):
    """A classroom cache: filled by one account, chmod'ed read-only, used by another (``nobody``)."""
    import subprocess
    import sys
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="nncompress-shared-"))  # tmp_path's parents are 0700
    try:
        old = os.umask(0o022)
        try:
            monkeypatch.setenv("NNCOMPRESS_CACHE", str(shared / "cache"))
            _fill()
        finally:
            os.umask(old)
        for p in [shared, *shared.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        env = {**os.environ, "NNCOMPRESS_CACHE": str(shared / "cache"), "HOME": str(shared),
               "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                               sys.executable, "-c", _AS_NOBODY], env=env, capture_output=True, text=True,
                              timeout=300, cwd=str(shared))
        assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
    finally:
        for p in [shared, *shared.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        __import__("shutil").rmtree(shared)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_entries_and_side_files_respect_the_umask(umask, mode):
    old = os.umask(umask)
    try:
        cache.store("perm", {}, {"w": torch.ones(1)})
        out = cache.cache_dir() / "out.bin"
        cache.atomic_write_bytes(out, b"x")
    finally:
        os.umask(old)
    path = cache.entry_path("perm", {})
    for p in (path, path.with_name(path.name + ".sha256"), out):
        assert stat.S_IMODE(p.stat().st_mode) == mode, p.name


def _age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_stale_tmp_files_of_killed_writes_are_removed_on_the_next_write():
    d = cache.cache_dir()
    old = d / "teacher-0123.pt.k3j_x9qa.tmp"        # a killed write, long ago
    fresh = d / "student-4567.pt.ab12cd34.tmp"       # a write in progress in another process
    other = d / "notes.tmp"                          # not one of ours
    for p in (old, fresh, other):
        p.write_bytes(b"partial")
    _age(old, cache.STALE_TMP_SECONDS + 60)
    _age(other, cache.STALE_TMP_SECONDS + 60)
    cache.get_or_compute("n", {}, lambda: {"w": torch.ones(1)})
    assert not old.exists() and fresh.exists() and other.exists()


def test_atomic_write_removes_only_its_own_stale_tmp_files_elsewhere(tmp_path):
    mine, theirs = tmp_path / "f.bin.abcd1234.tmp", tmp_path / "g.bin.abcd1234.tmp"
    for p in (mine, theirs):
        p.write_bytes(b"partial")
        _age(p, cache.STALE_TMP_SECONDS + 60)
    cache.atomic_write_bytes(tmp_path / "f.bin", b"data")
    assert not mine.exists() and theirs.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "g.bin.abcd1234.tmp"]
