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
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn

MAGIC = b"NNCZ"
VERSION = 1
STAGES = ("sparse", "quantized", "huffman")


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
    b = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    if b.size < count * bits:
        raise CorruptFile("fixed-width stream shorter than its declared length")
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))
    return (b.reshape(count, bits).astype(np.int64) * weights).sum(1)


# --------------------------------------------------------------------------- Huffman

class Huffman:
    """Canonical Huffman code over symbols ``0 .. n_symbols-1`` (Huffman 1952).

    ``Huffman.fit(data)`` builds the optimal prefix code; only the code *lengths* need to be
    stored (``lengths``), since canonical codes are assigned in (length, symbol) order.
    The mean code length ``L`` satisfies ``H <= L < H + 1`` (H: empirical entropy, bits).
    """

    def __init__(self, lengths: Mapping[int, int]):
        self.lengths = {int(s): int(n) for s, n in lengths.items() if n > 0}
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
        return out

    def mean_length(self, data) -> float:
        data = list(data)
        return sum(self.lengths[int(x)] for x in data) / max(len(data), 1)

    def table_bytes(self) -> bytes:
        """Lengths as (symbol u16, length u8) triples: what the file stores."""
        return b"".join(struct.pack("<HB", s, n) for s, n in sorted(self.lengths.items()))

    @classmethod
    def from_table(cls, data: bytes) -> "Huffman":
        if len(data) % 3:
            raise CorruptFile("bad Huffman table")
        return cls(dict(struct.unpack("<HB", data[i:i + 3]) for i in range(0, len(data), 3)))


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


def csr_decode(gaps, values, size: int) -> np.ndarray:
    """Inverse of :func:`csr_encode`: the flat code array of length ``size``."""
    gaps, values = np.asarray(gaps, dtype=np.int64), np.asarray(values, dtype=np.int64)
    pos = np.cumsum(gaps + 1) - 1
    if pos.size and (pos[-1] >= size or pos[0] < 0):
        raise CorruptFile("sparse indices point outside the tensor")
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
    from .quantize import dense_state_dict

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


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Decode a file written by :func:`save_compressed` into a dense float32 state dict."""
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
        header = json.loads(body[9:9 + hlen])
    except ValueError as exc:  # pragma: no cover - the CRC catches this first
        raise CorruptFile(f"{where}: unreadable header") from exc
    off = 9 + hlen
    sd = {}
    for e in header["tensors"]:
        parts = []
        for n in e["parts"]:
            parts.append(body[off:off + n])
            off += n
        shape, size = e["shape"], math.prod(e["shape"])
        if e["kind"] == "raw":
            flat = np.frombuffer(parts[0], dtype="<f4").copy()
        elif e["kind"] == "sparse":
            gaps = unpack_fixed(parts[0], e["index_bits"], e["entries"])
            vals = np.frombuffer(parts[1], dtype="<f4")
            pos = np.cumsum(gaps + 1) - 1
            flat = np.zeros(size, dtype=np.float32)
            flat[pos] = vals
        else:
            codebook = np.frombuffer(parts[0], dtype="<f4")
            if e["kind"] == "quantized":
                gaps = unpack_fixed(parts[1], e["index_bits"], e["entries"])
                vals = unpack_fixed(parts[2], e["bits"], e["entries"])
            else:
                gaps = Huffman.from_table(parts[1]).decode(parts[2], e["entries"])
                vals = Huffman.from_table(parts[3]).decode(parts[4], e["entries"])
            flat = codebook[csr_decode(gaps, vals, size)]
        sd[e["name"]] = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32)).reshape(shape)
    if off != len(body):
        raise CorruptFile(f"{where}: {len(body) - off} unexpected trailing bytes")
    return sd


def load_compressed(path, model_factory_or_config: Callable[[], nn.Module] | dict) -> nn.Module:
    """Rebuild a plain (dense-weight) model from ``path``; raises :class:`CorruptFile` if damaged.

    ``model_factory_or_config``: a zero-argument callable returning the model, or a config
    for :func:`nncompress.models.build` (with ``in_dim``/``num_classes`` filled in).
    """
    sd = read_state_dict(path)
    if callable(model_factory_or_config):
        model = model_factory_or_config()
    else:
        from .models import build

        model = build(dict(model_factory_or_config))
    model.load_state_dict(sd)
    return model.eval()


def state_dict_bytes(model_or_sd) -> int:
    """Bytes of ``torch.save`` of a float32 state dict (the paper's baseline)."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    buf = io.BytesIO()
    torch.save(dict(sd), buf)
    return buf.getbuffer().nbytes
