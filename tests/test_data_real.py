"""Real images offline: the IDX reader, Fashion-MNIST's lookup and cache, scikit-learn's digits,
and readers that refuse bad data with an error naming the file."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncompress.data as D
from conftest import in_ci
from nncompress.data import digits as DG
from nncompress.data import mnist_like as ML
from nncompress.data.checks import DatasetFormatError, DatasetNotFound, check_count
from nncompress.data.idx import IDX_DTYPES, IdxFormatError, idx_bytes, read_idx
from nncompress.data.sampling import stratified_split

SYSTEM_FMNIST = Path("/usr/share/datasets/fashion-mnist")
#: SHA-256 of the decoded Fashion-MNIST arrays (Debian's dataset-fashion-mnist = Zalando's release)
FMNIST_SHA256 = "eee656c63c1c7a3b7c885d28c97fd74dc039264ce75eae7cb8d991df379ef736"
NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _fresh_memo():
    ML._read_cached.cache_clear()
    yield
    ML._read_cached.cache_clear()


@pytest.fixture
def system_dir(tmp_path, monkeypatch):
    """A stand-in for /usr/share/datasets/fashion-mnist (empty until a test fills it)."""
    d = tmp_path / "system" / "fashion-mnist"
    monkeypatch.setattr(ML, "SYSTEM_DIRS", {"fashion-mnist": (d,)})
    return d


def write_set(folder: Path, *, n_train=30, n_test=12, seed=0, gz=True, labels=None) -> dict:
    """Four Fashion-MNIST-format IDX files (images 0x00000803, labels 0x00000801) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10 if labels is None else np.asarray(labels[split], np.uint8)
        data[split] = (x, y)
        for fname, arr in zip(NAMES[split], (x, y)):
            raw = idx_bytes(arr)
            (folder / (fname + ".gz" if gz else fname)).write_bytes(gzip.compress(raw) if gz else raw)
    return data


def raw_pixels(split: D.DeviceData) -> torch.Tensor:
    return torch.round((split.x * 0.3530 + 0.2860) * 255).to(torch.uint8)[:, 0]


# ---------------------------------------------------------------- the IDX reader

def test_idx_header_is_the_real_format():
    assert idx_bytes(np.zeros((2, 28, 28), np.uint8))[:16] == bytes.fromhex("00000803" "00000002" "0000001c" "0000001c")
    assert idx_bytes(np.zeros(5, np.uint8))[:8] == bytes.fromhex("00000801" "00000005")
    assert idx_bytes(np.zeros((1, 2), np.float32))[:4] == bytes.fromhex("00000d02")
    assert idx_bytes(np.array([1], ">i4"))[8:] == b"\x00\x00\x00\x01"            # big-endian data


arrays = st.sampled_from(sorted(IDX_DTYPES)).flatmap(lambda code: st.tuples(
    st.just(code), st.lists(st.integers(0, 5), min_size=1, max_size=3), st.integers(0, 2**32 - 1)))


@HYP
@given(spec=arrays, gz=st.booleans())
def test_idx_round_trip(tmp_path, spec, gz):
    code, shape, seed = spec
    dtype = IDX_DTYPES[code].newbyteorder("=")
    arr = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    raw = idx_bytes(arr)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    back = read_idx(path, ndim=len(shape), type_code=code)
    assert back.dtype == dtype and back.shape == tuple(shape) and np.array_equal(back, arr, equal_nan=True)


@HYP
@given(data=st.binary(max_size=64), gz=st.booleans())
def test_idx_any_bytes_give_an_array_or_a_clear_error(tmp_path, data, gz):
    """Whatever the bytes, the reader returns exactly what the header describes or raises
    IdxFormatError naming the file - never another exception, never a huge allocation."""
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(data) if gz and data[:1] != b"\xff" else data)   # some .gz are not gzip
    try:
        arr = read_idx(path)
    except IdxFormatError as exc:
        assert str(path) in str(exc)
    else:
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        assert 4 + 4 * arr.ndim + arr.nbytes == len(raw) and idx_bytes(arr) == raw


