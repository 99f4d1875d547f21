"""Distillation between peers and across generations.

* Deep Mutual Learning (Zhang, Xiang, Hospedales & Lu, CVPR 2018): K peers trained together,
  each on its own cross-entropy plus the mean KL from the other peers' predictions,
  L_k = CE(p_k, y) + 1/(K-1) sum_{l != k} KL(p_l || p_k)  (eq. 4 for two peers, eq. 10 for K).
  :class:`DMLObjective` updates all peers jointly (one optimiser step per batch; the other
  peers' predictions are constants in each L_k, so the joint step equals K separate steps
  on the same batch); :func:`dml_step` is the paper's Algorithm 1, which updates peers
  one after the other and recomputes the predictions in between.
* Born-Again Networks (Furlanello et al., ICML 2018, sec. 3, eq. 2): generation k+1, the same
  architecture, is trained on generation k's output only, L(f(x, theta_k*), f(x, theta_k+1)),
  with no label term; the ensemble of generations (BANE) averages their outputs.
* Teacher Assistant KD (Mirzadeh et al., AAAI 2020): when the teacher is far larger than the
  student, distil teacher -> assistant(s) of intermediate size -> student.
* Label Refinery (Bagherinezhad et al. 2018): train on the labels, replace the labels by the
  model's predictions on the training set (refined, soft labels), retrain on those; repeat.
  Without data augmentation a round is a born-again generation at T = 1, alpha = 1: the
  soft-target cross-entropy differs from KL(p || q) by H(p), a constant for the student.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import model_identity
from .kd import KDObjective, labelled_subset, teacher_logits, train_student
from .ensembles import soft_target_objective


class PeerGroup(nn.Module):
    """K models trained together.  ``forward`` returns the ensemble's log mean probability
    (so ``evaluate``/``predict`` measure the peers' ensemble); ``forward_all`` each peer's logits."""

    def __init__(self, peers: Sequence[nn.Module]):
        super().__init__()
        if not peers:
            raise ValueError("PeerGroup needs at least one peer")
        self.peers = nn.ModuleList(peers)

    def forward_all(self, x) -> list[torch.Tensor]:
        return [p(x) for p in self.peers]

    def forward(self, x):
        probs = torch.stack([F.softmax(z, dim=1) for z in self.forward_all(x)]).mean(0)
        return torch.log(probs.clamp_min(1e-12))


def dml_losses(logits: Sequence[torch.Tensor], y: torch.Tensor, temperature: float = 1.0) -> list[torch.Tensor]:
    """Zhang et al. 2018, eq. 10: L_k = CE(z_k, y) + 1/(K-1) sum_{l != k} KL(p_l || p_k), one per peer.

    The other peers' distributions p_l are detached (targets), KL uses ``batchmean``; with
    ``temperature`` T != 1 the KL is taken between softmax(z/T) and multiplied by T^2 (as in
    :func:`nncompress.distill.kd_loss`).  With one peer L_1 is plain cross-entropy.
    """
    K = len(logits)
    T = float(temperature)
    out = []
    for k, zk in enumerate(logits):
        loss = F.cross_entropy(zk, y)
        if K > 1:
            log_pk = F.log_softmax(zk / T, dim=1)
            kl = sum(F.kl_div(log_pk, F.softmax(zl.detach() / T, dim=1), reduction="batchmean")
                     for l, zl in enumerate(logits) if l != k)
            loss = loss + (T * T) * kl / (K - 1)
        out.append(loss)
    return out


class DMLObjective:
    """:func:`nncompress.train.fit` objective for a :class:`PeerGroup`: the sum of the peers'
    :func:`dml_losses` (joint update).  Returns peer 0's logits for the training accuracy."""

    def __init__(self, temperature: float = 1.0):
        self.temperature = float(temperature)

    def __call__(self, model: nn.Module, batch: tuple):
        group = getattr(model, "module", model)
        logits = group.forward_all(batch[0])
        return sum(dml_losses(logits, batch[1], self.temperature)), logits[0]

    def config(self) -> dict:
        return {"method": "dml", "T": self.temperature}


def dml_step(peers: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer], batch: tuple,
             temperature: float = 1.0) -> list[float]:
    """One step of Zhang et al. 2018, Algorithm 1: for k = 1..K, compute every peer's
    prediction (with the peers already updated in this step), then update peer k on L_k.
    Returns the K losses."""
    x, y = batch[0], batch[1]
    losses = []
    for k, (peer, opt) in enumerate(zip(peers, optimizers)):
        logits = [p(x) if i == k else p(x).detach() for i, p in enumerate(peers)]
        loss = dml_losses(logits, y, temperature)[k]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _subset(splits, n_labelled, seed):
    if n_labelled is None:
        return splits.train, {"n": "all"}
    sub, _, cfg = labelled_subset(splits.train, n_labelled, seed)
    return sub, cfg


