"""Early-exit (multi-exit) networks: dynamic computation per input.

A backbone runs stage by stage; after each stage an *internal classifier* ("exit")
makes a prediction.  At inference a sample stops at the first exit whose prediction is
confident enough, so easy inputs cost a fraction of the full network and hard inputs
still get all of it.

* BranchyNet (Teerapittayanon, McDanel & Kung 2016): side branches trained jointly with a
  weighted sum of the per-exit cross-entropies (their eq. 2), and an *entropy* exit rule:
  stop when ``H(softmax(z)) <= threshold`` (sec. III-C).
* MSDNet (Huang et al. 2018, "Multi-Scale Dense Networks for Resource Efficient Image
  Classification", sec. 4, "budgeted batch classification"): stop when the max softmax
  probability ``>= threshold``; sweep the threshold to trade accuracy for average FLOPs.
* Shallow-Deep Networks (Kaya, Hong & Dumitras 2019): "overthinking" - a sample that an
  earlier exit classifies correctly but the final exit gets wrong.
* Self-distillation from the final exit into the earlier ones (Zhang et al. 2019, "Be Your
  Own Teacher"; Phuong & Lampert 2019): :func:`multi_exit_objective` with ``kd_alpha > 0``.

Cost accounting: :func:`exit_costs` counts the FLOPs of every stage and every exit head once
with PyTorch's flop counter (``torch.utils.flop_counter``, 2 FLOPs per multiply-add); a sample
that leaves at exit ``j`` costs ``sum_{i <= j} (stage_i + exit_i)`` - the heads of the exits
it passed were evaluated too.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

CRITERIA = ("confidence", "entropy")
BACKBONES = ("conv1d", "cnn")


# --------------------------------------------------------------------------- the network

class MultiExitNet(nn.Module):
    """Stages with a classifier after each (or after those in ``exit_after``).

    ``model(x)`` returns the final exit's logits (so :func:`nncompress.train.evaluate`
    works); ``model(x, return_features=True)`` returns ``(logits, {"exit1": ..., ...})``;
    :meth:`forward_all` returns the list of every exit's logits.
    """

    def __init__(self, stages: Sequence[nn.Module], exits: Sequence[nn.Module], exit_after: Sequence[int]):
        super().__init__()
        if len(exits) != len(exit_after) or not exits:
            raise ValueError(f"exit_after={list(exit_after)} must name one stage per exit ({len(exits)} exits)")
        if list(exit_after) != sorted(set(exit_after)) or exit_after[-1] != len(stages) - 1:
            raise ValueError(f"exit_after={list(exit_after)} must be increasing and end at the last stage "
                             f"({len(stages) - 1})")
        self.stages = nn.ModuleList(stages)
        self.exits = nn.ModuleList(exits)
        self.exit_after = tuple(int(i) for i in exit_after)
        self.feature_names = tuple(f"exit{j + 1}" for j in range(len(exits)))

    @property
    def num_exits(self) -> int:
        return len(self.exits)

    def segments(self) -> list[nn.Sequential]:
        """The backbone cut into one piece per exit: piece ``j`` runs the stages after exit
        ``j-1`` up to and including the stage exit ``j`` is attached to."""
        out, start = [], 0
        for end in self.exit_after:
            out.append(nn.Sequential(*self.stages[start:end + 1]))
            start = end + 1
        return out

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for seg, head in zip(self.segments(), self.exits):
            x = seg(x)
            outs.append(head(x))
        return outs

    def forward(self, x, return_features: bool = False):
        outs = self.forward_all(x)
        if return_features:
            return outs[-1], dict(zip(self.feature_names, outs))
        return outs[-1]


def _stage(backbone: str, cin: int, cout: int, first: bool) -> nn.Module:
    if backbone == "conv1d":
        return nn.Sequential(nn.Conv1d(cin, cout, 5, stride=2, padding=2, bias=False),
                             nn.BatchNorm1d(cout), nn.ReLU(inplace=True))
    layers = [] if first else [nn.MaxPool2d(2)]
    layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class _Unsqueeze(nn.Module):
    """``(N, L)`` -> ``(N, 1, L)`` for 1-D signals (MNIST-1D)."""

    def forward(self, x):
        return x[:, None, :] if x.dim() == 2 else x


def _exit_head(backbone: str, cin: int, num_classes: int, pool: int) -> nn.Module:
    if backbone == "conv1d":
        return nn.Sequential(nn.AdaptiveAvgPool1d(pool), nn.Flatten(), nn.Linear(cin * pool, num_classes))
    return nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(cin * pool * pool, num_classes))


def build(config: dict) -> MultiExitNet:
    """A multi-exit network from a JSON-able config, e.g.
    ``{"backbone": "conv1d", "widths": [16, 32, 64], "num_classes": 10}``.

    * ``backbone``: ``"conv1d"`` (stride-2 conv1d-BN-ReLU stages, for MNIST-1D) or ``"cnn"``
      (conv-BN-ReLU stages with 2x2 max-pooling between, for 32x32 images);
    * ``widths``: channels of each stage; ``in_channels`` (default 1 / 3);
    * ``exit_after``: stage indices with an exit (default: every stage; ``[-1]`` for the
      last only, i.e. an ordinary single-exit network);
    * ``exit_pool``: each exit head average-pools to ``exit_pool`` positions per spatial
      dimension, flattens and applies a linear layer (default 4 for conv1d, 1 for cnn).
    """
    cfg = dict(config)
    allowed = ("backbone", "widths", "num_classes", "in_channels", "exit_after", "exit_pool")
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown multi-exit setting(s) {unknown}; allowed: {', '.join(allowed)}")
    backbone = cfg.get("backbone", "conv1d")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r} is not allowed: expected one of {', '.join(BACKBONES)}")
    widths = list(cfg.get("widths", (16, 32, 64)))
    if not widths:
        raise ValueError("widths=[] is not allowed: expected at least one stage")
    n = len(widths)
    exit_after = [i % n for i in cfg.get("exit_after", range(n))]
    pool = cfg.get("exit_pool", 4 if backbone == "conv1d" else 1)
    cin = cfg.get("in_channels", 1 if backbone == "conv1d" else 3)
    stages = []
    for i, w in enumerate(widths):
        stages.append(_stage(backbone, cin, w, i == 0))
        cin = w
    if backbone == "conv1d":
        stages[0] = nn.Sequential(_Unsqueeze(), *stages[0])
    exits = [_exit_head(backbone, widths[i], cfg["num_classes"], pool) for i in exit_after]
    return MultiExitNet(stages, exits, exit_after)


def for_data(config: dict, splits) -> MultiExitNet:
    """:func:`build` with ``num_classes`` (and ``in_channels`` for images) from ``splits``."""
    cfg = dict(config)
    cfg.setdefault("num_classes", splits.num_classes)
    if len(splits.input_shape) == 3:
        cfg.setdefault("in_channels", splits.input_shape[0])
    return build(cfg)


# --------------------------------------------------------------------------- training

def multi_exit_objective(weights: Sequence[float] | None = None, *, kd_alpha: float = 0.0,
                         kd_temperature: float = 3.0):
    """``objective(model, batch) -> (loss, final logits)`` for :func:`nncompress.train.fit`.

    ``loss = sum_j w_j L_j / sum_j w_j`` (BranchyNet eq. 2, normalised), where ``L_j`` is
    the cross-entropy of exit ``j``; with ``kd_alpha > 0`` each *earlier* exit's loss is the
    Hinton KD loss towards the (detached) final exit:
    ``kd_alpha T^2 KL(p_final^T || p_j^T) + (1 - kd_alpha) CE``.
    """
    from .distill import kd_loss

    if not 0.0 <= kd_alpha <= 1.0:
        raise ValueError(f"kd_alpha={kd_alpha!r} is not allowed: expected a float in [0, 1]")

    def objective(model, batch):
        x, y = batch[0], batch[1]
        outs = model.forward_all(x)
        w = list(weights) if weights is not None else [1.0] * len(outs)
        if len(w) != len(outs):
            raise ValueError(f"weights={w} must have one entry per exit ({len(outs)})")
        final = outs[-1]
        losses = []
        for j, z in enumerate(outs):
            if kd_alpha > 0 and j < len(outs) - 1:
                losses.append(kd_loss(z, final.detach(), y, temperature=kd_temperature, alpha=kd_alpha))
            else:
                losses.append(F.cross_entropy(z, y))
        loss = sum(wj * lj for wj, lj in zip(w, losses)) / sum(w)
        return loss, final

    return objective


def get_or_train(name: str, config: dict, splits, train_config=None, *, seed: int = 0,
                 weights: Sequence[float] | None = None, kd_alpha: float = 0.0, kd_temperature: float = 3.0,
                 device="auto", progress: bool | None = None):
    """Train ``for_data(config, splits)`` jointly on all exits once, then load it from the
    cache.  Returns ``(model, history, cached)``."""
    from .train import train_cached

    objective_cfg = {"method": "multi-exit", "weights": list(weights) if weights is not None else None,
                     "kd_alpha": kd_alpha, "kd_temperature": kd_temperature}
    key = {"model": {"arch": "multi-exit", **config}, "data": splits.config(), "objective": objective_cfg}
    objective = multi_exit_objective(weights, kd_alpha=kd_alpha, kd_temperature=kd_temperature)
    return train_cached(name, key, lambda: for_data(config, splits), splits.train, train_config,
                        objective=objective, val=splits.val if len(splits.val) else splits.test,
                        seed=seed, device=device, progress=progress)


# --------------------------------------------------------------------------- costs

@torch.no_grad()
def exit_costs(model: MultiExitNet, input_shape: tuple[int, ...]) -> dict[str, list[int]]:
    """FLOPs (one sample) of each backbone segment and each exit head, counted once with
    ``torch.utils.flop_counter.FlopCounterMode``; ``cumulative[j]`` is the cost of a sample
    that leaves at exit ``j`` (segments ``0..j`` and heads ``0..j``)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    p = next(model.parameters())
    x = torch.zeros(1, *input_shape, device=p.device)
    seg_flops, head_flops = [], []
    for seg, head in zip(model.segments(), model.exits):
        c = FlopCounterMode(display=False)
        with c:
            x = seg(x)
        seg_flops.append(int(c.get_total_flops()))
        c = FlopCounterMode(display=False)
        with c:
            head(x)
        head_flops.append(int(c.get_total_flops()))
    model.train(was_training)
    cumulative, total = [], 0
    for s, h in zip(seg_flops, head_flops):
        total += s + h
        cumulative.append(total)
    return {"segment": seg_flops, "exit": head_flops, "cumulative": cumulative}