@HYP
@given(cut=st.integers(0, 8 + 4 * 7 - 1), gz=st.booleans())
def test_idx_every_truncation_is_refused(tmp_path, cut, gz):
    raw = idx_bytes(np.arange(7 * 4, dtype=np.uint8).reshape(7, 4))      # 8 + 4 header, 28 data
    cut = cut % len(raw)
    path = tmp_path / ("t.gz" if gz else "t")
    path.write_bytes(gzip.compress(raw[:cut]) if gz else raw[:cut])
    with pytest.raises(IdxFormatError, match="truncated|too short") as exc:
        read_idx(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_specific_problems_name_file_and_problem(tmp_path, gz):
    def put(name, raw):
        p = tmp_path / (name + (".gz" if gz else ""))
        p.write_bytes(gzip.compress(raw) if gz else raw)
        return p

    good = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    cases = [
        (put("magic", b"\x00\x01" + good[2:]), {}, "not an IDX file: magic number 0x00010803"),
        (put("typecode", b"\x00\x00\x07\x03" + good[4:]), {}, "not an IDX file"),
        (put("zero-dims", b"\x00\x00\x08\x00"), {}, "not an IDX file"),
        (put("dims", struct.pack(">IIII", 0x803, 5, 28, 28) + good[16:]), {},
         r"truncated: header claims dimensions \(5, 28, 28\) = 3920 bytes"),
        (put("trailing", good + b"\x00"), {}, "trailing"),
        (put("ndim", good), {"ndim": 1}, "has 3 dimension\\(s\\), expected 1"),
        (put("float", idx_bytes(np.zeros((3, 28, 28), np.float32))), {"type_code": 0x08},
         r"0x0D \(float32\).*expected type 0x08 \(unsigned byte\)"),
    ]
    for path, kw, needle in cases:
        with pytest.raises(IdxFormatError, match=needle) as exc:
            read_idx(path, **kw)
        assert str(path) in str(exc.value), path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_huge_claim_fails_at_once_without_allocating(tmp_path, gz):
    raw = struct.pack(">IIII", 0x803, 2**31, 2**16, 2**16)    # claims 2**63 bytes (>7 TiB)
    path = tmp_path / ("huge.gz" if gz else "huge")
    path.write_bytes(gzip.compress(raw + b"\x01" * 100) if gz else raw + b"\x01" * 100)
    t = time.perf_counter()
    with pytest.raises(IdxFormatError, match="limit") as exc:
        read_idx(path)
    assert time.perf_counter() - t < 1.0 and str(path) in str(exc.value)
    # just under the limit but far more than present: refused from the file length (plain)
    # or after decompressing what is really there (gz), still without allocating the claim
    raw = struct.pack(">IIII", 0x803, 4000, 1000, 1000)           # 4 GB claimed, 100 B present
    path.write_bytes(gzip.compress(raw + b"\x01" * 100) if gz else raw + b"\x01" * 100)
    with pytest.raises(IdxFormatError, match="truncated.*4000000000 bytes"):
        read_idx(path)
    assert time.perf_counter() - t < 2.0


def test_idx_corrupt_gzip_and_unlabelled_gzip(tmp_path):
    raw = idx_bytes(np.zeros((2, 3), np.uint8))
    bad = bytearray(gzip.compress(raw))
    bad[-8] ^= 0xFF                                               # CRC mismatch
    (tmp_path / "crc.gz").write_bytes(bytes(bad))
    with pytest.raises(IdxFormatError, match=r"crc\.gz: is not a valid gzip file"):
        read_idx(tmp_path / "crc.gz")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-10])
    with pytest.raises(IdxFormatError, match=r"cut\.gz: is not a valid gzip file"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "noext").write_bytes(gzip.compress(raw))
    with pytest.raises(IdxFormatError, match="looks gzip-compressed"):
        read_idx(tmp_path / "noext")


# ---------------------------------------------------------------- Fashion-MNIST: lookup order

