"""What this run is running on: versions, device, threads (printed at the top of chapters)."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys


def report(device=None) -> dict:
    """Versions of python/torch/torchvision/nncompress, the device, CPU threads."""
    import torch
    import torchvision

    from .. import __version__
    from ..train import select_device

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



def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cuda_device() -> str | None:
    torch = sys.modules.get("torch")  # only if already imported: importing torch is slow
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
        except Exception:
            pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
            if out.returncode == 0 and names:
                return ", ".join(names)
        except (OSError, subprocess.SubprocessError):
            pass
    return None


def environment(preset: str | None = None) -> dict:
    """What a run's results depend on: versions, machine, preset (written into ``summary.json``)."""
    if preset is None:
        from .params import common_specs

        preset = common_specs()["preset"].default
    return {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "torchvision": _version("torchvision"),
        "nncompress": _version("nncompress"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cuda_device": _cuda_device(),
        "preset": preset,
    }