# --------------------------------------------------------------------------- exit rules

def exit_scores(logits: torch.Tensor, criterion: str = "confidence") -> torch.Tensor:
    """Per-sample score of ``logits`` (``(..., C)``): the max softmax probability, or the
    softmax entropy in nats."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is not allowed: expected one of {', '.join(CRITERIA)}")
    logp = F.log_softmax(logits.float(), dim=-1)
    if criterion == "confidence":
        return logp.exp().amax(-1)
    return -(logp.exp() * logp).sum(-1)


def _passes(scores: torch.Tensor, threshold: float, criterion: str) -> torch.Tensor:
    return scores >= threshold if criterion == "confidence" else scores <= threshold


def apply_rule(all_logits: torch.Tensor, threshold: float, criterion: str = "confidence"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Given every exit's logits ``(E, N, C)``, the exit each sample takes and its prediction.

    A sample leaves at the first exit whose score passes (``confidence >= threshold`` or
    ``entropy <= threshold``); the last exit takes whatever is left.  Returns
    ``(exit_index (N,), prediction (N,))``.
    """
    passes = _passes(exit_scores(all_logits, criterion), threshold, criterion)
    passes[-1] = True
    exit_idx = passes.int().argmax(0)  # first True
    preds = all_logits.argmax(-1).gather(0, exit_idx[None]).squeeze(0)
    return exit_idx, preds


