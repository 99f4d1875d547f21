"""Latency you can trust: one CPU timing function for the whole course.

:func:`measure` times ``run(x)`` (a model, or any callable such as early-exit inference or
an ONNX Runtime session) with ``torch.utils.benchmark.Timer``: warm-up calls first, the
intra-op thread count fixed (``threads``, reported), then ``blocks`` repeated blocks of
``number`` calls each (``number`` chosen so a block lasts about ``block_seconds``).  It
returns a :class:`Latency`: the median over blocks of the per-call time and a
distribution-free 95 % confidence interval of that median from order statistics (the
sign-test interval: the ``j``-th smallest and largest block times, with ``j`` the largest
index such that ``P(Binomial(blocks, 1/2) < j) <= 2.5 %``).

:func:`measure_interleaved` times several callables in interleaved rounds (block ``i`` of each
in round ``i``), and :func:`ratio` gives the median per-round ratio of two of them with its
interval: a change of the machine's load scales a whole round and cancels in the ratio.

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
from typing import Any, Callable, Mapping, Sequence

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


def _check_options(threads: int, blocks: int, block_seconds: float) -> None:
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads = {threads!r} is not allowed: expected an integer >= 1")
    if not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks = {blocks!r} is not allowed: expected an integer >= 1")
    if not block_seconds > 0:
        raise ValueError(f"block_seconds = {block_seconds!r} is not allowed: expected seconds > 0")


def measure(run: Callable[..., Any], *args: Any, threads: int = 1, blocks: int = 15,
            block_seconds: float = 0.02, warmup: int = 3,
            timer: Callable[[], float] = timeit.default_timer) -> Latency:
    """Time ``run(*args)`` on the CPU under ``torch.no_grad()`` (see the module docstring)."""
    return measure_interleaved({"run": (run, args)}, threads=threads, blocks=blocks, block_seconds=block_seconds,
                               warmup=warmup, timer=timer)["run"]


def measure_interleaved(runs: Mapping[str, tuple[Callable[..., Any], tuple]], *, threads: int = 1,
                        blocks: int = 15, block_seconds: float = 0.02, warmup: int = 3,
                        timer: Callable[[], float] = timeit.default_timer) -> dict[str, Latency]:
    """:func:`measure` of several callables, their blocks interleaved round by round.

    ``runs`` maps a name to ``(run, args)``.  Block ``i`` of every entry is timed in round ``i``
    (the order rotates each round), so a change of the machine's load during the measurement
    slows every entry alike instead of whichever happened to be timed then: comparisons between
    the entries (:func:`ratio`) stay fair on a shared machine, where timing one model after the
    other can make a model look 30 % faster than an identical one.
    """
    if not runs:
        raise ValueError("runs is empty: pass at least one name -> (callable, args)")
    _check_options(threads, blocks, block_seconds)
    Timer = _benchmark_timer()
    names = list(runs)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        benches, numbers = {}, {}
        with torch.no_grad():
            for name in names:
                run, args = runs[name]
                for _ in range(max(0, warmup)):
                    run(*args)
                t0 = timer()
                run(*args)
                numbers[name] = max(1, math.ceil(block_seconds / max(timer() - t0, 1e-9)))
                benches[name] = Timer(stmt="run(*args)", globals={"run": _no_grad(run), "args": tuple(args)},
                                      num_threads=threads, timer=timer)
            times: dict[str, list[float]] = {name: [] for name in names}
            for i in range(blocks):
                for k in range(len(names)):
                    name = names[(i + k) % len(names)]
                    times[name].append(benches[name].timeit(numbers[name]).mean * 1e3)
    finally:
        torch.set_num_threads(previous)
    out = {}
    for name in names:
        low, high = median_interval(times[name])
        out[name] = Latency(statistics.median(times[name]), low, high, blocks, numbers[name], threads,
                            tuple(times[name]))
    return out


def ratio(slow: Latency, fast: Latency, confidence: float = 0.95) -> tuple[float, float, float]:
    """Speed-up of ``fast`` over ``slow`` from blocks measured in the same rounds
    (:func:`measure_interleaved`): the median of the per-round ratios ``slow / fast`` and its
    distribution-free interval (:func:`median_interval`).  ``low > 1``: ``fast`` is faster beyond
    the noise; ``high < 1``: slower; otherwise a tie."""
    if len(slow.times) != len(fast.times) or not slow.times:
        raise ValueError(f"ratio needs two measurements with the same blocks (got {len(slow.times)} and "
                         f"{len(fast.times)}): time them together with measure_interleaved")
    r = [a / b for a, b in zip(slow.times, fast.times)]
    low, high = median_interval(r, confidence)
    return statistics.median(r), low, high


def _benchmark_timer():
    """``torch.utils.benchmark.Timer``, imported without the CUDA-toolkit probe's log line.

    Importing ``torch.utils.benchmark`` imports ``torch.utils.cpp_extension``, which logs a warning
    ("No CUDA runtime is found, using CUDA_HOME=...") on machines that have the CUDA build of torch
    but no GPU — the course's default.  It is noise for CPU timing (nothing is compiled), and as a
    stderr output it breaks nbval's comparison of a cell's outputs, so that one import is quiet.
    """
    import logging

    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        log.setLevel(level)
    return Timer


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


__all__ = ["Latency", "measure", "measure_interleaved", "ratio", "model_latency", "median_interval", "MIN_BLOCKS_FOR_INTERVAL"]
