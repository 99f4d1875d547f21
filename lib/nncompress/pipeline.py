"""Compression pipelines: chain the course's methods and map the accuracy / size / latency
frontier (chapter 12).

The methods of chapters 01-11 compose: Han et al. 2016 ("Deep Compression", sec. 1 and
fig. 1) chain pruning, weight sharing and Huffman coding and show the stages multiply;
Polino, Pascanu & Alistarh 2018 ("Model compression via distillation and quantization")
distil into quantized students; Liu et al. 2019 ("Rethinking the Value of Network
Pruning") ask whether a pruned network is worth more than a small one trained from
scratch.  This module holds the glue the chapter needs and nothing else - every step is
a call into the method modules:

* :func:`derive` - a cached step: rebuild a model's structure, then load (or compute and
  store) its trained weights under a key that names the parent model and the step.
* :func:`finetune` - train a model on labelled data with cross-entropy or with Hinton's KD
  loss against precomputed teacher logits (:class:`nncompress.distill.KDObjective`),
  optionally keeping pruning masks fixed.
* :func:`deep_compress` - magnitude pruning with retraining (:mod:`nncompress.prune`),
  k-means weight sharing with centroid fine-tuning (:mod:`nncompress.quantize`);
  :func:`file_bytes` then writes the
  Huffman-coded file of :mod:`nncompress.storage`.
* :func:`measure` / :func:`file_bytes` / :func:`batch_latency` - one ledger row: accuracy
  (mean and std over seeds), parameters, non-zeros, FLOPs, bytes of the real file, CPU
  latency.
* :func:`pareto_front`, :func:`best_under` and :func:`cheapest_within` - the frontier and
  the budget questions.
"""
from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .models import NAMED

FORMATS = ("float32", "pruned", "huffman", "int8")


# --------------------------------------------------------------------------- cached steps

def derive(name: str, key: Mapping[str, Any], make: Callable[[], nn.Module],
           train: Callable[[nn.Module], None] | None = None) -> nn.Module:
    """A model produced by a step of a pipeline, cached.

    ``make()`` returns the step's model before training (its structure must not depend
    on training); ``train(model)`` trains it in place.  The trained weights are stored in
    :mod:`nncompress.cache` under ``(name, key)`` - put everything that changes the result
    in ``key``, starting with the parent model's ``cache_key``.  Without ``train`` the
    step is cheap and deterministic and nothing is cached.  The result is on the CPU in
    eval mode and carries ``cache_key`` for the next step.
    """
    from .cache import cache_key, cpu_state, get_or_compute

    model = make()
    if train is not None:
        def compute():
            train(model)
            return cpu_state(model)

        state, _ = get_or_compute(name, dict(key), compute)
        model.load_state_dict(state)
    model = model.cpu().eval()
    model.cache_key = cache_key({"step": name, **dict(key)})
    return model


def finetune(model: nn.Module, data, config, *, teacher_logits: torch.Tensor | None = None,
             temperature: float = 4.0, alpha: float = 0.9, keep_masks: bool = False, seed: int = 0,
             device="auto", desc: str = "fine-tune", progress=None) -> nn.Module:
    """Train ``model`` in place on ``data`` (a :class:`~nncompress.data.DeviceData`).

    With ``teacher_logits`` (one row per sample of ``data``, e.g. from
    :func:`nncompress.distill.teacher_logits`) the loss is Hinton's KD loss (Hinton et al.
    2015, eq. 2 with the T^2 factor: :func:`nncompress.distill.kd_loss`), otherwise
    cross-entropy.  ``keep_masks`` re-applies torch pruning masks after every epoch so
    pruned weights stay zero (:func:`nncompress.prune.keep_masks_callback`).
    """
    from .distill import KDObjective
    from .prune import keep_masks_callback
    from .train import fit

    objective = None
    if teacher_logits is not None:
        if len(teacher_logits) != len(data):
            raise ValueError(f"teacher_logits has {len(teacher_logits)} rows but data has {len(data)} samples")
        data = data.with_extras(teacher_logits.to(data.device))
        objective = KDObjective(None, temperature, alpha)
    callbacks = [keep_masks_callback()] if keep_masks else []
    fit(model, data, config, objective=objective, device=device, seed=seed, callbacks=callbacks,
        desc=desc, progress=progress)
    return model.cpu().eval()


