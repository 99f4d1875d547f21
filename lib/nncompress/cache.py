"""Content-addressed checkpoint cache.

An experiment *is* its configuration: :func:`cache_key` hashes a JSON-able config
(model, data, training settings, seed, the lib version) into a file name, so a rerun
of any notebook - or another chapter asking for the same teacher - finds the trained
weights instead of training again.

Guarantees ("nothing lost"):

* writes are atomic (temporary file in the same folder, ``fsync``, ``os.replace``), so
  an interrupted run never leaves a torn checkpoint under a valid name;
* every entry carries a SHA-256 of its bytes in a side file; a corrupted or truncated
  entry is detected, discarded and recomputed, never loaded;
* loads use ``torch.load(weights_only=True)``: a pickle that would run code is
  refused (it raises, the entry is discarded);
* a per-key file lock makes concurrent runs (``nncompress.run --jobs N``) train each
  entry once: the second waits and then loads.

The cache folder is ``$NNCOMPRESS_CACHE`` if set, else ``~/.cache/nncompress``.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from filelock import FileLock

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The cache folder (created on first use)."""
    root = os.environ.get("NNCOMPRESS_CACHE") or Path.home() / ".cache" / "nncompress"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, torch.device):
        return str(obj)
    raise TypeError(f"cache config values must be JSON-like, got {type(obj).__name__}: {obj!r}")


def cache_key(config: dict) -> str:
    """SHA-256 (hex, 20 chars) of the canonical JSON of ``config`` plus the lib version."""
    from . import __version__

    payload = json.dumps({"config": _canonical(config), "nncompress": __version__},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model.state_dict()`` - what checkpoints store."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_checkpoint(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` atomically with a SHA-256 side file (``path.sha256``)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    path = Path(path)
    atomic_write_bytes(path, data)
    atomic_write_bytes(path.with_name(path.name + ".sha256"), _digest(data).encode())


class CorruptCheckpoint(RuntimeError):
    """A checkpoint failed its checksum or could not be loaded safely."""


def load_checkpoint(path: Path) -> Any:
    """Load a checkpoint written by :func:`save_checkpoint`, verifying its checksum.

    Raises :class:`CorruptCheckpoint` if the bytes do not match the recorded digest,
    the digest is missing, or ``torch.load(weights_only=True)`` refuses the content.
    """
    path = Path(path)
    side = path.with_name(path.name + ".sha256")
    data = path.read_bytes()
    if not side.exists():
        raise CorruptCheckpoint(f"{path}: no checksum file {side.name}")
    if side.read_text().strip() != _digest(data):
        raise CorruptCheckpoint(f"{path}: checksum mismatch (truncated or corrupted)")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused or broken
        raise CorruptCheckpoint(f"{path}: refused by torch.load(weights_only=True): {exc}") from exc


def entry_path(name: str, config: dict) -> Path:
    """Where the entry for ``(name, config)`` lives."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return cache_dir() / f"{safe}-{cache_key({'name': name, **config})}.pt"


def lookup(name: str, config: dict) -> Any | None:
    """The cached value for ``(name, config)``, or ``None`` (a corrupt entry is discarded)."""
    path = entry_path(name, config)
    if not path.exists():
        return None
    try:
        return load_checkpoint(path)["value"]
    except (CorruptCheckpoint, KeyError, OSError) as exc:
        log.warning("discarding cache entry %s: %s", path.name, exc)
        for p in (path, path.with_name(path.name + ".sha256")):
            p.unlink(missing_ok=True)
        return None


def store(name: str, config: dict, value: Any) -> None:
    """Write the entry for ``(name, config)`` (atomically, with its checksum)."""
    save_checkpoint({"value": value, "config": json.dumps(_canonical(config))}, entry_path(name, config))


def get_or_compute(name: str, config: dict, compute: Callable[[], Any], *,
                   refresh: bool = False) -> tuple[Any, bool]:
    """Return ``(value, cached)``: the cached value for ``(name, config)`` or ``compute()``.

    ``value`` must be something ``torch.load(weights_only=True)`` can read back
    (tensors, dicts, lists, numbers, strings).  A corrupt entry is discarded and
    recomputed; the config is stored beside the value for inspection.  A file lock per
    entry makes concurrent processes compute it once.
    """
    path = entry_path(name, config)
    with FileLock(str(path) + ".lock"):
        if not refresh:
            value = lookup(name, config)
            if value is not None:
                return value, True
        value = compute()
        store(name, config, value)
        return value, False
