"""The ledger: one row of cost and quality numbers per model.

* parameters and non-zero parameters,
* FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` for one input sample
  (PyTorch counts a multiply-add as 2 FLOPs, so MACs = FLOPs / 2),
* bytes of the serialised ``state_dict`` (what ``torch.save`` writes),
* measured latency (warm-up, then the median of N timed calls; batch size 1 by default),
* accuracy on a dataset.

Deterministic columns (params, FLOPs, bytes) can be compared exactly across runs;
latency is a measurement and varies with the machine.
"""
from __future__ import annotations

import io
from typing import Any

import torch
import torch.nn as nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (every element of every parameter tensor)."""
    return sum(p.numel() for p in model.parameters())


def count_nonzero(model: nn.Module) -> int:
    """Number of non-zero parameter values, seeing through ``torch.nn.utils.prune`` masks."""
    total = 0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name.endswith("_orig") and hasattr(module, name[:-5] + "_mask"):
                total += int((getattr(module, name[:-5]) != 0).sum())
            else:
                total += int((p != 0).sum())
    return total


def _example(model: nn.Module, input_shape, batch_size: int = 1) -> torch.Tensor:
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    return torch.randn(batch_size, *input_shape, device=device)


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on one sample of ``input_shape`` (no batch dimension)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(_example(model, input_shape))
    model.train(was_training)
    return int(counter.get_total_flops())


def model_bytes(model: nn.Module) -> int:
    """Size in bytes of ``torch.save(model.state_dict())``."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 1,
                    warmup: int = 10, repeats: int = 15, threads: int = 1) -> float:
    """Median milliseconds of one forward pass: :func:`nncompress.latency.model_latency`
    (``repeats`` timed blocks, fixed ``threads``) as a plain number, for tables.  Use
    :mod:`nncompress.latency` directly to get the interval and compare models."""
    from .latency import model_latency

    return model_latency(model, input_shape, batch_size=batch_size, warmup=warmup,
                         blocks=repeats, threads=threads).median


class Ledger:
    """Collects one row per model and shows them as a table.

    ``ledger.add("student", model, data=splits.test, input_shape=splits.input_shape)``
    measures params, non-zeros, FLOPs, bytes, latency and (if ``data`` is given)
    accuracy; extra keyword values become extra columns.
    """

    def __init__(self):
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, model: nn.Module, *, input_shape: tuple[int, ...], data=None,
            latency: bool = True, device="cpu", **extra: Any) -> dict:
        from .train import evaluate

        row: dict[str, Any] = {"model": name, "params": count_params(model),
                               "nonzero": count_nonzero(model),
                               "flops": count_flops(model, input_shape),
                               "bytes": model_bytes(model)}
        if latency:
            row["latency_ms"] = measure_latency(model, input_shape)
        if data is not None:
            row["acc"] = evaluate(model, data, device=device)["acc"]
        row.update(extra)
        self.rows.append(row)
        return row

    def table(self):
        """A pandas DataFrame indexed by model name."""
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("model")

    def deterministic(self):
        """Only the columns that are identical across runs (for exact comparison)."""
        cols = [c for c in ("params", "nonzero", "flops", "bytes") if c in self.table().columns]
        return self.table()[cols]
