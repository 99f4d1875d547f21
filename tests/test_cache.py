import io
import os
import pickle

import pytest
import torch

from nncompress import cache


def test_key_is_stable_and_sensitive():
    a = cache.cache_key({"lr": 0.1, "model": {"arch": "mlp", "hidden": [8]}})
    b = cache.cache_key({"model": {"hidden": [8], "arch": "mlp"}, "lr": 0.1})
    c = cache.cache_key({"lr": 0.10000001, "model": {"arch": "mlp", "hidden": [8]}})
    assert a == b != c


def test_get_or_compute_computes_once():
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(3.0)}

    v1, c1 = cache.get_or_compute("x", {"k": 1}, compute)
    v2, c2 = cache.get_or_compute("x", {"k": 1}, compute)
    assert (c1, c2) == (False, True) and len(calls) == 1
    assert torch.equal(v1["w"], v2["w"])
    cache.get_or_compute("x", {"k": 2}, compute)
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "checksum_missing"])
def test_corrupt_entry_is_discarded_and_recomputed(damage):
    cache.get_or_compute("y", {}, lambda: {"w": torch.ones(100)})
    path = cache.entry_path("y", {})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-20] + bytes(b ^ 0xFF for b in data[-20:]))
    else:
        path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(cache.CorruptCheckpoint):
        cache.load_checkpoint(path)
    value, cached = cache.get_or_compute("y", {}, lambda: {"w": torch.zeros(100)})
    assert not cached and value["w"].sum() == 0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused():
    path = cache.entry_path("z", {})
    buf = io.BytesIO()
    torch.save({"value": _Evil()}, buf)
    data = buf.getvalue()
    cache.atomic_write_bytes(path, data)
    cache.atomic_write_bytes(path.with_name(path.name + ".sha256"), cache._digest(data).encode())
    with pytest.raises(cache.CorruptCheckpoint, match="weights_only"):
        cache.load_checkpoint(path)
    value, cached = cache.get_or_compute("z", {}, lambda: {"ok": torch.ones(1)})
    assert not cached and "ok" in value


def test_atomic_write_leaves_no_temp_files(tmp_path):
    p = tmp_path / "f.bin"
    cache.atomic_write_bytes(p, b"abc")
    assert p.read_bytes() == b"abc"
    assert [x.name for x in tmp_path.iterdir()] == ["f.bin"]


def _racer(cache_dir, log_path):
    import os
    import time

    os.environ["NNCOMPRESS_CACHE"] = cache_dir
    from nncompress import cache as c

    def compute():
        with open(log_path, "a") as f:
            f.write("computed\n")
        time.sleep(0.5)
        return {"w": torch.arange(5.0)}

    value, _ = c.get_or_compute("race", {"k": 1}, compute)
    assert torch.equal(value["w"], torch.arange(5.0))


@pytest.mark.slow
def test_two_processes_racing_compute_once(tmp_path):
    """Two runs (e.g. `nncompress.run --jobs 2`) asking for the same entry: one trains, the other waits and loads."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    log = tmp_path / "log.txt"
    procs = [ctx.Process(target=_racer, args=(str(tmp_path / "c"), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert log.read_text().count("computed") == 1
    assert not list((tmp_path / "c").glob("*.tmp"))
