"""MNIST and Fashion-MNIST: where their IDX files are looked for, read once, kept.

MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao, Rasul & Vollgraf 2017,
arXiv:1708.07747) are four IDX files each (see :mod:`nncompress.data.idx`):
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` (60 000), ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte`` (10 000), plain or as the ``.gz`` archives.

Lookup order (the first folder holding all four files wins):

1. ``data_root``: ``<data_root>/<torchvision folder>`` (``MNIST/raw``, ``FashionMNIST/raw``:
   what ``torchvision.datasets`` downloads), ``<data_root>/<name>`` (``fashion-mnist/``)
   and ``<data_root>`` itself;
2. the system path of a distribution package: ``/usr/share/datasets/fashion-mnist/``
   (Debian/Ubuntu ``apt-get install dataset-fashion-mnist``);
3. with no ``data_root``: :func:`download_root` (where ``download=True`` puts the files then).

Nothing is downloaded unless the caller passes ``download=True`` (see
:mod:`nncompress.data.torchvision_sets`).  Decoding the 26 MB ``.gz`` of the training
images takes ~0.3 s; the decoded, validated arrays are therefore kept per process and in the
checkpoint cache (:func:`nncompress.cache.get_or_compute`: atomic, SHA-256-checked,
``weights_only``), keyed by the files' resolved paths, sizes and modification times.
"""
from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from .checks import DatasetFormatError, check_labels, dataset_not_found
from .idx import read_idx

log = logging.getLogger(__name__)

#: split -> (images file, labels file), without the optional ``.gz``
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
#: folders where a distribution package installs a dataset (looked at after ``data_root``)
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}
#: the Debian/Ubuntu package that installs a dataset into its :data:`SYSTEM_DIRS`
APT_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10
#: bump when decoding changes what the cached arrays hold
READER_VERSION = 1


def download_root() -> Path:
    """Where ``download=True`` without a ``data_root`` puts the files: ``<cache dir>/datasets``."""
    from ..cache import cache_dir

    return cache_dir() / "datasets"


def _file_in(folder: Path, fname: str) -> Path | None:
    for cand in (folder / fname, folder / (fname + ".gz")):
        if cand.is_file():
            return cand
    return None


def candidate_dirs(name: str, folder: str, data_root) -> list[tuple[str, Path]]:
    """``(description, folder)`` for every place dataset ``name`` is looked for, in order."""
    out = []
    if data_root is not None:
        root = Path(data_root).expanduser()
        for sub in (folder, name, "."):
            out.append((f"data_root={str(data_root)!r} -> {(root / sub).resolve()}", root / sub))
    for d in SYSTEM_DIRS.get(name, ()):
        pkg = APT_PACKAGES.get(name)
        out.append((f"system path {d}" + (f" (package {pkg})" if pkg else ""), d))
    if data_root is None:
        try:
            dl = download_root() / folder
        except OSError:                      # no usable cache folder: nothing was downloaded there
            dl = None
        if dl is not None:
            out.append((f"no data_root was given; download folder {dl}", dl))
    return out