def test_fashion_mnist_from_data_root_layouts(tmp_path, system_dir):
    for i, sub in enumerate(["FashionMNIST/raw", "fashion-mnist", "."]):
        root = tmp_path / f"root{i}"
        data = write_set(root / sub, seed=i, gz=bool(i % 2))
        s = D.load("fashion-mnist", data_root=root)
        assert torch.equal(raw_pixels(s.test), torch.from_numpy(data["test"][0]))
        assert torch.equal(s.train.y, torch.from_numpy(data["train"][1]).long())
        assert s.classes[0] == "T-shirt/top" and s.input_shape == (1, 28, 28)


def test_fashion_mnist_data_root_before_system_path(tmp_path, system_dir, monkeypatch):
    sys_data = write_set(system_dir, seed=1)
    root_data = write_set(tmp_path / "mine" / "FashionMNIST" / "raw", seed=2)
    from_root = D.load("fashion-mnist", data_root=tmp_path / "mine")
    assert torch.equal(raw_pixels(from_root.test), torch.from_numpy(root_data["test"][0]))
    from_system = D.load("fashionmnist")                    # no data_root (and the old alias)
    assert torch.equal(raw_pixels(from_system.test), torch.from_numpy(sys_data["test"][0]))
    # a data_root without the files falls through to the system path
    empty = D.load("fashion-mnist", data_root=tmp_path / "empty")
    assert torch.equal(raw_pixels(empty.test), torch.from_numpy(sys_data["test"][0]))
    assert from_root.config()["content_sha256"] != from_system.config()["content_sha256"]
    assert from_system.config() == empty.config()           # same content, same cache identity


def test_fashion_mnist_is_never_downloaded_unless_asked(tmp_path, system_dir, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeFashionMNIST:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            write_set(Path(root) / "FashionMNIST" / "raw", gz=False)

    monkeypatch.setattr(tvd, "FashionMNIST", FakeFashionMNIST)
    with pytest.raises(DatasetNotFound):
        D.load("fashion-mnist", data_root=tmp_path / "dl")
    assert calls == []
    s = D.load("fashion-mnist", data_root=tmp_path / "dl", download=True)
    assert len(s.train) == 30 and {c[1] for c in calls} == {True, False} and all(c[2] for c in calls)
    assert all(c[0] == str(tmp_path / "dl") for c in calls)
    calls.clear()
    write_set(system_dir)                                    # present: download=True fetches nothing
    D.load("fashion-mnist", download=True)
    assert calls == []


def test_missing_fashion_mnist_names_every_place_and_both_remedies(tmp_path, system_dir):
    write_set(tmp_path / "FashionMNIST" / "raw")
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFound) as exc:
        D.load("fashion-mnist", data_root=tmp_path)
    msg = str(exc.value)
    for place in (tmp_path / "FashionMNIST" / "raw", tmp_path / "fashion-mnist", tmp_path, system_dir):
        assert f"-> {place.resolve()}:" in msg or f"system path {place}" in msg, place
    assert "missing t10k-labels-idx1-ubyte" in msg                 # what the partial folder lacks
    assert "apt-get install dataset-fashion-mnist" in msg and "download=True" in msg
    assert isinstance(exc.value, FileNotFoundError)
    with pytest.raises(DatasetNotFound) as exc:
        D.load("fashion-mnist")
    msg = str(exc.value)
    assert "no data_root was given" in msg and str(system_dir) in msg
    assert str(ML.download_root() / "FashionMNIST" / "raw") in msg
    assert msg.index("data_root") < msg.index(str(system_dir)) < msg.index("download folder")


# ---------------------------------------------------------------- Fashion-MNIST: subsets, cache

