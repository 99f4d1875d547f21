"""Generalist + specialist ensembles (Hinton, Vinyals & Dean 2015, sections 5-6).

A *generalist* is trained on all classes.  Classes it confuses with each other are found
by clustering the covariance matrix of its predicted distributions (sec. 5.3); each cluster
gets a *specialist*, initialised from the generalist and trained on data enriched in its
classes (half from its special subset, half from the rest), with every non-special class
merged into one *dustbin* class (sec. 5.2).  At test time (sec. 5.4) the specialists whose
subset meets the generalist's top classes are *active*, and the combined distribution q
minimises

    KL(p_g || q) + sum_{m in active} KL(p_m || q^m)                      (Hinton 2015, eq. 5)

where q^m is q aggregated to specialist m's classes plus its dustbin (the dustbin gets the
sum of q over all classes outside the subset).  We solve it by gradient descent on q's
logits, starting from the generalist's log-probabilities.

Two details the paper states and the code follows: (i) after training, the specialist's
dustbin logit is incremented by the log of the factor by which its special classes were
oversampled (sec. 5.2; :func:`dustbin_log_shift`, :func:`correct_dustbin`); (ii) a soft
target for a specialist is the generalist's distribution aggregated *in logit space at the
inference temperature 1* and only then softened by T (:func:`specialist_soft_targets`):
summing the generalist's probabilities at T teaches a dustbin logit T·logsumexp(z/T), which
over-predicts the dustbin at T = 1 (:func:`aggregate_logits`).

Specialists are independent of each other once the generalist exists: they can be trained
in parallel (separate processes or machines), which is the paper's point about very large
datasets.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def kl_rows(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-row KL(p || q) = sum_i p_i (ln p_i - ln q_i) for probability rows ``(..., C)``.

    0 ln 0 is taken as 0 (``torch.xlogy``); ``q`` is clamped at ``eps`` to stay finite.
    Zero for identical distributions, positive otherwise.
    """
    return (torch.xlogy(p, p) - p * torch.log(q.clamp_min(eps))).sum(-1)


def prediction_covariance(probs: torch.Tensor) -> torch.Tensor:
    """The ``(C, C)`` covariance matrix of the predicted distributions ``probs`` ``(N, C)``.

    Hinton et al. 2015, sec. 5.3: classes the generalist often predicts *together* (mass
    shared between them on the same examples) have a large covariance.
    """
    if probs.dim() != 2 or len(probs) < 2:
        raise ValueError(f"probs has shape {tuple(probs.shape)}: expected (N, C) with N >= 2")
    centred = probs.double() - probs.double().mean(0, keepdim=True)
    return (centred.T @ centred / (len(probs) - 1)).float()


def clustering_matrix(probs: torch.Tensor | None = None, *, covariance: torch.Tensor | None = None,
                      normalize: bool = True) -> torch.Tensor:
    """The ``(C, C)`` matrix whose columns :func:`confusable_groups` clusters.

    The covariance of the predictions (:func:`prediction_covariance`, Hinton et al. 2015,
    sec. 5.3) or the given ``covariance``; with ``normalize`` the correlation matrix
    cov_ij / sqrt(cov_ii cov_jj) (a deviation from the paper, see :func:`confusable_groups`).
    Plot this matrix to show what was actually clustered.
    """
    if covariance is None:
        if probs is None:
            raise ValueError("clustering_matrix needs probs or covariance, got neither")
        covariance = prediction_covariance(probs)
    cov = covariance.float()
    if normalize:
        d = cov.diagonal().clamp_min(1e-12).sqrt()
        cov = cov / (d[:, None] * d[None, :])
    return cov


