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


def test_first_measurement_writes_nothing_to_stderr():
    """nbval compares every output stream: the import of torch.utils.benchmark must stay quiet
    (torch's CUDA build logs a CUDA_HOME warning on GPU-less machines that have nvcc)."""
    import subprocess
    import sys

    code = "import nncompress.latency as L; L.measure(lambda: None, blocks=2, block_seconds=0.001)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr


class LoadedMachine:
    """A simulated clock: each call of a job costs ``cost`` seconds times the machine's load,
    and the load doubles after ``switch`` seconds (another job started)."""

    def __init__(self, switch):
        self.now, self.switch = 0.0, switch

    def __call__(self):
        return self.now

    def job(self, cost):
        def run():
            self.now += cost * (2.0 if self.now >= self.switch else 1.0)
        return run


def test_interleaved_timing_is_fair_when_the_load_changes():
    machine = LoadedMachine(switch=0.32)   # a takes ~0.31 s: b runs after the switch
    same = machine.job(0.001)
    # one after the other: the second model is timed after the load doubled and looks 2x slower
    a = latency.measure(same, blocks=15, block_seconds=0.02, timer=machine)
    b = latency.measure(same, blocks=15, block_seconds=0.02, timer=machine)
    assert a.faster_than(b)
    # interleaved: both see the same load; the per-round ratio is 1 and its interval contains 1
    machine = LoadedMachine(switch=0.3)
    lat = latency.measure_interleaved({"a": (machine.job(0.001), ()), "b": (machine.job(0.001), ())},
                                      blocks=15, block_seconds=0.02, timer=machine)
    med, low, high = latency.ratio(lat["a"], lat["b"])
    assert low <= 1.0 <= high and med == pytest.approx(1.0, rel=0.05)
    # a real 3x difference is found under the same changing load
    machine = LoadedMachine(switch=0.3)
    lat = latency.measure_interleaved({"slow": (machine.job(0.003), ()), "fast": (machine.job(0.001), ())},
                                      blocks=15, block_seconds=0.02, timer=machine)
    med, low, high = latency.ratio(lat["slow"], lat["fast"])
    assert low > 2.5 and med == pytest.approx(3.0, rel=0.1)


def test_interleaved_timing_validates_and_ratio_needs_paired_blocks():
    with pytest.raises(ValueError, match="runs is empty"):
        latency.measure_interleaved({})
    with pytest.raises(ValueError, match="blocks = 0"):
        latency.measure_interleaved({"a": (lambda: None, ())}, blocks=0)
    a = latency.Latency(1.0, 0.9, 1.1, 3, 1, 1, (1.0, 1.0, 1.0))
    b = latency.Latency(1.0, 0.9, 1.1, 2, 1, 1, (1.0, 1.0))
    with pytest.raises(ValueError, match="same blocks"):
        latency.ratio(a, b)
    model = torch.nn.Linear(16, 16)
    x = torch.zeros(4, 16)
    lat = latency.measure_interleaved({"m": (model, (x,)), "n": (model, (x,))}, blocks=7, block_seconds=0.002)
    assert set(lat) == {"m", "n"} and all(len(v.times) == 7 for v in lat.values())