def train_peers(name: str, model_configs: Sequence[dict], splits, train_config, *, seed: int,
                n_labelled: int | None = None, temperature: float = 1.0, device="auto", progress=None):
    """Train K peers with DML (joint update) on ``n_labelled`` labels (cached).

    Peer k is initialised from ``torch.manual_seed(seed + 7919 k)``: peer 0 starts exactly
    where a scratch model of :func:`nncompress.train.get_or_train` with the same seed starts,
    and the batches come in the same order, so "peer 0 vs alone" is a paired comparison.
    Returns ``(peers, history, cached)``.
    """
    from .. import cache, models
    from ..train import TrainConfig, fit, select_device

    cfg = TrainConfig.coerce(train_config)
    data, sub_cfg = _subset(splits, n_labelled, seed)
    key = {"models": list(model_configs), "data": splits.config(), "train": cfg.to_dict(),
           "seed": seed, "objective": {"method": "dml", "T": float(temperature), "subset": sub_cfg}}

    def build():
        peers = []
        for k, mc in enumerate(model_configs):
            torch.manual_seed(seed + 7919 * k)
            peers.append(models.for_data(mc, splits))
        return PeerGroup(peers)

    def compute():
        group = build()
        hist = fit(group, data, cfg, objective=DMLObjective(temperature),
                   val=splits.val if len(splits.val) else splits.test, device=device, seed=seed,
                   progress=progress, desc=name)
        return {"state_dict": {k: v.detach().cpu() for k, v in group.state_dict().items()},
                "history": hist.to_dict()}

    value, cached = cache.get_or_compute(name, key, compute)
    group = build()
    group.load_state_dict(value["state_dict"])
    group.to(select_device(device)).eval()
    from ..train import History

    return list(group.peers), History.from_dict(value["history"]), cached


@torch.no_grad()
def ensemble_probs(models: Sequence[nn.Module], data, *, device="auto", temperature: float = 1.0) -> torch.Tensor:
    """Mean of the models' softmax outputs on ``data`` (the BANE / peer ensemble)."""
    from ..train import predict

    return torch.stack([F.softmax(predict(m, data, device=device) / temperature, dim=1)
                        for m in models]).mean(0)


def born_again(name: str, model_config: dict, splits, train_config, *, seed: int, generations: int,
               n_labelled: int | None = None, temperature: float = 1.0, alpha: float = 1.0,
               device="auto", progress=None):
    """Born-Again Networks (Furlanello et al. 2018, sec. 3): generation 0 trained on labels,
    generation k >= 1 (same architecture, fresh initialisation seed + 1000 k) distilled from
    generation k-1 with :func:`nncompress.distill.kd_loss`.  The defaults ``alpha=1``, ``T=1``
    are the paper's setting: the student is trained on the teacher's output only (eq. 2, no
    label term, no temperature), i.e. KL(p_{k-1} || p_k); other values give Hinton's KD loss
    between generations.  All generations see the same ``n_labelled`` examples; generation 0
    is the same cache entry as :func:`nncompress.distill.train_student` without a teacher.
    Returns ``[(model, history), ...]`` for generations 0..``generations``.
    """
    from ..train import get_or_train

    if generations < 0:
        raise ValueError(f"generations={generations!r} is not allowed: expected an int >= 0")
    data, sub_cfg = _subset(splits, n_labelled, seed)
    out, prev = [], None
    for g in range(generations + 1):
        if prev is None:
            objective, obj_cfg, train_data = None, {"method": "ce", "subset": sub_cfg}, data
        else:
            train_data = data.with_extras(teacher_logits(prev, data, device=device).to(data.device))
            objective = KDObjective(None, temperature, alpha)
            obj_cfg = {"method": "born-again", "T": float(temperature), "alpha": float(alpha),
                       "teacher": model_identity(prev), "generation": g, "subset": sub_cfg}
        model, hist, _ = get_or_train(name, model_config, splits, train_config, seed=seed + 1000 * g,
                                      objective=objective, objective_config=obj_cfg,
                                      train_data=train_data, device=device, progress=progress)
        out.append((model, hist))
        prev = model
    return out


