"""Where the course lives: the repository, its notebooks, the default output folder."""
from __future__ import annotations

from pathlib import Path

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


def repo_root() -> Path:
    """The repository: the parent of ``lib/`` holding this package, else the cwd."""
    here = Path(__file__).resolve()          # lib/nncompress/course/layout.py
    if here.parents[2].name == "lib":
        return here.parents[3]
    return Path.cwd()


def default_notebooks(root: Path | None = None) -> list[Path]:
    """``notebooks/NN_*.ipynb`` of the repository, in order."""
    folder = (root or repo_root()) / "notebooks"
    return sorted(folder.glob(NOTEBOOK_GLOB))


def default_out(root: Path | None = None) -> Path:
    return (root or repo_root()) / "runs" / "latest"


def offline_guard_dir() -> Path | None:
    """The folder of the course's offline guard: a ``sitecustomize.py`` that refuses every
    non-loopback connection of a Python process that has this folder on ``PYTHONPATH``
    (the notebook tests, grading and ``python -m nncompress.run --offline`` use it)."""
    folder = Path(__file__).resolve().parent / "offline"
    return folder if (folder / "sitecustomize.py").is_file() else None
