"""Small statistics for noisy, small-scale results: mean ± std over seeds, paired comparisons.

Compression effects at CPU scale are a few points and seed noise is of the same order,
so the course reports the mean and the sample standard deviation (ddof = 1) over seeds,
never a spread for a single run ("n = 1"), and compares two methods by the *paired*
difference (same seed, same data subset, same initialisation) with its 95 % confidence
interval from Student's t distribution with n - 1 degrees of freedom:

    d_i = new_i - base_i,   mean ± t_{0.975, n-1} · s_d / sqrt(n).

A comparison is called *significant* only when that interval excludes 0 (the paired
t-test at the 5 % level, two-sided).  Nothing weaker is called significant.

The t quantile is computed here (the regularised incomplete beta function by its continued
fraction, Press et al., *Numerical Recipes* §6.4, then bisection), so the library does
not need SciPy; the tests check it against ``scipy.stats``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for a single value: see :func:`fmt_mean_std`)."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("mean_std of an empty sequence")
    m = sum(v) / len(v)
    if len(v) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def fmt_mean_std(values: Iterable[float], scale: float = 100.0, digits: int = 1) -> str:
    """``"61.2 ± 1.3"`` (accuracies as percent by default); a single run is ``"61.2 (n = 1)"``,
    never shown with a spread."""
    v = list(values)
    m, s = mean_std(v)
    if len(v) == 1:
        return f"{m * scale:.{digits}f} (n = 1)"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


# --------------------------------------------------------------------------- Student's t

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x = {x!r} must be in [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df = {df!r} must be > 0")
    x, y = df / (df + t * t), t * t / (df + t * t)   # y = 1 - x without cancellation
    tail = 0.5 * (betainc(df / 2.0, 0.5, x) if x < 0.5 else 1.0 - betainc(0.5, df / 2.0, y))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p = {p!r} must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- paired comparison

@dataclass(frozen=True)
class Paired:
    """A paired comparison ``new - base`` over seeds: the mean difference, its confidence
    interval from the t distribution (n - 1 degrees of freedom), n, the per-seed differences.

    ``significant`` is true exactly when the interval excludes 0 (needs n >= 2)."""

    mean: float
    low: float
    high: float
    n: int
    diffs: tuple[float, ...]
    confidence: float = 0.95
    base: tuple[float, ...] = field(default=(), repr=False)
    new: tuple[float, ...] = field(default=(), repr=False)

    @property
    def significant(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    @property
    def better(self) -> bool:
        """``new`` is significantly higher than ``base``."""
        return self.significant and self.mean > 0

    @property
    def worse(self) -> bool:
        """``new`` is significantly lower than ``base``."""
        return self.significant and self.mean < 0

    def text(self, scale: float = 100.0, unit: str = " pts", digits: int = 1) -> str:
        """``"+2.3 pts, 95 % CI [+0.4, +4.2], n = 5"`` (``n = 1: no interval`` for one seed)."""
        m = f"{self.mean * scale:+.{digits}f}{unit}"
        if self.n < 2:
            return f"{m}, n = 1: no interval"
        return (f"{m}, {self.confidence:.0%} CI [{self.low * scale:+.{digits}f}, "
                f"{self.high * scale:+.{digits}f}], n = {self.n}").replace("%", " %")

    def verdict(self) -> str:
        """``"significant"`` or ``"not resolved at n = 3"`` (the interval contains 0)."""
        return "significant" if self.significant else f"not resolved at n = {self.n}"

    def __str__(self) -> str:
        return self.text()


def paired(base: Sequence[float], new: Sequence[float], *, confidence: float = 0.95) -> Paired:
    """Compare ``new`` with ``base`` seed by seed (``base[i]`` and ``new[i]`` share seed i)."""
    base, new = [float(x) for x in base], [float(x) for x in new]
    if len(base) != len(new) or not base:
        raise ValueError(f"paired() needs two equally long, non-empty sequences, got {len(base)} and {len(new)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence = {confidence!r} must be in (0, 1)")
    diffs = [b - a for a, b in zip(base, new)]
    n = len(diffs)
    m, s = mean_std(diffs)
    if n < 2:
        low, high = -math.inf, math.inf
    else:
        half = t_quantile(0.5 + confidence / 2.0, n - 1) * s / math.sqrt(n)
        low, high = m - half, m + half
    return Paired(m, low, high, n, tuple(diffs), confidence, tuple(base), tuple(new))


def paired_gain(base: Sequence[float], new: Sequence[float]) -> dict:
    """:func:`paired` as a dict: ``mean``, ``std`` of the differences, ``n``, ``gains``,
    ``low``/``high`` (the 95 % t interval) and ``significant`` (the interval excludes 0)."""
    p = paired(base, new)
    return {"mean": p.mean, "std": mean_std(p.diffs)[1], "n": p.n, "gains": list(p.diffs),
            "low": p.low, "high": p.high, "significant": p.significant, "text": p.text()}
