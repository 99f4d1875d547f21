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
  entry once: the second waits and then loads;
* every entry stores the canonical JSON of its config, and a loaded entry whose stored
  config differs from the requested one is refused (a miss, with a warning);
* a model named in a key is named by :func:`model_identity`: its ``cache_key`` when it
  carries one, else a SHA-256 of its class, structure and weights - two different
  teachers never share a student's entry.

A shared, read-only cache (a classroom's pre-filled folder) works: a hit needs no write
access (no lock file is created: the entry is looked up first, the lock is taken only to
compute), and a miss in a folder this process cannot write computes the value and returns
it without storing it (a warning, not a crash).  Entries and side files are written with
mode ``0666 & ~umask`` (0644 under the usual umask, readable by other users), not
``mkstemp``'s 0600.  Temporary files left by a killed write (``*.XXXXXXXX.tmp``, older than
:data:`STALE_TMP_SECONDS`) are removed on the next write in that folder.

The cache folder is ``$NNCOMPRESS_CACHE`` if set, else ``~/.cache/nncompress``.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from filelock import FileLock

log = logging.getLogger(__name__)

#: A ``*.tmp`` file of :func:`atomic_write_bytes` untouched for this long is a leftover of a
#: killed write (a live write keeps its mtime fresh) and is removed on the next write.
STALE_TMP_SECONDS = 600.0
# mkstemp names: <target name>.<8 of [a-z0-9_]>.tmp
_TMP_NAME = re.compile(r"^(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


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


def _tensor_bytes(t: torch.Tensor) -> list[bytes | str]:
    """What identifies a tensor: dtype, shape, (quantization parameters) and its bytes on CPU."""
    t = t.detach()
    parts: list[bytes | str] = [str(t.dtype), str(tuple(t.shape)), str(t.layout)]
    if t.is_quantized:
        scheme = t.qscheme()
        parts.append(str(scheme))
        if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            parts += [repr(t.q_scale()), str(t.q_zero_point())]
        else:
            parts += [*_tensor_bytes(t.q_per_channel_scales()), *_tensor_bytes(t.q_per_channel_zero_points()),
                      str(t.q_per_channel_axis())]
        t = t.int_repr()
    if t.layout != torch.strided:
        t = t.to_dense()
    flat = t.cpu().contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    parts.append(flat.view(torch.uint8).numpy().tobytes())
    return parts


def model_identity(model: torch.nn.Module) -> str:
    """The name of ``model`` in cache keys.

    Its ``cache_key`` when it carries one (set by :func:`nncompress.train.train_cached` and
    the other cached builders - so existing keys and cached entries stay the same); else
    ``"weights-sha256:<hex>"``, a SHA-256 over the model's class, its module structure
    (``repr``, memory addresses removed) and every ``state_dict`` entry in order: name,
    dtype, shape and bytes on CPU (quantized tensors with their scales and zero points).
    Deterministic across processes and devices; any change of a weight, buffer, dtype or
    module gives another identity.  A model loaded with ``load_pruned``/``load_compressed``,
    built by hand or trained with ``fit()`` is thus never confused with another one.

    A model changed in place *after* it got its ``cache_key`` keeps that key: clear it
    (``del model.cache_key``) to be named by its weights again.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model={model!r} is not allowed: expected a torch.nn.Module")
    key = getattr(model, "cache_key", None)
    if isinstance(key, str) and key:
        return key
    h = hashlib.sha256()

    def feed(*parts: bytes | str) -> None:
        for part in parts:
            b = part if isinstance(part, bytes) else part.encode("utf-8")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)

    def feed_value(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            feed("tensor", *_tensor_bytes(value))
        elif isinstance(value, (list, tuple)):  # e.g. quantized layers' packed (weight, bias)
            feed(type(value).__qualname__, str(len(value)))
            for v in value:
                feed_value(v)
        elif isinstance(value, dict):
            feed("dict", str(len(value)))
            for k, v in value.items():
                feed(repr(k))
                feed_value(v)
        else:  # extra state: a dtype, a number, anything a module chose to put there
            feed("object", type(value).__qualname__, _ADDRESS.sub("", repr(value)))

    cls = type(model)
    feed("nncompress.model_identity/1", f"{cls.__module__}.{cls.__qualname__}", _ADDRESS.sub("", repr(model)))
    for name, value in model.state_dict().items():
        feed(name)
        feed_value(value)
    return "weights-sha256:" + h.hexdigest()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open()`` gives a new file (0644 under umask 022)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # no /proc: read it the classic way (set and restore)
    os.umask(umask)
    return 0o666 & ~umask


def remove_stale_tmp(folder: Path, target: str | None = None, *, max_age: float | None = None) -> list[Path]:
    """Remove temporary files of :func:`atomic_write_bytes` left in ``folder`` by a killed write.

    Only names of the form ``<target>.<8 chars>.tmp`` untouched for more than ``max_age``
    seconds (default :data:`STALE_TMP_SECONDS`) are removed; ``target`` limits it to the
    temporary files of one file name (``None``: any).  Errors (a read-only folder, a file
    removed meanwhile) are ignored.  Returns the removed paths.
    """
    max_age = STALE_TMP_SECONDS if max_age is None else max_age
    now, removed = time.time(), []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TMP_NAME.match(e.name)
        if m is None or (target is not None and m["target"] != target):
            continue
        try:
            if e.is_file(follow_symlinks=False) and now - e.stat(follow_symlinks=False).st_mtime > max_age:
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            continue
    if removed:
        log.info("removed %d stale temporary file(s) in %s", len(removed), folder)
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it.

    The file gets mode ``0666 & ~umask`` (like ``open()``, not ``mkstemp``'s 0600).  Stale
    temporary files of earlier, killed writes of the same ``path`` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
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
    """``torch.save`` ``obj`` atomically with a SHA-256 side file (``path.sha256``).

    The side file is written first, so a new entry never appears without its checksum.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    path = Path(path)
    atomic_write_bytes(path.with_name(path.name + ".sha256"), _digest(data).encode())
    atomic_write_bytes(path, data)


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


def _config_json(config: dict) -> str:
    """The canonical JSON of ``config`` that an entry stores (and is checked against)."""
    return json.dumps(_canonical(config))


def _discard(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".sha256")):
        try:
            p.unlink(missing_ok=True)
        except OSError as exc:  # a read-only cache: leave it, it is ignored anyway
            log.warning("could not remove %s: %s", p, exc)


def lookup(name: str, config: dict, *, discard: bool = True) -> Any | None:
    """The cached value for ``(name, config)``, or ``None``.

    A corrupt entry is a miss (and is removed when ``discard``); so is an entry whose stored
    config (or name) differs from the requested one - a warning is logged, the entry is
    left for :func:`store` to overwrite.  Needs only read access.
    """
    path = entry_path(name, config)
    if not path.exists():
        return None
    try:
        entry = load_checkpoint(path)
        if not isinstance(entry, dict) or "value" not in entry:
            raise CorruptCheckpoint(f"{path}: not a cache entry (no 'value')")
    except (CorruptCheckpoint, OSError) as exc:
        if discard:
            log.warning("discarding cache entry %s: %s", path.name, exc)
            _discard(path)
        return None
    wanted = _config_json(config)
    if entry.get("config") != wanted or entry.get("name", name) != name:
        log.warning("ignoring cache entry %s: it was stored for name=%r config=%s, not name=%r config=%s",
                    path.name, entry.get("name", name), entry.get("config"), name, wanted)
        return None
    return entry["value"]


def store(name: str, config: dict, value: Any) -> None:
    """Write the entry for ``(name, config)`` (atomically, with its checksum and its config).

    Stale temporary files of killed writes in the cache folder are removed first.
    """
    path = entry_path(name, config)
    remove_stale_tmp(path.parent)
    save_checkpoint({"value": value, "config": _config_json(config), "name": name}, path)


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def get_or_compute(name: str, config: dict, compute: Callable[[], Any], *,
                   refresh: bool = False) -> tuple[Any, bool]:
    """Return ``(value, cached)``: the cached value for ``(name, config)`` or ``compute()``.

    ``value`` must be something ``torch.load(weights_only=True)`` can read back
    (tensors, dicts, lists, numbers, strings).  A hit is read without a lock and without
    writing anything (a read-only, pre-filled cache works).  On a miss a file lock per
    entry makes concurrent processes compute it once; a corrupt entry is discarded and
    recomputed.  If the cache folder is not writable (or the lock or the entry cannot be
    written), the value is computed and returned without being stored, with a warning.
    """
    path = entry_path(name, config)
    if not refresh:
        # no lock: an entry appears atomically; a half-written one is just a miss here
        value = lookup(name, config, discard=False)
        if value is not None:
            return value, True
    if not _writable(path.parent):
        log.warning("cache folder %s is not writable: computing %s without storing it", path.parent, path.name)
        return compute(), False
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire()
    except OSError as exc:
        log.warning("cannot lock %s (%s): computing it without storing it", path.name, exc)
        return compute(), False
    try:
        if not refresh:
            value = lookup(name, config)  # another process may have stored it while we waited
            if value is not None:
                return value, True
        value = compute()
        try:
            store(name, config, value)
        except OSError as exc:
            log.warning("could not store cache entry %s (%s): returning it unstored", path.name, exc)
        return value, False
    finally:
        lock.release()
