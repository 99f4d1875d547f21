"""Deep Compression's file format: Huffman, relative-index CSR with fillers, the file itself."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from nncompress import quantize as q
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
    q.prune_magnitude(model, {"0": 0.9, "2": 0.6})
    q.make_pruning_permanent(model)
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
