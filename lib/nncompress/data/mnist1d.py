"""MNIST-1D, regenerated offline from a seed.

MNIST-1D (S. Greydanus, "Scaling down deep learning", arXiv:2011.14439, 2020;
https://github.com/greydanus/mnist1d) is a procedurally generated 1-D analogue of MNIST:
ten hand-designed 12-point templates (one per digit) are padded, dilated, scaled,
translated, sheared, corrupted by correlated and i.i.d. noise and subsampled to a
40-point sequence.  Model families separate it clearly (the paper reports ~32 % test
accuracy for logistic regression, ~68 % for an MLP, ~94 % for a small CNN), which makes
it a good small benchmark on a CPU.

We call the ``mnist1d`` package's own generator, ``mnist1d.data.make_dataset``, with
its default arguments (``get_dataset_args()``) except ``seed`` and ``num_samples`` - the
data are therefore the paper's data distribution.  ``get_dataset`` is never used: it
downloads a pickle.  ``get_templates`` is pure numpy (no I/O).  With ``seed=42`` and the
default sizes the samples are those of the canonical ``mnist1d_data.pkl`` (4000 train /
1000 test), up to our re-standardisation.

The generator seeds and draws from Python's ``random`` and numpy's *global* RNG; we save
and restore both around the call, so loading never disturbs the caller's random state.
Results are memoised in-process (generation costs ~2 s per 5000 samples).
"""
from __future__ import annotations

import functools
import random
from importlib import metadata

import numpy as np
import torch

from .splits import Splits, split_off
from .checks import check_count
from .device import DeviceData

DEFAULT_N_TRAIN = 4000
DEFAULT_N_TEST = 1000
#: at most this many samples (n_train + n_test) are generated: ~80 s and 32 MB at the limit
MAX_SAMPLES = 200_000
CLASSES = [str(i) for i in range(10)]
#: bump when anything here changes the tensors a given (seed, sizes) produce
GENERATOR_VERSION = 1


def _mnist1d_version() -> str:
    try:
        return metadata.version("mnist1d")
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored copy
        return "unknown"




@functools.lru_cache(maxsize=8)
def _generate(seed: int, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` for all ``num_samples`` samples, in the generator's shuffled order."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = int(seed)
    args.num_samples = int(num_samples)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist1d(*, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
                 n_val: int = 0) -> Splits:
    """MNIST-1D (Greydanus 2020) generated from ``seed``: ``x`` float32 ``(N, 40)``, ``y`` int64.

    ``n_train`` (default 4000) and ``n_test`` (default 1000) samples are drawn in one call
    of the generator (``num_samples`` rounded up to a multiple of 10, since it makes
    ``num_samples // 10`` per class); the first ``n_train`` are the training pool, the
    next ``n_test`` the test set.  ``n_val`` samples are then held out of the training
    pool (so ``len(train) == n_train - n_val``).  Inputs are standardised with the
    scalar mean/std of the training set.
    """
    why = f"mnist1d generates at most MAX_SAMPLES={MAX_SAMPLES} samples, n_train + n_test"
    n_train = DEFAULT_N_TRAIN if n_train is None else check_count("n_train", n_train, low=1, high=MAX_SAMPLES, why=why)
    n_test = DEFAULT_N_TEST if n_test is None else check_count("n_test", n_test, low=0, high=MAX_SAMPLES - n_train, why=why)
    n_val = check_count("n_val", n_val, low=0, high=n_train - 1, why=f"held out of n_train={n_train}")
    total = n_train + n_test
    num_samples = -(-total // 10) * 10
    x, y = _generate(int(seed), num_samples)
    x = torch.tensor(x[:total])
    y = torch.tensor(y[:total])
    mean, std = x[:n_train].mean(), x[:n_train].std()
    x = (x - mean) / std
    train = DeviceData(x[:n_train], y[:n_train], name="mnist1d/train")
    test = DeviceData(x[n_train:], y[n_train:], name="mnist1d/test")
    train, val = split_off(train, n_val, seed)
    info = {"dataset": "mnist1d", "seed": int(seed), "n_train": n_train, "n_test": n_test,
            "n_val": n_val, "generator": "mnist1d.data.make_dataset",
            "mnist1d_version": _mnist1d_version(), "generator_version": GENERATOR_VERSION,
            "num_samples": num_samples, "standardise": "train-scalar"}
    return Splits("mnist1d", train, val, test, list(CLASSES), info)
