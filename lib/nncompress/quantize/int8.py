"""int8 quantization (Jacob et al. 2018, eq. 1: ``r = S (q - Z)``) through PyTorch's eager-mode
``torch.ao.quantization``.

Post-training dynamic quantization of Linear layers (:func:`int8_dynamic`); post-training
static quantization with fused conv+bn+relu and calibrated activation ranges
(:func:`int8_static`); quantization-aware training with fake quantization
(:func:`int8_qat`).  Their deprecation notices (the API is moving to ``torchao``) are
silenced by exact message in :func:`quiet_torch_ao`, nowhere else.
"""
from __future__ import annotations

import contextlib
import copy
import warnings

import torch
import torch.nn as nn


# torch.ao.quantization (eager mode) still works in this torch but announces its move to the
# separate ``torchao`` package, and its observers/converters add two more notices.  These exact
# messages - and nothing else - are silenced, only while this module calls into torch.ao.
_AO_NOTICES = (
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"Please use quant_min and quant_max to specify the range for observers"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor"),
)


@contextlib.contextmanager
def quiet_torch_ao():
    """Silence exactly the ``torch.ao.quantization`` deprecation notices (message- and
    category-specific filters), for the duration of the ``with`` block."""
    with warnings.catch_warnings():
        for category, message in _AO_NOTICES:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def int8_dynamic(model: nn.Module) -> nn.Module:
    """Post-training dynamic int8 quantization of every ``nn.Linear`` (CPU), on a copy.

    Weights are stored as int8 (one scale per tensor); activations are quantized on the fly,
    batch by batch, from their observed range - no calibration data (Jacob et al. 2018, eq. 1).
    """
    model = copy.deepcopy(model).cpu().eval()
    with quiet_torch_ao():
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


BACKENDS = ("x86", "fbgemm", "qnnpack", "onednn")
OBSERVERS = ("minmax", "histogram")
# x86 / fbgemm compute u8 x s8 products in 16-bit pairs on CPUs without VNNI; PyTorch's default
# for them keeps activations in 7 bits ([0, 127]) so the pairs cannot overflow.
_REDUCE_RANGE = {"x86": True, "fbgemm": True, "qnnpack": False, "onednn": False}


def check_backend(backend: str) -> str:
    """``backend`` if it is a quantized engine this torch build supports, else ``ValueError``."""
    allowed = [b for b in BACKENDS if b in torch.backends.quantized.supported_engines]
    if backend not in allowed:
        raise ValueError(f"backend={backend!r} is not allowed: expected one of {', '.join(map(repr, allowed))} "
                         "(the quantized engines this torch build supports)")
    return backend


@contextlib.contextmanager
def quantized_engine(backend: str):
    """Run the ``with`` block with ``torch.backends.quantized.engine = backend`` (restored after)."""
    before = torch.backends.quantized.engine
    if before != backend:
        torch.backends.quantized.engine = backend
    try:
        yield
    finally:
        if torch.backends.quantized.engine != before:
            torch.backends.quantized.engine = before


class Int8Model(nn.Module):
    """``dequant(module(quant(x)))`` run under the model's quantized engine (``backend``).

    Before :func:`torch.ao.quantization.convert` the stubs observe (calibration) or fake-quantize
    (QAT); afterwards ``quant`` maps the float input to uint8 with the calibrated scale and zero
    point, every fused conv/linear runs as an int8 kernel, and ``dequant`` returns float logits.
    The engine is set per call, so models converted for different backends can live in one
    process.
    """

    def __init__(self, module: nn.Module, backend: str):
        super().__init__()
        self.backend = backend
        self.quant = torch.ao.quantization.QuantStub()
        self.module = module
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        with quantized_engine(self.backend):
            return self.dequant(self.module(self.quant(x)))


_FUSABLE = (
    (nn.Conv1d, nn.BatchNorm1d, nn.ReLU), (nn.Conv2d, nn.BatchNorm2d, nn.ReLU),
    (nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv1d, nn.ReLU), (nn.Conv2d, nn.ReLU), (nn.Linear, nn.ReLU), (nn.BatchNorm2d, nn.ReLU),
)


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """Qualified names of the module runs to fuse: conv+bn+relu, conv+bn, conv+relu, linear+relu.

    Only children of an ``nn.Sequential`` are considered (there the execution order is the
    definition order, which fusion assumes); the longest pattern wins.
    """
    groups = []
    for name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        kids = list(seq.named_children())
        i = 0
        while i < len(kids):
            for pattern in _FUSABLE:
                run = kids[i:i + len(pattern)]
                if len(run) == len(pattern) and all(type(m) is t for (_, m), t in zip(run, pattern)):
                    groups.append([f"{name}.{n}" if name else n for n, _ in run])
                    i += len(pattern)
                    break
            else:
                i += 1
    return groups


