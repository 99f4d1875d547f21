"""Datasets for the course: offline by default, real ones from disk when present.

``load(name, ...)`` returns a :class:`Splits` of device-resident train/val/test sets.

* ``"mnist1d"`` - MNIST-1D (Greydanus 2020), regenerated from a seed by the ``mnist1d``
  package's own generator: never downloaded.  40-dim sequences, 10 classes.
* ``"shapes"`` - our procedural 32x32 RGB image set with confusable class groups
  (see :mod:`nncompress.data.shapes`).
* ``"digits"`` - scikit-learn's 1 797 real 8x8 handwritten digits (ships with
  scikit-learn; see :mod:`nncompress.data.digits`).
* ``"fashion-mnist"`` - Fashion-MNIST (Xiao et al. 2017) from ``data_root`` or where
  ``apt-get install dataset-fashion-mnist`` puts it (see :mod:`nncompress.data.mnist_like`).
* ``"mnist"``, ``"cifar10"``, ``"cifar100"`` - the real datasets, read from ``data_root``
  in torchvision's layout (download only with ``download=True``).

:data:`ALIASES` maps older spellings to the canonical names (``"fashionmnist"``).
Malformed files raise :class:`DatasetFormatError` naming the file, absent ones
:class:`DatasetNotFound` naming every place looked; sizes a dataset cannot give raise
``ValueError`` before anything is generated.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .checks import DatasetFormatError, DatasetNotFound
from .device import DeviceData, batch_augment

#: datasets that need no files (generated, or shipped inside an installed package)
OFFLINE = ("mnist1d", "shapes", "digits")
#: datasets read from files (found on disk, downloaded only with ``download=True``)
REAL = ("mnist", "fashion-mnist", "cifar10", "cifar100")
#: the canonical names
DATASETS = OFFLINE + REAL
#: other accepted spellings -> canonical name
ALIASES = {"fashionmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist"}


def canonical_name(name: str) -> str:
    """The canonical name of dataset ``name`` (``"fashionmnist"`` -> ``"fashion-mnist"``).

    Raises ``ValueError`` listing the known names for anything else.
    """
    if name in DATASETS:
        return name
    if isinstance(name, str) and name in ALIASES:
        return ALIASES[name]
    raise ValueError(f"data={name!r} is not a known dataset: expected one of {', '.join(DATASETS)} "
                     f"(aliases: {', '.join(f'{a} = {c}' for a, c in ALIASES.items())})")


@dataclass
class Splits:
    """Train / validation / test sets of one dataset, plus its class names."""

    name: str
    train: DeviceData
    val: DeviceData
    test: DeviceData
    classes: list[str]
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape

    def to(self, device) -> "Splits":
        return Splits(self.name, self.train.to(device), self.val.to(device),
                      self.test.to(device), self.classes, self.info)

    def config(self) -> dict:
        """What identifies this data in a cache key."""
        return {"name": self.name, **{k: v for k, v in self.info.items()
                                      if isinstance(v, (int, float, str, bool))}}


def load(name: str, *, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
         n_val: int = 0, data_root: str | None = None, download: bool = False,
         device: str | torch.device = "cpu", augment: bool = False) -> Splits:
    """Load dataset ``name`` (a canonical name or an alias) as device-resident splits.

    ``n_train``/``n_test`` cap the sizes (``None``: the dataset's default); ``n_val``
    samples are held out of the training set (deterministically from ``seed``), never
    from the test set.  ``data_root`` and ``download`` concern the datasets read from
    files (:data:`REAL`); nothing is ever downloaded unless ``download=True``.
    """
    name = canonical_name(name)
    if name == "mnist1d":
        from .mnist1d import load_mnist1d as loader
    elif name == "shapes":
        from .shapes import load_shapes as loader
    elif name == "digits":
        from .digits import load_digits as loader
    else:
        from .torchvision_sets import load_torchvision as loader
        splits = loader(name, seed=seed, n_train=n_train, n_test=n_test, n_val=n_val,
                        data_root=data_root, download=download)
        return _finish(splits, device, augment)
    splits = loader(seed=seed, n_train=n_train, n_test=n_test, n_val=n_val)
    return _finish(splits, device, augment)


def _finish(splits: Splits, device, augment: bool) -> Splits:
    splits = splits.to(device)
    splits.train = splits.train.with_augment(augment)
    return splits


def split_off(data: DeviceData, n_val: int, seed: int) -> tuple[DeviceData, DeviceData]:
    """``(train, val)``: hold ``n_val`` samples of ``data`` out, deterministically from ``seed``.

    With ``n_val == 0`` the data is returned as is (same order) with an empty validation set.
    """
    name = data.name
    if n_val == 0:
        train, val = data, data.subset(slice(0, 0))
    else:
        g = torch.Generator().manual_seed(seed + 7919)
        perm = torch.randperm(len(data), generator=g)
        train, val = data.subset(perm[n_val:]), data.subset(perm[:n_val])
    train.name = name
    val.name = name.rsplit("/", 1)[0] + "/val"
    return train, val


__all__ = ["DeviceData", "Splits", "load", "split_off", "batch_augment", "canonical_name",
           "DatasetNotFound", "DatasetFormatError", "DATASETS", "OFFLINE", "REAL", "ALIASES"]