def test_fashion_mnist_subsets_deterministic_and_validation_from_train(tmp_path, system_dir):
    data = write_set(system_dir, n_train=60, n_test=20)
    kw = dict(n_train=40, n_test=10, n_val=8)
    a, b, c = D.load("fashion-mnist", seed=3, **kw), D.load("fashion-mnist", seed=3, **kw), D.load("fashion-mnist", seed=4, **kw)
    assert (len(a.train), len(a.val), len(a.test)) == (32, 8, 10)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y) and torch.equal(a.test.x, b.test.x)
    assert not torch.equal(torch.cat([a.train.x, a.val.x]), torch.cat([c.train.x, c.val.x]))
    train_rows = {r.tobytes() for r in data["train"][0]}
    test_rows = {r.tobytes() for r in data["test"][0]}
    for part in (a.train, a.val):
        assert all(r.numpy().tobytes() in train_rows for r in raw_pixels(part))
    assert all(r.numpy().tobytes() in test_rows for r in raw_pixels(a.test))
    assert not {r.numpy().tobytes() for r in raw_pixels(a.val)} & {r.numpy().tobytes() for r in raw_pixels(a.train)}
    assert a.config() == b.config() and a.config()["n_val"] == 8


def test_fashion_mnist_decoded_once_then_cached(tmp_path, system_dir, monkeypatch):
    write_set(system_dir)
    first = D.load("fashion-mnist")
    entries = list((tmp_path / "cache").glob("data-fashion-mnist-idx-*.pt"))
    assert len(entries) == 1 and entries[0].with_name(entries[0].name + ".sha256").exists()

    def no_decode(paths):
        raise AssertionError("decoded again")

    monkeypatch.setattr(ML, "_decode", no_decode)
    first.train.y[:] = 9                                          # callers get copies, not the cache
    again = D.load("fashion-mnist")                               # in-process memo
    ML._read_cached.cache_clear()
    from_disk = D.load("fashion-mnist")                           # the cache entry on disk
    assert torch.equal(again.train.x, from_disk.train.x) and torch.equal(again.train.y, from_disk.train.y)
    assert not torch.equal(again.train.y, first.train.y)
    monkeypatch.undo()
    ML._read_cached.cache_clear()
    write_set(system_dir, seed=5)                                 # new files: decoded afresh
    assert not torch.equal(D.load("fashion-mnist").train.x, from_disk.train.x)


@pytest.mark.parametrize("problem,needle", [
    ("labels", r"train-labels-idx1-ubyte.gz: label 10 at index 3 is out of range: labels must be in 0\.\.9"),
    ("count", r"has 30 images but .*train-labels-idx1-ubyte.gz 29 labels"),
    ("size", r"train-images-idx3-ubyte.gz: images are 27x28, expected 28x28"),
    ("float", r"train-images-idx3-ubyte.gz: holds 0x0D \(float32\)")])
def test_fashion_mnist_bad_files_raise_naming_the_file(tmp_path, system_dir, problem, needle):
    folder = tmp_path / "FashionMNIST" / "raw"
    write_set(folder)
    target = {"labels": "train-labels-idx1-ubyte", "count": "train-labels-idx1-ubyte"}.get(problem, "train-images-idx3-ubyte")
    arr = {"labels": np.array([0, 1, 2, 10] + [0] * 26, np.uint8), "count": np.zeros(29, np.uint8),
           "size": np.zeros((30, 27, 28), np.uint8), "float": np.zeros((30, 28, 28), np.float32)}[problem]
    (folder / (target + ".gz")).write_bytes(gzip.compress(idx_bytes(arr)))
    with pytest.raises(DatasetFormatError, match=needle):
        D.load("fashion-mnist", data_root=tmp_path)


