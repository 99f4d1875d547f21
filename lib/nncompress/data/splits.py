"""Train / validation / test splits of one dataset, and the seeded hold-out of a validation set."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .device import DeviceData


@dataclass
class Splits:
    """Train / validation / test sets of one dataset, plus its class names."""

    name: str
    train: DeviceData
    val: DeviceData
    test: DeviceData
    classes: list[str]
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape

    def to(self, device) -> "Splits":
        return Splits(self.name, self.train.to(device), self.val.to(device),
                      self.test.to(device), self.classes, self.info)

    def config(self) -> dict:
        """What identifies this data in a cache key."""
        return {"name": self.name, **{k: v for k, v in self.info.items()
                                      if isinstance(v, (int, float, str, bool))}}


def split_off(data: DeviceData, n_val: int, seed: int) -> tuple[DeviceData, DeviceData]:
    """``(train, val)``: hold ``n_val`` samples of ``data`` out, deterministically from ``seed``.

    With ``n_val == 0`` the data is returned as is (same order) with an empty validation set.
    """
    name = data.name
    if n_val == 0:
        train, val = data, data.subset(slice(0, 0))
    else:
        g = torch.Generator().manual_seed(seed + 7919)
        perm = torch.randperm(len(data), generator=g)
        train, val = data.subset(perm[n_val:]), data.subset(perm[:n_val])
    train.name = name
    val.name = name.rsplit("/", 1)[0] + "/val"
    return train, val
