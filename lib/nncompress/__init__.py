"""nncompress: the library behind the neural-network compression course.

Foundation modules (``data``, ``models``, ``metrics``, ``cache``, ``params``,
``train``) never import a method module; method modules (``distill``, and later
``prune``, ``quantize``, ``design``, ``early_exit``) build on the foundation; ``run``,
``plots`` and ``widgets`` sit on top.  Submodules are imported lazily, so
``import nncompress as nc; nc.train.fit(...)`` works without loading everything.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .record import record  # noqa: E402  (``nc.record(name, value)`` in notebooks)

_SUBMODULES = ("data", "models", "metrics", "cache", "params", "train", "distill", "chapters",
               "plots", "widgets", "nbtools", "stats", "env", "run", "grading", "prune", "quantize",
               "storage", "design", "early_exit", "report", "bench", "pipeline")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nncompress' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
