"""Quantization: Deep Compression's weight sharing, BinaryConnect, int8, and low-rank factors.

* **Magnitude pruning** (Han et al. 2015/2016 §2) through ``torch.nn.utils.prune.l1_unstructured``
  (:func:`prune_magnitude`, :func:`make_pruning_permanent`).
* **Weight sharing** (Han, Mao & Dally 2016, "Deep Compression", §3): per layer, k-means over
  the *non-zero* weights with **linear initialisation** (centroids evenly spaced between the
  minimum and maximum weight - the paper's best init, Fig. 4/§3.1), :func:`kmeans_1d`,
  :func:`share_weights`.  The shared layer (:class:`SharedWeight`) keeps a codebook and an
  index per weight; its forward uses ``W = C[I]`` so the **centroid gradient** is the sum of
  the gradients of the weights assigned to it (eq. 3, :func:`centroid_grad`), and pruned
  weights (index -1) stay exactly zero.  With ``bits`` b a layer has ``2**b - 1`` centroids:
  code 0 is reserved for zero (the CSR filler), see :mod:`nncompress.storage`.
* **BinaryConnect** (Courbariaux, Bengio & David 2015): :func:`binarize` (deterministic sign /
  stochastic with the hard sigmoid, eq. 1-3), a straight-through gradient
  (:class:`BinarizeSTE`), real-valued weights clipped to ``[-H, H]`` (:class:`BinaryLinear`).
* **int8** (Jacob et al. 2018, eq. 1: ``r = S (q - Z)``), through PyTorch's eager-mode
  ``torch.ao.quantization``: post-training dynamic quantization of Linear layers
  (:func:`int8_dynamic`); post-training static quantization with fused conv+bn+relu and
  calibrated activation ranges (:func:`int8_static`); quantization-aware training with fake
  quantization (:func:`int8_qat`).  Their deprecation notices (the API is moving to ``torchao``)
  are silenced by exact message in :func:`quiet_torch_ao`, nowhere else.
* **Low rank**: truncated SVD of a Linear into two Linears (:func:`low_rank_linear`,
  :func:`factorize`): ``M*N`` weights become ``K*(M+N)``.
"""
from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as tprune

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: module}`` of every Linear / Conv layer (the layers Deep Compression compresses)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LAYER_TYPES) and hasattr(m, "weight")}


def _per_layer(value, names, what: str) -> dict:
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what}: unknown layer(s) {sorted(unknown)}; layers: {', '.join(names)}")
        return {n: value[n] for n in names if n in value}
    return {n: value for n in names}


# --------------------------------------------------------------------------- pruning

def prune_magnitude(model: nn.Module, amount: float | Mapping[str, float]) -> nn.Module:
    """Prune the smallest-|w| fraction ``amount`` of each layer's weights (in place, masks kept).

    ``amount`` is one fraction or ``{layer name: fraction}`` of *all* the layer's weights: earlier
    pruning is made permanent first, and its zeros (the smallest magnitudes) count towards it,
    so calling this with growing amounts is iterative pruning.  Uses
    ``torch.nn.utils.prune.l1_unstructured``; masks stay attached while fine-tuning, so pruned
    weights stay zero.  Call :func:`make_pruning_permanent` before saving.
    """
    make_pruning_permanent(model)
    layers = weight_layers(model)
    for name, a in _per_layer(amount, list(layers), "amount").items():
        if not 0.0 <= a < 1.0:
            raise ValueError(f"amount={a!r} for layer {name!r} is not allowed: expected 0 <= amount < 1")
        tprune.l1_unstructured(layers[name], "weight", amount=float(a))
    return model


def make_pruning_permanent(model: nn.Module) -> nn.Module:
    for m in weight_layers(model).values():
        if tprune.is_pruned(m) and hasattr(m, "weight_mask"):
            tprune.remove(m, "weight")
    return model


def sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights per layer."""
    return {n: float((m.weight == 0).float().mean()) for n, m in weight_layers(model).items()}


# --------------------------------------------------------------------------- k-means

def linear_init(values: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` centroids evenly spaced in ``[min, max]`` of ``values`` (Han et al. 2016, §3.1)."""
    return torch.linspace(float(values.min()), float(values.max()), k)


