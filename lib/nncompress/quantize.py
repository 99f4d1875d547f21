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
* **int8**: post-training dynamic quantization of Linear layers (:func:`int8_dynamic`).
* **Low rank**: truncated SVD of a Linear into two Linears (:func:`low_rank_linear`,
  :func:`factorize`): ``M*N`` weights become ``K*(M+N)``.
"""
from __future__ import annotations

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

def int8_dynamic(model: nn.Module) -> nn.Module:
    """Post-training dynamic int8 quantization of every ``nn.Linear`` (CPU), on a copy.

    ``torch.ao.quantization.quantize_dynamic`` still works in this torch but warns that it is
    deprecated in favour of ``torchao``; the warning is caught here, on purpose and only here.
    """
    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*torchao.*")
        warnings.filterwarnings("ignore", message=".*deprecat.*")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


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
