"""Feature-based distillation: FitNets hints (Romero et al. 2015) and attention transfer
(Zagoruyko & Komodakis 2017), plus an objective that adds any feature loss to CE or KD.

Every model of :mod:`nncompress.models` returns ``(logits, features)`` from
``model(x, return_features=True)``; the losses here take those named features.

Conventions (reference implementations differ on them; the choice changes the scale of
the loss and therefore the right weight ``beta``):

* **FitNets hint loss** (Romero et al. 2015, eq. 3):
  ``L_HT = 1/2 || u_h(x) - r(v_g(x)) ||^2`` with teacher hint ``u_h``, student guided
  layer ``v_g`` and regressor ``r``.  ``reduction="mean"`` (default, RepDistiller's
  ``nn.MSELoss``) averages the squared difference over every element;
  ``reduction="paper"`` is eq. 3 literally: half the squared L2 norm per sample,
  averaged over the batch.
* **Attention maps** (Zagoruyko & Komodakis 2017, sec. 3.1): ``F(A) = sum_c |A_c|^p``
  (``mode="paper"``) or ``mean_c |A_c|^p`` (``mode="mean"``, the authors' and
  RepDistiller's code), flattened and L2-normalised per sample.  After normalisation
  the two are *identical* (the factor 1/C cancels); the mode matters for the
  un-normalised map and for the loss:
* **AT loss** (eq. 2): ``mode="paper"``: ``1/2 sum_j mean_batch || Q_S/||Q_S|| - Q_T/||Q_T|| ||_2``
  (the L2 norm of the difference, not squared; the paper's beta/2 with beta left to the
  caller); ``mode="mean"``: ``sum_j mean_{batch, positions} (Q_S - Q_T)^2`` (the reference
  code; RepDistiller uses beta = 1000 with it).
* Maps of different spatial size are brought to the smaller size by adaptive average
  pooling of the (un-normalised) map before normalisation.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import cpu_state, model_identity

AT_MODES = ("mean", "paper")
HINT_REDUCTIONS = ("mean", "paper")


# ---------------------------------------------------------------- FitNets

def make_regressor(student_channels: int, teacher_channels: int, spatial: bool = True,
                   kernel_size: int = 1, dims: int = 2) -> nn.Module:
    """The FitNets regressor ``r``: maps the student's guided layer to the teacher's hint shape.

    ``spatial=True``: a ``kernel_size`` x ``kernel_size`` convolution (``dims=2`` images,
    ``dims=1`` sequences), padding keeps the spatial size (Romero et al. use a conv
    regressor, sec. 2.2, because it needs far fewer parameters than a fully connected one);
    ``spatial=False``: a ``Linear`` layer for vector features (e.g. ``pool``).
    """
    if student_channels < 1 or teacher_channels < 1:
        raise ValueError(f"student_channels={student_channels!r}, teacher_channels={teacher_channels!r}: "
                         "expected ints >= 1")
    if not spatial:
        return nn.Linear(student_channels, teacher_channels)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size={kernel_size!r} is not allowed: expected an odd int >= 1")
    if dims not in (1, 2):
        raise ValueError(f"dims={dims!r} is not allowed: expected 1 or 2")
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    return conv(student_channels, teacher_channels, kernel_size, padding=kernel_size // 2)


def _match_spatial(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[2:]) == tuple(size):
        return x
    pool = F.adaptive_avg_pool2d if x.dim() == 4 else F.adaptive_avg_pool1d
    return pool(x, tuple(size))


def fitnet_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor, regressor: nn.Module | None,
                reduction: str = "mean") -> torch.Tensor:
    """Romero et al. 2015, eq. 3: ``1/2 || u_h(x) - r(v_g(x)) ||^2``.

    ``student_feat`` is the guided layer ``v_g``, ``teacher_feat`` the hint ``u_h`` (taken
    as a constant: detached), ``regressor`` the trainable ``r`` (``None``: identity, for
    equal shapes).  If the regressed map is larger spatially than the hint it is
    average-pooled to the hint's size.  ``reduction="mean"``: mean squared error over all
    elements (no 1/2); ``"paper"``: 1/2 x squared L2 norm per sample, mean over the batch.
    """
    if reduction not in HINT_REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not allowed: expected one of {', '.join(HINT_REDUCTIONS)}")
    r = regressor(student_feat) if regressor is not None else student_feat
    t = teacher_feat.detach()
    if r.dim() > 2:
        r = _match_spatial(r, t.shape[2:])
    if r.shape != t.shape:
        raise ValueError(f"fitnet_loss: regressed student feature {tuple(r.shape)} does not match "
                         f"the teacher hint {tuple(t.shape)}; check the regressor's channels")
    if reduction == "mean":
        return F.mse_loss(r, t)
    return 0.5 * (r - t).pow(2).flatten(1).sum(1).mean()


class FitNetHintObjective:
    """FitNets stage 1 (Romero et al. 2015, sec. 2.2, Algorithm 1): train the student *up to
    the guided layer*, together with the regressor, to predict the teacher's hint.

    Only the layers before the guided layer (and the regressor, passed to ``fit`` as
    ``extra_modules=[objective.regressor]``) receive gradients; the rest of the student is
    untouched.  Returns ``(loss, student_logits)`` (the logits are meaningless in stage 1).
    Stage 2 trains the whole student with KD (:class:`~nncompress.distill.KDObjective`).
    """

    def __init__(self, teacher: nn.Module, student_layer: str, teacher_layer: str,
                 regressor: nn.Module, reduction: str = "mean"):
        self.teacher, self.student_layer, self.teacher_layer = teacher, student_layer, teacher_layer
        self.regressor, self.reduction = regressor, reduction
        teacher.eval()

    def __call__(self, model: nn.Module, batch: tuple):
        x = batch[0]
        with torch.no_grad():
            _, t_feats = self.teacher(x, return_features=True)
        logits, s_feats = model(x, return_features=True)
        _check_layer(s_feats, self.student_layer, "student_layer")
        _check_layer(t_feats, self.teacher_layer, "teacher_layer")
        loss = fitnet_loss(s_feats[self.student_layer], t_feats[self.teacher_layer], self.regressor,
                           self.reduction)
        return loss, logits

    def config(self) -> dict:
        return {"method": "fitnet-hint", "student_layer": self.student_layer,
                "teacher_layer": self.teacher_layer, "reduction": self.reduction,
                "regressor": repr(self.regressor), "teacher": model_identity(self.teacher)}


def _check_layer(feats, name, param):
    if name not in feats:
        raise ValueError(f"{param}={name!r} is not a feature of the model: expected one of {', '.join(feats)}")


# ---------------------------------------------------------------- attention transfer

def attention_map(feat: torch.Tensor, p: float = 2, mode: str = "mean", normalize: bool = True,
                  size: Sequence[int] | None = None) -> torch.Tensor:
    """Activation-based spatial attention map (Zagoruyko & Komodakis 2017, sec. 3.1).

    ``feat``: ``(N, C, H, W)`` (or ``(N, C, L)``).  Aggregate over channels ``|A_c|^p``:
    sum (``mode="paper"``, ``F_sum^p``) or mean (``mode="mean"``, the reference code);
    optionally average-pool to ``size``; flatten to ``(N, H*W)``; and, with
    ``normalize=True``, divide each row by its L2 norm (then both modes agree).
    Larger ``p`` puts more weight on the most active positions.
    """
    if mode not in AT_MODES:
        raise ValueError(f"mode={mode!r} is not allowed: expected one of {', '.join(AT_MODES)}")
    if not p > 0:
        raise ValueError(f"p={p!r} is not allowed: expected a number > 0")
    if feat.dim() < 3:
        raise ValueError(f"attention_map needs a (N, C, H, W) or (N, C, L) feature, got shape {tuple(feat.shape)}")
    a = feat.abs().pow(p)
    a = a.sum(1) if mode == "paper" else a.mean(1)
    if size is not None and tuple(a.shape[1:]) != tuple(size):
        a = _match_spatial(a.unsqueeze(1), size).squeeze(1)
    a = a.flatten(1)
    return F.normalize(a, p=2, dim=1) if normalize else a


def at_loss(student_feats, teacher_feats, p: float = 2, mode: str = "mean") -> torch.Tensor:
    """Attention-transfer loss (Zagoruyko & Komodakis 2017, eq. 2), summed over layer pairs.

    ``student_feats`` / ``teacher_feats``: a tensor or equally long sequences of tensors.
    Per pair both maps are pooled to the smaller spatial size, then
    ``mode="mean"``: ``mean_{batch, positions} (Q_S - Q_T)^2``;
    ``mode="paper"``: ``1/2 mean_batch ||Q_S - Q_T||_2``.  Multiply by ``beta`` outside.
    Channel counts may differ (the maps have one channel); the teacher is detached.
    """
    if isinstance(student_feats, torch.Tensor):
        student_feats, teacher_feats = [student_feats], [teacher_feats]
    if len(student_feats) != len(teacher_feats):
        raise ValueError(f"at_loss: {len(student_feats)} student features but {len(teacher_feats)} teacher features")
    total = 0.0
    for s, t in zip(student_feats, teacher_feats):
        size = tuple(min(a, b) for a, b in zip(s.shape[2:], t.shape[2:]))
        qs = attention_map(s, p, mode, size=size)
        qt = attention_map(t.detach(), p, mode, size=size)
        if mode == "mean":
            total = total + (qs - qt).pow(2).mean()
        else:
            total = total + 0.5 * (qs - qt).norm(p=2, dim=1).mean()
    return total


# ---------------------------------------------------------------- objectives

def _loss_registry() -> dict[str, Callable]:
    from .relational import rkd_angle_loss, rkd_distance_loss, rkd_loss, sp_loss

    return {"at": at_loss, "sp": sp_loss, "rkd": rkd_loss, "rkd-d": rkd_distance_loss,
            "rkd-a": rkd_angle_loss, "fitnet": fitnet_loss}


FEATURE_LOSSES = ("at", "sp", "rkd", "rkd-d", "rkd-a", "fitnet")


class FeatureKDObjective:
    """CE (or KD) plus ``beta`` x a feature loss between student and teacher features.

    ``L = base + beta * sum_j loss_fn(S[student_layers[j]], T[teacher_layers[j]], **loss_kwargs)``

    ``base`` is cross-entropy when ``kd is None``, else ``kd_loss`` with ``kd``'s
    temperature and alpha (``kd`` is a :class:`~nncompress.distill.KDObjective`).
    ``loss_fn`` is a name in :data:`FEATURE_LOSSES` (``"at"``, ``"sp"``, ``"rkd"``,
    ``"rkd-d"``, ``"rkd-a"``) or a callable ``(student_feat, teacher_feat) -> loss``.
    The teacher runs under ``no_grad`` on every batch, unless the batch carries its
    outputs precomputed as ``(x, y, teacher_logits, *teacher_features)`` (one feature per
    entry of ``teacher_layers``; see :func:`teacher_outputs`), valid without augmentation.
    For ``"fitnet"`` pass ``regressors`` (one per pair; also give them to ``fit`` as
    ``extra_modules``).  ``config()`` describes it for cache keys.
    """

    def __init__(self, teacher: nn.Module, student_layers: Sequence[str] | str,
                 teacher_layers: Sequence[str] | str, loss_fn: str | Callable = "at",
                 beta: float = 1.0, kd=None, loss_kwargs: dict | None = None,
                 regressors: Sequence[nn.Module] | None = None):
        if isinstance(student_layers, str):
            student_layers = [student_layers]
        if isinstance(teacher_layers, str):
            teacher_layers = [teacher_layers]
        if len(student_layers) != len(teacher_layers):
            raise ValueError(f"student_layers={list(student_layers)} and teacher_layers={list(teacher_layers)} "
                             "must have the same length")
        if isinstance(loss_fn, str):
            if loss_fn not in FEATURE_LOSSES:
                raise ValueError(f"loss_fn={loss_fn!r} is not allowed: expected one of {', '.join(FEATURE_LOSSES)} "
                                 "or a callable")
            self.loss_name, self.loss_fn = loss_fn, _loss_registry()[loss_fn]
        else:
            self.loss_name, self.loss_fn = getattr(loss_fn, "__name__", repr(loss_fn)), loss_fn
        if self.loss_name == "fitnet" and (regressors is None or len(regressors) != len(student_layers)):
            raise ValueError("loss_fn='fitnet' needs one regressor per layer pair (regressors=[...])")
        if beta < 0:
            raise ValueError(f"beta={beta!r} is not allowed: expected a float >= 0")
        self.teacher, self.beta, self.kd = teacher, float(beta), kd
        self.student_layers, self.teacher_layers = list(student_layers), list(teacher_layers)
        self.loss_kwargs = dict(loss_kwargs or {})
        self.regressors = list(regressors) if regressors is not None else None
        teacher.eval()

    def feature_loss(self, s_feats, t_feats) -> torch.Tensor:
        total = 0.0
        for j, (a, b) in enumerate(zip(self.student_layers, self.teacher_layers)):
            _check_layer(s_feats, a, "student_layers")
            _check_layer(t_feats, b, "teacher_layers")
            if self.loss_name == "fitnet":
                total = total + self.loss_fn(s_feats[a], t_feats[b], self.regressors[j], **self.loss_kwargs)
            else:
                total = total + self.loss_fn(s_feats[a], t_feats[b], **self.loss_kwargs)
        return total

    def __call__(self, model: nn.Module, batch: tuple):
        from .kd import kd_loss

        x, y = batch[0], batch[1]
        if len(batch) == 3 + len(self.teacher_layers):  # precomputed: (x, y, logits, *features)
            t_logits = batch[2]
            t_feats = dict(zip(self.teacher_layers, batch[3:]))
        else:
            with torch.no_grad():
                t_logits, t_feats = self.teacher(x, return_features=True)
        s_logits, s_feats = model(x, return_features=True)
        if self.kd is None:
            base = F.cross_entropy(s_logits, y)
        else:
            base = kd_loss(s_logits, t_logits, y, self.kd.temperature, self.kd.alpha)
        if self.beta == 0.0:
            return base, s_logits
        return base + self.beta * self.feature_loss(s_feats, t_feats), s_logits

    def config(self) -> dict:
        return {"method": f"feature-{self.loss_name}", "beta": self.beta,
                "student_layers": self.student_layers, "teacher_layers": self.teacher_layers,
                "loss_kwargs": self.loss_kwargs,
                "kd": None if self.kd is None else {"T": self.kd.temperature, "alpha": self.kd.alpha},
                "teacher": model_identity(self.teacher)}


@torch.no_grad()
def hint_cosine(student: nn.Module, teacher: nn.Module, regressor: nn.Module, data, student_layer: str,
                teacher_layer: str, *, n: int = 512) -> float:
    """Mean cosine similarity (per sample, over the flattened map) between the regressed
    guided layer ``r(v_g(x))`` and the teacher's hint ``u_h(x)`` on the first ``n`` samples."""
    student.eval(); teacher.eval(); regressor.eval()
    x = data.x[:n]
    _, s = student(x, return_features=True)
    _, t = teacher(x, return_features=True)
    r = regressor(s[student_layer])
    t = t[teacher_layer]
    if r.dim() > 2:
        r = _match_spatial(r, t.shape[2:])
    return F.cosine_similarity(r.flatten(1), t.flatten(1), dim=1).mean().item()


