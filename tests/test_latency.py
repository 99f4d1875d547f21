"""nncompress.latency: one timing function, intervals of the median, ties."""
import itertools
import math

import pytest
import torch
from scipy.stats import binom

from nncompress import latency


class FakeClock:
    """A clock whose calls advance by the next value of ``steps`` (seconds)."""

    def __init__(self, steps):
        self.steps = itertools.cycle(steps)
        self.now = 0.0

    def __call__(self):
        self.now += next(self.steps)
        return self.now


def test_median_interval_is_the_sign_test_interval():
    values = list(range(1, 16))          # n = 15: P(Bin(15, .5) <= 3) = 0.0176 <= 0.025 < P(<= 4)
    low, high = latency.median_interval(values)
    assert (low, high) == (4, 12)
    j = 4
    assert binom.cdf(j - 1, 15, 0.5) <= 0.025 < binom.cdf(j, 15, 0.5)
    assert latency.median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)   # too few blocks: the range


@pytest.mark.parametrize("n", range(6, 60, 7))
def test_median_interval_coverage_matches_binomial(n):
    low, high = latency.median_interval(list(range(n)))
    j = low + 1
    assert low == n - 1 - high
    assert binom.cdf(j - 1, n, 0.5) <= 0.025 < binom.cdf(j, n, 0.5)


def test_measure_with_a_fake_clock_is_exact():
    calls = []
    clock = FakeClock([0.001])            # every clock reading 1 ms later
    lat = latency.measure(lambda x: calls.append(x), 7, blocks=9, block_seconds=0.005, warmup=2, timer=clock)
    assert lat.blocks == 9 and lat.threads == 1 and lat.number >= 1
    assert len(lat.times) == 9 and lat.low <= lat.median <= lat.high
    assert all(math.isfinite(t) and t > 0 for t in lat.times)
    assert calls and set(calls) == {7}


def test_ties_and_faster():
    a = latency.Latency(1.0, 0.9, 1.1, 15, 10, 1)
    b = latency.Latency(1.05, 1.0, 1.2, 15, 10, 1)
    c = latency.Latency(2.0, 1.8, 2.2, 15, 10, 1)
    assert a.ties(b) and b.ties(a) and not a.faster_than(b)
    assert a.faster_than(c) and not c.faster_than(a) and not a.ties(c)
    assert a.speedup_over(c) == pytest.approx(2.0)


def test_measure_restores_threads_and_validates():
    before = torch.get_num_threads()
    model = torch.nn.Linear(8, 4)
    lat = latency.model_latency(model, (8,), batch_size=4, blocks=3, block_seconds=0.001, threads=1)
    assert torch.get_num_threads() == before and lat.median > 0
    for bad in (dict(threads=0), dict(blocks=0), dict(block_seconds=0)):
        with pytest.raises(ValueError, match="not allowed"):
            latency.measure(model, torch.zeros(1, 8), **bad)


def test_measure_orders_a_big_and_a_small_model():
    small, big = torch.nn.Linear(16, 16), torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(8)])
    ls = latency.model_latency(small, (16,), batch_size=8, blocks=7, block_seconds=0.005)
    lb = latency.model_latency(big, (512,), batch_size=8, blocks=7, block_seconds=0.005)
    assert ls.faster_than(lb)