def deep_compress(model: nn.Module, data, *, sparsity: float, bits: int, retrain_config, finetune_config,
                  teacher_logits: torch.Tensor | None = None, seed: int = 0, device="auto",
                  progress=None) -> nn.Module:
    """Han et al. 2016's first two stages on a copy of ``model``: prune every weight layer
    to ``sparsity`` by magnitude and retrain with the mask fixed (sec. 2), then share
    weights with ``bits``-bit k-means per layer and fine-tune the centroids (sec. 3).
    Training uses KD when ``teacher_logits`` are given.  Returns the weight-shared model
    (:class:`nncompress.quantize.SharedWeight` layers); :func:`file_bytes` with
    ``fmt="huffman"`` writes the third stage."""
    from .prune import prune_to_sparsity, remove_masks
    from .quantize import share_weights

    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity={sparsity!r} is not allowed: expected a fraction in [0, 1)")
    m = copy.deepcopy(model).cpu()
    prune_to_sparsity(m, sparsity, scope="layer")
    finetune(m, data, retrain_config, teacher_logits=teacher_logits, keep_masks=True, seed=seed,
             device=device, desc=f"prune {sparsity:.0%} + retrain", progress=progress)
    remove_masks(m)
    shared = share_weights(m, bits)
    return finetune(shared, data, finetune_config, teacher_logits=teacher_logits, seed=seed, device=device,
                    desc=f"{bits}-bit centroids", progress=progress)


# --------------------------------------------------------------------------- measuring

