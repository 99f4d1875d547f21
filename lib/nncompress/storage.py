"""Deep Compression's storage format, written to one real file (Han, Mao & Dally 2016, §2-4).

A weight matrix after pruning and weight sharing is stored as

* **relative-index CSR** (§2, Fig. 2): for each non-zero, in row-major order, the number of
  zeros skipped since the previous entry, in a fixed width of ``index_bits`` bits (paper: 8 for
  conv, 5 for fc).  A run longer than ``2**index_bits - 1`` is cut by a **filler zero**: an
  entry with the largest gap and the value 0 (:func:`csr_encode` / :func:`csr_decode`);
* **cluster indices** of ``bits`` bits each into a per-layer **codebook** of float32 centroids
  (§3).  Code 0 is reserved for the value 0 (the filler), so a layer has ``2**bits - 1``
  non-zero centroids and at most ``2**bits`` distinct values;
* optionally **Huffman-coded** (§4): the gaps and the cluster indices are each coded with a
  canonical Huffman code (:class:`Huffman`), whose code lengths are stored in the file.

:func:`save_compressed` writes magic, version, a JSON header, the per-tensor payloads and a
CRC-32 of everything before it; :func:`load_compressed` verifies magic, version, length and
checksum first, so a damaged or truncated file raises :class:`CorruptFile` - never a wrong model.
A file that passes the CRC (written by a buggy or hostile writer) is then validated as a
structure *before anything is allocated*: the header's fields and types, every kind and stage
(unknown ones are rejected), every part length against what its count and width imply and
against the bytes actually present, the decoded size against :data:`MAX_ELEMENTS`, every
Huffman table for being a complete prefix code (Kraft sum = 1), every sparse index, cluster
code and padding bit.  Each failure is a :class:`CorruptFile` naming the file, the tensor and
what is wrong; so is a file whose tensors do not fit the model it is loaded into.

Why a hand-written Huffman coder: the canonical code is ~60 lines here (:class:`Huffman`),
fully unit-tested (round trip, prefix-freeness, optimality bound H <= L < H + 1).  The
pure-Python packages on the registry (e.g. ``dahuffman``) store their code tables in their own
(pickled) form, while this format must write the table itself - 3 bytes per symbol as canonical
code lengths - inside one checksummed file; a dependency for 60 lines that the chapter also
teaches is not worth it.
"""
from __future__ import annotations

import heapq
import io
import json
import math
import struct
import zlib
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn

MAGIC = b"NNCZ"
VERSION = 1
STAGES = ("sparse", "quantized", "huffman")
#: Number of payload parts of each tensor kind (the kinds a stage may use: ``raw`` + its own).
KIND_PARTS = {"raw": 1, "sparse": 2, "quantized": 3, "huffman": 5}
#: Largest decoded model a file may declare, in float32 elements over all tensors (1 GiB).
MAX_ELEMENTS = 2**28
MAX_DIMS = 8
MAX_FIXED_BITS = 32      # index_bits / bits of the fixed-width streams
MAX_CODE_LENGTH = 64     # longest Huffman code accepted
_HEADER_KEYS = {"stage", "tensors"}
_ENTRY_KEYS = {"raw": {"name", "shape", "kind", "parts"},
               "sparse": {"name", "shape", "kind", "parts", "index_bits", "entries"},
               "quantized": {"name", "shape", "kind", "parts", "index_bits", "bits", "entries", "codebook"},
               "huffman": {"name", "shape", "kind", "parts", "entries", "codebook"}}


class CorruptFile(ValueError):
    """A compressed-model file is truncated, damaged, or not one of ours."""


# --------------------------------------------------------------------------- bits

def pack_fixed(values, bits: int) -> bytes:
    """Pack non-negative ints ``< 2**bits`` into ``bits`` bits each (MSB first)."""
    v = np.asarray(values, dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= 2**bits):
        raise ValueError(f"values must lie in [0, {2**bits - 1}] for bits={bits}")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    b = ((v[:, None] >> shifts) & 1).astype(np.uint8).ravel()
    return np.packbits(b).tobytes()


