"""Checks that every data reader shares: sample counts, labels, pixel types, class names.

A reader that finds something wrong raises :class:`DatasetFormatError` (a ``ValueError``)
whose message names the file and the problem; a count outside what a dataset can give
raises ``ValueError`` naming the parameter, the value and the allowed range - before
anything is generated or allocated.  Nothing here converts silently: a float array is not
cast to ``uint8`` (that would wrap 256 -> 0 and truncate 0.5 -> 0), a label is not clipped.
"""
from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np


class DatasetNotFound(FileNotFoundError):
    """A real dataset's files are in none of the places looked (and ``download`` was off)."""


class DatasetFormatError(ValueError):
    """A dataset file exists but its content is malformed; the message names the file."""


def check_count(name: str, value, *, low: int = 0, high: int | None = None, why: str = "") -> int:
    """``value`` as an ``int`` if it is a whole number in ``low..high``, else ``ValueError``.

    ``name`` is the parameter (``"n_train"``), ``why`` says where ``high`` comes from
    (``"Fashion-MNIST has 60000 training images"``).  Integral floats (``1e3``) are
    accepted, booleans and fractions are not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r} must be a whole number, got {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        count = int(value)
    elif float(value).is_integer():
        count = int(value)
    else:
        raise ValueError(f"{name}={value!r} must be a whole number")
    if count < low or (high is not None and count > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name}={count} is out of range: allowed {allowed}" + (f" ({why})" if why else ""))
    return count


def check_labels(y: np.ndarray, num_classes: int, source: str | Path) -> np.ndarray:
    """``y`` as ``int64`` after checking it holds whole numbers in ``0..num_classes-1``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DatasetFormatError(f"{source}: labels must be one-dimensional, got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DatasetFormatError(f"{source}: labels must be integers, got dtype {y.dtype}")
    if y.size:
        bad = np.flatnonzero((y < 0) | (y >= num_classes))
        if bad.size:
            i = int(bad[0])
            raise DatasetFormatError(
                f"{source}: label {int(y[i])} at index {i} is out of range: labels must be in "
                f"0..{num_classes - 1} (the {num_classes} classes); {bad.size} of {y.size} labels are outside")
    return y.astype(np.int64, copy=False)


def check_uint8_pixels(x, source: str | Path) -> np.ndarray:
    """``x`` as ``uint8``: integer pixel values in 0..255 only (floats are refused, not wrapped)."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind not in "iu":
        raise DatasetFormatError(
            f"{source}: pixel data has dtype {x.dtype}; expected uint8 values 0..255 "
            "(refusing to cast: it would wrap or truncate values)")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DatasetFormatError(
            f"{source}: pixel values span {int(x.min())}..{int(x.max())}; expected 0..255 (uint8)")
    return x.astype(np.uint8)


def check_class_names(names, num_classes: int, source: str | Path) -> list[str]:
    """``names`` as a list of ``str`` after checking there is one distinct name per class."""
    try:
        out = [n.decode() if isinstance(n, bytes) else n for n in names]
    except (TypeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{source}: class names are not a list of strings ({exc})") from exc
    if not all(isinstance(n, str) for n in out):
        raise DatasetFormatError(f"{source}: class names must be strings, got {sorted({type(n).__name__ for n in out})}")
    if len(out) != num_classes:
        raise DatasetFormatError(
            f"{source}: lists {len(out)} class names but the labels have {num_classes} classes "
            f"(0..{num_classes - 1})")
    if len(set(out)) != len(out):
        raise DatasetFormatError(f"{source}: class names are not distinct: {out}")
    return out


def dataset_not_found(title: str, name: str, places: list[tuple[str, str]], *,
                      expected: list[str], remedies: list[str], missing: list[str] = ()) -> DatasetNotFound:
    """The :class:`DatasetNotFound` for ``name``: every place looked, what was expected, how to get it.

    ``places``: ``(place, what was found there)`` in lookup order; ``missing``: files absent
    from the one place a dataset is read from (a ``Missing:`` line); ``remedies``: the ways
    to get the files, one line each.
    """
    lines = [f"{title} ({name!r}) not found. Looked in, in this order:"]
    lines += [f"  {i}. {place}: {found}" for i, (place, found) in enumerate(places, 1)]
    if missing:
        lines.append("Missing: " + ", ".join(missing))
    lines.append("Expected under data_root: " + ", ".join(expected))
    lines.append("To get it:")
    lines += [f"  - {r}" for r in remedies]
    return DatasetNotFound("\n".join(lines))


__all__ = ["DatasetNotFound", "DatasetFormatError", "check_count", "check_labels",
           "check_uint8_pixels", "check_class_names", "dataset_not_found"]
