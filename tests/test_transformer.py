"""TinyGPT: shapes, causality, config round trip, bits per byte."""
import math

import pytest
import torch

from nncompress.data import DeviceData
from nncompress.models import TinyGPT, bits_per_byte, build


def _m(**kw):
    torch.manual_seed(0)
    return build({"arch": "gpt", "context": 8, "d_model": 16, "n_layers": 2, "n_heads": 4, **kw}).eval()


def test_shapes_and_causality():
    m = _m()
    x = torch.randint(0, 256, (2, 8))
    y = m(x)
    assert y.shape == (2, 8, 256)
    x2 = x.clone(); x2[:, 5] = (x2[:, 5] + 1) % 256
    y2 = m(x2)
    assert torch.allclose(y[:, :5], y2[:, :5], atol=1e-6) and not torch.allclose(y[:, 5:], y2[:, 5:])


def test_config_round_trip_and_errors():
    m = _m()
    m2 = build(m.arch_config()); m2.load_state_dict(m.state_dict())
    assert isinstance(m2, TinyGPT)
    with pytest.raises(ValueError, match="unknown"):
        build({"arch": "gpt", "depth": 2})
    with pytest.raises(ValueError, match="longer"):
        m(torch.zeros(1, 9, dtype=torch.long))


def test_bits_per_byte_of_uniform_model_is_8():
    m = _m()
    for p in m.head.parameters():
        p.data.zero_()
    data = DeviceData(torch.randint(0, 256, (3, 8)), torch.randint(0, 256, (3, 8)))
    assert bits_per_byte(m, data) == pytest.approx(8.0, abs=1e-5)
    assert len(bits_per_byte(m, data, per_window=True)) == 3