def train_fitnet(name: str, student_config: dict, splits, stage1_config, stage2_config, *,
                 seed: int, teacher: nn.Module, student_layer: str, teacher_layer: str,
                 temperature: float = 4.0, alpha: float = 0.9, kernel_size: int = 1,
                 train_data=None, subset_config: dict | None = None, device="auto", progress=None):
    """FitNets end to end (Romero et al. 2015, Algorithm 1), cached as one entry.

    Stage 1: :class:`FitNetHintObjective` trains the student's layers up to
    ``student_layer`` and a fresh regressor (``make_regressor``) on the teacher's
    ``teacher_layer`` hint for ``stage1_config`` epochs.  Stage 2: starting from those
    weights, the whole student is trained with KD (``temperature``, ``alpha``) for
    ``stage2_config``.  Returns ``(student, info)`` with ``info`` holding ``"stage1"``
    (the student after stage 1), ``"regressor"``, ``"regressor_init"`` (before stage 1),
    ``"init"`` (the student before stage 1), ``"history1"``, ``"history2"`` and ``"cached"``.
    """
    from .. import cache, models
    from ..train import History, TrainConfig, fit, select_device
    from .kd import KDObjective

    s1, s2 = TrainConfig.coerce(stage1_config), TrainConfig.coerce(stage2_config)
    dev = select_device(device)
    data = train_data if train_data is not None else splits.train
    probe = models.for_data(student_config, splits)
    x0 = splits.train.x[:2].to(dev)
    with torch.no_grad():
        _, sf = probe.to(dev)(x0, return_features=True)
        _, tf = teacher.to(dev).eval()(x0, return_features=True)
    _check_layer(sf, student_layer, "student_layer")
    _check_layer(tf, teacher_layer, "teacher_layer")
    spatial = sf[student_layer].dim() > 2
    reg_args = (sf[student_layer].shape[1], tf[teacher_layer].shape[1], spatial, kernel_size,
                max(1, sf[student_layer].dim() - 2))
    key = {"model": student_config, "data": splits.config(), "stage1": s1.to_dict(), "stage2": s2.to_dict(),
           "seed": seed, "objective": {"method": "fitnet", "student_layer": student_layer,
                                       "teacher_layer": teacher_layer, "T": temperature, "alpha": alpha,
                                       "kernel_size": kernel_size, "subset": subset_config,
                                       "teacher": model_identity(teacher)}}

    def build():
        torch.manual_seed(seed)
        m = models.for_data(student_config, splits)
        torch.manual_seed(seed + 1)
        r = make_regressor(*reg_args)
        return m, r

    def compute():
        m, r = build()
        init, r_init = cpu_state(m), cpu_state(r)
        obj1 = FitNetHintObjective(teacher, student_layer, teacher_layer, r)
        h1 = fit(m, data, s1, objective=obj1, extra_modules=[r], device=dev, seed=seed,
                 progress=progress, desc=f"{name} stage 1")
        stage1 = cpu_state(m)
        h2 = fit(m, data, s2, objective=KDObjective(teacher, temperature, alpha),
                 val=splits.val if len(splits.val) else splits.test, device=dev, seed=seed,
                 progress=progress, desc=f"{name} stage 2")
        return {"state_dict": cpu_state(m), "stage1": stage1, "init": init, "regressor": cpu_state(r),
                "regressor_init": r_init, "history1": h1.to_dict(), "history2": h2.to_dict()}

    value, cached = cache.get_or_compute(name, key, compute)
    out = {}
    for k in ("state_dict", "stage1", "init"):
        m = models.for_data(student_config, splits)
        m.load_state_dict(value[k])
        out[k] = m.to(dev).eval()
    regs = {}
    for k in ("regressor", "regressor_init"):
        r = make_regressor(*reg_args)
        r.load_state_dict(value[k])
        regs[k] = r.to(dev).eval()
    student = out["state_dict"]
    student.cache_key = cache.cache_key({"name": name, **key})
    info = {"stage1": out["stage1"], "init": out["init"], **regs,
            "history1": History.from_dict(value["history1"]), "history2": History.from_dict(value["history2"]),
            "cached": cached}
    return student, info


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, data, layers: Sequence[str], *, batch_size: int = 500):
    """The teacher's logits and ``layers`` features on every sample of ``data`` (in order),
    on ``data``'s device: ``[logits, feat_1, ...]`` to attach with ``data.with_extras(*...)``."""
    teacher.eval()
    outs = None
    for i in range(0, len(data), batch_size):
        logits, feats = teacher(data.x[i:i + batch_size], return_features=True)
        row = [logits] + [feats[name] for name in layers]
        outs = [[r] for r in row] if outs is None else [o + [r] for o, r in zip(outs, row)]
    return [torch.cat(o) for o in outs]


