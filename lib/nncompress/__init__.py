"""nncompress: the library behind the neural-network compression course.

The compression library: foundation modules (``data``, ``models``, ``metrics``,
``cache``, ``train``, ``stats``, ``storage``, ``plots``) never import a method module;
method modules (``distill``, ``prune``, ``quantize``, ``lowrank``, ``design``,
``early_exit``) build on the foundation, and ``pipeline`` combines them.  The course
tooling (parameters, chapters, the runner, the report, grading, ...) lives in
:mod:`nncompress.course` and is never imported by the library.  Submodules are
imported lazily, so ``import nncompress as nc; nc.train.fit(...)`` loads only what it
uses.  ``nc.record(name, value)`` and ``nc.claim(text, holds, evidence)`` are the two
course calls a notebook makes most, so they are available at the top.
"""
from __future__ import annotations

import importlib
import pkgutil

__version__ = "0.1.0"

_SUBMODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))
_COURSE_SHORTCUTS = {"record": ("course.record", "record"), "claim": ("course.claims", "claim")}


def __getattr__(name):
    if name in _COURSE_SHORTCUTS:
        module, attr = _COURSE_SHORTCUTS[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nncompress' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + list(_COURSE_SHORTCUTS))
