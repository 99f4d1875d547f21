"""Each chapter's parameters: one module per chapter, registered by notebook name.

``specs("01_knowledge_distillation")`` returns that chapter's ``{name: Spec}``;
``resolve("01_knowledge_distillation", globals())`` validates a notebook's parameters
(see :mod:`nncompress.course.params`).  The runner uses the same specs to reject bad
``-p`` values before starting a kernel, and :mod:`nncompress.course.nbtools` generates
each notebook's ``parameters`` cell from them (the one source of a chapter's parameters).

A chapter module ``chNN_topic.py`` defines ``NOTEBOOK`` (the notebook's stem), ``TITLE``
and ``TOPIC`` (the README's chapter table), ``SPECS``, and optionally ``check(params)``:
cross-checks between parameters that return an error message or ``None``.  Modules are
found by their file names and read without importing them (``ast``), so listing the
chapters is instant; ``specs(chapter)`` imports only that chapter's module.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from typing import Any, Mapping

from ..params import ParameterError, Params, Spec, resolve as _resolve

_FOLDER = Path(__file__).parent


def _constants(path: Path) -> dict[str, Any]:
    """The module-level string constants of a chapter module (NOTEBOOK, TITLE, TOPIC)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                out[node.targets[0].id] = node.value.value
    return out


def _discover() -> dict[str, str]:
    """``{notebook stem: module name}`` from every ``chNN_*.py`` module's ``NOTEBOOK``."""
    found = {}
    for info in pkgutil.iter_modules([str(_FOLDER)]):
        if info.name.startswith("ch") and info.name[2:4].isdigit():
            notebook = _constants(_FOLDER / f"{info.name}.py").get("NOTEBOOK")
            if notebook is None:
                raise RuntimeError(f"chapter module {info.name} defines no NOTEBOOK = '...'")
            if notebook in found:
                raise RuntimeError(f"chapter modules {found[notebook]} and {info.name} both claim {notebook!r}")
            found[notebook] = info.name
    return dict(sorted(found.items()))


CHAPTERS = _discover()


def names() -> list[str]:
    return list(CHAPTERS)


def info(chapter: str) -> dict[str, str]:
    """``NOTEBOOK``, ``TITLE`` and ``TOPIC`` of a chapter, read without importing it."""
    return _constants(_FOLDER / f"{_module_name(chapter)}.py")


def _module_name(chapter: str) -> str:
    if chapter not in CHAPTERS:
        raise KeyError(f"no chapter named {chapter!r}; chapters: {', '.join(CHAPTERS)}")
    return CHAPTERS[chapter]


def module(chapter: str):
    return importlib.import_module(f".{_module_name(chapter)}", __name__)


def specs(chapter: str) -> dict[str, Spec]:
    """The parameter specs of ``chapter`` (a notebook stem); KeyError if unknown."""
    return dict(module(chapter).SPECS)


def resolve(chapter: str, namespace: Mapping[str, Any] | None = None, **values: Any) -> Params:
    """Validate a notebook's parameters (usually ``globals()``), fill them from the preset,
    then run the chapter's cross-checks (``check(params)``)."""
    mod = module(chapter)
    params = _resolve(dict(mod.SPECS), namespace, **values)
    check = getattr(mod, "check", None)
    if check is not None:
        problem = check(params)
        if problem:
            raise ParameterError(problem)
    return params
