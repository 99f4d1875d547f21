"""Headline numbers of a notebook, recorded so that the runner can collect them.

In a notebook::

    from nncompress.course.record import record
    record("kd_gain_pts", gain)                       # 2.3
    record("student_kd_acc", f"{m:.1f} ± {s:.1f}")    # a preformatted string
    record("val_acc", acc, fmt=".1%")                 # shown as 81.2%

Inside IPython (Jupyter, papermill) each call displays one output whose mimebundle is::

    {"text/plain": "kd_gain_pts = 2.3",
     "application/vnd.nncompress.course.record+json": {"name": ..., "value": ..., "text": ...}}

so ``python -m nncompress.run`` can read the records back from the executed notebook
(see :func:`records_from_notebook`).  Outside IPython the line is printed.  Either way
the value is also kept in this process: :func:`recorded` returns all of them.

Values are stored JSON-safe: numpy / torch scalars become Python numbers, arrays and
tensors become (nested) lists, non-finite floats become the strings ``"nan"``,
``"inf"``, ``"-inf"``.  This module imports neither numpy nor torch.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import sys
from fractions import Fraction
from decimal import Decimal
from typing import Any, Callable, Mapping

MIME = "application/vnd.nncompress.course.record+json"

_RECORDS: dict[str, Any] = {}


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dict / list / str / int / float / bool / None)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        value = float(value)
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, (Decimal, Fraction)):
        return to_jsonable(float(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(value, key=repr)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    # torch tensors / numpy arrays and scalars, by duck typing (no imports)
    if callable(getattr(value, "detach", None)):
        value = value.detach()
        if callable(getattr(value, "cpu", None)):
            value = value.cpu()
    if callable(getattr(value, "item", None)) and getattr(value, "ndim", 0) == 0:
        try:
            return to_jsonable(value.item())
        except (ValueError, TypeError, RuntimeError):
            pass
    if callable(getattr(value, "tolist", None)):
        return to_jsonable(value.tolist())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return to_jsonable(float(value))
    return str(value)


def format_value(value: Any, fmt: str | Callable[[Any], Any] | None = None) -> str:
    """The text shown for ``value``.

    ``fmt`` may be a format spec (``".1f"``, ``".1%"``), a format string with braces
    (``"{:.2f} pts"``) or a callable returning the text.  Without ``fmt`` floats show 6
    significant digits and strings are shown as they are.
    """
    if callable(fmt):
        return str(fmt(value))
    plain = to_jsonable(value)
    # numbers format as Python numbers (numpy/torch scalars included)
    target = plain if isinstance(plain, (int, float)) and not isinstance(plain, bool) else value
    if isinstance(fmt, str):
        if "{" in fmt:
            return fmt.format(target)
        return format(target, fmt)
    if fmt is not None:
        raise TypeError(f"fmt must be a format spec, a format string or a callable, not {fmt!r}")
    if isinstance(plain, float):
        text = f"{plain:.6g}"
        return text if any(ch in text for ch in ".en") else text + ".0"  # 6.0, not 6
    if isinstance(plain, (dict, list)):
        return json.dumps(plain, ensure_ascii=False)
    return str(plain)


def ipython_shell():
    """The running IPython shell, or None (without importing IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:  # pragma: no cover - a broken IPython install
        return None


def record(name: str, value: Any, *, fmt: str | Callable[[Any], Any] | None = None) -> None:
    """Record a headline number (or string) of this notebook under ``name``.

    Displays ``name = value`` and keeps the value in :func:`recorded`.  Recording the
    same name again replaces the earlier value.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"record name must be a non-empty string, got {name!r}")
    plain = to_jsonable(value)
    text = format_value(value, fmt)
    _RECORDS[name] = plain
    line = f"{name} = {text}"
    if ipython_shell() is not None:
        from IPython.display import display

        display({"text/plain": line, MIME: {"name": name, "value": plain, "text": text}}, raw=True)
    else:
        print(line)


def recorded() -> dict[str, Any]:
    """All values recorded in this process so far (a copy), in recording order."""
    return dict(_RECORDS)


def clear() -> None:
    """Forget the values recorded in this process."""
    _RECORDS.clear()


def displayed_payloads(nb, mime: str):
    """Every ``mime`` payload (a mapping) that an executed notebook's code cells displayed,
    in order (payloads stored as JSON strings by some writers are decoded)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") not in ("display_data", "execute_result"):
                continue
            payload = out.get("data", {}).get(mime)
            if isinstance(payload, str):
                try:
                    payload = json.loads(payload)
                except ValueError:
                    continue
            if isinstance(payload, Mapping):
                yield payload


def records_from_notebook(nb) -> tuple[dict[str, Any], dict[str, str]]:
    """The records an executed notebook displayed: ``(values, texts)`` by name.

    ``nb`` is an nbformat notebook (or a dict with the same layout).  Later records of
    the same name win.
    """
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for payload in displayed_payloads(nb, MIME):
        if "name" not in payload:
            continue
        name = str(payload["name"])
        values[name] = payload.get("value")
        text = payload.get("text")
        texts[name] = str(text) if text is not None else format_value(payload.get("value"))
    return values, texts


__all__ = ["MIME", "record", "recorded", "clear", "to_jsonable", "format_value",
           "records_from_notebook", "displayed_payloads"]
