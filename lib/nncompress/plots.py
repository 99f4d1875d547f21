"""Shared figures.  Every function draws on a given axis (or makes one) and returns it.

Figures use an explicit white background (``setup()``) so they stay readable in
JupyterLab's dark theme as well as the light one.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch


def setup() -> None:
    """Course-wide matplotlib style: white figure background, readable sizes."""
    import matplotlib as mpl

    mpl.rcParams.update({"figure.facecolor": "white", "axes.facecolor": "white",
                         "savefig.facecolor": "white", "figure.dpi": 90,
                         "axes.grid": True, "grid.alpha": 0.3, "font.size": 10})


def _ax(ax, figsize=(5, 3.2)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def image_grid(x: torch.Tensor, y: torch.Tensor, classes: Sequence[str], per_class: int = 4,
               *, fig=None):
    """A grid with ``per_class`` examples (columns) of every class (rows).

    Images ``(N, C, H, W)`` are min-max scaled per image for display; 1-D signals
    ``(N, L)`` are drawn as line plots.
    """
    import matplotlib.pyplot as plt

    x, y = x.detach().cpu(), y.detach().cpu()
    k = len(classes)
    fig = fig or plt.figure(figsize=(per_class * 1.1, k * 1.0))
    axes = fig.subplots(k, per_class, squeeze=False)
    for c in range(k):
        idx = (y == c).nonzero().flatten()[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.set_xticks([]); ax.set_yticks([]); ax.grid(False)
            if j >= len(idx):
                ax.axis("off")
                continue
            xi = x[idx[j]]
            if xi.dim() == 3:
                img = xi.permute(1, 2, 0).numpy()
                img = (img - img.min()) / (img.max() - img.min() + 1e-8)
                ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None)
            else:
                ax.plot(xi.flatten().numpy(), lw=1)
        axes[c, 0].set_ylabel(classes[c], rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def prob_bars(probs: torch.Tensor, classes: Sequence[str], *, ax=None, title: str = "",
              highlight: int | None = None):
    """Bar chart of one probability vector (e.g. a softened teacher output)."""
    ax = _ax(ax)
    p = probs.detach().cpu().numpy()
    colors = ["C1" if i == highlight else "C0" for i in range(len(p))]
    ax.bar(range(len(p)), p, color=colors)
    ax.set_xticks(range(len(p)), classes, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(title)
    return ax


def mean_std_curve(xs: Sequence[float], runs: Sequence[Sequence[float]], *, ax=None, label=None,
                   xlabel: str = "", ylabel: str = "accuracy", logx: bool = False, scale: float = 100.0):
    """Mean line with a ± std band; ``runs[i]`` holds the seeds' values at ``xs[i]``."""
    ax = _ax(ax)
    arr = np.array([[v * scale for v in r] for r in runs], dtype=float)
    m = arr.mean(1)
    s = arr.std(1, ddof=1) if arr.shape[1] > 1 else np.zeros_like(m)
    line, = ax.plot(xs, m, "o-", label=label)
    ax.fill_between(xs, m - s, m + s, color=line.get_color(), alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def method_bars(results: Mapping[str, Sequence[float]], *, ax=None, ylabel: str = "test accuracy (%)",
                scale: float = 100.0, title: str = ""):
    """Bars of mean ± std per method, with each seed's value as a dot."""
    ax = _ax(ax)
    names = list(results)
    for i, n in enumerate(names):
        v = np.array(results[n], dtype=float) * scale
        s = v.std(ddof=1) if len(v) > 1 else 0.0
        ax.bar(i, v.mean(), yerr=s, capsize=4, color=f"C{i}", alpha=0.8)
        ax.plot([i] * len(v), v, "k.", ms=4)
    ax.set_xticks(range(len(names)), names, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    lo = min(min(r) for r in results.values()) * scale
    ax.set_ylim(max(0, lo - 10), None)
    return ax


def confusion(y_true: torch.Tensor, y_pred: torch.Tensor, classes: Sequence[str], *, ax=None,
              normalize: bool = True, title: str = ""):
    """Confusion matrix (rows: true class, columns: predicted), row-normalised by default."""
    ax = _ax(ax, figsize=(4.5, 4))
    k = len(classes)
    m = torch.zeros(k, k)
    for t, p in zip(y_true.cpu().tolist(), y_pred.cpu().tolist()):
        m[t, p] += 1
    if normalize:
        m = m / m.sum(1, keepdim=True).clamp_min(1)
    ax.imshow(m.numpy(), cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted"); ax.set_ylabel("true"); ax.grid(False)
    ax.set_title(title)
    return ax


def frontier(rows, cost: str, *, front: Sequence[str] = (), ax=None, gain: str = "acc", err: str | None = "acc_std",
             logx: bool = True, xlabel: str | None = None, ylabel: str = "test accuracy (%)", title: str = "",
             budget: float | None = None, reference: str | None = None):
    """Accuracy against a cost (bytes, latency, FLOPs), one labelled point per model.

    ``rows``: dicts with ``"model"``, ``cost``, ``gain`` (and ``err`` for error bars) or a
    DataFrame indexed by model.  The models in ``front`` (e.g. from
    :func:`nncompress.pipeline.pareto_front`) are joined by a step line; ``budget`` draws a
    vertical line; ``reference`` names the row drawn as a star (the uncompressed model).
    """
    ax = _ax(ax, figsize=(6.4, 4.2))
    rows = rows.reset_index().to_dict("records") if hasattr(rows, "reset_index") else list(rows)
    for i, r in enumerate(rows):
        on = r["model"] in front
        style = dict(marker="*" if r["model"] == reference else ("o" if on else "s"),
                     ms=11 if r["model"] == reference else 6, color=f"C{i % 10}",
                     mec="k" if on else "none")
        ax.errorbar(r[cost], r[gain], yerr=r.get(err, 0.0) if err else None, capsize=2, ls="none", **style)
        ax.annotate(r["model"], (r[cost], r[gain]), textcoords="offset points", xytext=(4, 3), fontsize=7)
    pts = sorted(((r[cost], r[gain]) for r in rows if r["model"] in front))
    if pts:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="k", lw=1, alpha=0.6,
                label="Pareto front")
        ax.legend(fontsize=8, loc="lower right")
    if budget is not None:
        ax.axvline(budget, color="tab:red", ls="--", lw=1)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or cost)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax
