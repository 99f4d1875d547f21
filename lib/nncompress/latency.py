"""Latency you can trust: one CPU timing function for the whole course.

:func:`measure` times ``run(x)`` (a model, or any callable such as early-exit inference or
an ONNX Runtime session) with ``torch.utils.benchmark.Timer``: warm-up calls first, the
intra-op thread count fixed (``threads``, reported), then ``blocks`` repeated blocks of
``number`` calls each (``number`` chosen so a block lasts about ``block_seconds``).  It
returns a :class:`Latency`: the median over blocks of the per-call time and a
distribution-free 95 % confidence interval of that median from order statistics (the
sign-test interval: the ``j``-th smallest and largest block times, with ``j`` the largest
index such that ``P(Binomial(blocks, 1/2) < j) <= 2.5 %``).

Two measurements whose intervals overlap are a **tie** (:meth:`Latency.ties`): the noise
of the machine is larger than their difference, so neither is called faster — the Pareto
fronts of :mod:`nncompress.pipeline` treat ties as ties.

Timing is kept apart from the work being timed: ``timer=`` accepts any clock (the tests
pass a fake one), and nothing here depends on the model.
"""
from __future__ import annotations

import math
import statistics
import timeit
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

#: fewest blocks for which a 95 % interval of the median exists (0.5**6 * 2 < 0.05)
MIN_BLOCKS_FOR_INTERVAL = 6


@dataclass(frozen=True)
class Latency:
    """Milliseconds per call: ``median`` with its 95 % interval ``[low, high]``."""

    median: float
    low: float
    high: float
    blocks: int
    number: int
    threads: int
    times: tuple[float, ...] = ()

    def ties(self, other: "Latency") -> bool:
        """The two intervals overlap: neither is faster beyond the measurement noise."""
        return self.low <= other.high and other.low <= self.high

    def faster_than(self, other: "Latency") -> bool:
        """Faster beyond the noise: this interval lies entirely below the other's."""
        return self.high < other.low

    def speedup_over(self, other: "Latency") -> float:
        """``other.median / self.median``."""
        return other.median / self.median

    def text(self, digits: int = 3) -> str:
        return (f"{self.median:.{digits}f} ms (95 % CI {self.low:.{digits}f}–{self.high:.{digits}f}, "
                f"{self.blocks} blocks × {self.number} calls, {self.threads} thread{'s' * (self.threads != 1)})")

    def __float__(self) -> float:
        return self.median

    def __str__(self) -> str:
        return self.text()


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of ``values`` from order statistics."""
    x = sorted(values)
    n = len(x)
    if n < MIN_BLOCKS_FOR_INTERVAL:
        return x[0], x[-1]
    alpha = (1.0 - confidence) / 2.0
    j, cum = 0, 0.0
    while True:  # largest j with P(Bin(n, 1/2) <= j - 1) <= alpha
        p = math.comb(n, j) / 2.0 ** n
        if cum + p > alpha:
            break
        cum += p
        j += 1
    j = max(j, 1)
    return x[j - 1], x[n - j]


def measure(run: Callable[..., Any], *args: Any, threads: int = 1, blocks: int = 15,
            block_seconds: float = 0.02, warmup: int = 3,
            timer: Callable[[], float] = timeit.default_timer) -> Latency:
    """Time ``run(*args)`` on the CPU under ``torch.no_grad()`` (see the module docstring)."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads = {threads!r} is not allowed: expected an integer >= 1")
    if not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks = {blocks!r} is not allowed: expected an integer >= 1")
    if not block_seconds > 0:
        raise ValueError(f"block_seconds = {block_seconds!r} is not allowed: expected seconds > 0")
    from torch.utils.benchmark import Timer

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with torch.no_grad():
            for _ in range(max(0, warmup)):
                run(*args)
            t0 = timer()
            run(*args)
            one = max(timer() - t0, 1e-9)
            number = max(1, math.ceil(block_seconds / one))
            bench = Timer(stmt="run(*args)", globals={"run": _no_grad(run), "args": args},
                          num_threads=threads, timer=timer)
            times = [bench.timeit(number).mean * 1e3 for _ in range(blocks)]
    finally:
        torch.set_num_threads(previous)
    low, high = median_interval(times)
    return Latency(statistics.median(times), low, high, blocks, number, threads, tuple(times))


def _no_grad(run):
    def call(*args):
        with torch.no_grad():
            return run(*args)
    return call


def model_latency(model: torch.nn.Module, input_shape: Sequence[int], *, batch_size: int = 1,
                  **options: Any) -> Latency:
    """:func:`measure` of ``model`` in eval mode on a zero batch of ``input_shape``, on the
    model's device (CPU models are what the course times)."""
    model.eval()
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros((batch_size, *input_shape), device=device)
    return measure(model, x, **options)


__all__ = ["Latency", "measure", "model_latency", "median_interval", "MIN_BLOCKS_FOR_INTERVAL"]
