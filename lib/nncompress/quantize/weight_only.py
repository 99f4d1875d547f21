"""Weight-only round-to-nearest (RTN) quantization of Linear layers: int8 / int4, per output
channel or group-wise along the input dimension, with the codes packed into real bytes.

Asymmetric with a zero point, as AWQ's reference ``pseudo_quantize_tensor`` (Lin et al. 2024):
per group of ``g`` consecutive input weights of one output row,

    s = max(w_max - w_min, 1e-5) / (2^b - 1),   z = clamp(-round(w_min / s), 0, 2^b - 1),
    q = clamp(round(w / s) + z, 0, 2^b - 1),     w_hat = (q - z) * s.

``s`` is stored as float16 (and rounded to float16 *before* the codes are computed, so the
stored file reproduces ``w_hat`` exactly); ``z`` and ``q`` packed into bytes (:func:`pack_codes`):
int2 four per byte, int4 two per byte (low bits first), int8 one per byte; int3 codes are
stored in 4-bit slots (two per byte: byte-aligned 3-bit packing is not done here, and the byte
count says so).  ``group_size=None`` is per output channel (one group per row).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


def _groups(w: torch.Tensor, group_size: int | None) -> torch.Tensor:
    rows, cols = w.shape
    g = cols if not group_size else group_size
    if cols % g:
        raise ValueError(f"group_size={group_size!r} does not divide the {cols} input columns")
    return w.reshape(rows, cols // g, g)


def quantize_groups(w: torch.Tensor, bits: int, group_size: int | None = None):
    """``(codes uint8 (rows, cols), scales float16 (rows, groups), zeros uint8 (rows, groups))``."""
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"bits={bits!r} is not allowed: expected 2, 3, 4 or 8")
    if w.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(w.shape)}")
    qmax = 2 ** bits - 1
    wg = _groups(w.detach().float(), group_size)
    lo, hi = wg.amin(-1, keepdim=True), wg.amax(-1, keepdim=True)
    scale = ((hi - lo).clamp(min=1e-5) / qmax).half().float()
    zero = (-torch.round(lo / scale)).clamp(0, qmax)
    q = (torch.round(wg / scale) + zero).clamp(0, qmax)
    return q.reshape(w.shape).to(torch.uint8), scale.squeeze(-1).half(), zero.squeeze(-1).to(torch.uint8)


def dequantize_groups(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    """``w_hat = (q - z) * s`` group by group (the group size follows from the shapes)."""
    rows, cols = codes.shape
    g = cols // scales.shape[1]
    q = codes.float().reshape(rows, -1, g)
    return ((q - zeros.float().unsqueeze(-1)) * scales.float().unsqueeze(-1)).reshape(rows, cols)


def fake_quantize(w: torch.Tensor, bits: int, group_size: int | None = None) -> torch.Tensor:
    """Quantize and dequantize ``w`` (float result)."""
    return dequantize_groups(*quantize_groups(w, bits, group_size))


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte, the first in the low nibble (odd lengths padded with 0)."""
    return pack_codes(codes, 4)


def unpack_int4(packed: torch.Tensor, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: the first ``count`` codes."""
    return unpack_codes(packed, 4, count)


def slot_bits(bits: int) -> int:
    """Bits of the slot a ``bits``-bit code is stored in: 2 -> 2, 3 -> 4, 4 -> 4, 8 -> 8."""
    return {2: 2, 3: 4, 4: 4, 8: 8}[bits]


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """``8 // slot_bits(bits)`` codes per byte, the first in the lowest bits (padded with 0)."""
    slot = slot_bits(bits)
    flat = codes.flatten().to(torch.uint8)
    if len(flat) and int(flat.max()) >= 2 ** bits:
        raise ValueError(f"pack_codes: a code is larger than {2 ** bits - 1} (bits={bits})")
    per = 8 // slot
    if per == 1:
        return flat.clone()
    if len(flat) % per:
        flat = torch.cat([flat, flat.new_zeros(per - len(flat) % per)])
    flat = flat.reshape(-1, per)
    out = torch.zeros(len(flat), dtype=torch.uint8)
    for i in range(per):
        out |= flat[:, i] << (slot * i)
    return out


def unpack_codes(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: the first ``count`` codes."""
    slot = slot_bits(bits)
    per, mask = 8 // slot, 2 ** slot - 1
    if per == 1:
        return packed[:count]
    return torch.stack([(packed >> (slot * i)) & mask for i in range(per)], 1).flatten()[:count]


class QuantLinear(nn.Module):
    """A Linear layer stored as packed codes + float16 scales + zero points (+ float bias).

    The forward pass dequantizes the weight and calls ``F.linear`` (no int4 kernel: it saves
    memory and bytes, not time)."""

    def __init__(self, linear: nn.Linear, bits: int, group_size: int | None = None):
        super().__init__()
        self.bits, self.group_size = bits, group_size
        self.shape = tuple(linear.weight.shape)
        codes, scales, zeros = quantize_groups(linear.weight, bits, group_size)
        self.register_buffer("codes", pack_codes(codes, bits))
        self.register_buffer("scales", scales)
        self.register_buffer("zeros", pack_codes(zeros, bits))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def weight_hat(self) -> torch.Tensor:
        codes = unpack_codes(self.codes, self.bits, self.shape[0] * self.shape[1])
        zeros = unpack_codes(self.zeros, self.bits, self.scales.numel())
        return dequantize_groups(codes.reshape(self.shape), self.scales, zeros.reshape(self.scales.shape))

    def forward(self, x):
        return F.linear(x, self.weight_hat().to(x.dtype), self.bias)

    def payload_bytes(self) -> int:
        """Bytes of codes, scales and zero points (the bias is counted with the float params)."""
        return sum(t.numel() * t.element_size() for t in (self.codes, self.scales, self.zeros))


def quantize_linears(model: nn.Module, bits: int, group_size: int | None = None,
                     include=lambda name: True) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` whose name passes ``include`` replaced by
    :class:`QuantLinear` (round to nearest)."""
    model = copy.deepcopy(model).cpu().eval()
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.Linear) and include(name):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, QuantLinear(mod, bits, group_size))
    return model


def quantized_stats(model: nn.Module) -> dict:
    """``{"weights", "payload_bytes", "bits_per_weight"}`` over the QuantLinear layers."""
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    n = sum(m.shape[0] * m.shape[1] for m in layers)
    b = sum(m.payload_bytes() for m in layers)
    return {"weights": n, "payload_bytes": b, "bits_per_weight": 8 * b / n if n else float("nan")}
