"""Byte-level text from the Python standard library's own sources (no download, PSF licence).

The corpus is the sorted list of top-level ``Lib/*.py`` files of the running interpreter
(``sysconfig.get_paths()["stdlib"]``), concatenated in that order and capped at ``max_bytes``.
Tokens are bytes (vocabulary 256), so no tokenizer is needed.  The byte stream is cut into
non-overlapping windows of ``context + 1`` bytes (inputs ``w[:-1]``, next-byte targets
``w[1:]``) and the windows are split into *contiguous* train / validation / test ranges (no
window is in two splits).  Python versions ship different sources, so
:meth:`TextSplits.config` holds the SHA-256 of the bytes: it enters every cache key.
"""
from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from .device import DeviceData

VOCAB = 256


def stdlib_files(root: str | Path | None = None) -> list[Path]:
    """The top-level ``*.py`` files of the standard library, sorted by name."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no *.py files in the standard library folder {root}")
    return files


def stdlib_corpus(max_bytes: int, root: str | Path | None = None) -> tuple[bytes, list[str]]:
    """``(bytes, file names)``: the sorted stdlib sources concatenated, cut at ``max_bytes``."""
    if max_bytes < 1:
        raise ValueError(f"max_bytes={max_bytes!r} is not allowed: expected an int >= 1")
    parts, names, size = [], [], 0
    for path in stdlib_files(root):
        data = path.read_bytes()
        parts.append(data[: max_bytes - size])
        names.append(path.name)
        size += len(parts[-1])
        if size >= max_bytes:
            break
    return b"".join(parts), names


@dataclass
class TextSplits:
    """Train / validation / test windows of one byte corpus."""

    train: DeviceData
    val: DeviceData
    test: DeviceData
    sha256: str
    n_bytes: int
    context: int
    files: list[str]

    def config(self) -> dict:
        """What identifies these splits in a cache key (the corpus hash included)."""
        return {"corpus": "stdlib-py", "sha256": self.sha256, "n_bytes": self.n_bytes, "context": self.context,
                "windows": [len(self.train), len(self.val), len(self.test)]}


def windows(data: bytes, context: int) -> DeviceData:
    """Non-overlapping ``context + 1``-byte windows: ``x = w[:-1]``, ``y = w[1:]`` (int64)."""
    n = len(data) // (context + 1)
    if n < 1:
        raise ValueError(f"{len(data)} bytes give no window of context + 1 = {context + 1} bytes")
    t = torch.frombuffer(bytearray(data[: n * (context + 1)]), dtype=torch.uint8).long().view(n, context + 1)
    return DeviceData(t[:, :-1].contiguous(), t[:, 1:].contiguous(), name="stdlib-bytes")


def load_text(max_bytes: int, context: int, val_frac: float = 0.1, test_frac: float = 0.1,
              root: str | Path | None = None) -> TextSplits:
    """The stdlib corpus as contiguous train | validation | test windows (in that order)."""
    if context < 1:
        raise ValueError(f"context={context!r} is not allowed: expected an int >= 1")
    if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"val_frac={val_frac!r}, test_frac={test_frac!r}: expected fractions in (0, 1) summing below 1")
    data, names = stdlib_corpus(max_bytes, root)
    all_w = windows(data, context)
    n = len(all_w)
    n_val, n_test = max(1, int(n * val_frac)), max(1, int(n * test_frac))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{len(data)} bytes give {n} windows of {context + 1} bytes: too few for three splits")
    def part(a, b):
        return DeviceData(all_w.x[a:b], all_w.y[a:b], name="stdlib-bytes")
    return TextSplits(part(0, n_train), part(n_train, n_train + n_val), part(n_train + n_val, n),
                      hashlib.sha256(data).hexdigest(), len(data), context, names)
