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

import torch

from .checks import DatasetFormatError, DatasetNotFound
from .device import DeviceData, batch_augment
from .names import ALIASES, DATASETS, OFFLINE, REAL, canonical_name
from .splits import Splits, split_off
from .text import TextSplits, load_text, stdlib_corpus, stdlib_files



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




__all__ = ["DeviceData", "TextSplits", "load_text", "stdlib_corpus", "stdlib_files", "Splits", "load", "split_off", "batch_augment", "canonical_name",
           "DatasetNotFound", "DatasetFormatError", "DATASETS", "OFFLINE", "REAL", "ALIASES"]
