"""Datasets: offline generators, on-disk formats of the real sets, device batching."""
from __future__ import annotations

import gzip
import os
import pickle
import random
import socket
import struct

import numpy as np
import pytest
import torch

import nncompress.data as D
from nncompress.data import DeviceData, Splits, batch_augment, load
from nncompress.data import mnist1d as M1
from nncompress.data import shapes as S
from nncompress.data import mnist_like
from nncompress.data.torchvision_sets import DatasetNotFound, expected_files


@pytest.fixture
def no_system_datasets(monkeypatch, tmp_path):
    """Hide the system Fashion-MNIST (``dataset-fashion-mnist``) so lookups see data_root only."""
    monkeypatch.setattr(mnist_like, "SYSTEM_DIRS", {k: (tmp_path / "no-system" / k,) for k in mnist_like.SYSTEM_DIRS})


@pytest.fixture
def no_network(monkeypatch):
    class NoSocket:
        def __init__(self, *a, **k):
            raise AssertionError("a dataset loader tried to open a network socket")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", NoSocket)


def assert_standardised(x: torch.Tensor, dims, tol=1e-3):
    assert torch.allclose(x.mean(dim=dims), torch.zeros(()), atol=tol)
    assert torch.allclose(x.std(dim=dims), torch.ones(()), atol=tol)


# ---------------------------------------------------------------- MNIST-1D

def test_mnist1d_shapes_dtypes_and_standardisation():
    s = M1.load_mnist1d(seed=0, n_train=400, n_test=100)
    assert isinstance(s, Splits) and s.name == "mnist1d"
    assert s.train.x.shape == (400, 40) and s.test.x.shape == (100, 40) and len(s.val) == 0
    assert s.train.x.dtype == torch.float32 and s.train.y.dtype == torch.int64
    assert s.classes == [str(i) for i in range(10)] and s.num_classes == 10
    assert set(s.train.y.tolist()) == set(range(10))
    assert torch.bincount(s.train.y, minlength=10).min() >= 25   # roughly balanced
    assert_standardised(s.train.x, dims=None)
    assert abs(s.test.x.mean().item()) < 0.2                     # same transform, not refitted
    cfg = s.config()
    assert cfg["name"] == "mnist1d" and cfg["seed"] == 0 and cfg["n_train"] == 400
    assert all(isinstance(v, (int, float, str, bool)) for v in cfg.values())


def test_mnist1d_deterministic_and_seeded():
    a = M1.load_mnist1d(seed=0, n_train=400, n_test=100)
    M1._generate.cache_clear()
    b = M1.load_mnist1d(seed=0, n_train=400, n_test=100)
    c = M1.load_mnist1d(seed=1, n_train=400, n_test=100)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


def test_mnist1d_leaves_global_rng_alone_and_no_network(no_network):
    np.random.seed(1234)
    random.seed(1234)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    M1._generate.cache_clear()                     # really run the generator
    M1.load_mnist1d(seed=3, n_train=200, n_test=50)
    assert (np.random.get_state()[1] == np_before).all()
    assert random.getstate() == py_before


def test_mnist1d_validation_split():
    s = M1.load_mnist1d(seed=0, n_train=400, n_test=100, n_val=50)
    full = M1.load_mnist1d(seed=0, n_train=400, n_test=100)
    assert len(s.train) == 350 and len(s.val) == 50 and len(s.test) == 100
    rows = {tuple(r.tolist()) for r in full.train.x}
    assert all(tuple(r.tolist()) in rows for r in s.val.x)       # held out of the same pool
    assert not {tuple(r.tolist()) for r in s.val.x} & {tuple(r.tolist()) for r in s.train.x}
    with pytest.raises(ValueError):
        M1.load_mnist1d(n_train=10, n_test=10, n_val=10)


# ---------------------------------------------------------------- shapes

def test_shapes_groups_consistent_with_classes():
    assert sorted(i for g in S.GROUPS for i in g) == list(range(len(S.CLASSES))) == list(range(10))
    assert S.class_groups() == [[S.CLASSES[i] for i in g] for g in S.GROUPS]
    assert len(S.GROUP_NAMES) == len(S.GROUPS) and all(len(g) >= 2 for g in S.GROUPS)
    assert [S.group_of()[c] for c in S.GROUPS[1]] == [1] * len(S.GROUPS[1])