def int8_qconfig(backend: str = "x86", *, observer: str = "minmax", per_channel: bool = True,
                 qat: bool = False) -> "torch.ao.quantization.QConfig":
    """The observers of static int8 quantization (Jacob et al. 2018, eq. 1: ``r = S (q - Z)``).

    Activations: uint8, per tensor, affine - ``S = (max - min) / (q_max - q_min)``,
    ``Z = q_min - round(min / S)`` from the calibration range (``observer="minmax"``: the
    observed min/max; ``"histogram"``: the range minimising the L2 quantization error),
    ``q_max`` 127 on x86/fbgemm (see ``_REDUCE_RANGE``), 255 otherwise.  Weights: int8,
    symmetric (``Z = 0``), one scale per output channel if ``per_channel``.  ``qat=True`` gives
    the fake-quantize modules of quantization-aware training (moving-average min/max).
    """
    check_backend(backend)
    if observer not in OBSERVERS:
        raise ValueError(f"observer={observer!r} is not allowed: expected one of {', '.join(map(repr, OBSERVERS))}")
    tq = torch.ao.quantization
    act_range = dict(quant_min=0, quant_max=127 if _REDUCE_RANGE[backend] else 255, dtype=torch.quint8,
                     qscheme=torch.per_tensor_affine)
    w_range = dict(quant_min=-128, quant_max=127, dtype=torch.qint8)
    if per_channel:
        w_obs = (tq.MovingAveragePerChannelMinMaxObserver if qat else tq.PerChannelMinMaxObserver)
        w_kw = dict(observer=w_obs, qscheme=torch.per_channel_symmetric, ch_axis=0, **w_range)
    else:
        w_obs = tq.MovingAverageMinMaxObserver if qat else tq.MinMaxObserver
        w_kw = dict(observer=w_obs, qscheme=torch.per_tensor_symmetric, **w_range)
    if qat:
        return tq.QConfig(activation=tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, **act_range),
                          weight=tq.FakeQuantize.with_args(**w_kw))
    a_obs = tq.MinMaxObserver if observer == "minmax" else tq.HistogramObserver
    return tq.QConfig(activation=a_obs.with_args(**act_range), weight=w_kw.pop("observer").with_args(**w_kw))


def calibration_batch(data, n: int) -> torch.Tensor:
    """The first ``n`` inputs of a tensor, a ``DeviceData`` or an iterable of ``(x, ...)`` batches."""
    if isinstance(data, torch.Tensor):
        return data[:n]
    if hasattr(data, "x"):
        return data.x[:n]
    xs, seen = [], 0
    for batch in data:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        xs.append(x[: n - seen])
        seen += len(xs[-1])
        if seen >= n:
            break
    if not xs:
        raise ValueError("calibration_data is empty: expected at least one input sample")
    return torch.cat(xs)


def _convert(prepared: Int8Model, example: torch.Tensor) -> Int8Model:
    tq = torch.ao.quantization
    prepared.cpu().eval()
    with quiet_torch_ao(), quantized_engine(prepared.backend):
        qmodel = tq.convert(prepared, inplace=False)
    try:
        with torch.no_grad():
            qmodel(example[:2].cpu())
    except (RuntimeError, NotImplementedError) as err:
        raise TypeError(
            "int8: the converted model cannot run in eager-mode quantization - its forward does "
            "arithmetic on activations (e.g. a residual `x + y`) or calls an op without a quantized "
            f"kernel; models of Linear/Conv/BN/ReLU/pooling layers only are supported ({err})") from err
    return qmodel


def _prepared(model: nn.Module, backend: str, qconfig, train: bool) -> Int8Model:
    tq = torch.ao.quantization
    m = Int8Model(copy.deepcopy(model).cpu(), backend)
    m.train(train)
    groups = fusion_groups(m)
    with quiet_torch_ao():
        if groups:
            (tq.fuse_modules_qat if train else tq.fuse_modules)(m, groups, inplace=True)
        m.qconfig = qconfig
        return (tq.prepare_qat if train else tq.prepare)(m, inplace=True)


def int8_static(model: nn.Module, calibration_data, *, n_calibration: int = 256, backend: str = "x86",
                observer: str = "minmax", per_channel: bool = True, batch_size: int = 256) -> Int8Model:
    """Post-training **static** int8 quantization (eager mode), on a copy of ``model``.

    Jacob et al. (2018), "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", eq. 1: a real value is ``r = S (q - Z)`` with an integer
    ``q``, a float scale ``S`` and an integer zero point ``Z``.  Steps: fuse conv+bn+relu (and
    conv+relu, linear+relu) into single modules (:func:`fusion_groups`; BN is folded into the
    conv weights), wrap the model in quant/dequant stubs (:class:`Int8Model`), attach observers
    (:func:`int8_qconfig`), run the first ``n_calibration`` inputs of ``calibration_data`` (a
    tensor, a ``DeviceData`` or an iterable of batches) through it to record activation ranges,
    then ``convert``: weights become int8, activations stay uint8 between layers.

    ``backend``: the quantized engine (``"x86"``, ``"fbgemm"``, ``"qnnpack"``, ``"onednn"``, as
    far as this torch supports them).  The input model is not modified.  Models whose forward
    adds or multiplies activations (residual blocks) need ``FloatFunctional`` and are refused
    with a ``TypeError``.
    """
    check_backend(backend)
    if not (isinstance(n_calibration, int) and n_calibration >= 1):
        raise ValueError(f"n_calibration={n_calibration!r} is not allowed: expected an int >= 1")
    m = _prepared(model, backend, int8_qconfig(backend, observer=observer, per_channel=per_channel), False)
    x = calibration_batch(calibration_data, n_calibration).detach().cpu().float()
    with torch.no_grad(), quiet_torch_ao():
        for start in range(0, len(x), batch_size):
            m(x[start:start + batch_size])
    return _convert(m, x)


