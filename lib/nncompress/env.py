"""What this run is running on: versions, device, threads (printed at the top of chapters)."""
from __future__ import annotations

import os
import platform


def report(device=None) -> dict:
    """Versions of python/torch/torchvision/nncompress, the device, CPU threads."""
    import torch
    import torchvision

    from . import __version__
    from .train import select_device

    dev = select_device(device or "auto")
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "nncompress": __version__,
        "platform": platform.platform(terse=True),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(dev),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def show(device=None) -> None:
    for k, v in report(device).items():
        print(f"{k:>14}: {v}")

