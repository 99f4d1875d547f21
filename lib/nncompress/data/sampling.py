"""Seeded stratified sampling: subsets that keep each class's share of the data."""
from __future__ import annotations

import torch


def stratified_split(y: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rest, take)``: sorted index tensors splitting ``range(len(y))``, ``len(take) == n``.

    Proportional allocation: class ``c`` with ``n_c`` of the ``N`` labels gets ``n * n_c / N``
    of ``take``, rounded up or down (so within one of its share).  Each sample is ranked
    within its class in a random order (from ``generator``) and given the key
    ``(rank + 1/2) / n_c``, its quantile in the class; ``take`` is the ``n`` smallest keys
    (ties, i.e. classes of equal size, broken by the random order).  Deterministic for a
    given generator state.
    """
    total = len(y)
    if not 0 <= n <= total:
        raise ValueError(f"n={n} is out of range: allowed 0..{total} (the number of labels)")
    perm = torch.randperm(total, generator=generator)
    yp = y[perm].long()
    counts = torch.bincount(yp)
    order = torch.argsort(yp, stable=True)                  # grouped by class, random within
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(total, dtype=torch.long)
    rank[order] = torch.arange(total) - starts[yp[order]]
    key = (rank.double() + 0.5) / counts[yp].double()
    chosen = torch.argsort(key, stable=True)[:n]
    mask = torch.zeros(total, dtype=torch.bool)
    mask[perm[chosen]] = True
    idx = torch.arange(total)
    return idx[~mask], idx[mask]