def prepare_qat(model: nn.Module, *, backend: str = "x86", per_channel: bool = True) -> Int8Model:
    """A copy of ``model`` ready for quantization-aware training: fused (conv+bn+relu keeps
    BN trainable), wrapped in stubs, with fake-quantize modules on weights and activations
    (:func:`int8_qconfig` with ``qat=True``).  Train it like a float model, then :func:`convert_qat`."""
    check_backend(backend)
    return _prepared(model, backend, int8_qconfig(backend, per_channel=per_channel, qat=True), True)


def convert_qat(prepared: Int8Model, example: torch.Tensor) -> Int8Model:
    """The int8 model of a (trained) :func:`prepare_qat` model; ``example``: a few inputs
    (checks that the converted model runs)."""
    return _convert(copy.deepcopy(prepared), example)


def int8_qat(model: nn.Module, train_data, train_config=None, *, backend: str = "x86",
             per_channel: bool = True, seed: int = 0, device="cpu", freeze_bn_after: int | None = None,
             freeze_observers_after: int | None = None, cache_key: dict | None = None,
             cache_name: str = "int8-qat", progress: bool | None = None) -> Int8Model:
    """Quantization-aware training (Jacob et al. 2018, sec. 3), then conversion to int8.

    The forward pass of training already rounds weights and activations as int8 inference
    will (fake quantization, ``r -> S (clamp(round(r/S) + Z) - Z)``), with the straight-through
    estimator for the rounding, so the weights learn to sit well on the int8 grid.  Starts
    from the trained ``model`` (not modified), fine-tunes with :func:`nncompress.train.fit`
    (``train_config``: a ``TrainConfig`` or dict, a few epochs at a small learning rate), then
    converts.  ``freeze_observers_after`` / ``freeze_bn_after``: epochs after which the
    quantization ranges / the BN statistics stop updating (the paper's recipe for longer runs).

    ``cache_key``: a dict that identifies ``model`` and ``train_data`` (e.g.
    ``{"model": model.cache_key, "data": splits.config()}``); the trained fake-quant weights
    are then cached under ``cache_name`` with the training settings, and a rerun converts
    them without training.  The training history is attached as ``.history``.
    """
    from ..cache import get_or_compute
    from ..train import History, TrainConfig, fit

    cfg = TrainConfig.coerce(train_config)
    for name, v in (("freeze_bn_after", freeze_bn_after), ("freeze_observers_after", freeze_observers_after)):
        if v is not None and not (isinstance(v, int) and v >= 0):
            raise ValueError(f"{name}={v!r} is not allowed: expected None or an int >= 0 (epochs)")
    prepared = prepare_qat(model, backend=backend, per_channel=per_channel)

    def freeze(epoch: int, m: nn.Module) -> None:
        if freeze_observers_after is not None and epoch + 1 >= freeze_observers_after:
            m.apply(torch.ao.quantization.disable_observer)
        if freeze_bn_after is not None and epoch + 1 >= freeze_bn_after:
            m.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)

    def compute():
        with quiet_torch_ao():
            hist = fit(prepared, train_data, cfg, device=device, seed=seed, progress=progress,
                       desc="QAT", callbacks=[freeze])
        return {"state_dict": {k: v.detach().cpu() for k, v in prepared.state_dict().items()},
                "history": hist.to_dict()}

    if cache_key is None:
        value = compute()
    else:
        key = {**cache_key, "train": cfg.to_dict(), "backend": backend, "per_channel": per_channel,
               "seed": seed, "freeze_bn_after": freeze_bn_after, "freeze_observers_after": freeze_observers_after}
        value = get_or_compute(cache_name, key, compute)[0]
        prepared.load_state_dict(value["state_dict"])
    qmodel = convert_qat(prepared, calibration_batch(train_data, 2))
    qmodel.history = History.from_dict(value["history"])
    return qmodel


_QUANTIZED_MODULES = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: module}`` of the int8 conv/linear kernels in ``model`` (static or dynamic)."""
    return {n: m for n, m in model.named_modules()
            if type(m).__module__.startswith(_QUANTIZED_MODULES) and callable(getattr(m, "weight", None))}


def quantized_weight_count(model: nn.Module) -> int:
    """Number of int8 weights in ``model`` (packed buffers, not Parameters: ``count_params``
    does not see them)."""
    return sum(m.weight().numel() for m in quantized_layers(model).values())
