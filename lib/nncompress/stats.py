"""Small statistics for noisy, small-scale results: mean ± std over seeds, paired gains.

Compression effects at CPU scale are a few points and seed noise is of the same order,
so the course never reports a single run: it reports the mean and the sample standard
deviation (ddof = 1) over seeds, and for A-vs-B comparisons the *paired* difference
(same seed, same data subset, same initialisation) with its spread.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for a single value)."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("mean_std of an empty sequence")
    m = sum(v) / len(v)
    if len(v) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def fmt_mean_std(values: Iterable[float], scale: float = 100.0, digits: int = 1) -> str:
    """``"61.2 ± 1.3"`` (accuracies as percent by default)."""
    m, s = mean_std(values)
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def paired_gain(base: Sequence[float], new: Sequence[float]) -> dict:
    """Per-seed gains ``new[i] - base[i]``: mean, std, n, and whether the gain exceeds the spread.

    ``exceeds_spread`` is true when the mean gain is larger than the standard deviation
    of the gains *and* than both methods' own seed-to-seed standard deviations, and every
    seed's gain has the same sign - a deliberately conservative reading for n = 3 to 5.
    """
    if len(base) != len(new) or not base:
        raise ValueError("paired_gain needs two equally long, non-empty sequences")
    gains = [b - a for a, b in zip(base, new)]
    m, s = mean_std(gains)
    spread = max(s, mean_std(base)[1], mean_std(new)[1])
    same_sign = all(g > 0 for g in gains) or all(g < 0 for g in gains)
    return {"mean": m, "std": s, "n": len(gains), "gains": gains,
            "exceeds_spread": abs(m) > spread and same_sign}