def test_real_system_fashion_mnist():
    if not (SYSTEM_FMNIST / "train-images-idx3-ubyte.gz").is_file():
        msg = f"{SYSTEM_FMNIST} is missing: apt-get install dataset-fashion-mnist"
        if in_ci():
            pytest.fail(msg + " (CI must run on the real data)")
        pytest.skip(msg)
    t = time.perf_counter()
    s = D.load("fashion-mnist", n_train=6000, n_val=1000, n_test=2000, seed=0)
    first = time.perf_counter() - t
    assert (len(s.train), len(s.val), len(s.test)) == (5000, 1000, 2000)
    assert s.info["content_sha256"] == FMNIST_SHA256               # the real release, all 70 000 images
    assert s.info["files"] == sorted(str(SYSTEM_FMNIST / (f + ".gz")) for p in NAMES.values() for f in p)
    assert s.classes[9] == "Ankle boot" and s.input_shape == (1, 28, 28)
    counts = torch.bincount(torch.cat([s.train.y, s.val.y]), minlength=10)
    assert counts.min() > 500 and counts.max() < 700                  # balanced classes, random subset
    pool = torch.cat([s.train.x, s.val.x])
    assert abs(pool.mean().item()) < 0.05 and abs(pool.std().item() - 1) < 0.05   # published mean/std
    t = time.perf_counter()
    again = D.load("fashion-mnist", n_train=6000, n_val=1000, n_test=2000, seed=0)
    assert torch.equal(again.train.x, s.train.x) and time.perf_counter() - t < max(first, 0.5)


# ---------------------------------------------------------------- digits

def test_digits_shapes_split_and_scale():
    s = D.load("digits", n_val=137)
    assert s.name == "digits" and s.classes == [str(i) for i in range(10)] and s.input_shape == (1, 8, 8)
    assert (len(s.train), len(s.val), len(s.test)) == (1300, 137, 360)
    assert sum(map(len, (s.train, s.val, s.test))) == DG.N_SAMPLES
    x = torch.cat([s.train.x, s.val.x, s.test.x])
    assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
    assert torch.equal(x * 16, torch.round(x * 16))                   # counts 0..16, scaled
    full = torch.bincount(torch.tensor(DG._raw()[1]), minlength=10).double()
    for part in (s.train, s.val, s.test):                              # stratified: class shares kept
        got = torch.bincount(part.y, minlength=10).double()
        assert (got - full * len(part) / DG.N_SAMPLES).abs().max() <= 1.0
    assert s.config()["content_sha256"] == DG._raw()[2] and s.config()["split"] == "stratified"


def test_digits_deterministic_disjoint_and_seeded():
    a, b, c = (D.load("digits", seed=k, n_train=500, n_val=50, n_test=200) for k in (0, 0, 1))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.x, b.val.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.test.x, c.test.x)
    raw = torch.from_numpy(DG._raw()[0].astype(np.float32) / 16).flatten(1)

    def rows(part):   # dataset indices of a split (the images are matched back to the raw array)
        d = torch.cdist(part.x.flatten(1), raw)
        return set(torch.nonzero(d == 0)[:, 1].tolist())

    tr, va, te = rows(a.train), rows(a.val), rows(a.test)
    exact = {i for i in range(len(raw)) if (torch.cdist(raw[i:i + 1], raw) == 0).sum() == 1}
    assert not (tr & te & exact) and not (va & te & exact) and not (tr & va & exact)   # never shared
    assert (len(a.train), len(a.val), len(a.test)) == (450, 50, 200)


@HYP
@given(n=st.integers(0, 60), seed=st.integers(0, 2**31), labels=st.lists(st.integers(0, 4), min_size=60, max_size=60))
def test_stratified_split_partitions_and_keeps_shares(n, seed, labels):
    y = torch.tensor(labels)
    rest, take = stratified_split(y, n, torch.Generator().manual_seed(seed))
    assert len(take) == n and sorted(torch.cat([rest, take]).tolist()) == list(range(60))
    share = torch.bincount(y, minlength=5).double() * n / 60
    assert (torch.bincount(y[take], minlength=5).double() - share).abs().max() < 1.0 + 1e-9
    again = stratified_split(y, n, torch.Generator().manual_seed(seed))
    assert torch.equal(again[1], take)


# ---------------------------------------------------------------- bounds: fail at once

@pytest.mark.parametrize("name", ["mnist1d", "shapes", "digits"])
@pytest.mark.parametrize("kw,needle", [
    ({"n_train": 10**12}, "n_train=1000000000000 is out of range"),
    ({"n_test": 10**12}, "n_test=1000000000000 is out of range"),
    ({"n_val": 10**12}, "n_val=1000000000000 is out of range"),
    ({"n_train": 0}, "n_train=0 is out of range"),
    ({"n_train": 100.5}, "n_train=100.5 must be a whole number"),
    ({"n_val": True}, "n_val=True must be a whole number")])
