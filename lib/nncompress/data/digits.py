"""``digits``: scikit-learn's 1 797 real 8x8 handwritten digits, offline.

The "Optical Recognition of Handwritten Digits" set (Alpaydin & Kaynak 1998, UCI ML
repository; https://archive.ics.uci.edu/dataset/80) as shipped inside scikit-learn
(``sklearn.datasets.load_digits``: no download, the file is part of the package): 1 797
images of 8x8 pixels, each pixel a count 0..16 of set bits in a 4x4 block of the original
32x32 bitmap, 10 classes of about 180 images each.

The split is stratified and seeded: :func:`~nncompress.data.sampling.stratified_split`
takes ``n_test`` images (default 360, 20 %) as the test set, ``n_train`` of the rest
(default: all 1 437) as the training pool, and holds ``n_val`` of that pool out for
validation (``len(train) == n_train - n_val``; never from the test set).  Every split keeps
the class proportions to within one image per class.  Images are ``(N, 1, 8, 8)``
float32 scaled to [0, 1] (pixel / 16).
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch

from .splits import Splits
from .checks import DatasetFormatError, check_count, check_labels
from .device import DeviceData
from .sampling import stratified_split

CLASSES = [str(i) for i in range(10)]
N_SAMPLES = 1797
DEFAULT_N_TEST = 360
MAX_PIXEL = 16


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray, str]:
    """``(images (1797, 8, 8) float64 0..16, labels int64, sha256 of both)``, validated."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = np.asarray(bunch.images), np.asarray(bunch.target)
    source = "sklearn.datasets.load_digits"
    if x.shape != (N_SAMPLES, 8, 8):
        raise DatasetFormatError(f"{source}: images have shape {x.shape}, expected ({N_SAMPLES}, 8, 8)")
    if x.min() < 0 or x.max() > MAX_PIXEL or not np.array_equal(x, np.round(x)):
        raise DatasetFormatError(f"{source}: pixels must be whole counts 0..{MAX_PIXEL}")
    y = check_labels(y, len(CLASSES), source)
    digest = hashlib.sha256(x.astype(np.uint8).tobytes() + y.astype(np.uint8).tobytes()).hexdigest()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y, digest


def load_digits(*, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
                n_val: int = 0) -> Splits:
    """The digits set, split stratified from ``seed``: ``x`` float32 ``(N, 1, 8, 8)`` in [0, 1].

    ``n_test`` (default 360) test images; ``n_train`` (default: the other 1 437) form the
    training pool, of which ``n_val`` are held out for validation.  Raises ``ValueError``
    naming the parameter when the sizes do not fit in the 1 797 images.
    """
    x_all, y_all, digest = _raw()
    n_test = DEFAULT_N_TEST if n_test is None else check_count(
        "n_test", n_test, low=1, high=N_SAMPLES - 1, why=f"digits has {N_SAMPLES} images, one at least for training")
    room = N_SAMPLES - n_test
    n_train = room if n_train is None else check_count(
        "n_train", n_train, low=1, high=room, why=f"digits has {N_SAMPLES} images and n_test={n_test} go to testing")
    n_val = check_count("n_val", n_val, low=0, high=n_train - 1,
                        why=f"held out of n_train={n_train}, leaving at least one for training")
    y = torch.from_numpy(y_all.copy())
    g = torch.Generator().manual_seed(int(seed))
    pool, test_idx = stratified_split(y, n_test, g)
    if n_train < len(pool):
        _, keep = stratified_split(y[pool], n_train, g)
        pool = pool[keep]
    rest, val_pos = stratified_split(y[pool], n_val, g)
    train_idx, val_idx = pool[rest], pool[val_pos]
    x = torch.from_numpy(x_all.astype(np.float32) / MAX_PIXEL)[:, None]

    def part(idx, split):
        return DeviceData(x[idx], y[idx].clone(), name=f"digits/{split}")

    info = {"dataset": "digits", "seed": int(seed), "n_train": n_train, "n_test": n_test,
            "n_val": n_val, "source": "sklearn.datasets.load_digits", "split": "stratified",
            "scale": "pixel/16", "content_sha256": digest}
    return Splits("digits", part(train_idx, "train"), part(val_idx, "val"), part(test_idx, "test"),
                  list(CLASSES), info)