def test_shapes_shapes_dtypes_standardisation(no_network):
    state = torch.get_rng_state()
    s = S.load_shapes(seed=0, n_train=500, n_test=200, n_val=100)
    assert torch.equal(torch.get_rng_state(), state)           # global RNG untouched
    assert s.classes == S.CLASSES and s.num_classes == 10 and s.input_shape == (3, 32, 32)
    assert len(s.train) == 400 and len(s.val) == 100 and len(s.test) == 200
    assert s.train.x.dtype == torch.float32 and s.train.y.dtype == torch.int64
    pool = torch.cat([s.train.x, s.val.x])
    assert_standardised(pool, dims=(0, 2, 3))                    # per channel, train statistics
    assert torch.bincount(torch.cat([s.train.y, s.val.y]), minlength=10).tolist() == [50] * 10
    assert s.info["size"] == 32 and s.info["n_val"] == 100


def test_shapes_deterministic_prefix_stable_and_seeded():
    x1, y1 = S.generate(300, seed=5)
    x2, y2 = S.generate(120, seed=5)
    x3, _ = S.generate(120, seed=6)
    xt, _ = S.generate(120, seed=5, split="test")
    assert torch.equal(x1[:120], x2) and torch.equal(y1[:120], y2)
    assert not torch.equal(x2, x3) and not torch.equal(x2, xt)
    assert x1.shape == (300, 3, 32, 32) and 0 <= x1.min() and x1.max() <= 1
    a = S.load_shapes(seed=1, n_train=200, n_test=100)
    b = S.load_shapes(seed=1, n_train=300, n_test=100)
    # the test images do not depend on n_train (only their normalisation does)
    assert torch.equal(a.test.y, b.test.y)
    for ch in range(3):      # same raw pixels, per-channel affine normalisation apart
        pair = torch.stack([a.test.x[:, ch].flatten(), b.test.x[:, ch].flatten()]).double()
        assert torch.corrcoef(pair)[0, 1] > 0.99999
    assert torch.equal(S.load_shapes(seed=1, n_train=200, n_test=100).train.x, a.train.x)


def test_shapes_other_size_and_colour_not_class_cue():
    x, y = S.generate(1000, seed=0, size=24)
    assert x.shape == (1000, 3, 24, 24)
    mean_rgb = x.mean(dim=(2, 3))                                # (N, 3)
    overall = mean_rgb.mean(0)
    for c in range(10):
        assert (mean_rgb[y == c].mean(0) - overall).abs().max() < 0.1


# ---------------------------------------------------------------- load() dispatch

def test_load_dispatch_and_unknown_name():
    s = load("mnist1d", seed=0, n_train=400, n_test=100, augment=True)
    assert s.name == "mnist1d" and s.train.augment and not s.test.augment
    assert s.train.device == torch.device("cpu")
    s2 = load("shapes", seed=0, n_train=100, n_test=50)
    assert s2.name == "shapes" and s2.input_shape == (3, 32, 32)
    assert s2.config()["name"] == "shapes"
    with pytest.raises(ValueError, match="not a known dataset.*mnist1d"):
        load("imagenet")
    assert set(D.DATASETS) == {"mnist1d", "shapes", "digits", "mnist", "fashion-mnist", "cifar10", "cifar100"}
    assert D.canonical_name("fashionmnist") == "fashion-mnist"      # the old name stays an alias
    with pytest.raises(ValueError, match="fashion-mnist") as exc:
        load("fashion_mnst")
    assert all(n in str(exc.value) for n in D.DATASETS)            # every canonical name listed


# ---------------------------------------------------------------- real datasets from disk