def _kmeans(points: torch.Tensor, k: int, seed: int, iters: int = 50, restarts: int = 10):
    """Plain k-means (k-means++ init, ``restarts`` tries, best inertia): labels ``(n,)``."""
    g = torch.Generator().manual_seed(seed)
    n = len(points)
    best, best_inertia = None, float("inf")
    for _ in range(restarts):
        centres = [points[torch.randint(n, (1,), generator=g)].squeeze(0)]
        for _ in range(1, k):
            d = torch.cdist(points, torch.stack(centres)).min(1).values ** 2
            if d.sum() <= 0:
                i = torch.randint(n, (1,), generator=g)
            else:
                i = torch.multinomial(d / d.sum(), 1, generator=g)
            centres.append(points[i].squeeze(0))
        c = torch.stack(centres)
        for _ in range(iters):
            labels = torch.cdist(points, c).argmin(1)
            new = torch.stack([points[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
            if torch.allclose(new, c):
                break
            c = new
        labels = torch.cdist(points, c).argmin(1)
        inertia = ((points - c[labels]) ** 2).sum().item()
        if inertia < best_inertia - 1e-12:
            best, best_inertia = labels, inertia
    return best


def confusable_groups(probs: torch.Tensor, k: int, *, seed: int = 0, min_size: int = 2,
                      covariance: torch.Tensor | None = None, normalize: bool = True) -> list[list[int]]:
    """Clusters of confusable classes (Hinton et al. 2015, sec. 5.3).

    "We apply a clustering algorithm to the covariance matrix of the predictions of our
    generalist model, so that a set of classes S^m that are often predicted together will
    be used as targets for one of our specialist models m.  We applied an on-line version of
    the K-means algorithm to the columns of the covariance matrix."  Here: batch k-means on
    the columns of :func:`clustering_matrix` (from ``probs``, or from ``covariance`` if given).  Returns the
    clusters with at least ``min_size`` classes (a singleton needs no specialist), each sorted,
    ordered by their smallest class.

    ``normalize`` (default) turns the covariance into the correlation matrix
    cov_ij / sqrt(cov_ii cov_jj) before k-means: with few classes the raw columns are dominated
    by each class's own variance (the diagonal), so k-means would group classes by how
    *uncertain* they are rather than by *with whom* they are confused.  ``normalize=False``
    clusters the raw columns.
    """
    cov = clustering_matrix(probs, covariance=covariance, normalize=normalize)
    C = cov.shape[0]
    if not 1 <= k <= C:
        raise ValueError(f"k={k!r} is not allowed: expected an int in [1, {C}] (the number of classes)")
    labels = _kmeans(cov.T.contiguous(), k, seed)
    groups = [sorted(torch.nonzero(labels == j).flatten().tolist()) for j in range(k)]
    return sorted((g for g in groups if len(g) >= min_size), key=lambda g: g[0])


def specialist_targets(y: torch.Tensor, group: Sequence[int]) -> torch.Tensor:
    """Map labels to a specialist's classes: ``group[i] -> i``, every other class -> ``len(group)``
    (the dustbin class, Hinton et al. 2015, sec. 5.2)."""
    lut = torch.full((int(max(int(y.max()) + 1, max(group) + 1)),), len(group), dtype=torch.long)
    lut[torch.as_tensor(list(group))] = torch.arange(len(group))
    return lut.to(y.device)[y]


def specialist_data(data, group: Sequence[int], *, seed: int = 0, extras: bool = False):
    """A specialist's training set (Hinton et al. 2015, sec. 5.2): every example of the special
    subset ``group`` plus as many examples drawn at random from the remaining classes (half and
    half), labelled with :func:`specialist_targets` (its classes + a dustbin class).

    Returns ``(subset, index)`` where ``index`` are the rows of ``data`` used.  ``extras``
    keeps ``data``'s extra tensors (e.g. generalist logits for soft-target fine-tuning).
    """
    if not group or len(set(group)) != len(group):
        raise ValueError(f"group={list(group)!r} is not allowed: expected a non-empty list of distinct classes")
    y = data.y.cpu()
    inside = torch.isin(y, torch.as_tensor(list(group)))
    special = torch.nonzero(inside).flatten()
    rest = torch.nonzero(~inside).flatten()
    g = torch.Generator().manual_seed(seed + 7177)
    rest = rest[torch.randperm(len(rest), generator=g)[:len(special)]]
    index = torch.cat([special, rest]).sort().values
    sub = data.subset(index.to(data.device))
    from ..data.device import DeviceData

    out = DeviceData(sub.x, specialist_targets(sub.y, group), sub.extras if extras else (),
                     sub.augment, sub.name)
    return out, index


def specialist_from_generalist(generalist: nn.Module, group: Sequence[int]) -> nn.Module:
    """A specialist initialised from the generalist (Hinton et al. 2015, sec. 5.2: "each
    specialist model is initialized with the weights of the generalist model").  The ``head`` layer gets
    ``len(group) + 1`` outputs: the generalist's rows for the special classes and, for the
    dustbin, the mean of the other rows with bias ``mean + ln(#others)`` (a log-sum-exp
    approximation), so at initialisation it predicts about what the generalist does."""
    spec = copy.deepcopy(generalist)
    old = generalist.head
    others = [c for c in range(old.out_features) if c not in set(group)]
    head = nn.Linear(old.in_features, len(group) + 1).to(old.weight.device)
    with torch.no_grad():
        idx = torch.as_tensor(list(group), device=old.weight.device)
        head.weight[:-1] = old.weight[idx]
        head.bias[:-1] = old.bias[idx]
        oth = torch.as_tensor(others, device=old.weight.device)
        head.weight[-1] = old.weight[oth].mean(0)
        head.bias[-1] = old.bias[oth].mean() + torch.log(torch.tensor(float(len(others))))
    spec.head = head
    return spec


def aggregate_to_group(q: torch.Tensor, group: Sequence[int]) -> torch.Tensor:
    """q ``(N, C)`` aggregated to a specialist's classes: ``[q_c for c in group] + [sum of the rest]``."""
    idx = torch.as_tensor(list(group), device=q.device)
    inside = q[:, idx]
    return torch.cat([inside, (q.sum(1) - inside.sum(1)).clamp_min(0.0)[:, None]], dim=1)


def aggregate_logits(z: torch.Tensor, group: Sequence[int], temperature: float = 1.0) -> torch.Tensor:
    """Logits ``z`` ``(N, C)`` aggregated to a specialist's classes:
    ``[z_c for c in group] + [T * logsumexp_{j not in group}(z_j / T)]``.

    Exactly the logits whose softmax at temperature T is the aggregated softmax at T:
    exp(z_d / T) = sum_{j not in group} exp(z_j / T), so
    softmax(aggregate_logits(z, g, T) / T) == aggregate_to_group(softmax(z / T), g).
    The dustbin logit depends on T: for T >= 1, T logsumexp(z/T) >= logsumexp(z) (the
    1/T-norm of exp(z) is at least its 1-norm), with equality only when a single class
    carries all the dustbin mass.  A specialist trained at T on the T-aggregated target
    therefore learns a dustbin logit that is too large at T = 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature!r} is not allowed: expected a float > 0")
    idx = torch.as_tensor(list(group), device=z.device)
    keep = torch.ones(z.shape[1], dtype=torch.bool, device=z.device)
    keep[idx] = False
    if not keep.any():
        raise ValueError(f"group={list(group)!r} covers all {z.shape[1]} classes: no dustbin left")
    dust = temperature * torch.logsumexp(z[:, keep] / temperature, dim=1, keepdim=True)
    return torch.cat([z[:, idx], dust], dim=1)


def specialist_soft_targets(generalist_logits: torch.Tensor, group: Sequence[int],
                            temperature: float) -> torch.Tensor:
    """Soft targets for a specialist at temperature T, consistent with its use at T = 1.

    The generalist's logits are aggregated in logit space at the inference temperature 1
    (dustbin logit logsumexp over the non-group classes, :func:`aggregate_logits`) and then
    softened: softmax(aggregate_logits(z, g, 1) / T).  A specialist that matches these targets
    exactly has logits aggregate_logits(z, g, 1) + const, so at T = 1 it reproduces the
    generalist's aggregated probabilities aggregate_to_group(softmax(z), g), for every T.
    (Summing the generalist's probabilities at T instead, aggregate_to_group(softmax(z/T), g),
    is the target of the dustbin logit T logsumexp(z/T), too large at T = 1 for T > 1.)
    """
    z = generalist_logits if generalist_logits.is_floating_point() else generalist_logits.float()
    return F.softmax(aggregate_logits(z, group, 1.0) / temperature, dim=1)


def dustbin_log_shift(y: torch.Tensor, group: Sequence[int]) -> float:
    """The correction for a specialist's oversampled training set (Hinton et al. 2015, sec. 5.2:
    "we can correct for the biased training set by incrementing the logit of the dustbin class
    by the log of the proportion by which the specialist class is oversampled").

    With pi the fraction of the group's classes among the full training labels ``y`` and rho
    their fraction in :func:`specialist_data` (all of them plus as many others, so rho = 1/2
    unless the group is the majority), a specialist trained with cross-entropy estimates
    p(c | x) reweighted by rho/pi for its classes and (1-rho)/(1-pi) for the dustbin; adding
    ln[rho (1 - pi) / (pi (1 - rho))] to the dustbin logit undoes that (prior shift), e.g.
    ln((1 - pi) / pi) for rho = 1/2.
    """
    y = torch.as_tensor(y).cpu()
    inside = torch.isin(y, torch.as_tensor(list(group)))
    n_in, n_out = int(inside.sum()), int((~inside).sum())
    if n_in == 0 or n_out == 0:
        raise ValueError(f"group={list(group)!r} has {n_in} of {len(y)} labels: expected some inside and some outside")
    pi = n_in / len(y)
    rho = n_in / (n_in + min(n_in, n_out))
    return math.log(rho * (1 - pi) / (pi * (1 - rho)))


def correct_dustbin(logits: torch.Tensor, shift: float) -> torch.Tensor:
    """A specialist's logits ``(N, |group| + 1)`` with ``shift`` added to the dustbin (the last)
    logit (:func:`dustbin_log_shift`); a copy."""
    out = logits.clone()
    out[:, -1] += shift
    return out


def active_specialists(p_generalist: torch.Tensor, groups: Sequence[Sequence[int]], top_n: int = 1) -> torch.Tensor:
    """``(N, M)`` bool: specialist m is active for an example when its subset meets the generalist's
    ``top_n`` most probable classes (Hinton et al. 2015, sec. 5.4, step 1)."""
    top = p_generalist.topk(top_n, dim=1).indices
    cols = [torch.isin(top, torch.as_tensor(list(g), device=top.device)).any(1) for g in groups]
    if not cols:
        return torch.zeros(len(p_generalist), 0, dtype=torch.bool, device=p_generalist.device)
    return torch.stack(cols, 1)


def combination_objective(q_logits: torch.Tensor, p_generalist: torch.Tensor,
                          specialist_probs: Sequence[torch.Tensor], groups: Sequence[Sequence[int]],
                          active: torch.Tensor) -> torch.Tensor:
    """Per-example objective of Hinton et al. 2015, eq. 5, with q = softmax(q_logits):
    KL(p_g || q) + sum_m active[:, m] * KL(p_m || q^m)  (q^m from :func:`aggregate_to_group`)."""
    q = F.softmax(q_logits, dim=1)
    loss = kl_rows(p_generalist, q)
    for m, (p_m, g) in enumerate(zip(specialist_probs, groups)):
        loss = loss + active[:, m].to(q.dtype) * kl_rows(p_m, aggregate_to_group(q, g))
    return loss


def combine_specialists(p_generalist: torch.Tensor, specialist_probs: Sequence[torch.Tensor],
                        groups: Sequence[Sequence[int]], *, active: torch.Tensor | None = None,
                        top_n: int = 1, steps: int = 200, lr: float = 0.5,
                        return_history: bool = False):
    """The combined class distribution q of Hinton et al. 2015, sec. 5.4 (eq. 5).

    ``p_generalist`` ``(N, C)``; ``specialist_probs[m]`` ``(N, |groups[m]| + 1)`` (its classes,
    then the dustbin); ``active`` ``(N, M)`` bool (default :func:`active_specialists` with
    ``top_n``).  q = softmax(z) with z initialised at ln p_g and improved by ``steps`` plain
    gradient-descent steps of size ``lr`` on the summed :func:`combination_objective` (the
    gradient w.r.t. z is sum_terms (q - target)-like and bounded, so a fixed step converges;
    Adam would amplify float noise where the gradient is ~0).  An example with no active
    specialist keeps q = p_g (its start is already the minimum: zero gradient).  Returns q
    (and the per-step mean objective if ``return_history``).
    """
    if len(specialist_probs) != len(groups):
        raise ValueError(f"got {len(specialist_probs)} specialist outputs for {len(groups)} groups")
    if active is None:
        active = active_specialists(p_generalist, groups, top_n)
    p_g = p_generalist.detach().float()
    sp = [p.detach().float() for p in specialist_probs]
    z = torch.log(p_g.clamp_min(1e-12)).clone().requires_grad_(True)
    opt = torch.optim.SGD([z], lr=lr)
    hist = []
    with torch.enable_grad():
        for _ in range(steps):
            loss = combination_objective(z, p_g, sp, groups, active)
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            hist.append(loss.mean().item())
    with torch.no_grad():
        z_final = z.detach()
        idle = ~active.any(1) if active.numel() else torch.ones(len(p_g), dtype=torch.bool)
        q = F.softmax(z_final, dim=1)
        q[idle] = p_g[idle]  # exactly the generalist where no specialist speaks
        hist.append(combination_objective(torch.log(q.clamp_min(1e-12)), p_g, sp, groups, active).mean().item())
    return (q, hist) if return_history else q


def soft_target_objective(model: nn.Module, batch: tuple):
    """Cross-entropy against soft targets carried in the batch (``(x, y, target_probs)``):
    -sum_i p_i ln q_i, the soft term of Hinton 2015 at T = 1 (equal to KL(p||q) + H(p))."""
    x, y, p = batch[0], batch[1], batch[2]
    logits = model(x)
    return -(p * F.log_softmax(logits, dim=1)).sum(1).mean(), logits


class SpecialistObjective:
    """Objective for a specialist with soft targets (Hinton et al. 2015, sec. 6.1, a proposal the paper did not evaluate): the batch
    carries ``(x, y, target_probs)`` where ``target_probs`` are the generalist's distributions
    aggregated to the specialist's classes + dustbin and softened at temperature T
    (:func:`specialist_soft_targets`).  L = alpha T^2 KL(targets || softmax(z/T)) + (1 - alpha) CE(z, y)."""

    def __init__(self, temperature: float = 2.0, alpha: float = 0.5):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha!r} is not allowed: expected a float in [0, 1]")
        self.temperature, self.alpha = float(temperature), float(alpha)

    def __call__(self, model: nn.Module, batch: tuple):
        x, y, p = batch[0], batch[1], batch[2]
        z = model(x)
        T = self.temperature
        soft = F.kl_div(F.log_softmax(z / T, dim=1), p, reduction="batchmean") * T * T
        return self.alpha * soft + (1 - self.alpha) * F.cross_entropy(z, y), z

    def config(self) -> dict:
        return {"method": "specialist-soft", "T": self.temperature, "alpha": self.alpha}


def train_specialist(name: str, generalist: nn.Module, group: Sequence[int], splits, train_config, *,
                     seed: int, soft: bool = False, temperature: float = 2.0, alpha: float = 0.5,
                     device="auto", progress=None):
    """Train (or load from the cache) one specialist for ``group`` (Hinton et al. 2015, sec. 5.2):
    initialised from ``generalist`` (:func:`specialist_from_generalist`), trained on
    :func:`specialist_data` with hard labels (``soft=False``) or with
    :class:`SpecialistObjective` soft targets from the generalist (``soft=True``,
    :func:`specialist_soft_targets`).  The returned model is uncorrected: add
    :func:`dustbin_log_shift` to its dustbin logit at inference (:func:`correct_dustbin`).
    Specialists depend only on the generalist, so they can be trained in parallel (separate
    processes share the cache).  Returns ``(model, history, cached)``."""
    from ..cache import model_identity
    from ..train import predict, train_cached

    data, index = specialist_data(splits.train, group, seed=seed)
    objective, obj_cfg = None, {"method": "ce"}
    if soft:
        full = splits.train.subset(index.to(splits.train.device))
        targets = specialist_soft_targets(predict(generalist, full, device=device), group, temperature)
        data = data.with_extras(targets.to(data.device))
        objective = SpecialistObjective(temperature, alpha)
        obj_cfg = {**objective.config(), "targets": "logit-aggregated at T=1"}
    key = {"generalist": model_identity(generalist), "group": list(group), "data": splits.config(),
           "objective": obj_cfg}
    return train_cached(name, key, lambda: specialist_from_generalist(generalist, group), data, train_config,
                        objective=objective, seed=seed, device=device, progress=progress)
