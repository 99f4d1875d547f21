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

The network (:class:`MultiExitNet`) lives with the other model families
(:mod:`nncompress.models.multi_exit`; built by :func:`nncompress.models.build` with
``arch="multi-exit"``) and is re-exported here.

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

from . import models
from .models.multi_exit import BACKBONES, MultiExitNet

CRITERIA = ("confidence", "entropy")


# --------------------------------------------------------------------------- the network

def for_data(config: dict, splits) -> MultiExitNet:
    """:func:`nncompress.models.for_data` for a multi-exit config (``arch`` may be left out;
    see :func:`nncompress.models.multi_exit_net` for the settings): ``num_classes`` (and
    ``in_channels`` for images) from ``splits``."""
    cfg = {"arch": "multi-exit", **config}
    if cfg["arch"] != "multi-exit":
        raise ValueError(f"arch={cfg['arch']!r} is not allowed here: expected 'multi-exit' (or no arch)")
    return models.for_data(cfg, splits)


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


class AllExits(nn.Module):
    """``x -> (N, E, C)``: every exit's logits of a :class:`MultiExitNet`, stacked per sample
    (so the batched prediction of :func:`nncompress.train.predict` collects them all)."""

    def __init__(self, net: MultiExitNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.stack(self.net.forward_all(x), 1)


def all_exit_logits(model: MultiExitNet, data, *, device="auto", batch_size: int = 1024) -> torch.Tensor:
    """Every exit's logits on every sample of ``data``: a CPU tensor ``(E, N, C)``."""
    from .train import predict

    return predict(AllExits(model), data, device=device, batch_size=batch_size).transpose(0, 1).contiguous()


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


__all__ = ["CRITERIA", "BACKBONES", "MultiExitNet", "for_data", "multi_exit_objective", "get_or_train",
           "exit_costs", "exit_scores", "apply_rule", "all_exit_logits", "early_exit_predict", "sweep",
           "overthinking", "max_entropy"]
