"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from disk, in torchvision's layout.

The files are the ones ``torchvision.datasets`` downloads and expects under ``data_root``:

* MNIST (LeCun et al. 1998) / Fashion-MNIST (Xiao et al. 2017):
  ``MNIST/raw/`` resp. ``FashionMNIST/raw/`` holding the four IDX files
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (big-endian IDX: magic ``0x00000803`` images /
  ``0x00000801`` labels, the dimensions, then uint8 data).  torchvision only checks
  that these uncompressed files exist (no checksum) and parses them with
  ``torchvision.datasets.mnist.read_image_file`` / ``read_label_file``, which we reuse.
  Where only the downloaded ``.gz`` archives are present we read those too (through a
  temporary file; ``data_root`` is never written to unless ``download=True``).
* CIFAR-10 / CIFAR-100 (Krizhevsky 2009): ``cifar-10-batches-py/`` with
  ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` (and ``batches.meta`` for the
  class names), resp. ``cifar-100-python/`` with ``train``, ``test`` (and ``meta``).
  Each is a pickled dict with ``data`` (uint8, ``(N, 3072)`` = 3 x 32 x 32 channel-major)
  and ``labels`` resp. ``fine_labels``.  torchvision's ``CIFAR10`` refuses files whose
  md5 differs from the official release (``_check_integrity``); **we read the pickled
  batches ourselves instead of going through the torchvision class**, so any
  well-formed batch files load (e.g. a subset, or test fixtures).  The unpickler is
  restricted to the numpy array types these files contain, so a crafted file cannot
  run code.  With ``download=True`` torchvision downloads and md5-checks the official
  archive first.

Images become float32 normalised with the customary per-channel mean/std of each
dataset (MNIST 0.1307/0.3081, Fashion-MNIST 0.2860/0.3530, CIFAR-10 and CIFAR-100 the
training-set channel statistics); MNIST-like sets have shape ``(N, 1, 28, 28)``,
CIFAR ``(N, 3, 32, 32)``.  Caps on the sizes take a deterministic random subset
(from ``seed``; kept in file order).
"""
from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import Splits
from .device import DeviceData
from . import split_off


class DatasetNotFound(FileNotFoundError):
    """A real dataset's files are not under ``data_root`` (and ``download`` was off)."""


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
    "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit",
    "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
    "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
    "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"]

_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

SPECS: dict[str, dict] = {
    "mnist": {"title": "MNIST", "kind": "idx", "folder": "MNIST/raw", "tv": "MNIST",
              "mean": (0.1307,), "std": (0.3081,), "classes": [str(i) for i in range(10)]},
    "fashionmnist": {"title": "Fashion-MNIST", "kind": "idx", "folder": "FashionMNIST/raw",
                     "tv": "FashionMNIST", "mean": (0.2860,), "std": (0.3530,),
                     "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]},
    "cifar10": {"title": "CIFAR-10", "kind": "cifar", "folder": "cifar-10-batches-py",
                "tv": "CIFAR10", "train": [f"data_batch_{i}" for i in range(1, 6)],
                "test": ["test_batch"], "meta": "batches.meta", "meta_key": "label_names",
                "label_key": "labels", "mean": (0.4914, 0.4822, 0.4465),
                "std": (0.2470, 0.2435, 0.2616), "classes": CIFAR10_CLASSES},
    "cifar100": {"title": "CIFAR-100", "kind": "cifar", "folder": "cifar-100-python",
                 "tv": "CIFAR100", "train": ["train"], "test": ["test"], "meta": "meta",
                 "meta_key": "fine_label_names", "label_key": "fine_labels",
                 "mean": (0.5071, 0.4865, 0.4409), "std": (0.2673, 0.2564, 0.2762),
                 "classes": CIFAR100_CLASSES},
}


def expected_files(name: str) -> list[str]:
    """The files (relative to ``data_root``) that dataset ``name`` is read from."""
    spec = SPECS[name]
    if spec["kind"] == "idx":
        return [f"{spec['folder']}/{f}" for pair in _IDX_FILES.values() for f in pair]
    return [f"{spec['folder']}/{f}" for f in spec["train"] + spec["test"]]


def _not_found(name: str, data_root, missing: list[str]) -> DatasetNotFound:
    spec = SPECS[name]
    where = ("no data_root was given" if data_root is None
             else f"searched data_root={str(data_root)!r} ({Path(data_root).resolve()})")
    lines = [f"{spec['title']} ({name!r}) not found: {where}."]
    if missing and data_root is not None:
        lines.append("Missing: " + ", ".join(missing))
    lines.append("Expected under data_root: " + ", ".join(expected_files(name))
                 + (" (the .gz downloads of these are accepted too)" if spec["kind"] == "idx" else "")
                 + (f" (plus {spec['folder']}/{spec['meta']} for class names)" if spec["kind"] == "cifar" else ""))
    lines.append(f"To get them: call nncompress.data.load({name!r}, data_root=..., download=True) "
                 f"on a machine with internet access (torchvision.datasets.{spec['tv']} downloads "
                 f"them into data_root), or copy that folder's {spec['folder'].split('/')[0]}/ "
                 "directory from such a machine into data_root.  The offline datasets "
                 "'mnist1d' and 'shapes' need no files.")
    return DatasetNotFound("\n".join(lines))


# ---------------------------------------------------------------- MNIST-like (IDX)

def _idx_path(folder: Path, fname: str) -> Path | None:
    for cand in (folder / fname, folder / (fname + ".gz")):
        if cand.is_file():
            return cand
    return None


def _read_idx(path: Path, reader) -> torch.Tensor:
    if path.suffix != ".gz":
        return reader(str(path))
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / path.stem
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return reader(str(plain))


def _load_idx(name: str, root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    folder = root / SPECS[name]["folder"]
    paths = {f: _idx_path(folder, f) for pair in _IDX_FILES.values() for f in pair}
    missing = [f"{SPECS[name]['folder']}/{f}" for f, p in paths.items() if p is None]
    if missing:
        raise _not_found(name, root, missing)
    out = {}
    for split, (img_f, lab_f) in _IDX_FILES.items():
        x = _read_idx(paths[img_f], read_image_file)            # uint8 (N, 28, 28)
        y = _read_idx(paths[lab_f], read_label_file)            # int64 (N,)
        if len(x) != len(y):
            raise ValueError(f"{paths[img_f]} has {len(x)} images but {paths[lab_f]} {len(y)} labels")
        out[split] = (x[:, None], y)
    return out


# ---------------------------------------------------------------- CIFAR (pickled batches)

_SAFE_GLOBALS = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
                 ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
                 ("numpy._core.numeric", "_frombuffer")}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (CIFAR batches need nothing else)."""

    def find_class(self, module, name):
        if module.startswith("numpy.core."):          # pickles written by numpy < 2
            module = "numpy._core." + module[len("numpy.core."):]
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        d = _RestrictedUnpickler(f, encoding="latin1").load()
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    # Python-2 pickles (the official files) give str keys, Python-3 ones may give bytes
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _load_cifar(name: str, root: Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[str]]:
    spec = SPECS[name]
    folder = root / spec["folder"]
    files = {split: [folder / f for f in spec[split]] for split in ("train", "test")}
    missing = [f"{spec['folder']}/{p.name}" for ps in files.values() for p in ps if not p.is_file()]
    if missing:
        raise _not_found(name, root, missing)
    out = {}
    for split, paths in files.items():
        xs, ys = [], []
        for p in paths:
            d = _unpickle(p)
            if "data" not in d or spec["label_key"] not in d:
                raise ValueError(f"{p}: expected keys 'data' and {spec['label_key']!r}, found {sorted(d)}")
            data = np.asarray(d["data"], dtype=np.uint8)
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[spec["label_key"]], dtype=np.int64).reshape(-1))
            if len(xs[-1]) != len(ys[-1]):
                raise ValueError(f"{p}: {len(xs[-1])} images but {len(ys[-1])} labels")
        out[split] = (torch.from_numpy(np.ascontiguousarray(np.concatenate(xs))),
                      torch.from_numpy(np.concatenate(ys)))
    classes = list(spec["classes"])
    meta = folder / spec["meta"]
    if meta.is_file():
        names = _unpickle(meta).get(spec["meta_key"])
        if names:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return out, classes


# ---------------------------------------------------------------- entry point

def _download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, SPECS[name]["tv"])
    for train in ((True,) if SPECS[name]["kind"] == "cifar" else (True, False)):
        cls(str(root), train=train, download=True)   # downloads, checks md5, extracts


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int, salt: int, what: str):
    if n is None or n == len(y):
        return x, y
    if not 0 <= n <= len(y):
        raise ValueError(f"{what}={n} but only {len(y)} samples are available")
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + salt)
    idx = torch.randperm(len(y), generator=g)[:n].sort().values
    return x[idx], y[idx]


def load_torchvision(name: str, *, seed: int = 0, n_train: int | None = None,
                     n_test: int | None = None, n_val: int = 0, data_root: str | os.PathLike | None = None,
                     download: bool = False) -> Splits:
    """Dataset ``name`` (one of :data:`SPECS`) from ``data_root`` as normalised CPU tensors.

    ``n_train``/``n_test`` cap the sizes (``None``: the whole split) with a random subset
    drawn from ``seed``; ``n_val`` samples are then held out of the training pool
    (``len(train) == n_train - n_val``).  Raises :class:`DatasetNotFound` (a
    ``FileNotFoundError``) naming the path and the expected files when they are absent.
    """
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(SPECS)}")
    spec = SPECS[name]
    if data_root is None:
        raise _not_found(name, None, [])
    root = Path(data_root).expanduser()
    if download:
        root.mkdir(parents=True, exist_ok=True)
        _download(name, root)
    if spec["kind"] == "idx":
        raw, classes = _load_idx(name, root), list(spec["classes"])
    else:
        raw, classes = _load_cifar(name, root)
    x_tr, y_tr = _subset(*raw["train"], n_train, seed, 1, "n_train")
    x_te, y_te = _subset(*raw["test"], n_test, seed, 2, "n_test")
    n_val = int(n_val)
    if not 0 <= n_val < len(y_tr):
        raise ValueError(f"n_val={n_val} must be >= 0 and smaller than the training pool ({len(y_tr)})")
    mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"]).view(1, -1, 1, 1)

    def norm(x):
        return (x.float().div_(255.0) - mean) / std

    train = DeviceData(norm(x_tr), y_tr.long(), name=f"{name}/train")
    test = DeviceData(norm(x_te), y_te.long(), name=f"{name}/test")
    train, val = split_off(train, n_val, seed)
    info = {"dataset": name, "seed": int(seed), "n_train": len(y_tr), "n_test": len(y_te),
            "n_val": n_val, "source": "torchvision-files", "normalise": "standard-mean-std"}
    return Splits(name, train, val, test, classes, info)