def unpack_fixed(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`: ``count`` ints of ``bits`` bits from ``data``.

    Raises :class:`CorruptFile` if ``data`` is shorter than ``count * bits`` bits or longer
    than the ``ceil(count * bits / 8)`` bytes :func:`pack_fixed` writes, or if a padding bit
    is set.  Decodes in chunks, so the int64 intermediate stays small.
    """
    if not 1 <= bits <= 63 or count < 0:
        raise ValueError(f"bits={bits!r}, count={count!r}: expected 1 <= bits <= 63 and count >= 0")
    need = -(-count * bits // 8)
    if len(data) < need:
        raise CorruptFile(f"fixed-width stream of {len(data)} bytes is shorter than its declared length "
                          f"({count} x {bits} bits = {need} bytes)")
    if len(data) > need:
        raise CorruptFile(f"fixed-width stream of {len(data)} bytes is longer than its declared length "
                          f"({count} x {bits} bits = {need} bytes)")
    b = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if b[count * bits:].any():
        raise CorruptFile("fixed-width stream has non-zero padding bits")
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))
    out = np.empty(count, dtype=np.int64)
    step = 1 << 16
    for start in range(0, count, step):
        n = min(step, count - start)
        out[start:start + n] = b[start * bits:(start + n) * bits].reshape(n, bits).astype(np.int64) @ weights
    return out


# --------------------------------------------------------------------------- Huffman

class Huffman:
    """Canonical Huffman code over symbols ``0 .. n_symbols-1`` (Huffman 1952).

    ``Huffman.fit(data)`` builds the optimal prefix code; only the code *lengths* need to be
    stored (``lengths``), since canonical codes are assigned in (length, symbol) order.
    The mean code length ``L`` satisfies ``H <= L < H + 1`` (H: empirical entropy, bits).
    """

    def __init__(self, lengths: Mapping[int, int]):
        self.lengths = {int(s): int(n) for s, n in lengths.items() if n > 0}
        if kraft_excess(self.lengths.values()) > 0:
            raise ValueError(f"code lengths {self.lengths} are not a prefix code: their Kraft sum exceeds 1")
        self.codes: dict[int, tuple[int, int]] = {}
        code, prev = 0, 0
        for sym, n in sorted(self.lengths.items(), key=lambda kv: (kv[1], kv[0])):
            code <<= n - prev
            self.codes[sym] = (code, n)
            code, prev = code + 1, n
        self._decode = {(n, c): s for s, (c, n) in self.codes.items()}

    @classmethod
    def fit(cls, data: Iterable[int]) -> "Huffman":
        counts = Counter(int(x) for x in data)
        if not counts:
            return cls({})
        if len(counts) == 1:  # one symbol still needs one bit
            return cls({next(iter(counts)): 1})
        heap = [(c, i, [s]) for i, (s, c) in enumerate(sorted(counts.items()))]
        heapq.heapify(heap)
        depth = Counter()
        tie = len(heap)
        while len(heap) > 1:
            c1, _, s1 = heapq.heappop(heap)
            c2, _, s2 = heapq.heappop(heap)
            for s in s1 + s2:
                depth[s] += 1
            heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
            tie += 1
        return cls(depth)

    def encode(self, data: Iterable[int]) -> tuple[bytes, int]:
        """``(bytes, number of bits)``."""
        strs = {s: format(c, f"0{n}b") for s, (c, n) in self.codes.items()}
        bitstr = "".join(strs[int(x)] for x in data)
        bits = np.frombuffer(bitstr.encode(), dtype=np.uint8) - 48
        return np.packbits(bits).tobytes(), len(bitstr)

    def decode(self, data: bytes, count: int) -> list[int]:
        """The ``count`` symbols coded in ``data`` (as written by :meth:`encode`).

        Raises :class:`CorruptFile` if the stream ends early, holds an invalid code, or has
        more than the zero padding of its last byte after the ``count``-th symbol.
        """
        if count > 8 * len(data) and count > 0:
            raise CorruptFile(f"Huffman stream of {len(data)} bytes cannot hold {count} symbols")
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).tolist()
        out, code, n, i = [], 0, 0, 0
        table, maxlen = self._decode, max(self.lengths.values(), default=0)
        while len(out) < count:
            if i >= len(bits) or n >= maxlen:
                raise CorruptFile("Huffman stream ended early or holds an invalid code")
            code, n, i = (code << 1) | bits[i], n + 1, i + 1
            sym = table.get((n, code))
            if sym is not None:
                out.append(sym)
                code, n = 0, 0
        if len(data) != -(-i // 8) or any(bits[i:]):
            raise CorruptFile(f"Huffman stream has {len(bits) - i} bits after its {count} symbols "
                              "(expected only the zero padding of the last byte)")
        return out

    def mean_length(self, data) -> float:
        data = list(data)
        return sum(self.lengths[int(x)] for x in data) / max(len(data), 1)

    def table_bytes(self) -> bytes:
        """Lengths as (symbol u16, length u8) triples: what the file stores."""
        return b"".join(struct.pack("<HB", s, n) for s, n in sorted(self.lengths.items()))

    @classmethod
    def from_table(cls, data: bytes) -> "Huffman":
        """Read :meth:`table_bytes`; raises :class:`CorruptFile` unless it is a canonical table of a
        complete prefix code: symbols strictly increasing, lengths in ``1..MAX_CODE_LENGTH`` and
        Kraft sum ``sum 2**-l == 1`` (a lone symbol has length 1, as :meth:`fit` writes)."""
        if len(data) % 3:
            raise CorruptFile(f"bad Huffman table: {len(data)} bytes is not a multiple of 3")
        pairs = [struct.unpack_from("<HB", data, i) for i in range(0, len(data), 3)]
        syms = [sym for sym, _ in pairs]
        if any(b <= a for a, b in zip(syms, syms[1:])):
            raise CorruptFile("bad Huffman table: symbols are not strictly increasing (duplicated or unsorted)")
        lengths = [n for _, n in pairs]
        if any(not 1 <= n <= MAX_CODE_LENGTH for n in lengths):
            raise CorruptFile(f"bad Huffman table: a code length is outside 1..{MAX_CODE_LENGTH}")
        if len(lengths) == 1:
            if lengths[0] != 1:
                raise CorruptFile(f"bad Huffman table: a lone symbol must have length 1, not {lengths[0]}")
        elif lengths and kraft_excess(lengths) != 0:
            what = "not a prefix code" if kraft_excess(lengths) > 0 else "an incomplete code"
            raise CorruptFile(f"bad Huffman table: {what} (Kraft sum of its code lengths != 1)")
        return cls(dict(pairs))


def kraft_excess(lengths: Iterable[int]) -> Fraction:
    """``sum_i 2**-l_i - 1`` (exact): > 0 means no prefix code has these lengths (Kraft 1949),
    0 a complete prefix code (every bit string decodes), < 0 an incomplete one."""
    lengths = list(lengths)
    if not lengths:
        return Fraction(-1)
    top = max(lengths)
    return Fraction(sum(1 << (top - n) for n in lengths), 1 << top) - 1


def entropy_bits(data) -> float:
    """Empirical entropy in bits per symbol."""
    counts = Counter(int(x) for x in data)
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


# --------------------------------------------------------------------------- CSR

def csr_encode(codes: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative-index sparse form of a flat array of cluster codes (0 = zero weight).

    Returns ``(gaps, values)``: ``gaps[i]`` is the number of zeros before entry ``i`` since the
    previous entry, ``< 2**index_bits``; a longer run gets filler entries ``(2**index_bits - 1,
    0)`` - Han et al. 2016, Fig. 2.  Trailing zeros are implied by the tensor's size.
    """
    codes = np.asarray(codes).ravel()
    pos = np.flatnonzero(codes)
    gaps = np.diff(pos, prepend=-1) - 1
    cap = 2**index_bits - 1
    n_fill = gaps // (cap + 1)  # each filler consumes cap zeros plus itself
    if not n_fill.any():
        return gaps.astype(np.int64), codes[pos].astype(np.int64)
    out_g, out_v = [], []
    for g, v, f in zip(gaps.tolist(), codes[pos].tolist(), n_fill.tolist()):
        out_g += [cap] * f
        out_v += [0] * f
        out_g.append(g - f * (cap + 1))
        out_v.append(v)
    return np.array(out_g, dtype=np.int64), np.array(out_v, dtype=np.int64)


def csr_positions(gaps, size: int) -> np.ndarray:
    """Flat positions of the relative-index entries ``gaps``; :class:`CorruptFile` if a gap is
    negative or an entry lies outside a tensor of ``size`` elements."""
    gaps = np.asarray(gaps, dtype=np.int64)
    if gaps.size and gaps.min() < 0:
        raise CorruptFile("negative sparse index gap")
    pos = np.cumsum(gaps + 1) - 1
    if pos.size and pos[-1] >= size:
        raise CorruptFile(f"sparse indices point outside the tensor (entry at {int(pos[-1])}, size {size})")
    return pos


def csr_decode(gaps, values, size: int) -> np.ndarray:
    """Inverse of :func:`csr_encode`: the flat code array of length ``size``."""
    pos = csr_positions(gaps, size)
    values = np.asarray(values, dtype=np.int64)
    if len(values) != len(pos):
        raise CorruptFile(f"{len(pos)} sparse indices but {len(values)} values")
    out = np.zeros(size, dtype=np.int64)
    out[pos] = values
    return out


# --------------------------------------------------------------------------- codebooks

def codebook_of(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, np.ndarray]:
    """``(codebook, codes)`` of a weight-shared tensor: codebook[0] = 0, codes index it."""
    flat = weight.detach().float().cpu().ravel()
    values = torch.unique(flat[flat != 0])
    if len(values) > 2**bits - 1:
        raise ValueError(f"a tensor with {len(values)} distinct non-zero values does not fit bits={bits} "
                         f"(at most {2**bits - 1}): share its weights first (quantize.share_weights)")
    codebook = torch.cat([torch.zeros(1), values])
    codes = torch.searchsorted(values, flat) + 1
    codes[flat == 0] = 0
    return codebook, codes.numpy().astype(np.int64)


# --------------------------------------------------------------------------- file

def _float_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().float().numpy().astype("<f4").tobytes()


def compressible(model: nn.Module) -> list[str]:
    """Names of the weight tensors the format compresses (of Linear and Conv layers)."""
    return [f"{n}.weight" for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and hasattr(m, "weight")]


def dense_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with plain names (``layer.weight``), on the CPU: weight-shared layers
    (any module with a ``shared_weight()`` method and a ``codebook``, such as
    :class:`nncompress.quantize.SharedWeight`) materialised, pruning masks applied."""
    sd = {}
    full = model.state_dict()
    shared = {n: m for n, m in model.named_modules() if callable(getattr(m, "shared_weight", None))}
    for k, v in full.items():
        owner = next((n for n in shared if k.startswith(n + ".")), None)
        if owner is not None:
            rest = k[len(owner) + 1:]
            if rest == "codebook":
                sd[f"{owner}.weight"] = shared[owner].shared_weight().detach().cpu()
            elif rest.startswith("module."):
                sd[f"{owner}.{rest[7:]}"] = v.detach().cpu()
            continue
        if k.endswith("weight_mask"):
            continue
        if k.endswith("weight_orig"):
            base = k[: -len("_orig")]
            sd[base] = v.detach().cpu() * full[base + "_mask"].cpu()
            continue
        sd[k] = v.detach().cpu()
    return sd


def save_compressed(model: nn.Module, path, *, stage: str = "huffman", bits: int | Mapping[str, int] = 5,
                    index_bits: int | Mapping[str, int] = 5) -> dict:
    """Write ``model`` (pruned; for ``quantized``/``huffman`` also weight-shared) to ``path``.

    ``stage``: ``"sparse"`` (CSR, float32 values), ``"quantized"`` (CSR + ``bits``-bit cluster
    codes + codebook), ``"huffman"`` (the same, Huffman-coded).  ``bits`` / ``index_bits`` are
    one int or ``{layer weight name: int}``.  Tensors other than Linear/Conv weights (biases,
    norms) are stored as raw float32.  Returns a report: ``{"bytes": file size, "layers":
    {name: {"bytes", "nonzero", "entries", "fillers"}}, "other_bytes", "header_bytes"}``.
    """
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r} is not allowed: expected one of {', '.join(STAGES)}")

    sd = dense_state_dict(model)
    targets = set(compressible_names(sd, model))
    header = {"stage": stage, "tensors": []}
    blobs, report = [], {"layers": {}}
    other = 0
    for name, t in sd.items():
        entry = {"name": name, "shape": list(t.shape)}
        if name not in targets:
            data = _float_bytes(t)
            entry.update(kind="raw", parts=[len(data)])
            blobs.append(data)
            other += len(data)
            header["tensors"].append(entry)
            continue
        ib = index_bits[name] if isinstance(index_bits, Mapping) else index_bits
        b = bits[name] if isinstance(bits, Mapping) else bits
        if stage == "sparse":
            flat = t.detach().float().cpu().ravel()
            nz = (flat != 0).numpy()
            codes = np.zeros(flat.numel(), dtype=np.int64)
            codes[nz] = 1
            gaps, vals = csr_encode(codes, ib)
            keep = vals != 0
            values = np.zeros(len(vals), dtype="<f4")
            values[keep] = flat.numpy()[nz]
            parts = [pack_fixed(gaps, ib), values.tobytes()]
            entry.update(kind="sparse", index_bits=ib, entries=len(gaps))
        else:
            codebook, codes = codebook_of(t, b)
            gaps, vals = csr_encode(codes, ib)
            if stage == "quantized":
                parts = [_float_bytes(codebook), pack_fixed(gaps, ib), pack_fixed(vals, b)]
                entry.update(kind="quantized", index_bits=ib, bits=b, entries=len(gaps))
            else:
                hg, hv = Huffman.fit(gaps), Huffman.fit(vals)
                (g_data, _), (v_data, _) = hg.encode(gaps), hv.encode(vals)
                parts = [_float_bytes(codebook), hg.table_bytes(), g_data, hv.table_bytes(), v_data]
                entry.update(kind="huffman", entries=len(gaps))
            entry["codebook"] = len(codebook)
        entry["parts"] = [len(p) for p in parts]
        blobs.extend(parts)
        header["tensors"].append(entry)
        report["layers"][name] = {"bytes": sum(len(p) for p in parts), "nonzero": int((t != 0).sum()),
                                  "entries": int(len(gaps)), "fillers": int(len(gaps) - (t != 0).sum()),
                                  "numel": t.numel()}
    head = json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<BI", VERSION, len(head)) + head + b"".join(blobs)
    data = body + struct.pack("<I", zlib.crc32(body))
    from .cache import atomic_write_bytes

    atomic_write_bytes(Path(path), data)
    report.update(bytes=len(data), other_bytes=other, header_bytes=len(head) + len(MAGIC) + 5 + 4)
    return report


def compressible_names(sd: Mapping[str, torch.Tensor], model: nn.Module) -> list[str]:
    names = set(compressible(model))
    for n, m in model.named_modules():  # weight-shared wrappers
        if hasattr(m, "codebook") and hasattr(m, "index"):
            names.add(f"{n}.weight")
    return [k for k in sd if k in names]


def _check_int(value, lo: int, hi: int, what: str) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise CorruptFile(f"{what}={value!r} is not an int in [{lo}, {hi}]")
    return value


def _nbytes(count: int, bits: int) -> int:
    return -(-count * bits // 8)


def _check_entry(e, stage: str, index: int) -> tuple[str, int]:
    """Validate one header entry (types, kind, sizes of its parts) without touching the payload.
    Returns ``(name, number of elements)``; raises ``CorruptFile`` (message without the file)."""
    if not isinstance(e, dict):
        raise CorruptFile(f"tensor {index} is a {type(e).__name__}, not an object")
    name = e.get("name")
    if not isinstance(name, str) or not name:
        raise CorruptFile(f"tensor {index} has no name")
    kind = e.get("kind")
    allowed = ("raw", stage)
    if kind not in allowed:
        raise CorruptFile(f"tensor {name!r}: kind={kind!r} is not allowed in a {stage!r} file "
                          f"(expected one of {', '.join(allowed)})")
    extra = set(e) - _ENTRY_KEYS[kind]
    missing = _ENTRY_KEYS[kind] - set(e)
    if extra or missing:
        raise CorruptFile(f"tensor {name!r} ({kind}): unexpected fields {sorted(extra)}, missing {sorted(missing)}")
    shape = e["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise CorruptFile(f"tensor {name!r}: shape={shape!r} is not a list of at most {MAX_DIMS} ints")
    for d in shape:
        _check_int(d, 0, MAX_ELEMENTS, f"tensor {name!r}: a dimension of shape {shape}: dimension")
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise CorruptFile(f"tensor {name!r}: shape {shape} has {size} elements, more than the "
                          f"{MAX_ELEMENTS} this reader accepts")
    parts = e["parts"]
    if not isinstance(parts, list) or len(parts) != KIND_PARTS[kind] or any(type(n) is not int for n in parts):
        raise CorruptFile(f"tensor {name!r}: parts={parts!r} is not a list of {KIND_PARTS[kind]} ints")
    if kind == "raw":
        expected = [4 * size]
    else:
        entries = _check_int(e["entries"], 0, size, f"tensor {name!r}: entries")
        if kind == "sparse":
            ib = _check_int(e["index_bits"], 1, MAX_FIXED_BITS, f"tensor {name!r}: index_bits")
            expected = [_nbytes(entries, ib), 4 * entries]
        elif kind == "quantized":
            ib = _check_int(e["index_bits"], 1, MAX_FIXED_BITS, f"tensor {name!r}: index_bits")
            b = _check_int(e["bits"], 1, MAX_FIXED_BITS, f"tensor {name!r}: bits")
            k = _check_int(e["codebook"], 1, 2**b, f"tensor {name!r}: codebook")
            expected = [4 * k, _nbytes(entries, ib), _nbytes(entries, b)]
        else:  # huffman: the coded streams have no fixed length, only bounds
            k = _check_int(e["codebook"], 1, 2**16, f"tensor {name!r}: codebook")
            for t in (1, 3):
                if parts[t] % 3:
                    raise CorruptFile(f"tensor {name!r}: Huffman table of {parts[t]} bytes is not a multiple of 3")
            for t in (2, 4):
                if not _nbytes(entries, 1) <= parts[t] <= _nbytes(entries, MAX_CODE_LENGTH):
                    raise CorruptFile(f"tensor {name!r}: a Huffman stream of {parts[t]} bytes cannot hold "
                                      f"exactly {entries} codes of 1..{MAX_CODE_LENGTH} bits")
            expected = [4 * k, *parts[1:]]
    if parts != expected:
        raise CorruptFile(f"tensor {name!r} ({kind}, shape {shape}): part lengths {parts}, expected {expected}")
    return name, size


def _parse_header(body: bytes, hlen: int) -> dict:
    if hlen > len(body) - 9:
        raise CorruptFile(f"header length {hlen} exceeds the {len(body) - 9} bytes after it")
    try:
        header = json.loads(body[9:9 + hlen])
    except (ValueError, RecursionError) as exc:
        raise CorruptFile(f"unreadable header ({exc})") from None
    if not isinstance(header, dict) or set(header) != _HEADER_KEYS:
        raise CorruptFile(f"header must be an object with exactly the fields {sorted(_HEADER_KEYS)}")
    if header["stage"] not in STAGES:
        raise CorruptFile(f"stage={header['stage']!r} is unknown: expected one of {', '.join(STAGES)}")
    if not isinstance(header["tensors"], list):
        raise CorruptFile("header field 'tensors' is not a list")
    names, total, payload = set(), 0, 0
    for i, e in enumerate(header["tensors"]):
        name, size = _check_entry(e, header["stage"], i)
        if name in names:
            raise CorruptFile(f"tensor {name!r} appears twice")
        names.add(name)
        total += size
        if total > MAX_ELEMENTS:
            raise CorruptFile(f"the tensors have more than the {MAX_ELEMENTS} elements this reader accepts")
        payload += sum(e["parts"])
    if payload != len(body) - 9 - hlen:
        raise CorruptFile(f"the header describes {payload} payload bytes, the file holds {len(body) - 9 - hlen}")
    return header


def _decode_tensor(e: dict, parts: list[bytes]) -> np.ndarray:
    """The flat float32 values of one validated entry."""
    size, kind = math.prod(e["shape"]), e["kind"]
    if kind == "raw":
        return np.frombuffer(parts[0], dtype="<f4").astype(np.float32)
    if kind == "sparse":
        gaps = unpack_fixed(parts[0], e["index_bits"], e["entries"])
        values = np.frombuffer(parts[1], dtype="<f4")
    else:
        codebook = np.frombuffer(parts[0], dtype="<f4").astype(np.float32)
        if codebook[0] != 0:
            raise CorruptFile(f"codebook[0]={float(codebook[0])!r}: code 0 is reserved for the value 0")
        if kind == "quantized":
            gaps = unpack_fixed(parts[1], e["index_bits"], e["entries"])
            codes = unpack_fixed(parts[2], e["bits"], e["entries"])
        else:
            gaps = np.asarray(Huffman.from_table(parts[1]).decode(parts[2], e["entries"]), dtype=np.int64)
            codes = np.asarray(Huffman.from_table(parts[3]).decode(parts[4], e["entries"]), dtype=np.int64)
        if codes.size and codes.max() >= len(codebook):
            raise CorruptFile(f"cluster code {int(codes.max())} outside the codebook of {len(codebook)} values")
        values = codebook[codes]
    flat = np.zeros(size, dtype=np.float32)
    flat[csr_positions(gaps, size)] = values
    return flat


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Decode a file written by :func:`save_compressed` into a dense float32 state dict.

    Raises :class:`CorruptFile` (naming the file, and the tensor where there is one) for a
    file that is truncated, fails its CRC, or - passing it - is malformed in any way; the
    whole header is validated, and sizes checked against the bytes present and against
    :data:`MAX_ELEMENTS`, before any tensor is allocated.
    """
    data = Path(path).read_bytes()
    where = f"{path}"
    if len(data) < len(MAGIC) + 9 or data[:4] != MAGIC:
        raise CorruptFile(f"{where}: not an nncompress compressed model (bad magic or too short)")
    version, hlen = struct.unpack("<BI", data[4:9])
    if version != VERSION:
        raise CorruptFile(f"{where}: format version {version}, this library reads version {VERSION}")
    body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
    if zlib.crc32(body) != crc:
        raise CorruptFile(f"{where}: checksum mismatch - the file is truncated or corrupted")
    try:
        header = _parse_header(body, hlen)
    except CorruptFile as exc:
        raise CorruptFile(f"{where}: malformed: {exc}") from None
    off = 9 + hlen
    sd = {}
    for e in header["tensors"]:
        parts = []
        for n in e["parts"]:
            parts.append(body[off:off + n])
            off += n
        try:
            flat = _decode_tensor(e, parts)
        except CorruptFile as exc:
            raise CorruptFile(f"{where}: malformed tensor {e['name']!r} ({e['kind']}): {exc}") from None
        sd[e["name"]] = torch.from_numpy(flat).reshape(e["shape"])
    return sd


def load_compressed(path, model_factory_or_config: Callable[[], nn.Module] | dict) -> nn.Module:
    """Rebuild a plain (dense-weight) model from ``path``; raises :class:`CorruptFile` if damaged
    or if its tensors (names, shapes) do not fit the model.

    ``model_factory_or_config``: a zero-argument callable returning the model, or a config
    for :func:`nncompress.models.build` (with ``in_dim``/``num_classes`` filled in).
    """
    sd = read_state_dict(path)
    if callable(model_factory_or_config):
        model = model_factory_or_config()
    else:
        from .models import build

        model = build(dict(model_factory_or_config))
    try:
        model.load_state_dict(sd)
    except RuntimeError as exc:  # missing / unexpected names, other shapes
        raise CorruptFile(f"{path}: its tensors do not fit the model (another architecture, or a "
                          f"damaged header): {exc}") from None
    return model.eval()


def state_dict_bytes(model_or_sd) -> int:
    """Bytes of ``torch.save`` of a float32 state dict (the paper's baseline)."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    buf = io.BytesIO()
    torch.save(dict(sd), buf)
    return buf.getbuffer().nbytes
