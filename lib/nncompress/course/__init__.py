"""The course tooling around the compression library: parameters, chapters, records and
checked claims, the notebook runner, the report, notebook hygiene, grading, benchmarks.

Layering (enforced by ``tests/test_layering.py``): the compression library
(``nncompress.data``, ``models``, ``train``, ..., ``distill``, ``prune``, ...) never
imports ``nncompress.course``; the course imports the library.  Only the runner
(:mod:`nncompress.course.execute`) imports papermill.

Modules: :mod:`params` (specs, presets, validation), :mod:`chapters` (one spec module per
chapter), :mod:`record` (headline numbers), :mod:`claims` (run-dependent sentences,
checked), :mod:`layout` (where notebooks live), :mod:`execute` (one notebook through
papermill), :mod:`runner` (many notebooks, grids, ``summary.json``; ``python -m
nncompress.run``), :mod:`report` (all Markdown: ``summary.md``, ``report.md``, the README
block), :mod:`nbtools` (strip / check / store outputs, the generated parameters cell and
chapter table), :mod:`grading`, :mod:`bench`, :mod:`env`, :mod:`widgets`.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

_SUBMODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))


def resolve(chapter: str, namespace: Mapping[str, Any] | None = None, **values: Any):
    """A chapter's validated parameters (see :func:`nncompress.course.chapters.resolve`)."""
    from .chapters import resolve as _resolve

    return _resolve(chapter, namespace, **values)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nncompress.course' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
