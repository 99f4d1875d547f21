"""Weight-only RTN (int8/int4, group-wise) and AWQ: hand-computed cases and independent formulas."""
import numpy as np
import pytest
import torch

from nncompress.quantize import (act_scale, awq_scale_model, awq_scales, dequantize_groups, fake_quantize,
                                 pack_int4, quantize_groups, quantize_linears, quantized_stats, search_alpha,
                                 unpack_int4)
from nncompress.models import build


def test_hand_computed_2x4_two_bit_groups_of_two():
    w = torch.tensor([[0.0, 3.0, -3.0, 3.0], [-6.0, 0.0, 0.5, 2.0]])
    codes, scales, zeros = quantize_groups(w, 2, 2)
    # row 0: [0, 3]: s = 3/3 = 1, z = 0, q = [0, 3];  [-3, 3]: s = 2, z = -round(-1.5) = 2,
    #        q = [round(-1.5) + 2, round(1.5) + 2] = [0, 4 -> 3]  ->  w_hat = [-4, 2]
    # row 1: [-6, 0]: s = 2, z = 3, q = [0, 3];  [0.5, 2]: s = 0.5, z = -round(1) = -1 -> 0,
    #        q = [1, 4 -> 3]  ->  w_hat = [0.5, 1.5]
    assert codes.tolist() == [[0, 3, 0, 3], [0, 3, 1, 3]]
    assert scales.float().tolist() == [[1.0, 2.0], [2.0, 0.5]]
    assert zeros.tolist() == [[0, 2], [3, 0]]
    assert dequantize_groups(codes, scales, zeros).tolist() == [[0.0, 3.0, -4.0, 2.0], [-6.0, 0.0, 0.5, 1.5]]


def test_per_channel_is_one_group_per_row():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    codes, scales, zeros = quantize_groups(w, 2, None)
    assert scales.shape == (1, 1) and codes.tolist() == [[0, 1, 2, 3]]


def _numpy_reference(w, bits, g):
    qmax = 2 ** bits - 1
    out = np.empty_like(w)
    for r in range(w.shape[0]):
        for c in range(0, w.shape[1], g):
            x = w[r, c:c + g]
            s = np.float32(np.float16(max(x.max() - x.min(), 1e-5) / qmax))
            z = np.clip(-np.round(x.min() / s), 0, qmax)
            out[r, c:c + g] = (np.clip(np.round(x / s) + z, 0, qmax) - z) * s
    return out


@pytest.mark.parametrize("bits,g", [(8, 16), (4, 8), (4, 32), (3, 4)])
def test_matches_an_independent_numpy_formula(bits, g):
    w = torch.randn(6, 32, generator=torch.Generator().manual_seed(bits + g))
    np.testing.assert_allclose(fake_quantize(w, bits, g).numpy(), _numpy_reference(w.numpy(), bits, g), atol=1e-6)


def test_error_is_at_most_half_a_step_and_shrinks_with_bits():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    err = {b: (fake_quantize(w, b, 16) - w).abs().max().item() for b in (4, 8)}
    step8 = (w.reshape(8, 4, 16).amax(-1) - w.reshape(8, 4, 16).amin(-1)).max().item() / 255
    assert err[8] <= step8 * 0.51 + 1e-6 and err[8] < err[4]


