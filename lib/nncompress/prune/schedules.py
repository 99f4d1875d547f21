"""Pruning schedules: when to prune how much.

* One-shot: :func:`~nncompress.prune.prune_to_sparsity` once.
* Iterative prune + fine-tune (Han et al. 2015): :func:`iterative_prune`.
* Automated gradual pruning (Zhu & Gupta 2017, eq. 1): :func:`agp_sparsity`,
  s_t = s_f + (s_i - s_f)(1 - t/n)^3.
* Iterative magnitude pruning of the lottery-ticket experiments (Frankle & Carbin 2019):
  removing a fraction r of the survivors n times leaves :func:`imp_sparsity` = 1 - (1 - r)^n.
"""
from __future__ import annotations

from typing import Iterable

import torch.nn as nn

from .masks import keep_masks_callback, prune_to_sparsity, sparsity


def agp_sparsity(step: int, n_steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta 2017, eq. 1: s_t = s_f + (s_i - s_f)(1 - t/n)^3, for t in [0, n]."""
    if n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} is not allowed: expected an int >= 1")
    t = min(max(step, 0), n_steps)
    return final + (initial - final) * (1 - t / n_steps) ** 3


def iterative_prune(model: nn.Module, train, targets: Iterable[float], finetune_config, *,
                    scope: str = "global", val=None, device="cpu", seed: int = 0,
                    progress: bool | None = False) -> list[dict]:
    """Prune to each sparsity in ``targets`` in turn, fine-tuning after each step (in place).

    Han et al. 2015's prune / retrain loop.  Returns ``[{"sparsity", "acc"}]`` (``acc``
    on ``val`` after the fine-tuning, if given).
    """
    from ..train import evaluate, fit

    out = []
    for i, s in enumerate(targets):
        prune_to_sparsity(model, s, scope=scope)
        fit(model, train, finetune_config, device=device, seed=seed + i, progress=progress,
            callbacks=[keep_masks_callback()], desc=f"fine-tune {s:.0%}")
        row = {"sparsity": sparsity(model)}
        if val is not None:
            row["acc"] = evaluate(model, val, device=device)["acc"]
        out.append(row)
    return out


def imp_sparsity(rate: float, levels: int) -> float:
    """Sparsity after ``levels`` rounds of removing a fraction ``rate`` of the remaining weights: 1 - (1 - r)^n."""
    return 1.0 - (1.0 - rate) ** levels