def test_generated_and_offline_sizes_fail_at_once(name, kw, needle):
    t = time.perf_counter()
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        D.load(name, **kw)
    assert time.perf_counter() - t < 10.0        # digits' first call imports scikit-learn


def test_file_backed_sizes_fail_with_the_available_count(tmp_path, system_dir):
    write_set(system_dir, n_train=30, n_test=12)
    with pytest.raises(ValueError, match=r"n_train=31 is out of range: allowed 1\.\.30 \(Fashion-MNIST has only 30"):
        D.load("fashion-mnist", n_train=31)
    with pytest.raises(ValueError, match=r"n_test=1000000000000 is out of range: allowed 0\.\.12"):
        D.load("fashion-mnist", n_test=10**12)
    with pytest.raises(ValueError, match=r"n_val=30 is out of range: allowed 0\.\.29"):
        D.load("fashion-mnist", n_val=30)


def test_check_count_accepts_whole_numbers_only():
    assert check_count("n", 1e3) == 1000 and check_count("n", np.int64(5)) == 5
    for bad in ("5", None, 2.5, float("nan"), False):
        with pytest.raises(ValueError, match="n="):
            check_count("n", bad)


# ---------------------------------------------------------------- CIFAR readers refuse bad data

def cifar10(root: Path, *, data=None, labels=None, names=None, raw_test=None):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = rng.integers(0, 256, (4, 3072), dtype=np.uint8) if data is None or f != "data_batch_2" else data
        y = [0, 1, 2, 3] if labels is None or f != "data_batch_2" else labels
        (folder / f).write_bytes(pickle.dumps({"data": d, "labels": y}, protocol=2))
    if raw_test is not None:
        (folder / "test_batch").write_bytes(raw_test)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names or [f"c{i}" for i in range(10)]}))
    return folder


@pytest.mark.parametrize("kw,file,needle", [
    ({"data": np.full((4, 3072), 0.5)}, "data_batch_2", r"pixel data has dtype float64; expected uint8"),
    ({"data": np.full((4, 3072), 256)}, "data_batch_2", r"pixel values span 256\.\.256; expected 0\.\.255"),
    ({"data": np.zeros((4, 3000), np.uint8)}, "data_batch_2", r"not a whole number of 3x32x32"),
    ({"labels": [0, 1, 2, 10]}, "data_batch_2", r"label 10 at index 3 is out of range"),
    ({"labels": [0, 1, -1, 3]}, "data_batch_2", r"label -1 at index 2 is out of range"),
    ({"labels": [0.0, 1.5, 2.0, 3.0]}, "data_batch_2", r"labels must be integers, got dtype float64"),
    ({"labels": [0, 1, 2]}, "data_batch_2", r"4 images but 3 labels"),
    ({"names": [f"c{i}" for i in range(9)]}, "batches.meta", r"lists 9 class names but the labels have 10 classes"),
    ({"names": ["a"] * 10}, "batches.meta", r"class names are not distinct"),
    ({"raw_test": pickle.dumps({"data": 1})[:-3]}, "test_batch", r"not a readable pickle"),
    ({"raw_test": pickle.dumps([1, 2])}, "test_batch", r"expected a pickled dict")])
def test_cifar_bad_data_raises_naming_the_file(tmp_path, kw, file, needle):
    folder = cifar10(tmp_path, **kw)
    with pytest.raises(DatasetFormatError, match=needle) as exc:
        D.load("cifar10", data_root=tmp_path)
    assert str(folder / file) in str(exc.value)


def test_cifar_refused_pickle_names_the_file(tmp_path):
    folder = cifar10(tmp_path, raw_test=pickle.dumps({"data": os.getcwd}))
    with pytest.raises(pickle.UnpicklingError, match="refusing") as exc:
        D.load("cifar10", data_root=tmp_path)
    assert str(folder / "test_batch") in str(exc.value)
