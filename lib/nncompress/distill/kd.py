"""Hinton et al. 2015 knowledge distillation: the loss, its objective, labelled subsets and students.

Conventions are spelled out because libraries silently differ on them:

* KL divergence uses ``batchmean`` reduction (sum over classes, mean over the batch),
  which is the mathematical KL per sample; ``reduction="mean"`` would also divide by
  the number of classes.
* The soft term is multiplied by T^2 (Hinton et al. 2015, sec. 2): the gradient of the
  soft cross-entropy w.r.t. a logit is (1/T)(q_i - p_i), which for large T is about
  (z_i - v_i)/(N T^2); multiplying by T^2 keeps the soft term's gradient magnitude
  roughly independent of T, so ``alpha`` means the same thing at every temperature.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import model_identity


def softmax_t(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax with temperature, Hinton et al. 2015, eq. 1: q_i = exp(z_i/T) / sum_j exp(z_j/T).

    T = 1 is the ordinary softmax; larger T gives a softer distribution that shows the
    "dark knowledge" (the relative probabilities of the wrong classes); T -> infinity
    gives the uniform distribution, T -> 0 the one-hot argmax.
    """
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} is not allowed: expected a float > 0")
    return F.softmax(logits / temperature, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            target: torch.Tensor | None = None, temperature: float = 4.0,
            alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. 2015 distillation loss.

    L = alpha * T^2 * KL( softmax(t/T) || softmax(s/T) ) + (1 - alpha) * CE(s, y)

    with KL in ``batchmean`` reduction.  Since KL(p||q) = H(p, q) - H(p) and H(p) does not
    depend on the student, the gradient w.r.t. the student logit z_i is
    alpha * T^2 * (1/T)(q_i - p_i) / N  (eq. 2 of the paper, times T^2, averaged over the
    batch of N), plus the hard term.  ``target`` may be ``None`` only when ``alpha == 1``
    (pure distillation from soft targets, e.g. on an unlabelled transfer set).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r} is not allowed: expected a float in [0, 1]")
    if target is None and alpha != 1.0:
        raise ValueError("kd_loss: target=None is only allowed with alpha=1 (no hard-label term)")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} is not allowed: expected a float > 0")
    T = temperature
    log_q = F.log_softmax(student_logits / T, dim=-1)
    p = F.softmax(teacher_logits.detach() / T, dim=-1)
    soft = F.kl_div(log_q, p, reduction="batchmean") * (T * T)
    if alpha == 1.0:
        return soft
    hard = F.cross_entropy(student_logits, target)
    return alpha * soft + (1.0 - alpha) * hard


@torch.no_grad()
def teacher_logits(teacher: nn.Module, data, *, device="auto", batch_size: int = 1024) -> torch.Tensor:
    """The teacher's logits on every sample of ``data`` (computed once, for caching).

    With augmentation-free training data the teacher's outputs never change, so they
    can be computed once and attached to the data (``data.with_extras(logits)``)
    instead of running the teacher in every training step.
    """
    from ..train import predict

    return predict(teacher, data, device=device, batch_size=batch_size)


class KDObjective:
    """Training objective for :func:`nncompress.train.fit`: ``kd_loss`` against a teacher.

    If the batch carries a third tensor it is taken as precomputed teacher logits
    (see :func:`teacher_logits`); otherwise the teacher runs on the batch (needed with
    augmentation).  ``config()`` describes the objective for cache keys; the teacher is named
    by :func:`nncompress.cache.model_identity` (its key, or a hash of its weights).
    """

    def __init__(self, teacher: nn.Module | None, temperature: float = 4.0, alpha: float = 0.9):
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        if teacher is not None:
            teacher.eval()

    def __call__(self, model: nn.Module, batch: tuple):
        x, y = batch[0], batch[1]
        if len(batch) > 2:
            t_logits = batch[2]
        else:
            if self.teacher is None:
                raise ValueError("KDObjective needs a teacher or precomputed teacher logits in the batch")
            with torch.no_grad():
                t_logits = self.teacher(x)
        s_logits = model(x)
        return kd_loss(s_logits, t_logits, y, self.temperature, self.alpha), s_logits

    def config(self) -> dict:
        return {"method": "kd", "T": self.temperature, "alpha": self.alpha,
                "teacher": None if self.teacher is None else model_identity(self.teacher)}


def labelled_subset(data, n: int, seed: int, exclude_class: int | None = None):
    """The first ``n`` samples of a seeded permutation of ``data`` (optionally without one class).

    Returns ``(subset, index, config)``; ``config`` identifies the subset in cache keys.
    The same ``(n, seed)`` always gives the same subset, so scratch and KD students of one
    seed see exactly the same labelled examples (a paired comparison).
    """
    if n > len(data):
        raise ValueError(f"n_labelled={n} is not allowed: the training set has only {len(data)} samples")
    g = torch.Generator().manual_seed(seed + 104729)
    idx = torch.randperm(len(data), generator=g)[:n]
    if exclude_class is not None:
        idx = idx[data.y.cpu()[idx] != exclude_class]
    return data.subset(idx), idx, {"n": n, "seed": seed, "exclude_class": exclude_class}


def train_student(name: str, student_config: dict, splits, train_config, *, seed: int,
                  n_labelled: int, teacher: nn.Module | None = None, temperature: float = 4.0,
                  alpha: float = 0.9, exclude_class: int | None = None, device="auto",
                  progress=None):
    """Train (or load from cache) a student on ``n_labelled`` training samples.

    ``teacher=None`` (or ``alpha=0``) trains from scratch with cross-entropy; otherwise with
    :func:`kd_loss` against the teacher's logits, computed once and attached to the
    batches (no augmentation, so they never change).  Returns ``(model, history, cached)``.
    """
    from ..train import get_or_train

    subset, idx, sub_cfg = labelled_subset(splits.train, n_labelled, seed, exclude_class)
    if teacher is None or alpha == 0.0:  # alpha = 0 is exactly cross-entropy: the scratch student
        objective, obj_cfg = None, {"method": "ce"}
    else:
        subset = subset.with_extras(teacher_logits(teacher, subset, device=device).to(subset.device))
        objective = KDObjective(None, temperature, alpha)
        obj_cfg = {**objective.config(), "teacher": model_identity(teacher)}
    return get_or_train(name, student_config, splits, train_config, seed=seed,
                        objective=objective, objective_config={**obj_cfg, "subset": sub_cfg},
                        train_data=subset, device=device, progress=progress)


def tune_class_bias(logits: torch.Tensor, y: torch.Tensor, cls: int,
                    shifts: torch.Tensor | None = None) -> tuple[float, float]:
    """Hinton et al. 2015, sec. 3: raise the bias of a class the transfer set lacked.

    A student distilled on a transfer set with no example of class ``cls`` under-predicts
    it; adding a constant to that class's logit (its output bias) fixes much of it.  The
    shift is chosen to maximise accuracy on held-out ``(logits, y)`` (validation data,
    never the test set).  Returns ``(best_shift, accuracy_at_best_shift)``.
    """
    if shifts is None:
        shifts = torch.linspace(0.0, 10.0, 101)
    best = (0.0, -1.0)
    for s in shifts.tolist():
        z = logits.clone()
        z[:, cls] += s
        acc = (z.argmax(1) == y).float().mean().item()
        if acc > best[1] + 1e-12:
            best = (s, acc)
    return best


def add_class_bias(model: nn.Module, cls: int, shift: float) -> nn.Module:
    """Add ``shift`` to the output bias of class ``cls`` (the model's final ``head`` layer)."""
    with torch.no_grad():
        model.head.bias[cls] += shift
    return model
