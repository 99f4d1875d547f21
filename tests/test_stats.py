import math

import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

from nncompress import stats


def test_mean_std_sample_std():
    m, s = stats.mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and math.isclose(s, 1.0)
    assert stats.mean_std([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        stats.mean_std([])


def test_fmt_mean_std_never_shows_a_spread_for_one_run():
    assert stats.fmt_mean_std([0.5, 0.6, 0.7]) == "60.0 ± 10.0"
    assert stats.fmt_mean_std([0.612]) == "61.2 (n = 1)"


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 19, 30, 100])
@pytest.mark.parametrize("p", [0.5, 0.6, 0.9, 0.975, 0.995, 0.025])
def test_t_quantile_matches_scipy(df, p):
    assert math.isclose(stats.t_quantile(p, df), scipy.stats.t.ppf(p, df), rel_tol=1e-8, abs_tol=1e-10)


@given(st.floats(-50, 50), st.floats(0.5, 200))
@settings(max_examples=200, deadline=None)
def test_t_cdf_matches_scipy(t, df):
    assert math.isclose(stats.t_cdf(t, df), scipy.stats.t.cdf(t, df), rel_tol=1e-9, abs_tol=1e-12)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=12))
@settings(max_examples=200, deadline=None)
def test_paired_interval_matches_scipy_ttest_rel(pairs):
    base, new = [a for a, _ in pairs], [b for _, b in pairs]
    p = stats.paired(base, new)
    diffs = [b - a for a, b in pairs]
    assert p.n == len(pairs) and p.diffs == pytest.approx(diffs)
    if max(diffs) - min(diffs) < 1e-9:       # no spread: scipy's interval degenerates too
        return
    ref = scipy.stats.ttest_rel(new, base).confidence_interval(0.95)
    assert p.low == pytest.approx(ref.low, abs=1e-9) and p.high == pytest.approx(ref.high, abs=1e-9)
    assert p.significant == (ref.low > 0 or ref.high < 0)


def test_paired_by_hand():
    # d = [0.10, 0.09, 0.11]: mean 0.10, s = 0.01, t_{0.975,2} = 4.302653, half = 0.024841
    p = stats.paired([0.50, 0.52, 0.51], [0.60, 0.61, 0.62])
    assert p.mean == pytest.approx(0.10) and p.high - p.mean == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-6)
    assert p.significant and p.better and not p.worse
    assert p.text() == "+10.0 pts, 95 % CI [+7.5, +12.5], n = 3"
    q = stats.paired([0.50, 0.60, 0.40], [0.52, 0.55, 0.45])
    assert not q.significant and q.verdict() == "not resolved at n = 3"


def test_one_seed_is_never_significant():
    p = stats.paired([0.5], [0.9])
    assert not p.significant and p.n == 1 and p.text() == "+40.0 pts, n = 1: no interval"


def test_paired_rejects_bad_input():
    with pytest.raises(ValueError, match="equally long"):
        stats.paired([1, 2], [1])
    with pytest.raises(ValueError, match="confidence"):
        stats.paired([1, 2], [1, 2], confidence=1.5)


def test_paired_gain_dict():
    g = stats.paired_gain([0.50, 0.52, 0.51], [0.60, 0.61, 0.62])
    assert math.isclose(g["mean"], 0.1, abs_tol=1e-9) and g["significant"] and g["n"] == 3
    assert "exceeds_spread" not in g