def kmeans_1d(values: torch.Tensor, k: int, *, iters: int = 30, init: str = "linear",
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means in 1-D: ``(centroids (k,), assignment (n,))``.

    ``init``: ``"linear"`` (paper's choice), ``"random"`` (k distinct samples) or ``"density"``
    (quantiles of the CDF).  Empty clusters keep their previous centroid.
    """
    values = values.detach().float().ravel()
    if values.numel() == 0:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    if init == "linear":
        c = linear_init(values, k)
    elif init == "density":
        c = torch.quantile(values, torch.linspace(0, 1, k))
    elif init == "random":
        g = torch.Generator().manual_seed(seed)
        c = values[torch.randperm(values.numel(), generator=g)[:k]].sort().values
    else:
        raise ValueError(f"init={init!r} is not allowed: expected 'linear', 'density' or 'random'")
    for _ in range(iters):
        c = c.sort().values
        assign = torch.bucketize(values, (c[1:] + c[:-1]) / 2)
        sums = torch.zeros(len(c)).index_add_(0, assign, values)
        counts = torch.bincount(assign, minlength=len(c)).float()
        new = torch.where(counts > 0, sums / counts.clamp(min=1), c)
        if torch.equal(new, c):
            break
        c = new
    c = c.sort().values
    return c, torch.bucketize(values, (c[1:] + c[:-1]) / 2)


class SharedWeight(nn.Module):
    """A Linear/Conv layer whose weight is ``codebook[index]`` (index -1: pruned, exactly 0).

    The codebook is the trainable parameter; autograd through the gather sums the gradients
    of all weights of a cluster into its centroid - Han et al. 2016, eq. 3.
    """

    def __init__(self, module: nn.Module, codebook: torch.Tensor, index: torch.Tensor):
        super().__init__()
        w = module.weight
        del module._parameters["weight"]  # the weight now lives in codebook + index
        self.module = module
        self.codebook = nn.Parameter(codebook.to(w.device, w.dtype).clone())
        self.register_buffer("index", index.to(w.device).long().reshape(w.shape))

    def shared_weight(self) -> torch.Tensor:
        w = self.codebook[self.index.clamp(min=0)]
        return torch.where(self.index >= 0, w, torch.zeros((), dtype=w.dtype, device=w.device))

    def forward(self, x):
        w, m = self.shared_weight(), self.module
        if isinstance(m, nn.Linear):
            return F.linear(x, w, m.bias)
        return m._conv_forward(x, w, m.bias)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def share_weights(model: nn.Module, bits: int | Mapping[str, int] = 5, *, init: str = "linear",
                  iters: int = 30) -> nn.Module:
    """A copy of ``model`` with every Linear/Conv weight replaced by a :class:`SharedWeight`.

    ``bits`` per layer (paper: 8 conv, 5 fc) gives ``2**bits - 1`` centroids over the layer's
    non-zero weights (code 0 is zero); zeros stay zero.  Pruning must be permanent already.
    """
    model = make_pruning_permanent(copy.deepcopy(model))
    layers = weight_layers(model)
    for name, b in _per_layer(bits, list(layers), "bits").items():
        if not 1 <= int(b) <= 16:
            raise ValueError(f"bits={b!r} for layer {name!r} is not allowed: expected 1 <= bits <= 16")
        m = layers[name]
        w = m.weight.detach().cpu()
        nz = w != 0
        c, assign = kmeans_1d(w[nz], 2**int(b) - 1, iters=iters, init=init)
        index = torch.full(w.shape, -1, dtype=torch.long)
        index[nz] = assign
        _set_module(model, name, SharedWeight(m, c, index))
    return model


def shared_layers(model: nn.Module) -> dict[str, SharedWeight]:
    return {n: m for n, m in model.named_modules() if isinstance(m, SharedWeight)}


def centroid_grad(weight_grad: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 3 of Han et al. 2016: ``dL/dC_k = sum_{i,j: I_ij = k} dL/dW_ij`` (index -1 ignored)."""
    keep = index >= 0
    return torch.zeros(k, dtype=weight_grad.dtype).index_add_(0, index[keep], weight_grad[keep])


def dense_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with plain names (``layer.weight``), shared weights materialised, masks applied."""
    sd = {}
    shared = shared_layers(model)
    for k, v in model.state_dict().items():
        owner = next((n for n in shared if k.startswith(n + ".")), None)
        if owner is not None:
            rest = k[len(owner) + 1:]
            if rest == "codebook":
                sd[f"{owner}.weight"] = shared[owner].shared_weight().detach().cpu()
            elif rest.startswith("module."):
                sd[f"{owner}.{rest[7:]}"] = v.detach().cpu()
            continue
        if k.endswith("weight_mask"):
            continue
        if k.endswith("weight_orig"):
            base = k[: -len("_orig")]
            sd[base] = v.detach().cpu() * model.state_dict()[base + "_mask"].cpu()
            continue
        sd[k] = v.detach().cpu()
    return sd


def to_dense(model: nn.Module, factory) -> nn.Module:
    """A plain model (from ``factory()``) carrying ``model``'s (shared/pruned) weights."""
    m = factory()
    m.load_state_dict(dense_state_dict(model))
    return m.eval()


def distinct_values(model: nn.Module) -> dict[str, int]:
    """Number of distinct non-zero weight values per layer."""
    return {k.rsplit(".", 1)[0]: int(torch.unique(v[v != 0]).numel())
            for k, v in dense_state_dict(model).items() if k.endswith("weight") and v.dim() > 1}


# --------------------------------------------------------------------------- BinaryConnect

def glorot_scale(layer: nn.Module) -> float:
    """``H = sqrt(1.5 / (fan_in + fan_out))``: BinaryConnect's weight magnitude (Glorot's bound)."""
    fan_out, fan_in = layer.weight.shape[0], layer.weight[0].numel()
    return math.sqrt(1.5 / (fan_in + fan_out))


def binarize(w: torch.Tensor, scale: float = 1.0, stochastic: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """``±scale``: deterministic ``sign`` (0 -> +), or stochastic with ``p(+) = hard_sigmoid(w/scale)``
    (Courbariaux et al. 2015, eq. 1-3)."""
    if stochastic:
        p = ((w / scale + 1) / 2).clamp(0, 1)
        r = torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype)
        return torch.where(r < p, scale, -scale).to(w.dtype)
    return torch.where(w >= 0, scale, -scale).to(w.dtype)


class BinarizeSTE(torch.autograd.Function):
    """Forward: :func:`binarize`; backward: straight-through, zeroed where ``|w| > scale``."""

    @staticmethod
    def forward(ctx, w, scale=1.0, stochastic=False):
        ctx.save_for_backward(w)
        ctx.scale = scale
        return binarize(w, scale, stochastic)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= ctx.scale).to(grad.dtype), None, None


class BinaryLinear(nn.Linear):
    """BinaryConnect Linear: real weights kept (clipped to ``[-H, H]``), ``±H`` used in forward.

    Clipping happens at the start of each training forward, i.e. right after the previous
    update.  ``stochastic`` binarises stochastically during training; evaluation always uses
    the deterministic ``sign`` (1 bit per weight at inference).
    """

    def __init__(self, in_features, out_features, bias=True, *, stochastic=False, scale=None):
        super().__init__(in_features, out_features, bias)
        self.stochastic = stochastic
        self.scale = float(scale) if scale is not None else glorot_scale(self)
        with torch.no_grad():
            self.weight.clamp_(-self.scale, self.scale)

    def binary_weight(self) -> torch.Tensor:
        return binarize(self.weight.detach(), self.scale)

    def forward(self, x):
        if not self.training and not torch.is_grad_enabled():
            # inference: binarise once per weight version (a deployed model stores the bits)
            key = (self.weight._version, self.weight.data_ptr())
            if getattr(self, "_cached_key", None) != key:
                self._cached_key, self._cached_wb = key, self.binary_weight()
            return F.linear(x, self._cached_wb, self.bias)
        if self.training:
            with torch.no_grad():
                self.weight.clamp_(-self.scale, self.scale)
        wb = BinarizeSTE.apply(self.weight, self.scale, self.stochastic and self.training)
        return F.linear(x, wb, self.bias)


def binarize_model(model: nn.Module, *, stochastic: bool = False, skip: tuple[str, ...] = ()) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` (except names in ``skip``) a :class:`BinaryLinear`
    initialised from its weights (clipped)."""
    model = copy.deepcopy(model)
    for name, m in list(model.named_modules()):
        if type(m) is nn.Linear and name not in skip:
            b = BinaryLinear(m.in_features, m.out_features, m.bias is not None, stochastic=stochastic)
            with torch.no_grad():
                b.weight.copy_(m.weight.clamp(-b.scale, b.scale))
                if m.bias is not None:
                    b.bias.copy_(m.bias)
            _set_module(model, name, b.to(m.weight.device))
    return model


def binary_bytes(model: nn.Module) -> int:
    """Bytes to store a BinaryConnect model: 1 bit per binary weight + one float32 scale per layer,
    float32 for everything else (biases, non-binary layers)."""
    total = 0
    for m in model.modules():
        for pname, p in m.named_parameters(recurse=False):
            if isinstance(m, BinaryLinear) and pname == "weight":
                total += math.ceil(p.numel() / 8) + 4
            else:
                total += 4 * p.numel()
    return total


# --------------------------------------------------------------------------- int8

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


def _check_backend(backend: str) -> str:
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
    _check_backend(backend)
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


def _inputs(data, n: int) -> torch.Tensor:
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
    _check_backend(backend)
    if not (isinstance(n_calibration, int) and n_calibration >= 1):
        raise ValueError(f"n_calibration={n_calibration!r} is not allowed: expected an int >= 1")
    m = _prepared(model, backend, int8_qconfig(backend, observer=observer, per_channel=per_channel), False)
    x = _inputs(calibration_data, n_calibration).detach().cpu().float()
    with torch.no_grad(), quiet_torch_ao():
        for start in range(0, len(x), batch_size):
            m(x[start:start + batch_size])
    return _convert(m, x)


def prepare_qat(model: nn.Module, *, backend: str = "x86", per_channel: bool = True) -> Int8Model:
    """A copy of ``model`` ready for quantization-aware training: fused (conv+bn+relu keeps
    BN trainable), wrapped in stubs, with fake-quantize modules on weights and activations
    (:func:`int8_qconfig` with ``qat=True``).  Train it like a float model, then :func:`convert_qat`."""
    _check_backend(backend)
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
    from . import cache
    from .train import History, TrainConfig, fit

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
        value = cache.get_or_compute(cache_name, key, compute)[0]
        prepared.load_state_dict(value["state_dict"])
    qmodel = convert_qat(prepared, _inputs(train_data, 2))
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


# --------------------------------------------------------------------------- low rank

def low_rank_linear(layer: nn.Linear, rank: int) -> nn.Sequential:
    """Best rank-``K`` approximation (truncated SVD, Eckart-Young) of ``layer`` as two Linears.

    ``W (N x M) ~ U_K S_K V_K^T``; first Linear ``M -> K`` has weight ``sqrt(S_K) V_K^T`` (no
    bias), second ``K -> N`` has ``U_K sqrt(S_K)`` and the original bias.  Weights ``M*N`` become
    ``K*(M+N)``.
    """
    n_out, n_in = layer.weight.shape
    if not 1 <= rank <= min(n_out, n_in):
        raise ValueError(f"rank={rank!r} is not allowed: expected 1 <= rank <= {min(n_out, n_in)}")
    U, S, Vh = torch.linalg.svd(layer.weight.detach().float().cpu(), full_matrices=False)
    r = S[:rank].sqrt()
    first = nn.Linear(n_in, rank, bias=False)
    second = nn.Linear(rank, n_out, bias=layer.bias is not None)
    with torch.no_grad():
        first.weight.copy_(r[:, None] * Vh[:rank])
        second.weight.copy_(U[:, :rank] * r[None, :])
        if layer.bias is not None:
            second.bias.copy_(layer.bias.detach().cpu())
    return nn.Sequential(first, second).to(layer.weight.device)


def low_rank_params(n_in: int, n_out: int, rank: int, bias: bool = True) -> int:
    """Parameters of :func:`low_rank_linear`: ``K*(M+N)`` (+ ``N`` bias)."""
    return rank * (n_in + n_out) + (n_out if bias else 0)


def factorize(model: nn.Module, ranks: Mapping[str, int]) -> nn.Module:
    """A copy of ``model`` with the Linear layers named in ``ranks`` replaced by rank-K pairs."""
    model = copy.deepcopy(model)
    layers = weight_layers(model)
    for name, k in ranks.items():
        if name not in layers or not isinstance(layers[name], nn.Linear):
            raise ValueError(f"ranks: {name!r} is not a Linear layer of the model; "
                             f"Linear layers: {', '.join(n for n, m in layers.items() if isinstance(m, nn.Linear))}")
        _set_module(model, name, low_rank_linear(layers[name], int(k)))
    return model
