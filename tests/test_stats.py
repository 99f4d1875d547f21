import math

import pytest

from nncompress import stats


def test_mean_std_sample_std():
    m, s = stats.mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and math.isclose(s, 1.0)
    assert stats.mean_std([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        stats.mean_std([])


def test_fmt_mean_std():
    assert stats.fmt_mean_std([0.5, 0.6, 0.7]) == "60.0 ± 10.0"


def test_paired_gain():
    g = stats.paired_gain([0.50, 0.52, 0.51], [0.60, 0.61, 0.62])
    assert math.isclose(g["mean"], 0.1, abs_tol=1e-9) and g["exceeds_spread"]
    g = stats.paired_gain([0.50, 0.60, 0.40], [0.52, 0.55, 0.45])
    assert not g["exceeds_spread"]
