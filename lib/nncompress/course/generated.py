"""What is generated from the chapter specs, so a chapter's parameters have ONE source.

* Each notebook's ``parameters`` cell (the first code cell, tagged ``parameters``) is
  written from its chapter's ``SPECS``: one line per parameter, the preset-independent
  default or ``None`` ("take the preset's value"), and a comment with the help text and the
  preset values.  Edit ``lib/nncompress/course/chapters/chNN_*.py``, then regenerate.
* The README's chapter table (between ``<!-- chapters:start -->`` and
  ``<!-- chapters:end -->``) is written from each chapter's ``TITLE`` and ``TOPIC``.

::

    python -m nncompress.course.generated            # rewrite what is out of date
    python -m nncompress.course.generated --check    # exit 1 if anything is out of date (CI)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Mapping, Sequence

from .layout import default_notebooks, repo_root
from .params import PRESETS, Spec

TABLE_START = "<!-- chapters:start -->"
TABLE_END = "<!-- chapters:end -->"
COMMENT_COLUMN = 24


def _literal(value) -> str:
    return repr(value) if not isinstance(value, str) else '"' + value.replace('"', '\\"') + '"'


def parameter_line(name: str, spec: Spec) -> str:
    """``name = value  # help (cpu: ..., gpu: ...)`` for one spec."""
    value = "None" if spec.presets else _literal(spec.default)
    notes = [spec.help] if spec.help else []
    if spec.presets:
        notes.append("(" + ", ".join(f"{p}: {spec.presets.get(p, spec.default)!r}" for p in PRESETS) + ")")
    elif spec.choices is not None and spec.kind is not list:
        notes.append("(" + " / ".join(_literal(c) for c in spec.choices) + ")")
    lhs = f"{name} = {value}"
    comment = " ".join(notes)
    return f"{lhs:<{COMMENT_COLUMN - 1}} # {comment}" if comment else lhs


def parameters_source(specs: Mapping[str, Spec]) -> str:
    """The whole parameters cell of a chapter."""
    head = ("# Parameters (generated from the chapter's specs by `make params`; None = the preset's value).\n"
            "# Change them here, or from the command line: python -m nncompress.run NOTEBOOK -p NAME VALUE")
    return head + "\n" + "\n".join(parameter_line(n, s) for n, s in specs.items())


def _parameters_cell(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            if "parameters" not in cell.get("metadata", {}).get("tags", []):
                raise ValueError("the first code cell is not tagged 'parameters'")
            return cell
    raise ValueError("no code cell")


def sync_notebook(path: Path, *, check: bool = False) -> bool:
    """Make ``path``'s parameters cell match its chapter's specs; returns whether it was
    (``check``: would be) changed."""
    import nbformat

    from . import chapters
    from .nbtools import write_if_changed

    chapter = Path(path).stem
    if chapter not in chapters.CHAPTERS:
        return False
    nb = nbformat.read(str(path), as_version=4)
    try:
        cell = _parameters_cell(nb)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    wanted = parameters_source(chapters.specs(chapter))
    if cell.source == wanted:
        return False
    if not check:
        cell.source = wanted
        write_if_changed(nb, path)
    return True


def chapter_table(root: Path | None = None) -> str:
    """The README's chapter table: number, notebook (linked), topic, exercise (linked)."""
    from . import chapters

    root = root or repo_root()
    lines = ["| # | notebook | topic | exercise |", "|---|---|---|---|"]
    for name in chapters.names():
        info = chapters.info(name)
        number = name[:2]
        exercise = f"[{number}](exercises/{name}.ipynb)" if (root / "exercises" / f"{name}.ipynb").exists() else "–"
        lines.append(f"| {number} | [{info.get('TITLE', name)}](notebooks/{name}.ipynb) | "
                     f"{info.get('TOPIC', '')} | {exercise} |")
    return "\n".join(lines)


def sync_readme(readme: Path, *, check: bool = False) -> bool:
    """Replace the chapter table between the markers; returns whether it (would) change."""
    from ..cache import atomic_write_bytes

    text = readme.read_text(encoding="utf-8")
    if text.count(TABLE_START) != 1 or text.count(TABLE_END) != 1:
        raise ValueError(f"{readme}: needs exactly one {TABLE_START} and one {TABLE_END}")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    new = f"{head}{TABLE_START}\n{chapter_table(readme.parent)}\n{TABLE_END}{tail}"
    if new == text:
        return False
    if not check:
        atomic_write_bytes(readme, new.encode("utf-8"))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nncompress.course.generated", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--readme", type=Path, default=None, help="README whose chapter table to sync "
                        "(default: the repository's README.md when no notebooks are given)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or default_notebooks()
    readme = args.readme or (repo_root() / "README.md" if not args.notebooks else None)
    stale = [str(p) for p in notebooks if sync_notebook(p, check=args.check)]
    if readme is not None and sync_readme(readme, check=args.check):
        stale.append(f"{readme} (chapter table)")
    verb = "out of date" if args.check else "regenerated"
    for s in stale:
        print(f"{verb}: {s}")
    if args.check and stale:
        print("fix: make params", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
