"""Deep Compression's file format: Huffman, relative-index CSR with fillers, the file itself."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from nncompress import prune, quantize as q
from nncompress import storage as st


@pytest.mark.parametrize("probs", [[0.5, 0.25, 0.125, 0.125], [0.9, 0.05, 0.03, 0.02], [0.1] * 10, [0.6, 0.4]])
def test_huffman_round_trip_and_length_within_entropy_bound(probs):
    rng = np.random.default_rng(0)
    data = rng.choice(len(probs), size=3000, p=np.array(probs) / sum(probs)).tolist()
    h = st.Huffman.fit(data)
    blob, nbits = h.encode(data)
    assert h.decode(blob, len(data)) == data
    assert len(blob) == math.ceil(nbits / 8)
    H, L = st.entropy_bits(data), h.mean_length(data)
    assert H - 1e-9 <= L < H + 1
    assert abs(nbits / len(data) - L) < 1e-12
    assert st.Huffman.from_table(h.table_bytes()).codes == h.codes


def test_huffman_single_symbol_uses_one_bit():
    h = st.Huffman.fit([7] * 10)  # H = 0, the one case where L = H + 1
    blob, nbits = h.encode([7] * 10)
    assert nbits == 10 and h.decode(blob, 10) == [7] * 10


def test_huffman_code_is_prefix_free():
    data = [0] * 50 + [1] * 20 + [2] * 10 + [3] * 5 + [4] * 2 + [5]
    codes = [format(c, f"0{n}b") for c, n in st.Huffman.fit(data).codes.values()]
    assert not any(a != b and b.startswith(a) for a in codes for b in codes)


def test_huffman_rejects_truncated_stream():
    data = list(range(8)) * 10
    h = st.Huffman.fit(data)
    blob, _ = h.encode(data)
    with pytest.raises(st.CorruptFile):
        h.decode(blob[: len(blob) // 2], len(data))


@pytest.mark.parametrize("index_bits", [2, 3, 5])
def test_csr_round_trip_with_fillers(index_bits):
    codes = np.zeros(200, dtype=np.int64)
    codes[[0, 1, 7, 40, 41, 150, 199]] = [3, 1, 2, 5, 1, 7, 4]  # runs of 32 and 108 zeros
    gaps, vals = st.csr_encode(codes, index_bits)
    assert gaps.max() <= 2**index_bits - 1
    assert (vals != 0).sum() == 7
    assert np.array_equal(st.csr_decode(gaps, vals, codes.size), codes)


def test_csr_paper_example():
    # a run of 8 zeros then a value, with 3-bit gaps (max 7): one filler is needed
    codes = np.array([0] * 8 + [2])
    gaps, vals = st.csr_encode(codes, 3)
    assert gaps.tolist() == [7, 0] and vals.tolist() == [0, 2]
    gaps, vals = st.csr_encode(np.array([0] * 16 + [1]), 3)
    assert gaps.tolist() == [7, 7, 0] and vals.tolist() == [0, 0, 1]


def test_fixed_width_round_trip():
    v = np.arange(32) % 19
    assert np.array_equal(st.unpack_fixed(st.pack_fixed(v, 5), 5, len(v)), v)
    with pytest.raises(ValueError, match="bits=5"):
        st.pack_fixed([32], 5)


def _shared_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    prune.remove_masks(prune.prune_to_sparsity(model, {"0": 0.9, "2": 0.6}, scope="layer"))
    return model, q.share_weights(model, {"0": 4, "2": 3})


def _factory():
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))


@pytest.mark.parametrize("stage", st.STAGES)
def test_file_round_trip_is_bit_exact(tmp_path, stage):
    pruned, shared = _shared_model()
    src = pruned if stage == "sparse" else shared
    path = tmp_path / f"m.{stage}"
    rep = st.save_compressed(src, path, stage=stage, bits={"0.weight": 4, "2.weight": 3}, index_bits=3)
    assert rep["bytes"] == path.stat().st_size
    loaded = st.load_compressed(path, _factory)
    x = torch.randn(64, 20)
    with torch.no_grad():
        assert torch.equal(loaded(x), src(x))
    for k, v in q.dense_state_dict(src).items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert rep["layers"]["0.weight"]["fillers"] >= 0


def test_stages_shrink_the_file(tmp_path):
    pruned, shared = _shared_model()
    sizes = [st.save_compressed(pruned if s == "sparse" else shared, tmp_path / s, stage=s, bits=4)["bytes"]
             for s in st.STAGES]
    assert sizes[0] > sizes[1] > 0 and st.state_dict_bytes(_factory()) > sizes[0]


def test_too_many_values_for_bits_is_refused(tmp_path):
    pruned, _ = _shared_model()
    with pytest.raises(ValueError, match="bits=2"):
        st.save_compressed(pruned, tmp_path / "x", stage="quantized", bits=2)


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "empty"])
def test_damaged_file_is_rejected_clearly(tmp_path, damage):
    _, shared = _shared_model()
    path = tmp_path / "m.nncz"
    st.save_compressed(shared, path, bits=4)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 10]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "magic":
        data[:4] = b"XXXX"
    else:
        data = b""
    path.write_bytes(bytes(data))
    with pytest.raises(st.CorruptFile, match="truncated or corrupted|not an nncompress"):
        st.load_compressed(path, _factory)


def test_bad_stage_is_named(tmp_path):
    with pytest.raises(ValueError, match="stage='zip'.*sparse"):
        st.save_compressed(_factory(), tmp_path / "x", stage="zip")


# --------------------------------------------------------------------------- malformed files (issue 21, item 8)
#
# A file that passes its CRC but is malformed - a buggy or hostile writer, or the CRC recomputed
# after damage - must give CorruptFile naming the file and the problem: never another exception,
# never a silent decode, never a huge allocation.

import functools  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import tracemalloc  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402
from unittest import mock  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as hs  # noqa: E402


def _hand_shared(seed=0):
    """A pruned, weight-shared model built by hand (80% zeros, <= 2**bits - 1 values per layer)."""
    g = torch.Generator().manual_seed(seed)
    m = _factory()
    with torch.no_grad():
        for lin, bits in ((m[0], 4), (m[2], 3)):
            levels = torch.linspace(-1.0, 1.0, 2**bits - 1)
            w = levels[torch.randint(0, len(levels), lin.weight.shape, generator=g)]
            w[torch.rand(lin.weight.shape, generator=g) < 0.8] = 0
            lin.weight.copy_(w)
    return m


@functools.lru_cache(maxsize=None)
def _valid_file(stage):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.nncz"
        st.save_compressed(_hand_shared(), path, stage=stage, bits={"0.weight": 4, "2.weight": 3}, index_bits=3)
        return path.read_bytes()


def _split(blob):
    """``(header, [[part bytes, ...] per tensor])`` of a file."""
    hlen = struct.unpack("<I", blob[5:9])[0]
    header = json.loads(blob[9:9 + hlen])
    off, parts = 9 + hlen, []
    for e in header["tensors"]:
        parts.append([])
        for n in e["parts"]:
            parts[-1].append(blob[off:off + n])
            off += n
    return header, parts


def _join(header, parts=None, *, head=None, payload=None, fix_parts=True):
    """Assemble a file with a correct CRC (and, by default, part lengths matching ``parts``)."""
    if parts is not None and fix_parts:
        for e, p in zip(header["tensors"], parts):
            e["parts"] = [len(x) for x in p]
    head = json.dumps(header, separators=(",", ":")).encode() if head is None else head
    payload = b"".join(b"".join(p) for p in parts) if payload is None else payload
    body = st.MAGIC + struct.pack("<BI", st.VERSION, len(head)) + head + payload
    return body + struct.pack("<I", zlib.crc32(body))


def test_join_of_a_split_file_is_the_file():
    for stage in st.STAGES:
        blob = _valid_file(stage)
        assert _join(*_split(blob)) == blob


def _entry(header, kind):
    return next(i for i, e in enumerate(header["tensors"]) if e["kind"] == kind)


def _table(lengths):
    return b"".join(struct.pack("<HB", s, n) for s, n in enumerate(lengths))


def _edit(stage, fn):
    header, parts = _split(_valid_file(stage))
    fn(header, parts)
    return _join(header, parts)


def _set(kind, field, value):
    def fn(h, p):
        h["tensors"][_entry(h, kind)][field] = value
    return fn


MALFORMED = {
    "unknown kind": ("huffman", _set("huffman", "kind", "zstd"), "kind='zstd' is not allowed"),
    "kind of another stage": ("huffman", _set("huffman", "kind", "quantized"), "kind='quantized' is not allowed"),
    "unknown stage": ("huffman", lambda h, p: h.update(stage="gzip"), "stage='gzip' is unknown"),
    "7 TiB tensor": ("huffman", _set("huffman", "shape", [2**21, 2**20]), "elements, more than"),
    "7 TiB raw tensor": ("sparse", _set("raw", "shape", [2**21, 2**20]), "elements, more than"),
    "negative dimension": ("quantized", _set("quantized", "shape", [-30, -20]), "dimension=-30"),
    "bool dimension": ("quantized", _set("quantized", "shape", [True, 600]), "dimension=True"),
    "float entries": ("quantized", _set("quantized", "entries", 12.0), "entries=12.0"),
    "more entries than elements": ("sparse", _set("sparse", "entries", 10**9), "entries=1000000000"),
    "huge index_bits": ("sparse", _set("sparse", "index_bits", 4000), "index_bits=4000"),
    "extra field": ("sparse", _set("raw", "offset", 3), "unexpected fields \\['offset'\\]"),
    "duplicate name": ("huffman", lambda h, p: h["tensors"][1].update(name=h["tensors"][0]["name"]),
                       "appears twice"),
    "non-prefix Huffman table": ("huffman",
                                 lambda h, p: p[_entry(h, "huffman")].__setitem__(1, _table([1, 1, 2])),
                                 "not a prefix code"),
    "incomplete Huffman table": ("huffman",
                                 lambda h, p: p[_entry(h, "huffman")].__setitem__(3, _table([1, 2])),
                                 "incomplete code"),
    "unsorted Huffman table": ("huffman",
                               lambda h, p: p[_entry(h, "huffman")].__setitem__(
                                   1, struct.pack("<HBHB", 5, 1, 2, 1)), "not strictly increasing"),
    "Huffman stream with trailing bytes": ("huffman",
                                           lambda h, p: p[_entry(h, "huffman")].__setitem__(
                                               2, p[_entry(h, "huffman")][2] + b"\x00"), "after its"),
    "fixed-width stream too long": ("quantized",
                                    lambda h, p: p[_entry(h, "quantized")].__setitem__(
                                        2, p[_entry(h, "quantized")][2] + b"\x00"), "part lengths"),
    "codebook[0] not zero": ("quantized",
                             lambda h, p: p[_entry(h, "quantized")].__setitem__(
                                 0, struct.pack("<f", 1.5) + p[_entry(h, "quantized")][0][4:]),
                             "reserved for the value 0"),
    "code outside the codebook": ("quantized",
                                  lambda h, p: (h["tensors"][_entry(h, "quantized")].update(codebook=2),
                                                p[_entry(h, "quantized")].__setitem__(
                                                    0, p[_entry(h, "quantized")][0][:8])),
                                  "outside the codebook"),
    "index outside the tensor": ("sparse", _set("sparse", "shape", [30, 2]), "outside the tensor|entries="),
    "extra header field": ("huffman", lambda h, p: h.update(comment="hi"), "exactly the fields"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_passing_the_crc_is_a_corrupt_file(tmp_path, case):
    stage, fn, message = MALFORMED[case]
    path = tmp_path / "m.nncz"
    path.write_bytes(_edit(stage, fn))
    with pytest.raises(st.CorruptFile, match=message) as info:
        st.read_state_dict(path)
    assert str(path) in str(info.value)


def test_header_length_and_json_are_checked(tmp_path):
    header, parts = _split(_valid_file("huffman"))
    path = tmp_path / "m.nncz"
    blob = bytearray(_join(header, parts))
    blob[5:9] = struct.pack("<I", 2**32 - 1)
    path.write_bytes(bytes(blob[:-4]) + struct.pack("<I", zlib.crc32(bytes(blob[:-4]))))
    with pytest.raises(st.CorruptFile, match="header length"):
        st.read_state_dict(path)
    path.write_bytes(_join(header, parts, head=b"{not json\xff"))
    with pytest.raises(st.CorruptFile, match="unreadable header"):
        st.read_state_dict(path)
    path.write_bytes(_join(header, parts, head=b"[1, 2]"))
    with pytest.raises(st.CorruptFile, match="an object with exactly the fields"):
        st.read_state_dict(path)


def test_tensors_that_do_not_fit_the_model_are_a_corrupt_file(tmp_path):
    path = tmp_path / "m.nncz"
    path.write_bytes(_edit("huffman", _set("huffman", "shape", [20, 30])))  # transposed: same size
    assert st.read_state_dict(path)  # the structure itself is valid
    with pytest.raises(st.CorruptFile, match="do not fit the model"):
        st.load_compressed(path, _factory)


def test_huffman_table_checks():
    assert st.kraft_excess([1, 2, 2]) == 0 and st.kraft_excess([1, 1, 2]) > 0 > st.kraft_excess([1, 2])
    with pytest.raises(ValueError, match="not a prefix code"):
        st.Huffman({0: 1, 1: 1, 2: 1})
    for lengths in ([1, 2, 2], [1], []):
        assert st.Huffman.from_table(_table(lengths)).lengths == dict(enumerate(lengths))
    with pytest.raises(st.CorruptFile, match="lone symbol"):
        st.Huffman.from_table(_table([3]))


# ----------------------------------------------------------------- the property: any mutation

_REF_SHAPES = {k: tuple(v.shape) for k, v in _factory().state_dict().items()}
_LIMIT = 4096                 # MAX_ELEMENTS during the property test (the model has 785)
_PEAK_BYTES = 16 * 2**20      # no load may allocate more (numpy buffers, traced by tracemalloc)


def _check_mutant(blob):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.nncz"
        path.write_bytes(blob)
        tracemalloc.start()
        try:
            with mock.patch.object(st, "MAX_ELEMENTS", _LIMIT):
                model = st.load_compressed(path, _factory)
        except st.CorruptFile as exc:
            assert str(path) in str(exc)
            model = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < _PEAK_BYTES, f"a load allocated {peak} bytes"
    if model is not None:
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == _REF_SHAPES


_VALUES = (hs.integers(-3, 3) | hs.integers(-2**64, 2**64) | hs.booleans() | hs.none()
           | hs.floats(allow_nan=True) | hs.text(max_size=5) | hs.lists(hs.integers(-2, 2**33), max_size=4)
           | hs.sampled_from(["raw", "sparse", "quantized", "huffman", "zstd"]))


@hs.composite
def _mutant(draw):
    stage = draw(hs.sampled_from(st.STAGES))
    blob = _valid_file(stage)
    header, parts = _split(blob)
    how = draw(hs.sampled_from(["bytes", "payload", "field", "part"]))
    if how == "bytes":  # anything anywhere before the CRC, then a correct CRC
        body = bytearray(blob[:-4])
        for _ in range(draw(hs.integers(1, 4))):
            i = draw(hs.integers(0, len(body) - 1))
            op = draw(hs.sampled_from(["flip", "set", "insert", "delete"]))
            if op == "flip":
                body[i] ^= 1 << draw(hs.integers(0, 7))
            elif op == "set":
                body[i] = draw(hs.integers(0, 255))
            elif op == "insert":
                body[i:i] = draw(hs.binary(min_size=1, max_size=8))
            else:
                del body[i:i + draw(hs.integers(1, 8))]
        return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    if how == "payload":  # the header intact, payload bytes changed in place (decoders see them)
        payload = bytearray(blob[9 + struct.unpack("<I", blob[5:9])[0]:-4])
        for _ in range(draw(hs.integers(1, 6))):
            i = draw(hs.integers(0, len(payload) - 1))
            if draw(hs.booleans()):
                payload[i] = draw(hs.integers(0, 255))
            else:
                payload[i] ^= 1 << draw(hs.integers(0, 7))
        return _join(header, payload=bytes(payload), fix_parts=False, parts=None)
    t = draw(hs.integers(0, len(header["tensors"]) - 1))
    if how == "field":  # one header field set to anything, the payload unchanged
        payload = b"".join(b"".join(p) for p in parts)
        e = header["tensors"][t]
        field = draw(hs.sampled_from(sorted(e) + ["extra"]))
        value = draw(_VALUES)
        if field == "shape" and draw(hs.booleans()):
            value = [draw(hs.integers(0, 40)) for _ in e["shape"]]
        if draw(hs.booleans()) or field == "extra":
            e[field] = value
        else:
            header[draw(hs.sampled_from(["stage", "tensors", "extra"]))] = value
        return _join(header, payload=payload, fix_parts=False)
    # "part": one payload part replaced by other bytes, lengths in the header updated to match
    k = draw(hs.integers(0, len(parts[t]) - 1))
    old = parts[t][k]
    if draw(hs.booleans()):
        parts[t][k] = draw(hs.binary(max_size=len(old) + 6))
    else:
        cut = draw(hs.integers(0, len(old)))
        parts[t][k] = old[:cut] + draw(hs.binary(max_size=3)) + old[cut + draw(hs.integers(0, 3)):]
    return _join(header, parts)


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_mutant())
def test_mutated_files_load_to_the_same_shapes_or_raise_corrupt_file(blob):
    _check_mutant(blob)


def test_unmutated_files_pass_the_property_check():
    for stage in st.STAGES:
        header, parts = _split(_valid_file(stage))
        _check_mutant(_join(header, parts))
        assert torch.equal(st.read_state_dict(_tmp_write(_valid_file(stage)))["0.weight"],
                           _hand_shared().state_dict()["0.weight"])


def _tmp_write(blob):
    path = Path(tempfile.mkdtemp()) / "m.nncz"
    path.write_bytes(blob)
    return path