def locate(name: str, title: str, folder: str, data_root, *, tv_class: str) -> dict[str, Path]:
    """The four IDX files of ``name`` (file name -> path) from the first place that has them all.

    Raises :class:`~nncompress.data.checks.DatasetNotFound` naming every place looked, what
    each lacked, and the ways to get the files (the apt package where there is one,
    ``download=True``).
    """
    wanted = [f for pair in IDX_FILES.values() for f in pair]
    places = []
    for where, d in candidate_dirs(name, folder, data_root):
        if not d.is_dir():
            places.append((where, "no such folder"))
            continue
        found = {f: _file_in(d, f) for f in wanted}
        missing = [f for f, p in found.items() if p is None]
        if not missing:
            return found
        places.append((where, "missing " + ", ".join(missing) if len(missing) < len(wanted)
                       else "none of the files"))
    if data_root is None:
        places.insert(0, ("data_root", "no data_root was given"))
    remedies = []
    if name in APT_PACKAGES:
        remedies.append(f"sudo apt-get install {APT_PACKAGES[name]}   (Debian/Ubuntu: installs the "
                        f"IDX .gz files into {SYSTEM_DIRS[name][0]}/, found with no data_root)")
    remedies.append(f"nncompress.data.load({name!r}, data_root=..., download=True) on a machine with "
                    f"internet access (torchvision.datasets.{tv_class} downloads into data_root/{folder.split('/')[0]}/)")
    remedies.append(f"or copy the four files (.gz or not) into data_root/{folder}/; "
                    "the offline datasets 'mnist1d', 'shapes' and 'digits' need no files")
    raise dataset_not_found(title, name, places, remedies=remedies,
                             expected=[f"{folder}/{f}" for f in wanted] + ["(the .gz downloads of these are accepted too)"])


def _identity(paths: dict[str, Path]) -> tuple:
    out = []
    for f in sorted(paths):
        st = paths[f].stat()
        out.append((f, str(paths[f].resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _decode(paths: dict[str, Path]) -> dict:
    """Read and validate the four files: uint8 images ``(N, 28, 28)``, uint8 labels ``(N,)``."""
    out, digest = {}, hashlib.sha256()
    for split, (img_f, lab_f) in IDX_FILES.items():
        x = read_idx(paths[img_f], ndim=3, type_code=0x08)
        y = read_idx(paths[lab_f], ndim=1, type_code=0x08)
        if x.shape[1:] != IMAGE_SIZE:
            raise DatasetFormatError(f"{paths[img_f]}: images are {x.shape[1]}x{x.shape[2]}, expected "
                                     f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}")
        if len(x) != len(y):
            raise DatasetFormatError(f"{paths[img_f]} has {len(x)} images but {paths[lab_f]} {len(y)} labels")
        check_labels(y, NUM_CLASSES, paths[lab_f])
        for a in (x, y):
            digest.update(str(a.shape).encode())
            digest.update(a.tobytes())
        out[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(x))
        out[f"{split}_y"] = torch.from_numpy(np.ascontiguousarray(y))
    out["sha256"] = digest.hexdigest()
    return out


def _valid(value) -> bool:
    keys = {"train_x", "train_y", "test_x", "test_y", "sha256"}
    return (isinstance(value, dict) and set(value) == keys and isinstance(value["sha256"], str)
            and all(value[k].dtype == torch.uint8 for k in keys - {"sha256"})
            and all(value[f"{s}_x"].shape[1:] == IMAGE_SIZE and len(value[f"{s}_x"]) == len(value[f"{s}_y"])
                    for s in IDX_FILES))


@functools.lru_cache(maxsize=4)
def _read_cached(name: str, identity: tuple) -> dict:
    from .. import cache

    paths = {f: Path(p) for f, p, _, _ in identity}
    config = {"reader": READER_VERSION, "files": [list(i) for i in identity]}
    try:
        value, _ = cache.get_or_compute(f"data-{name}-idx", config, lambda: _decode(paths))
    except OSError as exc:                   # no usable cache folder: decode, keep in this process
        log.warning("cannot use the cache for %s (%s): decoding the IDX files", name, exc)
        return _decode(paths)
    if not _valid(value):                    # a cache entry that is not what we store
        log.warning("cache entry for %s holds unexpected content: decoding the IDX files", name)
        return _decode(paths)
    return value


def read_arrays(name: str, paths: dict[str, Path]) -> dict:
    """``{"train_x", "train_y", "test_x", "test_y"}`` (uint8 tensors, never to be modified in
    place: they are shared) and ``"sha256"`` (of the decoded content) for ``paths``."""
    return _read_cached(name, _identity(paths))


__all__ = ["IDX_FILES", "SYSTEM_DIRS", "APT_PACKAGES", "download_root", "candidate_dirs", "locate", "read_arrays"]
