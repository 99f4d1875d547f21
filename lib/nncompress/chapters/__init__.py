"""Each chapter's parameters: one module per chapter, registered by notebook name.

``specs("01_knowledge_distillation")`` returns that chapter's ``{name: Spec}``;
``resolve("01_knowledge_distillation", globals())`` validates a notebook's parameters
(see :mod:`nncompress.params`).  The runner uses the same specs to reject bad ``-p``
values before starting a kernel.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from ..params import Params, Spec, resolve as _resolve

def _discover() -> dict[str, str]:
    """``{notebook stem: module name}`` from every ``chNN_*.py`` module's ``NOTEBOOK``."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("ch"):
            module = importlib.import_module(f".{info.name}", __name__)
            found[module.NOTEBOOK] = info.name
    return dict(sorted(found.items()))


CHAPTERS = _discover()


def names() -> list[str]:
    return list(CHAPTERS)


def specs(chapter: str) -> dict[str, Spec]:
    """The parameter specs of ``chapter`` (a notebook stem); KeyError if unknown."""
    if chapter not in CHAPTERS:
        raise KeyError(f"no chapter named {chapter!r}; chapters: {', '.join(CHAPTERS)}")
    module = importlib.import_module(f".{CHAPTERS[chapter]}", __name__)
    return dict(module.SPECS)


def resolve(chapter: str, namespace: Mapping[str, Any] | None = None, **values: Any) -> Params:
    """Validate a notebook's parameters (usually ``globals()``) and fill them from the preset."""
    return _resolve(specs(chapter), namespace, **values)