def write_model(model: nn.Module, path, fmt: str = "float32", **options) -> Path:
    """Write ``model`` to ``path`` in one of the course's on-disk formats:

    * ``"float32"`` / ``"int8"`` - ``torch.save(model.state_dict())`` (an int8 model's state
      holds packed int8 weights with their scales and zero points);
    * ``"pruned"`` - :func:`nncompress.prune.save_pruned` (a channel-pruned model: config,
      channel counts and weights);
    * ``"huffman"`` - :func:`nncompress.storage.save_compressed` (CSR with relative indices,
      shared-weight codes, Huffman-coded; ``bits`` and ``index_bits`` in ``options``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not allowed: expected one of {', '.join(FORMATS)}")
    path = Path(path)
    if fmt in ("float32", "int8"):
        torch.save(model.state_dict(), path)
    elif fmt == "pruned":
        from .prune import save_pruned

        save_pruned(model, path)
    else:
        from .storage import save_compressed

        save_compressed(model, path, stage="huffman", **options)
    return path


def file_bytes(model: nn.Module, fmt: str = "float32", **options) -> int:
    """Bytes of the file :func:`write_model` writes (a real file in a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        return write_model(model, Path(tmp) / f"model.{fmt}", fmt, **options).stat().st_size


@torch.no_grad()
def batch_latency(run: Callable[[torch.Tensor], Any], x: torch.Tensor, *, warmup: int = 3,
                  repeats: int = 10, rounds: int = 3) -> float:
    """Milliseconds of ``run(x)`` on the CPU: the smallest of ``rounds`` medians, each over
    ``repeats`` calls (after ``warmup``).  A median resists single slow calls; the minimum
    over rounds resists a busy stretch of the machine that slows a whole round.

    ``run`` is a model or any callable (e.g. early-exit inference), so dynamic networks are
    timed by what they really execute."""
    if repeats < 1 or rounds < 1:
        raise ValueError(f"repeats={repeats!r} and rounds={rounds!r} must both be >= 1")
    for _ in range(warmup):
        run(x)
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
    return min(medians) * 1e3


def accuracy(model_or_predict, data) -> float:
    """Test accuracy of a model, or of a callable ``x -> predicted labels``, on CPU ``data``."""
    from .train import evaluate

    if isinstance(model_or_predict, nn.Module):
        return float(evaluate(model_or_predict, data, device="cpu")["acc"])
    pred = model_or_predict(data.x.cpu())
    return float((pred.cpu() == data.y.cpu()).double().mean())


def measure(name: str, models: Sequence[nn.Module], data, *, fmt: str = "float32",
            steps: Sequence[str] = (), reference: nn.Module | None = None,
            run: Callable[[torch.Tensor], Any] | None = None,
            predict: Callable[[torch.Tensor], torch.Tensor] | None = None,
            flops: float | None = None, latency_batch: int = 256, repeats: int = 10,
            format_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One ledger row for a compressed model trained with one or more seeds.

    ``models``: one per seed (same architecture); accuracy is their mean and standard
    deviation on ``data``; the other columns come from the first.  ``fmt`` picks the file
    format whose real size is ``bytes``.  ``reference``: the float model that an int8 model
    was converted from - parameter counts and FLOPs are taken from it (quantized kernels
    are invisible to ``torch.utils.flop_counter`` and hold packed weights, not Parameters;
    the multiply-adds are the same).  ``run``/``predict`` replace ``model(x)`` for latency
    and accuracy (e.g. early-exit inference); ``flops`` overrides the count (e.g. an
    early-exit network's mean FLOPs per sample).
    """
    from .metrics import count_flops, count_nonzero, count_params
    from .stats import mean_std

    if not models:
        raise ValueError(f"measure({name!r}): models is empty; pass one trained model per seed")
    first = models[0]
    ref = reference if reference is not None else first
    shape = tuple(data.x.shape[1:])
    if predict is not None:
        accs = [accuracy(predict, data)]
    else:
        accs = [accuracy(m, data) for m in models]
    mean, std = mean_std([100 * a for a in accs])
    x = data.x[:latency_batch].cpu()
    return {"model": name, "steps": " → ".join(steps) if steps else "-",
            "acc": mean, "acc_std": std, "seeds": len(accs),
            "params": count_params(ref), "nonzero": count_nonzero(ref),
            "flops": float(flops) if flops is not None else float(count_flops(ref, shape)),
            "bytes": file_bytes(first, fmt, **dict(format_options or {})),
            "latency_ms": batch_latency(run if run is not None else first.eval(), x, repeats=repeats)}


# --------------------------------------------------------------------------- frontier

def _rows(table) -> list[dict]:
    if hasattr(table, "reset_index"):  # a pandas DataFrame indexed by model name
        return table.reset_index().to_dict("records")
    return [dict(r) for r in table]


def pareto_front(table, cost: str, gain: str = "acc") -> list[str]:
    """Names of the rows no other row dominates: none has ``cost <=`` and ``gain >=`` with
    at least one strict.  ``table``: a list of row dicts with a ``"model"`` key or a
    DataFrame indexed by model.  Sorted by increasing cost."""
    rows = _rows(table)
    for r in rows:
        for col in (cost, gain):
            if col not in r:
                raise KeyError(f"pareto_front: column {col!r} missing; columns: {', '.join(r)}")
    front = []
    for r in rows:
        dominated = any(o[cost] <= r[cost] and o[gain] >= r[gain] and (o[cost] < r[cost] or o[gain] > r[gain])
                        for o in rows if o is not r)
        if not dominated:
            front.append(r)
    return [r["model"] for r in sorted(front, key=lambda r: (r[cost], -r[gain]))]


def best_under(table, cost: str, budget: float, gain: str = "acc") -> dict | None:
    """The row with the highest ``gain`` among those with ``cost <= budget`` (ties: lower
    cost), or ``None`` if no row fits the budget."""
    fits = [r for r in _rows(table) if r[cost] <= budget]
    if not fits:
        return None
    return max(fits, key=lambda r: (r[gain], -r[cost]))


# --------------------------------------------------------------------------- models

REDESIGNS = {
    # MobileNet-style (Howard et al. 2017): the teacher's widths with depthwise-separable convolutions
    "conv1d-64-sep": NAMED["conv1d-64-sep"],
    "design-separable": {"arch": "design", "block": "separable", "widths": [64, 128, 256],
                         "strides": [1, 2, 2], "stem": 32},
}


def redesign_config(name: str) -> dict:
    """The model config of a named MobileNet-style redesign (see ``REDESIGNS``)."""
    if name not in REDESIGNS:
        raise ValueError(f"redesign={name!r} is not allowed: expected one of {', '.join(REDESIGNS)}")
    return dict(REDESIGNS[name])


def cheapest_within(table, cost: str, min_gain: float, gain: str = "acc") -> dict | None:
    """The row with the lowest ``cost`` among those with ``gain >= min_gain`` (ties: higher
    gain) - the dual of :func:`best_under`: "the smallest model within 1 point"."""
    fits = [r for r in _rows(table) if r[gain] >= min_gain]
    if not fits:
        return None
    return min(fits, key=lambda r: (r[cost], -r[gain]))
