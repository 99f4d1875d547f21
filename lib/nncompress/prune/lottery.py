"""Lottery tickets and their controls, and the budgets of training pruned nets from scratch.

* Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020,
  "Linear mode connectivity and the lottery ticket hypothesis"): :func:`lottery_level`,
  each level one cached entry computed from the previous one.
* Controls: random re-init, random mask, sign-preserving re-init (Zhou et al. 2019,
  "Deconstructing lottery tickets"): :func:`control_run`.
* Rethinking the value of pruning (Liu et al. 2019, sec. 4): :func:`scratch_epochs` and
  :func:`scratch_budgets` give the Scratch-E / Scratch-B training budgets.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from ..cache import cpu_state, get_or_compute
from ..models import for_data
from .checks import check_choice, check_ratio
from .masks import SCOPES, apply_masks, keep_masks_callback, remove_masks, weight_layers

CONTROLS = ("ticket", "reinit", "random_mask", "sign")


def next_masks(trained: Mapping[str, torch.Tensor], prev: Mapping[str, torch.Tensor], rate: float,
               scope: str) -> dict[str, torch.Tensor]:
    """The masks of the next IMP level: remove a fraction ``rate`` of the surviving weights
    (``prev > 0``) with the smallest |w| of ``trained`` - one threshold over all layers
    (``scope="global"``) or one per layer (Frankle & Carbin 2019, sec. 2, step 4)."""
    new = {}
    if scope == "global":
        alive = torch.cat([trained[n].abs().flatten()[prev[n].flatten() > 0] for n in prev])
        k = int(round(rate * alive.numel()))
        thr = torch.kthvalue(alive, k).values if k > 0 else torch.tensor(-1.0)
        for n in prev:
            new[n] = ((trained[n].abs() > thr) & (prev[n] > 0)).float()
    else:
        for n in prev:
            alive = trained[n].abs().flatten()[prev[n].flatten() > 0]
            k = int(round(rate * alive.numel()))
            thr = torch.kthvalue(alive, k).values if k > 0 else torch.tensor(-1.0)
            new[n] = ((trained[n].abs() > thr) & (prev[n] > 0)).float()
    return new


def _train_masked(model_config, splits, train_config, start_state, mask_dict, *, seed, device, progress,
                  epochs=None):
    from ..train import TrainConfig, evaluate, fit

    cfg = TrainConfig.coerce(train_config)
    if epochs is not None:
        cfg = TrainConfig(**{**cfg.to_dict(), "epochs": epochs})
    model = for_data(model_config, splits)
    model.load_state_dict(start_state)
    if mask_dict:
        with torch.no_grad():
            for n, mk in mask_dict.items():
                model.get_submodule(n).weight.mul_(mk)
        apply_masks(model, mask_dict)
    hist = fit(model, splits.train, cfg, device=device, seed=seed, progress=progress,
               callbacks=[keep_masks_callback()] if mask_dict else (), desc="ticket")
    remove_masks(model)
    acc = evaluate(model, splits.test, device=device)["acc"]
    return model, hist, acc


def lottery_level(name: str, model_config: dict, splits, train_config, *, level: int, rate: float = 0.2,
                  rewind_epoch: int = 0, scope: str = "global", seed: int = 0, device="cpu",
                  progress: bool | None = False) -> dict:
    """Level ``level`` of iterative magnitude pruning with rewinding (cached, content-addressed).

    Level 0 trains the dense net from its seed's init theta_0 and keeps theta_k (the weights
    after ``rewind_epoch`` epochs; k = 0 is Frankle & Carbin 2019's reset to init, k > 0 the
    rewinding of Frankle et al. 2020).  Level n prunes ``rate`` of the surviving weights of
    level n-1's trained net by magnitude, resets the survivors to theta_k and retrains for
    ``epochs - k`` epochs (a fresh schedule of that length - a simplification).  Each level
    is one :func:`nncompress.cache.get_or_compute` entry computed from the previous one, so
    an interrupted run continues where it stopped.  Returns ``{"level", "sparsity", "acc",
    "masks", "state_dict", "rewind_state"}`` (``rewind_state`` at level 0 only).
    """
    from ..train import TrainConfig, evaluate, fit

    check_choice("scope", scope, SCOPES)
    check_ratio("rate", rate)
    cfg = TrainConfig.coerce(train_config)
    if not 0 <= rewind_epoch < max(cfg.epochs, 1):
        raise ValueError(f"rewind_epoch={rewind_epoch!r} is not allowed: expected an int in [0, {cfg.epochs})")
    key = {"model": model_config, "data": splits.config(), "train": cfg.to_dict(), "seed": seed,
           "rate": rate, "rewind_epoch": rewind_epoch, "scope": scope, "level": level}

    def compute():
        if level == 0:
            torch.manual_seed(seed)
            model = for_data(model_config, splits)
            rewind = {"state": cpu_state(model)}

            def grab(epoch, m):
                if epoch + 1 == rewind_epoch:
                    rewind["state"] = cpu_state(m)

            fit(model, splits.train, cfg, device=device, seed=seed, progress=progress, callbacks=[grab],
                desc="dense")
            acc = evaluate(model, splits.test, device=device)["acc"]
            masks0 = {n: torch.ones_like(m.weight, device="cpu") for n, m in weight_layers(model).items()}
            return {"level": 0, "sparsity": 0.0, "acc": acc, "masks": masks0,
                    "state_dict": cpu_state(model), "rewind_state": rewind["state"]}
        prev = lottery_level(name, model_config, splits, cfg, level=level - 1, rate=rate,
                             rewind_epoch=rewind_epoch, scope=scope, seed=seed, device=device, progress=progress)
        base = prev if level == 1 else lottery_level(name, model_config, splits, cfg, level=0, rate=rate,
                                                     rewind_epoch=rewind_epoch, scope=scope, seed=seed,
                                                     device=device, progress=progress)
        trained = {n: prev["state_dict"][n + ".weight"] for n in prev["masks"]}
        mk = next_masks(trained, prev["masks"], rate, scope)
        model, _, acc = _train_masked(model_config, splits, cfg, base["rewind_state"], mk, seed=seed,
                                      device=device, progress=progress, epochs=cfg.epochs - rewind_epoch)
        total = sum(m.numel() for m in mk.values())
        sp = 1.0 - sum(float(m.sum()) for m in mk.values()) / total
        return {"level": level, "sparsity": sp, "acc": acc, "masks": mk, "state_dict": cpu_state(model)}

    value, _ = get_or_compute(name, key, compute)
    return value


def control_epochs(control: str, epochs: int, rewind_epoch: int) -> int:
    """Epochs a control trains so that its total training equals the ticket's ``epochs``:
    ``epochs - rewind_epoch`` from the rewound theta_k (``"ticket"``, ``"random_mask"``),
    ``epochs`` from fresh weights (``"reinit"``, ``"sign"``)."""
    check_choice("control", control, CONTROLS)
    return int(epochs) if control in ("reinit", "sign") else int(epochs) - int(rewind_epoch)


def control_run(name: str, model_config: dict, splits, train_config, *, level: int, control: str,
                rate: float = 0.2, rewind_epoch: int = 0, scope: str = "global", seed: int = 0,
                control_seed: int | None = None, device="cpu", progress: bool | None = False) -> dict:
    """Train a level's sparse network from a different start - the controls of the ticket (cached).

    ``"ticket"``: the winning ticket itself (rewound weights, IMP mask); ``"reinit"``: the
    IMP mask with a fresh random init (Frankle & Carbin 2019, sec. 2); ``"random_mask"``:
    rewound weights with a random mask of the same per-layer sparsity; ``"sign"``: fresh
    random magnitudes with the original init's signs (Zhou et al. 2019, "Deconstructing
    lottery tickets").  Returns ``{"acc", "sparsity"}``.

    Every start gets the same total training as the ticket: the ticket and the random mask
    start from theta_k, which already had ``rewind_epoch`` epochs of dense training, and
    train ``epochs - rewind_epoch`` more; ``"reinit"`` and ``"sign"`` start from fresh weights
    and so train all ``epochs`` (:func:`control_epochs`).
    """
    from ..train import TrainConfig

    check_choice("control", control, CONTROLS)
    cfg = TrainConfig.coerce(train_config)
    control_seed = seed + 1000 if control_seed is None else control_seed
    common = dict(rate=rate, rewind_epoch=rewind_epoch, scope=scope, seed=seed, device=device, progress=progress)
    if control == "ticket":
        v = lottery_level(name, model_config, splits, cfg, level=level, **common)
        return {"acc": v["acc"], "sparsity": v["sparsity"]}
    n_epochs = control_epochs(control, cfg.epochs, rewind_epoch)
    key = {"model": model_config, "data": splits.config(), "train": cfg.to_dict(), "seed": seed,
           "rate": rate, "rewind_epoch": rewind_epoch, "scope": scope, "level": level,
           "control": control, "control_seed": control_seed, "epochs_trained": n_epochs}

    def compute():
        lv = lottery_level(name, model_config, splits, cfg, level=level, **common)
        base = lottery_level(name, model_config, splits, cfg, level=0, **common)
        mk = lv["masks"]
        start = dict(base["rewind_state"])
        g = torch.Generator().manual_seed(control_seed)
        if control in ("reinit", "sign"):
            torch.manual_seed(control_seed)
            fresh = cpu_state(for_data(model_config, splits))
            if control == "reinit":
                start = fresh
            else:
                init = base["rewind_state"]
                start = {k: (fresh[k].abs() * torch.sign(init[k]) if k.endswith("weight") and fresh[k].dim() > 1
                             else init[k]) for k in init}
        elif control == "random_mask":
            mk = {n: m.flatten()[torch.randperm(m.numel(), generator=g)].view_as(m) for n, m in mk.items()}
        _, _, acc = _train_masked(model_config, splits, cfg, start, mk, seed=seed, device=device,
                                  progress=progress, epochs=n_epochs)
        return {"acc": acc, "sparsity": lv["sparsity"]}

    value, _ = get_or_compute(name + "-control", key, compute)
    return value


# ----------------------------------------------------------------------------- rethinking

def scratch_epochs(epochs: int, full_flops: float, pruned_flops: float, mode: str = "B") -> int:
    """Training budget of a pruned architecture trained from scratch (Liu et al. 2019, sec. 4).

    Scratch-E: the same number of epochs; Scratch-B: the same computation budget,
    ``epochs * full_flops / pruned_flops`` (rounded).
    """
    check_choice("mode", mode, ("E", "B"))
    if mode == "E":
        return int(epochs)
    if pruned_flops <= 0:
        raise ValueError(f"pruned_flops={pruned_flops!r} is not allowed: expected > 0")
    return int(round(epochs * full_flops / pruned_flops))


def scratch_budgets(full: nn.Module, pruned: nn.Module, input_shape, epochs: int) -> dict:
    """``{"full_flops", "pruned_flops", "E", "B"}`` from :func:`nncompress.metrics.count_flops`."""
    from ..metrics import count_flops

    f, p = count_flops(full, input_shape), count_flops(pruned, input_shape)
    return {"full_flops": f, "pruned_flops": p, "E": scratch_epochs(epochs, f, p, "E"),
            "B": scratch_epochs(epochs, f, p, "B")}