def write_idx(path, arr: np.ndarray) -> None:
    """Big-endian IDX: magic 0x0000 08 <ndim> (08 = uint8), the dims, the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x00000800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def make_mnist(root, folder="MNIST", n_train=20, n_test=10, seed=0, gz=False):
    rng = np.random.default_rng(seed)
    data = {"train": (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
                      rng.integers(0, 10, n_train, dtype=np.uint8)),
            "test": (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
                     rng.integers(0, 10, n_test, dtype=np.uint8))}
    prefix = {"train": "train", "test": "t10k"}
    for split, (x, y) in data.items():
        for kind, arr in (("images-idx3-ubyte", x), ("labels-idx1-ubyte", y)):
            p = root / folder / "raw" / f"{prefix[split]}-{kind}"
            write_idx(p, arr)
            if gz:
                p.with_name(p.name + ".gz").write_bytes(gzip.compress(p.read_bytes()))
                p.unlink()
    return data


def test_idx_magic_numbers_are_the_real_format(tmp_path):
    write_idx(tmp_path / "a", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "b", np.zeros(2, np.uint8))
    assert (tmp_path / "a").read_bytes()[:16] == bytes.fromhex("00000803" "00000002" "0000001c" "0000001c")
    assert (tmp_path / "b").read_bytes()[:8] == bytes.fromhex("00000801" "00000002")


@pytest.mark.parametrize("name,folder,mean,std", [("mnist", "MNIST", 0.1307, 0.3081),
                                                  ("fashionmnist", "FashionMNIST", 0.2860, 0.3530),
                                                  ("fashion-mnist", "FashionMNIST", 0.2860, 0.3530)])
def test_mnist_like_from_idx_files(tmp_path, no_network, name, folder, mean, std):
    data = make_mnist(tmp_path, folder)
    s = load(name, data_root=tmp_path)
    for split, dd in (("train", s.train), ("test", s.test)):
        x, y = data[split]
        assert dd.x.shape == (len(x), 1, 28, 28) and dd.x.dtype == torch.float32
        assert torch.allclose(dd.x * std + mean, torch.from_numpy(x)[:, None].float() / 255, atol=1e-5)
        assert torch.equal(dd.y, torch.from_numpy(y).long())
    assert s.num_classes == 10 and s.info["n_train"] == 20 and s.info["dataset"] == D.canonical_name(name)


def test_download_goes_through_torchvision(tmp_path, monkeypatch, no_network):
    import torchvision.datasets as tvd

    calls = []

    class FakeMNIST:                    # stands in for the real download
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            if not (tmp_path / "dl" / "MNIST" / "raw").exists():
                make_mnist(tmp_path / "dl")

    monkeypatch.setattr(tvd, "MNIST", FakeMNIST)
    s = load("mnist", data_root=tmp_path / "dl", download=True)
    assert len(s.train) == 20 and calls and all(dl for _, _, dl in calls)
    assert {train for _, train, _ in calls} == {True, False}


def test_mnist_gz_files_accepted(tmp_path):
    data = make_mnist(tmp_path, gz=True)
    s = load("mnist", data_root=tmp_path)
    assert torch.equal(s.test.y, torch.from_numpy(data["test"][1]).long())
    assert not list((tmp_path / "MNIST" / "raw").glob("*ubyte"))   # nothing extracted to disk


def test_mnist_subset_and_validation_deterministic(tmp_path):
    data = make_mnist(tmp_path, n_train=40)
    a = load("mnist", data_root=tmp_path, n_train=16, n_test=5, n_val=4, seed=0)
    b = load("mnist", data_root=tmp_path, n_train=16, n_test=5, n_val=4, seed=0)
    c = load("mnist", data_root=tmp_path, n_train=16, n_test=5, n_val=4, seed=1)
    assert len(a.train) == 12 and len(a.val) == 4 and len(a.test) == 5
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert not torch.equal(torch.cat([a.train.x, a.val.x]).sum(0), torch.cat([c.train.x, c.val.x]).sum(0))
    # every returned row is a row of the file, with its own label
    pix = torch.from_numpy(data["train"][0]).float().flatten(1) / 255
    got = (a.train.x * 0.3081 + 0.1307).flatten(1)
    match = torch.cdist(got, pix).argmin(1)
    assert torch.allclose(pix[match], got, atol=1e-5)
    assert torch.equal(torch.from_numpy(data["train"][1]).long()[match], a.train.y)
    with pytest.raises(ValueError, match="only 40"):
        load("mnist", data_root=tmp_path, n_train=41)


def write_cifar(root, name, str_keys=False, seed=0):
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, train_files, test_files = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
        label_key, meta_name, meta = "labels", "batches.meta", {"label_names": [f"c{i}" for i in range(10)]}
        ncls, per = 10, 4
    else:
        folder, train_files, test_files = "cifar-100-python", ["train"], ["test"]
        label_key, meta_name, meta = "fine_labels", "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                                                             "coarse_label_names": [f"g{i}" for i in range(20)]}
        ncls, per = 100, 12
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    (root / folder).mkdir(parents=True)
    out = {}
    for split, files in (("train", train_files), ("test", test_files)):
        xs, ys = [], []
        for f in files:
            x = rng.integers(0, 256, (per, 3072), dtype=np.uint8)
            y = rng.integers(0, ncls, per).tolist()
            batch = {key("data"): x, key(label_key): y, key("batch_label"): f"batch {f}"}
            if name == "cifar100":
                batch[key("coarse_labels")] = [v // 5 for v in y]
            (root / folder / f).write_bytes(pickle.dumps(batch, protocol=2))
            xs.append(x)
            ys += y
        out[split] = (np.concatenate(xs).reshape(-1, 3, 32, 32), np.array(ys))
    (root / folder / meta_name).write_bytes(pickle.dumps({key(k): v for k, v in meta.items()}))
    return out


@pytest.mark.parametrize("name,str_keys,mean,std", [
    ("cifar10", False, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ("cifar100", True, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))])
def test_cifar_from_pickled_batches(tmp_path, no_network, name, str_keys, mean, std):
    data = write_cifar(tmp_path, name, str_keys=str_keys)
    s = load(name, data_root=tmp_path)
    m, sd = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    for split, dd in (("train", s.train), ("test", s.test)):
        x, y = data[split]
        assert dd.x.shape == (len(x), 3, 32, 32)
        assert torch.allclose(dd.x * sd + m, torch.from_numpy(x).float() / 255, atol=1e-5)
        assert torch.equal(dd.y, torch.from_numpy(y).long())
    assert s.classes == ([f"c{i}" for i in range(10)] if name == "cifar10" else [f"f{i}" for i in range(100)])
    assert len(s.train) == (20 if name == "cifar10" else 12)


def test_cifar_class_names_fall_back_without_meta(tmp_path):
    write_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()
    s = load("cifar10", data_root=tmp_path)
    assert s.classes[0] == "airplane" and s.classes[-1] == "truck"


def test_cifar_refuses_code_in_pickles(tmp_path):
    write_cifar(tmp_path, "cifar10")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load("cifar10", data_root=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("name,needle", [
    ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
    ("fashionmnist", "FashionMNIST/raw/t10k-labels-idx1-ubyte"),
    ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ("cifar100", "cifar-100-python/train")])
def test_missing_dataset_error_names_path_and_files(tmp_path, no_network, no_system_datasets, name, needle):
    with pytest.raises(DatasetNotFound) as exc:
        load(name, data_root=tmp_path)
    msg = str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)
    assert str(tmp_path) in msg and needle in msg and "download=True" in msg
    assert needle in expected_files(name)
    with pytest.raises(DatasetNotFound, match="no data_root"):
        load(name)


def test_partially_present_dataset_lists_missing_file(tmp_path):
    write_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFound, match="Missing: cifar-10-batches-py/data_batch_3$|Missing: cifar-10-batches-py/data_batch_3\n"):
        load("cifar10", data_root=tmp_path)


# ---------------------------------------------------------------- DeviceData

def test_batches_cover_every_sample_once_and_extras_travel():
    n = 23
    x = torch.arange(n * 2, dtype=torch.float32).view(n, 2)
    y = torch.arange(n) % 5
    extra = torch.arange(n) * 10
    dd = DeviceData(x, y).with_extras(extra)
    g = torch.Generator().manual_seed(0)
    seen = []
    for xb, yb, eb in dd.batches(5, shuffle=True, generator=g):
        idx = (xb[:, 0] / 2).long()
        assert torch.equal(yb, y[idx]) and torch.equal(eb, extra[idx])
        seen += idx.tolist()
    assert sorted(seen) == list(range(n)) and seen != list(range(n))
    assert dd.num_batches(5) == 5 and dd.num_batches(5, drop_last=True) == 4
    assert sum(len(b[0]) for b in dd.batches(5, drop_last=True)) == 20
    ordered = torch.cat([b[0] for b in dd.batches(5)])
    assert torch.equal(ordered, x)
    with pytest.raises(ValueError):
        DeviceData(x, y[:-1])
    with pytest.raises(ValueError):
        DeviceData(x, y, extras=(extra[:-1],))


def test_augmentation_only_when_shuffled():
    x = torch.randn(16, 3, 8, 8)
    dd = DeviceData(x, torch.zeros(16, dtype=torch.long), augment=True)
    assert torch.equal(torch.cat([b[0] for b in dd.batches(4)]), x)     # evaluation: untouched
    g = torch.Generator().manual_seed(0)
    out = [b[0] for b in dd.batches(16, shuffle=True, generator=g)][0]
    assert out.shape == x.shape and not torch.equal(out.sort(0).values, x.sort(0).values)
    plain = DeviceData(x, torch.zeros(16, dtype=torch.long))
    g = torch.Generator().manual_seed(0)
    out = [b[0] for b in plain.batches(16, shuffle=True, generator=g)][0]
    assert torch.equal(out.sort(0).values, x.sort(0).values)            # only permuted


def test_batch_augment_is_crop_and_flip():
    x = torch.rand(6, 2, 5, 5) + 1                   # strictly positive: zeros mark padding
    g = torch.Generator().manual_seed(1)
    assert torch.equal(batch_augment(x, g, crop_padding=0, flip=False), x)
    flipped = batch_augment(x, torch.Generator().manual_seed(1), crop_padding=0)
    for a, b in zip(flipped, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(2))
    p = 2
    out = batch_augment(x, torch.Generator().manual_seed(2), crop_padding=p, flip=False)
    again = batch_augment(x, torch.Generator().manual_seed(2), crop_padding=p, flip=False)
    assert torch.equal(out, again) and out.shape == x.shape
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for i in range(len(x)):
        assert any(torch.equal(out[i], padded[i, :, dy:dy + 5, dx:dx + 5])
                   for dy in range(2 * p + 1) for dx in range(2 * p + 1))
    v = torch.randn(4, 7)
    assert batch_augment(v, g) is v                  # non-image data untouched