def test_pack_int4_by_hand_and_round_trip():
    assert pack_int4(torch.tensor([1, 2, 15, 0])).tolist() == [0x21, 0x0F]
    assert pack_int4(torch.tensor([7])).tolist() == [7]
    codes = torch.randint(0, 16, (37,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(unpack_int4(pack_int4(codes), 37), codes.to(torch.uint8))
    with pytest.raises(ValueError):
        pack_int4(torch.tensor([16]))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="bits"):
        quantize_groups(torch.zeros(2, 4), 5)
    with pytest.raises(ValueError, match="divide"):
        quantize_groups(torch.zeros(2, 6), 4, 4)


def _gpt():
    torch.manual_seed(0)
    return build({"arch": "gpt", "context": 8, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_mlp": 32}).eval()


def test_quant_linear_bytes_and_outputs():
    m = _gpt()
    q = quantize_linears(m, 4, 8, include=lambda n: n.startswith("blocks"))
    st = quantized_stats(q)
    # per block: q, k, v, out 16x16, fc1 32x16, fc2 16x32 = 4*256 + 2*512 = 2048 weights
    assert st["weights"] == 2 * 2048
    groups = st["weights"] // 8
    assert st["payload_bytes"] == st["weights"] // 2 + groups * 2 + groups // 2  # codes + fp16 scales + int4 zeros
    x = torch.randint(0, 256, (2, 8))
    w = m.blocks[0].fc1.weight
    assert torch.allclose(q.blocks[0].fc1.weight_hat(), fake_quantize(w, 4, 8))
    assert (q(x) - m(x)).abs().max() < 1.0


def test_awq_scales_by_hand():
    s = awq_scales(torch.tensor([1.0, 4.0]), 1.0)   # [1, 4] / sqrt(4 * 1)
    assert torch.allclose(s, torch.tensor([0.5, 2.0]))
    assert torch.equal(awq_scales(torch.tensor([1.0, 4.0]), 0.0), torch.ones(2))
    assert torch.allclose(act_scale(torch.tensor([[[1.0, -2.0], [-3.0, 4.0]]])), torch.tensor([2.0, 3.0]))


def test_awq_alpha_zero_is_rtn_and_search_never_worse():
    lin = torch.nn.Linear(16, 4)
    x = torch.randn(64, 16) * torch.linspace(0.1, 10, 16)   # outlier input channels
    alpha, s, errors = search_alpha([lin], x, 4, 8, n_grid=10)
    rtn = ((x @ fake_quantize(lin.weight, 4, 8).T + lin.bias) - lin(x)).pow(2).mean().item()
    assert errors[0] == pytest.approx(rtn, rel=1e-5)
    assert min(errors) == errors[round(alpha * 10)] <= errors[0]


def test_awq_scaling_preserves_the_float_function():
    m = _gpt()
    x = torch.randint(0, 256, (4, 8))
    scaled, alphas = awq_scale_model(m, x, 4, 8, n_grid=5)
    assert set(alphas) == {f"blocks.{i}.{g}" for i in range(2) for g in ("qkv", "out", "fc1", "fc2")}
    assert torch.allclose(scaled(x), m(x), atol=1e-4)


def test_pack_codes_by_hand_for_every_width():
    from nncompress.quantize import pack_codes, slot_bits, unpack_codes

    # int2: four codes per byte, the first in the lowest two bits: 1 + 2*4 + 3*16 + 0*64 = 57
    assert pack_codes(torch.tensor([1, 2, 3, 0, 3]), 2).tolist() == [57, 3]
    # int3 in 4-bit slots (two per byte): 5 + 7*16 = 117; int4 as pack_int4; int8 one per byte
    assert pack_codes(torch.tensor([5, 7]), 3).tolist() == [117]
    assert pack_codes(torch.tensor([1, 2, 15, 0]), 4).tolist() == pack_int4(torch.tensor([1, 2, 15, 0])).tolist()
    assert pack_codes(torch.tensor([200, 1]), 8).tolist() == [200, 1]
    assert [slot_bits(b) for b in (2, 3, 4, 8)] == [2, 4, 4, 8]
    for bits in (2, 3, 4, 8):
        codes = torch.randint(0, 2 ** bits, (41,), generator=torch.Generator().manual_seed(bits))
        assert torch.equal(unpack_codes(pack_codes(codes, bits), bits, 41), codes.to(torch.uint8))
        assert len(pack_codes(codes, bits)) == -(-41 * slot_bits(bits) // 8)
    with pytest.raises(ValueError, match="larger than 3"):
        pack_codes(torch.tensor([4]), 2)


def test_quant_linear_bytes_follow_the_slot_width():
    from nncompress.quantize import QuantLinear

    lin = torch.nn.Linear(16, 4)
    sizes = {b: QuantLinear(lin, b, None).payload_bytes() for b in (2, 3, 4, 8)}
    # codes: 64 weights in 2/4/4/8-bit slots; scales: 4 float16; zero points: 4 codes in the same slots
    assert sizes == {2: 16 + 8 + 1, 3: 32 + 8 + 2, 4: 32 + 8 + 2, 8: 64 + 8 + 4}
