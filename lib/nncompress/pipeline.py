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
* :func:`measure` / :func:`file_bytes` - one ledger row: test (and validation) accuracy
  (mean and std over seeds), parameters, non-zeros, FLOPs, bytes of the real file, CPU
  latency (:func:`nncompress.latency.measure`: median and 95 % interval).
* :func:`ort_columns` - the same model deployed on ONNX Runtime (CPU execution provider,
  same threads): fp32, ORT dynamic int8 and ORT static int8 latency and accuracy
  (:mod:`nncompress.deploy`).
* :func:`sparse_kernel_latency` - a dense against a CSR sparse matmul at several
  sparsities (Han et al. 2016, sec. 6: sparse kernels pay off only at high sparsity).
* :func:`pareto_front`, :func:`best_under` and :func:`cheapest_within` - the frontier and
  the budget questions; latency ties (overlapping intervals) are ties.
"""
from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
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


def accuracy(model_or_predict, data) -> float:
    """Test accuracy of a model, or of a callable ``x -> predicted labels``, on CPU ``data``."""
    from .train import evaluate

    if isinstance(model_or_predict, nn.Module):
        return float(evaluate(model_or_predict, data, device="cpu")["acc"])
    pred = model_or_predict(data.x.cpu())
    return float((pred.cpu() == data.y.cpu()).double().mean())


#: timing of every ledger latency (:func:`nncompress.latency.measure`), one thread
TIMING = {"threads": 1, "blocks": 15, "block_seconds": 0.02}


def _timing(timing: Mapping[str, Any] | None) -> dict:
    return {**TIMING, **dict(timing or {})}


def latency_columns(lat, prefix: str = "latency_ms") -> dict[str, float]:
    """``{prefix: median, prefix_low: ..., prefix_high: ...}`` of a
    :class:`nncompress.latency.Latency` - the interval travels with the median, so
    :func:`pareto_front` can tell a tie from a speed-up."""
    return {prefix: lat.median, f"{prefix}_low": lat.low, f"{prefix}_high": lat.high}


def measure(name: str, models: Sequence[nn.Module], data, *, val=None, fmt: str = "float32",
            steps: Sequence[str] = (), reference: nn.Module | None = None,
            run: Callable[[torch.Tensor], Any] | None = None,
            predict: Callable[[torch.Tensor], torch.Tensor] | None = None,
            flops: float | None = None, latency_batch: int = 256,
            timing: Mapping[str, Any] | None = None,
            format_options: Mapping[str, Any] | None = None, latency: bool = True) -> dict[str, Any]:
    """One ledger row for a compressed model trained with one or more seeds.

    ``models``: one per seed (same architecture); ``acc`` is their mean and standard
    deviation on ``data`` (the test split), ``val_acc`` the mean on ``val`` when given (the
    split that budget questions choose on); the other columns come from the first.  ``fmt``
    picks the file format whose real size is ``bytes``.  ``reference``: the float model that
    an int8 model was converted from - parameter counts and FLOPs are taken from it
    (quantized kernels are invisible to ``torch.utils.flop_counter`` and hold packed weights,
    not Parameters; the multiply-adds are the same).  ``run``/``predict`` replace
    ``model(x)`` for latency and accuracy (e.g. early-exit inference); ``flops`` overrides
    the count (e.g. an early-exit network's mean FLOPs per sample).  Latency:
    :func:`nncompress.latency.measure` of the first model on ``latency_batch`` inputs
    (``timing`` overrides :data:`TIMING`): columns ``latency_ms`` (median),
    ``latency_ms_low`` / ``latency_ms_high`` (its 95 % interval).  ``latency=False`` leaves
    them out, for rows that :func:`time_rows` then times together.
    """
    from .latency import measure as time_it
    from .metrics import count_flops, count_nonzero, count_params
    from .stats import mean_std

    if not models:
        raise ValueError(f"measure({name!r}): models is empty; pass one trained model per seed")
    first = models[0]
    ref = reference if reference is not None else first

    def accs(split):
        return [accuracy(predict, split)] if predict is not None else [accuracy(m, split) for m in models]

    shape = tuple(data.x.shape[1:])
    test_accs = accs(data)
    mean, std = mean_std([100 * a for a in test_accs])
    x = data.x[:latency_batch].cpu()
    row = {"model": name, "steps": " → ".join(steps) if steps else "-",
           "acc": mean, "acc_std": std, "seeds": len(test_accs)}
    if val is not None:
        row["val_acc"] = mean_std([100 * a for a in accs(val)])[0]
    row.update({"params": count_params(ref), "nonzero": count_nonzero(ref),
                "flops": float(flops) if flops is not None else float(count_flops(ref, shape)),
                "bytes": file_bytes(first, fmt, **dict(format_options or {}))})
    if latency:
        row.update(latency_columns(time_it(run if run is not None else first.eval(), x, **_timing(timing))))
    return row


def time_rows(rows: Sequence[dict[str, Any]], runs: Mapping[str, Callable[[torch.Tensor], Any]],
              x: torch.Tensor, *, timing: Mapping[str, Any] | None = None,
              reference: str | None = None, reference_ms: float | None = None) -> dict[str, Any]:
    """Fill the latency columns of ledger ``rows`` from *one* interleaved measurement.

    ``runs`` maps each row's ``model`` name to what is timed on the CPU batch ``x`` (the
    model, or e.g. early-exit inference).  :func:`nncompress.latency.measure_interleaved`
    times block ``i`` of every row in round ``i``.  A change of the machine's load during the
    ledger then scales a whole round, so it cancels in the per-round ratio to the
    ``reference`` row (default: the first row, e.g. the teacher): each row's ``latency_ms`` is
    the reference's median times the median ratio, and its interval the reference's median
    times the 95 % interval of the ratio (:func:`nncompress.latency.ratio`) — a paired
    comparison with the reference, which itself gets a zero-width interval at its median.
    ``reference_ms`` puts the reference at a latency measured before (e.g. the ledger's
    teacher), so rows timed later in another interleaved measurement join the same scale.
    Timed one row after the other, or with unpaired intervals, a row measured during a busy
    moment looks slower than it is and the frontier changes from run to run.  Returns the raw
    :class:`nncompress.latency.Latency` per name.
    """
    from .latency import measure_interleaved

    names = [row["model"] for row in rows]
    missing = [n for n in names if n not in runs]
    if missing:
        raise ValueError(f"time_rows: no callable to time for rows {missing}; runs has {sorted(runs)}")
    ref = names[0] if reference is None else reference
    if ref not in names:
        raise ValueError(f"time_rows: reference = {ref!r} is not a row; rows are {names}")
    x = x.cpu()
    lat = measure_interleaved({n: (runs[n], (x,)) for n in names}, **_timing(timing))
    base = lat[ref].median if reference_ms is None else float(reference_ms)
    for row in rows:
        row.update(ratio_columns(lat[row["model"]], lat[ref], base)[1])
    return lat


def ratio_columns(lat, ref, base: float, prefix: str = "latency_ms") -> tuple[tuple[float, float, float], dict]:
    """``(ratio, columns)``: the per-round ratio ``lat / ref`` with its interval
    (:func:`nncompress.latency.ratio`), and ``{prefix, prefix_low, prefix_high}`` = ``base`` times it -
    a latency on the scale of a reference measured at ``base`` ms."""
    from .latency import ratio

    r = ratio(lat, ref)
    return r, {prefix: base * r[0], f"{prefix}_low": base * r[1], f"{prefix}_high": base * r[2]}


@contextlib.contextmanager
def _silenced_stdout():
    """File descriptor 1 to /dev/null for the block (C++ prints bypass ``sys.stdout``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


ORT_ENGINES = ("ort_fp32", "ort_int8_dynamic", "ort_int8_static")


def ort_columns(model: nn.Module, data, calibration_inputs: torch.Tensor, folder, *, latency_batch: int = 256,
                timing: Mapping[str, Any] | None = None, engines: Sequence[str] = ORT_ENGINES,
                torch_ms: float | None = None) -> dict[str, Any]:
    """The ledger columns of ``model`` deployed on ONNX Runtime (CPU execution provider,
    ``timing["threads"]`` intra-op threads, the same as PyTorch's column).

    The model is exported (:func:`nncompress.deploy.export_onnx`, checked against PyTorch)
    into ``folder``, then quantized by ORT itself: dynamic int8 (weights int8, activation
    ranges per batch) and static QDQ int8 calibrated on ``calibration_inputs`` (training
    inputs, never the test set).  For each of ``engines`` (default :data:`ORT_ENGINES`): test accuracy
    ``<engine>_acc`` (%) and latency ``<engine>_ms`` with its interval on ``latency_batch``
    inputs of ``data``.  A model the exporter cannot export (eager ``torch.ao`` int8
    modules, early-exit inference) gives ``{"onnx": <the reason>}`` and no other column.

    The PyTorch model and the ORT sessions are timed together, in interleaved rounds
    (:func:`nncompress.latency.measure_interleaved`), and ``<engine>_over_torch`` (with
    ``_low``/``_high``) is the median per-round ratio ORT / PyTorch with its 95 % interval: the
    paired answer to "is ORT faster than PyTorch on this model" (< 1 beyond the noise when
    ``_high < 1``).  With ``torch_ms`` (the row's PyTorch latency from :func:`time_rows`) the
    ``<engine>_ms`` columns are that latency times the ratio, on the ledger's scale.
    """
    from . import deploy
    from .latency import measure_interleaved

    unknown = [e for e in engines if e not in ORT_ENGINES]
    if unknown or not engines:
        raise ValueError(f"engines = {list(engines)!r} is not allowed: expected a non-empty subset of {ORT_ENGINES}")
    opts = _timing(timing)
    folder = Path(folder)
    x = data.x[:latency_batch].cpu()
    path = folder / "fp32.onnx"
    try:
        with _silenced_stdout():  # a failing export prints its whole graph (from C++)
            deploy.export_onnx(model, x[:8], path)
    except deploy.ExportError as err:
        return {"onnx": str(err).split(": ", 1)[-1][:160]}
    make = {"ort_fp32": lambda: path,
            "ort_int8_dynamic": lambda: deploy.ort_int8_dynamic(path, folder / "int8_dynamic.onnx"),
            "ort_int8_static": lambda: deploy.ort_int8_static(path, folder / "int8_static.onnx",
                                                              calibration_inputs.detach().cpu())}
    files = {engine: make[engine]() for engine in ORT_ENGINES if engine in engines}
    out: dict[str, Any] = {"onnx": "exported"}
    runs = {"torch": (model.eval(), (x,))}
    for engine, f in files.items():
        session = deploy.ort_session(f, threads=opts["threads"])
        out[f"{engine}_acc"] = 100 * deploy.ort_accuracy(session, data)
        runs[engine] = (deploy.ort_runner(session, x), ())
    lat = measure_interleaved(runs, **opts)
    base = lat["torch"].median if torch_ms is None else float(torch_ms)
    for engine in files:
        (med, low, high), cols = ratio_columns(lat[engine], lat["torch"], base, f"{engine}_ms")
        out.update({f"{engine}_over_torch": med, f"{engine}_over_torch_low": low, f"{engine}_over_torch_high": high,
                    **cols})
    return out


def sparse_kernel_latency(weight: torch.Tensor, sparsities: Sequence[float], *, batch: int = 1,
                          timing: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Does unstructured sparsity pay with a sparse kernel?  ``weight`` (a 2-D matrix, e.g. a
    layer's weights as ``out x in``) is pruned by magnitude to each sparsity and multiplied
    with a batch of ``batch`` random inputs, once as a dense matrix with its zeros
    (``F.linear``) and once as a ``torch.sparse_csr`` tensor (CSR kernel).  Han et al. 2016
    (Deep Compression, sec. 6) measure sparse-kernel speed-ups on CPU and GPU only for layers
    pruned to about 4-10 % density; here the crossover is measured.  Rows: ``sparsity``,
    ``dense`` and ``csr`` (:class:`nncompress.latency.Latency`), ``speedup`` (dense / csr
    medians) and ``tie`` (the intervals overlap)."""
    import warnings

    import torch.nn.functional as F

    from .latency import measure as time_it

    if weight.dim() != 2:
        raise ValueError(f"weight has shape {tuple(weight.shape)}: expected a 2-D matrix (out x in)")
    opts = _timing(timing)
    w = weight.detach().cpu().float()
    x = torch.randn(batch, w.shape[1], generator=torch.Generator().manual_seed(0))
    rows = []
    for s in sparsities:
        if not 0.0 <= s < 1.0:
            raise ValueError(f"sparsities contains {s!r}: expected fractions in [0, 1)")
        k = int(round(s * w.numel()))
        masked = w.clone()
        if k:
            masked.view(-1)[w.abs().view(-1).argsort()[:k]] = 0.0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta state")
            csr = masked.to_sparse_csr()
            dense = time_it(F.linear, x, masked, **opts)
            sparse = time_it(F.linear, x, csr, **opts)
        rows.append({"sparsity": s, "dense": dense, "csr": sparse, "speedup": sparse.speedup_over(dense),
                     "tie": dense.ties(sparse)})
    return rows


# --------------------------------------------------------------------------- frontier

def _rows(table) -> list[dict]:
    if hasattr(table, "reset_index"):  # a pandas DataFrame indexed by model name
        return table.reset_index().to_dict("records")
    return [dict(r) for r in table]


def _interval(row: dict, cost: str) -> tuple[float, float]:
    """``(low, high)`` of ``cost``: its ``cost_low`` / ``cost_high`` columns where the row
    has them (a measured latency), else the value itself (bytes, FLOPs: exact)."""
    low, high = row.get(f"{cost}_low"), row.get(f"{cost}_high")
    if low is None or high is None or low != low or high != high:  # missing or NaN
        return row[cost], row[cost]
    return low, high


def pareto_front(table, cost: str, gain: str = "acc") -> list[str]:
    """Names of the rows no other row dominates.  Row ``o`` dominates ``r`` when ``o``'s
    cost is lower or tied and its gain is ``>=``, with one of the two strict.  A cost with
    interval columns (``cost_low``, ``cost_high``: a measured latency) is compared by
    interval: lower means its interval lies entirely below the other's, overlapping
    intervals are a **tie** (the measurement cannot order them); exact costs compare as
    numbers.  ``table``: a list of row dicts with a ``"model"`` key or a DataFrame indexed
    by model.  Sorted by increasing cost."""
    rows = _rows(table)
    for r in rows:
        for col in (cost, gain):
            if col not in r:
                raise KeyError(f"pareto_front: column {col!r} missing; columns: {', '.join(r)}")
    iv = [_interval(r, cost) for r in rows]

    def dominates(i, j):
        (o_low, o_high), (r_low, r_high) = iv[i], iv[j]
        lower = o_high < r_low
        at_most = o_low <= r_high        # lower or tied
        o, r = rows[i], rows[j]
        return at_most and o[gain] >= r[gain] and (lower or o[gain] > r[gain])

    front = [r for j, r in enumerate(rows) if not any(dominates(i, j) for i in range(len(rows)) if i != j)]
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