METHODS = ("ce", "kd", "at", "sp", "rkd", "rkd-d", "rkd-a", "fitnet")


def train_feature_student(name: str, student_config: dict, splits, train_config, *, seed: int,
                          n_labelled: int, teacher: nn.Module, method: str, beta: float = 0.0,
                          student_layers: Sequence[str] = (), teacher_layers: Sequence[str] = (),
                          kd: bool = True, temperature: float = 4.0, alpha: float = 0.9,
                          loss_kwargs: dict | None = None, hint_config=None, device="auto", progress=None,
                          return_info: bool = False):
    """Train (or load) a student with one distillation method on ``n_labelled`` training samples.

    ``method``: ``"ce"`` (scratch), ``"kd"`` (Hinton), ``"at"``/``"sp"``/``"rkd"``/``"rkd-d"``/
    ``"rkd-a"`` (:class:`FeatureKDObjective` with weight ``beta``, plus KD when ``kd``) or
    ``"fitnet"`` (two stages, :func:`train_fitnet`; ``hint_config`` is the stage-1 training
    config, ``student_layers[0]``/``teacher_layers[0]`` the guided layer and the hint).  The
    subset, initialisation and batches are those of :func:`~nncompress.distill.train_student`
    for the same ``(n_labelled, seed)``: comparisons are paired.  The teacher's outputs are
    computed once and attached to the batches.  Returns ``(model, history, cached)``;
    for ``"fitnet"`` with ``return_info=True``, ``(model, info, cached)`` with the
    :func:`train_fitnet` info (stage-1 student, regressor before/after, both histories).
    """
    from ..train import get_or_train
    from .kd import KDObjective, labelled_subset, teacher_logits

    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed: expected one of {', '.join(METHODS)}")
    subset, _, sub_cfg = labelled_subset(splits.train, n_labelled, seed)
    kd_obj = KDObjective(None, temperature, alpha) if (kd or method == "kd") else None
    if method == "ce":
        return get_or_train(name, student_config, splits, train_config, seed=seed,
                            objective_config={"method": "ce", "subset": sub_cfg}, train_data=subset,
                            device=device, progress=progress)
    if method in ("kd", "fitnet"):
        subset = subset.with_extras(teacher_logits(teacher, subset, device=device).to(subset.device))
    if method == "kd":
        obj = KDObjective(None, temperature, alpha)
        cfg = {**obj.config(), "teacher": model_identity(teacher), "subset": sub_cfg}
        return get_or_train(name, student_config, splits, train_config, seed=seed, objective=obj,
                            objective_config=cfg, train_data=subset, device=device, progress=progress)
    if method == "fitnet":
        model, info = train_fitnet(name, student_config, splits, hint_config, train_config, seed=seed,
                                   teacher=teacher, student_layer=student_layers[0],
                                   teacher_layer=teacher_layers[0], temperature=temperature, alpha=alpha,
                                   train_data=subset, subset_config=sub_cfg, device=device, progress=progress)
        return model, (info if return_info else info["history2"]), info["cached"]
    obj = FeatureKDObjective(teacher, student_layers, teacher_layers, method, beta, kd=kd_obj,
                             loss_kwargs=loss_kwargs)
    subset = subset.with_extras(*[t.to(subset.device) for t in teacher_outputs(teacher, subset, obj.teacher_layers)])
    return get_or_train(name, student_config, splits, train_config, seed=seed, objective=obj,
                        objective_config={**obj.config(), "subset": sub_cfg}, train_data=subset,
                        device=device, progress=progress)