@torch.no_grad()
def all_exit_logits(model: MultiExitNet, data, *, device="auto", batch_size: int = 1024) -> torch.Tensor:
    """Every exit's logits on every sample of ``data``: a CPU tensor ``(E, N, C)``."""
    from .train import _iter_batches, select_device

    device = select_device(device)
    model.to(device).eval()
    outs = [torch.stack(model.forward_all(b[0])).float().cpu()
            for b in _iter_batches(data, batch_size, False, None, device)]
    return torch.cat(outs, 1)


@torch.no_grad()
def early_exit_predict(model: MultiExitNet, x: torch.Tensor, threshold: float,
                       criterion: str = "confidence", costs: dict | None = None) -> dict[str, torch.Tensor]:
    """Dynamic inference on a batch: run segment by segment on the samples still active,
    drop those whose exit passes the rule.  Returns ``{"pred", "exit", "flops", "logits"}``
    (per sample, CPU); ``flops[i] = costs["cumulative"][exit[i]]``.  Later segments never
    see the samples that left, so the work done really shrinks."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is not allowed: expected one of {', '.join(CRITERIA)}")
    model.eval()
    if costs is None:
        costs = exit_costs(model, tuple(x.shape[1:]))
    n = x.shape[0]
    active = torch.arange(n, device=x.device)
    exit_idx = torch.full((n,), model.num_exits - 1, dtype=torch.long)
    logits_out = None
    h = x
    last = model.num_exits - 1
    for j, (seg, head) in enumerate(zip(model.segments(), model.exits)):
        h = seg(h)
        z = head(h).float()
        if logits_out is None:
            logits_out = torch.empty(n, z.shape[1])
        done = torch.ones(len(active), dtype=torch.bool, device=z.device) if j == last else \
            _passes(exit_scores(z, criterion), threshold, criterion)
        idx = active[done].cpu()
        logits_out[idx] = z[done].cpu()
        exit_idx[idx] = j
        keep = ~done
        active, h = active[keep], h[keep]
        if len(active) == 0:
            break
    cum = torch.tensor(costs["cumulative"], dtype=torch.long)
    return {"pred": logits_out.argmax(1), "exit": exit_idx, "flops": cum[exit_idx], "logits": logits_out}


# --------------------------------------------------------------------------- analysis

def sweep(all_logits: torch.Tensor, y: torch.Tensor, thresholds: Sequence[float], costs: dict,
          criterion: str = "confidence") -> list[dict]:
    """Accuracy and mean FLOPs per sample for each threshold (MSDNet's budgeted
    classification curve).  Rows: ``threshold``, ``acc``, ``flops`` (mean per sample),
    ``exit_frac`` (fraction leaving at each exit)."""
    cum = torch.tensor(costs["cumulative"], dtype=torch.float64)
    y = y.cpu()
    rows = []
    for t in thresholds:
        exit_idx, pred = apply_rule(all_logits, t, criterion)
        frac = torch.bincount(exit_idx, minlength=all_logits.shape[0]).double() / len(y)
        rows.append({"threshold": float(t), "acc": (pred == y).double().mean().item(),
                     "flops": cum[exit_idx].mean().item(), "exit_frac": frac.tolist()})
    return rows


def overthinking(all_logits: torch.Tensor, y: torch.Tensor) -> dict[str, float | torch.Tensor]:
    """Kaya et al. 2019: ``overthink`` - fraction of samples some earlier exit gets right
    while the final exit gets them wrong; ``oracle_acc`` - accuracy if an oracle picked a
    correct exit whenever one exists; ``per_exit_acc``; ``mask`` - the overthinking samples."""
    y = y.cpu()
    correct = all_logits.argmax(-1) == y[None]
    early_right = correct[:-1].any(0) if len(correct) > 1 else torch.zeros_like(correct[0])
    mask = early_right & ~correct[-1]
    return {"overthink": mask.double().mean().item(), "oracle_acc": correct.any(0).double().mean().item(),
            "per_exit_acc": correct.double().mean(1).tolist(), "mask": mask}


def max_entropy(num_classes: int) -> float:
    """``ln C``: an entropy threshold at or above it sends every sample out at the first exit."""
    return math.log(num_classes)


__all__ = ["CRITERIA", "BACKBONES", "MultiExitNet", "build", "for_data", "multi_exit_objective", "get_or_train",
           "exit_costs", "exit_scores", "apply_rule", "all_exit_logits", "early_exit_predict", "sweep",
           "overthinking", "max_entropy"]
