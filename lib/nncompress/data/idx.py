"""A small, strict reader (and writer) of IDX files, plain or gzip-compressed.

IDX is the format of MNIST (LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/) and
Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): a 4-byte magic number
``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian ``uint32`` dimensions, then the
``prod(dims)`` items in C order, big-endian.  Type codes: ``0x08`` unsigned byte,
``0x09`` signed byte, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64.
Images are ``0x00000803`` (uint8, 3 dims), labels ``0x00000801`` (uint8, 1 dim).

Everything is checked before the data is allocated: the magic, the number of dimensions
and the type asked for, and the byte count the header claims against the bytes the file
holds (its length for a plain file; for a ``.gz`` file the data is decompressed in chunks,
so a header that claims terabytes costs no more memory than the file really holds).  Every
problem raises :class:`IdxFormatError` naming the file - never a bare assertion.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .checks import DatasetFormatError

#: IDX type code -> numpy dtype (big-endian, as stored)
IDX_DTYPES: dict[int, np.dtype] = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
                                   0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
               0x0D: "float32", 0x0E: "float64"}
#: a header claiming more data than this is refused outright (Fashion-MNIST's largest file: 47 MB)
MAX_IDX_BYTES = 4 * 2**30
_CHUNK = 1 << 22
_GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(DatasetFormatError):
    """An IDX file is malformed (bad magic, wrong type or dimensions, truncated, trailing bytes)."""


def _fail(path, problem: str) -> IdxFormatError:
    return IdxFormatError(f"{path}: {problem}")


def _read_up_to(f, n: int) -> bytearray:
    """Up to ``n`` bytes from ``f``, in chunks (memory grows with what is there, not with ``n``)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _describe(code: int, ndim: int) -> str:
    return f"0x{code:02X} ({_TYPE_NAMES.get(code, 'unknown type')}), {ndim} dimension(s)"


def read_idx(path: str | os.PathLike, *, ndim: int | None = None, type_code: int | None = None,
             max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """The array stored in IDX file ``path`` (``.gz``: gzip-compressed), in native byte order.

    ``ndim`` / ``type_code`` (e.g. ``3`` / ``0x08`` for images): what the file must hold.
    Raises :class:`IdxFormatError` naming ``path`` and the problem; ``FileNotFoundError``
    if it does not exist.
    """
    path = Path(path)
    compressed = path.name.endswith(".gz")
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            return _parse(f, path, compressed, ndim, type_code, max_bytes)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _fail(path, f"is not a valid gzip file ({type(exc).__name__}: {exc}); "
                          "the download may be truncated or corrupted") from exc


def _parse(f, path: Path, compressed: bool, ndim, type_code, max_bytes) -> np.ndarray:
    magic = bytes(_read_up_to(f, 4))
    if len(magic) < 4:
        raise _fail(path, f"holds {len(magic)} byte(s): too short for the 4-byte IDX magic number")
    code, nd = magic[2], magic[3]
    if magic[:2] != b"\0\0" or code not in IDX_DTYPES or nd == 0:
        hint = (" - it looks gzip-compressed: name it *.gz" if magic[:2] == _GZIP_MAGIC and not compressed
                else "")
        raise _fail(path, f"not an IDX file: magic number 0x{magic.hex().upper()} (expected 0x0000TTDD: "
                          f"two zero bytes, a type code in {{{', '.join(f'0x{c:02X}' for c in IDX_DTYPES)}}} "
                          f"and the number of dimensions >= 1){hint}")
    if type_code is not None and code != type_code:
        raise _fail(path, f"holds {_describe(code, nd)} data; expected type 0x{type_code:02X} "
                          f"({_TYPE_NAMES[type_code]}) (magic 0x0000{type_code:02X}{ndim or nd:02X})")
    if ndim is not None and nd != ndim:
        raise _fail(path, f"has {nd} dimension(s), expected {ndim} (magic 0x0000{code:02X}{ndim:02X})")
    raw = bytes(_read_up_to(f, 4 * nd))
    if len(raw) < 4 * nd:
        raise _fail(path, f"truncated header: the magic announces {nd} dimension(s) "
                          f"({4 * nd} bytes) but only {len(raw)} byte(s) follow")
    dims = struct.unpack(f">{nd}I", raw)
    dtype = IDX_DTYPES[code]
    nbytes = math.prod(dims) * dtype.itemsize
    header = 4 + 4 * nd
    if nbytes > max_bytes:
        raise _fail(path, f"header claims dimensions {dims} = {nbytes} bytes of data, more than the "
                          f"{max_bytes}-byte limit of this reader")
    if not compressed:
        size = os.fstat(f.fileno()).st_size
        if size != header + nbytes:
            what = "truncated" if size < header + nbytes else f"{size - header - nbytes} trailing byte(s)"
            raise _fail(path, f"{what}: header claims dimensions {dims} = {nbytes} bytes of data "
                              f"but the file has {size - header} after its {header}-byte header")
    data = _read_up_to(f, nbytes)
    if len(data) < nbytes:
        raise _fail(path, f"truncated: header claims dimensions {dims} = {nbytes} bytes of data "
                          f"but only {len(data)} follow the {header}-byte header")
    if f.read(1):
        raise _fail(path, f"trailing bytes after the {nbytes} bytes of data that dimensions {dims} claim")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def idx_bytes(arr: np.ndarray) -> bytes:
    """``arr`` encoded as an IDX file (the inverse of :func:`read_idx`; test fixtures, exports)."""
    arr = np.asarray(arr)
    codes = {dt.newbyteorder("=") if dt.itemsize > 1 else dt: c for c, dt in IDX_DTYPES.items()}
    key = arr.dtype.newbyteorder("=") if arr.dtype.itemsize > 1 else arr.dtype
    if key not in codes or arr.ndim == 0:
        raise ValueError(f"arr: IDX stores 1+ dimensional {', '.join(sorted({str(d) for d in codes}))} "
                         f"arrays, got {arr.dtype} with shape {arr.shape}")
    code = codes[key]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()


__all__ = ["IDX_DTYPES", "MAX_IDX_BYTES", "IdxFormatError", "read_idx", "idx_bytes"]
