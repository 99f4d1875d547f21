"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from disk, in torchvision's layout.

The files are the ones ``torchvision.datasets`` downloads and expects under ``data_root``:

* MNIST (LeCun et al. 1998) / Fashion-MNIST (Xiao et al. 2017): four IDX files each,
  ``MNIST/raw/`` resp. ``FashionMNIST/raw/`` (or plain / ``.gz``, see
  :mod:`nncompress.data.mnist_like` for every place looked - Fashion-MNIST is also found
  where Debian's ``dataset-fashion-mnist`` installs it).  They are read by our own strict
  IDX reader (:mod:`nncompress.data.idx`), not torchvision's, so a malformed file raises an
  error naming the file instead of a bare assertion; labels outside 0..9 are refused.
* CIFAR-10 / CIFAR-100 (Krizhevsky 2009): ``cifar-10-batches-py/`` with
  ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` (and ``batches.meta`` for the
  class names), resp. ``cifar-100-python/`` with ``train``, ``test`` (and ``meta``).
  Each is a pickled dict with ``data`` (uint8, ``(N, 3072)`` = 3 x 32 x 32 channel-major)
  and ``labels`` resp. ``fine_labels``.  torchvision's ``CIFAR10`` refuses files whose
  md5 differs from the official release (``_check_integrity``); **we read the pickled
  batches ourselves instead of going through the torchvision class**, so any
  well-formed batch files load (e.g. a subset, or test fixtures).  The unpickler is
  restricted to the numpy array types these files contain, so a crafted file cannot
  run code.  Pixel data must be integers in 0..255 (a float array is refused, not
  wrapped to uint8), labels in range, and the class names of the meta file one per class.
  With ``download=True`` torchvision downloads and md5-checks the official archive first.

Every malformed file raises :class:`~nncompress.data.checks.DatasetFormatError` naming
the file.  Images become float32 normalised with the customary per-channel mean/std of
each dataset (MNIST 0.1307/0.3081, Fashion-MNIST 0.2860/0.3530, CIFAR-10 and CIFAR-100
the training-set channel statistics); MNIST-like sets have shape ``(N, 1, 28, 28)``,
CIFAR ``(N, 3, 32, 32)``.  Caps on the sizes take a deterministic random subset
(from ``seed``; kept in file order); the validation set is held out of the training set.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .names import canonical_name
from .splits import Splits, split_off
from .checks import (DatasetFormatError, DatasetNotFound, check_class_names, check_count,
                     check_labels, check_uint8_pixels, dataset_not_found)
from .device import DeviceData
from .mnist_like import IDX_FILES, download_root, locate, read_arrays

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

SPECS: dict[str, dict] = {
    "mnist": {"title": "MNIST", "kind": "idx", "folder": "MNIST/raw", "tv": "MNIST",
              "mean": (0.1307,), "std": (0.3081,), "classes": [str(i) for i in range(10)]},
    "fashion-mnist": {"title": "Fashion-MNIST", "kind": "idx", "folder": "FashionMNIST/raw",
                      "tv": "FashionMNIST", "mean": (0.2860,), "std": (0.3530,),
                      "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
                      "content_key": True},
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
    spec = SPECS[canonical_name(name)]
    if spec["kind"] == "idx":
        return [f"{spec['folder']}/{f}" for pair in IDX_FILES.values() for f in pair]
    return [f"{spec['folder']}/{f}" for f in spec["train"] + spec["test"]]


def _cifar_not_found(name: str, data_root, missing: list[str]) -> DatasetNotFound:
    spec = SPECS[name]
    place = ("data_root", "no data_root was given") if data_root is None else \
        (f"data_root={str(data_root)!r} -> {(Path(data_root) / spec['folder']).resolve()}",
         "no such folder" if not (Path(data_root) / spec["folder"]).is_dir() else "incomplete")
    return dataset_not_found(
        spec["title"], name, [place], missing=missing if data_root is not None else [],
        expected=expected_files(name) + [f"(plus {spec['folder']}/{spec['meta']} for class names)"],
        remedies=[f"nncompress.data.load({name!r}, data_root=..., download=True) on a machine with "
                  f"internet access (torchvision.datasets.{spec['tv']} downloads into data_root)",
                  f"or copy the {spec['folder']}/ directory from such a machine into data_root; "
                  "the offline datasets 'mnist1d', 'shapes' and 'digits' need no files"])


# ---------------------------------------------------------------- CIFAR (pickled batches)

_SAFE_GLOBALS = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
                 ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
                 ("numpy._core.numeric", "_frombuffer")}


class UnsafePickle(pickle.UnpicklingError):
    """A CIFAR file asks to load something other than containers and numpy arrays."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (CIFAR batches need nothing else)."""

    source: Path | str = "a CIFAR batch file"

    def find_class(self, module, name):
        if module.startswith("numpy.core."):          # pickles written by numpy < 2
            module = "numpy._core." + module[len("numpy.core."):]
        if (module, name) not in _SAFE_GLOBALS:
            raise UnsafePickle(f"{self.source}: refusing to load {module}.{name} from a CIFAR batch file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        unpickler = _RestrictedUnpickler(f, encoding="latin1")
        unpickler.source = path
        try:
            d = unpickler.load()
        except UnsafePickle:
            raise
        except pickle.UnpicklingError as exc:
            raise DatasetFormatError(f"{path}: not a readable pickle ({exc})") from exc
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                UnicodeDecodeError, MemoryError, OverflowError) as exc:
            raise DatasetFormatError(f"{path}: not a readable pickle, truncated or corrupted "
                                     f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(d, dict):
        raise DatasetFormatError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    # Python-2 pickles (the official files) give str keys, Python-3 ones may give bytes
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _cifar_batch(path: Path, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one pickled batch file, validated."""
    d = _unpickle(path)
    if "data" not in d or spec["label_key"] not in d:
        raise DatasetFormatError(f"{path}: expected keys 'data' and {spec['label_key']!r}, found {sorted(map(str, d))}")
    data = check_uint8_pixels(d["data"], path)
    if data.size % 3072:
        raise DatasetFormatError(f"{path}: 'data' has shape {data.shape} ({data.size} values), "
                                 "not a whole number of 3x32x32 = 3072-value images")
    x = data.reshape(-1, 3, 32, 32)
    y = check_labels(np.asarray(d[spec["label_key"]]).reshape(-1), len(spec["classes"]), path)
    if len(x) != len(y):
        raise DatasetFormatError(f"{path}: {len(x)} images but {len(y)} labels")
    return x, y


def _load_cifar(name: str, root: Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[str]]:
    spec = SPECS[name]
    folder = root / spec["folder"]
    files = {split: [folder / f for f in spec[split]] for split in ("train", "test")}
    missing = [f"{spec['folder']}/{p.name}" for ps in files.values() for p in ps if not p.is_file()]
    if missing:
        raise _cifar_not_found(name, root, missing)
    out = {}
    for split, paths in files.items():
        batches = [_cifar_batch(p, spec) for p in paths]
        out[split] = (torch.from_numpy(np.ascontiguousarray(np.concatenate([b[0] for b in batches]))),
                      torch.from_numpy(np.concatenate([b[1] for b in batches])))
    classes = list(spec["classes"])
    meta = folder / spec["meta"]
    if meta.is_file():
        names = _unpickle(meta).get(spec["meta_key"])
        if names is not None:
            classes = check_class_names(names, len(spec["classes"]), meta)
    return out, classes


# ---------------------------------------------------------------- MNIST-like (IDX)

def _load_idx(name: str, data_root, download: bool) -> tuple[dict, str, list[str]]:
    """``(raw splits, content sha256, files read)`` of IDX dataset ``name``, downloaded if asked and absent."""
    spec = SPECS[name]
    try:
        paths = locate(name, spec["title"], spec["folder"], data_root, tv_class=spec["tv"])
    except DatasetNotFound:
        if not download:
            raise
        root = Path(data_root).expanduser() if data_root is not None else download_root()
        root.mkdir(parents=True, exist_ok=True)
        _download(name, root)
        paths = locate(name, spec["title"], spec["folder"], root, tv_class=spec["tv"])
    arrays = read_arrays(name, paths)
    raw = {split: (arrays[f"{split}_x"][:, None], arrays[f"{split}_y"]) for split in IDX_FILES}
    return raw, arrays["sha256"], sorted(str(p) for p in paths.values())


# ---------------------------------------------------------------- entry point

def _download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, SPECS[name]["tv"])
    for train in ((True,) if SPECS[name]["kind"] == "cifar" else (True, False)):
        cls(str(root), train=train, download=True)   # downloads, checks md5, extracts


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int, salt: int, what: str, title: str):
    """A deterministic random subset of ``n`` rows (from ``seed``), kept in file order."""
    if n is None:
        return x, y
    n = check_count(what, n, low=1 if what == "n_train" else 0, high=len(y),
                    why=f"{title} has only {len(y)} {'training' if what == 'n_train' else 'test'} images here")
    if n == len(y):
        return x, y
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + salt)
    idx = torch.randperm(len(y), generator=g)[:n].sort().values
    return x[idx], y[idx]


def load_torchvision(name: str, *, seed: int = 0, n_train: int | None = None,
                     n_test: int | None = None, n_val: int = 0, data_root: str | os.PathLike | None = None,
                     download: bool = False) -> Splits:
    """Dataset ``name`` (one of :data:`SPECS` or an alias) as normalised CPU tensors.

    ``n_train``/``n_test`` cap the sizes (``None``: the whole split) with a random subset
    drawn from ``seed``; ``n_val`` samples are then held out of the training pool
    (``len(train) == n_train - n_val``; never from the test set).  Raises
    :class:`DatasetNotFound` (a ``FileNotFoundError``) naming every place looked and the
    ways to get the files when they are absent, :class:`DatasetFormatError` naming the file
    when one is malformed, ``ValueError`` for a size the data cannot give.
    """
    canonical = canonical_name(name)
    if canonical not in SPECS:
        raise ValueError(f"name={name!r} is not a dataset read from files: expected one of {', '.join(SPECS)}")
    name, spec = canonical, SPECS[canonical]
    info_extra: dict = {}
    if spec["kind"] == "idx":
        raw, sha, files = _load_idx(name, data_root, download)
        classes = list(spec["classes"])
        info_extra["files"] = files
        if spec.get("content_key"):
            info_extra["content_sha256"] = sha
    else:
        if data_root is None:
            raise _cifar_not_found(name, None, [])
        root = Path(data_root).expanduser()
        if download:
            root.mkdir(parents=True, exist_ok=True)
            _download(name, root)
        raw, classes = _load_cifar(name, root)
    x_tr, y_tr = _subset(*raw["train"], n_train, seed, 1, "n_train", spec["title"])
    x_te, y_te = _subset(*raw["test"], n_test, seed, 2, "n_test", spec["title"])
    n_val = check_count("n_val", n_val, low=0, high=len(y_tr) - 1,
                        why=f"held out of the {len(y_tr)} training images, leaving at least one")
    mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"]).view(1, -1, 1, 1)

    def norm(x):      # in place on the float copy: the same arithmetic as (x / 255 - mean) / std
        return x.float().div_(255.0).sub_(mean).div_(std)

    train = DeviceData(norm(x_tr), y_tr.long(), name=f"{name}/train")
    test = DeviceData(norm(x_te), y_te.long(), name=f"{name}/test")
    train, val = split_off(train, n_val, seed)
    info = {"dataset": name, "seed": int(seed), "n_train": len(y_tr), "n_test": len(y_te),
            "n_val": n_val, "source": "torchvision-files", "normalise": "standard-mean-std", **info_extra}
    return Splits(name, train, val, test, classes, info)


__all__ = ["SPECS", "DatasetNotFound", "DatasetFormatError", "UnsafePickle", "expected_files", "load_torchvision"]