def teacher_assistant_kd(name: str, chain: Sequence[dict], teacher: nn.Module, splits, train_config, *,
                         seed: int, n_labelled: int, temperature: float = 4.0, alpha: float = 0.9,
                         device="auto", progress=None):
    """Teacher Assistant KD (Mirzadeh et al. 2020, sec. 3): distil ``teacher`` into ``chain[0]``,
    that into ``chain[1]``, ..., the last is the student.  ``chain=[student]`` is direct KD.
    Every step uses :func:`nncompress.distill.train_student` (cached; the key includes the
    previous model's key).  Returns the list of trained models, student last."""
    if not chain:
        raise ValueError("chain is empty: expected [assistant, ..., student] model configs")
    out, prev = [], teacher
    for cfg in chain:
        model, _, _ = train_student(name, cfg, splits, train_config, seed=seed, n_labelled=n_labelled,
                                    teacher=prev, temperature=temperature, alpha=alpha,
                                    device=device, progress=progress)
        out.append(model)
        prev = model
    return out


@torch.no_grad()
def refine_labels(refiner: nn.Module, data, *, temperature: float = 1.0, device="auto") -> torch.Tensor:
    """Bagherinezhad et al. 2018, sec. 3: the refined labels are the refiner's predicted
    distribution softmax(z/T) on each training example (T = 1 in the paper)."""
    return F.softmax(teacher_logits(refiner, data, device=device) / temperature, dim=1)


def label_entropy(probs: torch.Tensor) -> float:
    """Mean entropy (nats) of label distributions ``(N, C)``; 0 for one-hot labels."""
    return (-torch.xlogy(probs, probs).sum(1)).mean().item()


def label_refinery(name: str, model_config: dict, splits, train_config, *, seed: int, rounds: int,
                   n_labelled: int | None = None, temperature: float = 1.0, device="auto", progress=None):
    """Label Refinery (Bagherinezhad et al. 2018): round 0 trains on the hard labels; round r >= 1
    trains a fresh model (seed + 1000 r) with soft-target cross-entropy on the labels refined by
    round r-1 (:func:`refine_labels`), no hard labels.  Returns ``[(model, labels), ...]`` where
    ``labels`` are the targets that round trained on (one-hot for round 0)."""
    from ..train import get_or_train

    if rounds < 0:
        raise ValueError(f"rounds={rounds!r} is not allowed: expected an int >= 0")
    data, sub_cfg = _subset(splits, n_labelled, seed)
    labels = F.one_hot(data.y.cpu(), splits.num_classes).float()
    out, prev = [], None
    for r in range(rounds + 1):
        if prev is None:
            objective, obj_cfg, train_data = None, {"method": "ce", "subset": sub_cfg}, data
        else:
            labels = refine_labels(prev, data, temperature=temperature, device=device)
            train_data = data.with_extras(labels.to(data.device))
            objective = soft_target_objective
            obj_cfg = {"method": "label-refinery", "T": float(temperature), "refiner": model_identity(prev),
                       "round": r, "subset": sub_cfg}
        model, _, _ = get_or_train(name, model_config, splits, train_config, seed=seed + 1000 * r,
                                   objective=objective, objective_config=obj_cfg, train_data=train_data,
                                   device=device, progress=progress)
        out.append((model, labels))
        prev = model
    return out
