"""Course tooling: student exercises from nbgrader source notebooks, execution, grading.

The graded assignments live in ``solutions/NN_topic.ipynb`` in nbgrader *source* format
(``### BEGIN SOLUTION``/``### END SOLUTION`` and ``### BEGIN HIDDEN TESTS``/
``### END HIDDEN TESTS`` regions, nbgrader cell metadata).  The student versions in
``exercises/`` are generated from them by nbgrader's own preprocessors, applied in the
order ``nbgrader generate_assignment`` uses, minus the ones that need a gradebook
database or a course directory (``SaveCells``)::

    python -m nncompress.course.grading generate           # write exercises/*.ipynb
    python -m nncompress.course.grading generate --check   # exit 1 if any is stale or missing
    python -m nncompress.course.grading grade solutions/01_knowledge_distillation.ipynb
    python -m nncompress.course.grading course classroom     # a stock nbgrader course directory

nbgrader is a teacher/test dependency, so it is imported inside the functions only.

Deviations from ``nbgrader generate_assignment`` (all deliberate):

* no gradebook: ``SaveCells`` is skipped, and ``IncludeHeaderFooter`` only runs with an
  explicit ``header``/``footer``;
* cells without an ``id`` get a deterministic one (``nbformat`` would invent a random
  id, which would make the output differ on every run);
* the notebook is written with a trailing newline and ``\\n`` line endings exactly like
  nbconvert's ``NotebookExporter``, but only when its content changed.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

#: what replaces a ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region in a code cell
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
#: what replaces the whole source of a markdown solution cell
TEXT_STUB = "YOUR ANSWER HERE"

SOLUTION_DELIMITERS = ("BEGIN SOLUTION", "END SOLUTION")
HIDDEN_TEST_DELIMITERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
MARK_SCHEME_DELIMITERS = ("BEGIN MARK SCHEME", "END MARK SCHEME")

_PACKAGE_REPO_ROOT = Path(__file__).resolve().parents[2]  # lib/nncompress/grading.py -> repo


# --------------------------------------------------------------------------- generation

def _preprocessors(header: str = "", footer: str = "") -> list:
    """nbgrader's ``GenerateAssignment.preprocessors``, instantiated, without ``SaveCells``."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        IncludeHeaderFooter,
        InstantiateTests,
        LockCells,
    )

    code_stub = dict(ClearSolutions().code_stub)  # keep nbgrader's stubs for other kernels
    code_stub["python"] = CODE_STUB
    return [
        IncludeHeaderFooter(header=header, footer=footer),
        InstantiateTests(),  # a no-op (no kernel started) unless a cell has an AUTOTEST line
        LockCells(),
        ClearSolutions(code_stub=code_stub, text_stub=TEXT_STUB),
        ClearOutput(),
        CheckCellMetadata(),
        ComputeChecksums(),
        # SaveCells() records the source cells in the gradebook database: skipped.
        ClearHiddenTests(),
        ClearMarkScheme(),
        ComputeChecksums(),  # again: the grade cells changed when the hidden tests went
        CheckCellMetadata(),
    ]


def _ensure_cell_ids(nb: NotebookNode) -> None:
    """Give cells without an id a deterministic one (nbformat would pick a random one)."""
    if (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) < (4, 5):
        return
    used = {cell["id"] for cell in nb.cells if "id" in cell}
    for index, cell in enumerate(nb.cells):
        if "id" in cell:
            continue
        base = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell-{index}"
        candidate, n = base, 1
        while candidate in used:
            candidate, n = f"{base}-{n}", n + 1
        cell["id"] = candidate
        used.add(candidate)


def _read(nb_or_path: NotebookNode | str | os.PathLike) -> tuple[NotebookNode, Path | None]:
    if isinstance(nb_or_path, (str, os.PathLike)):
        path = Path(nb_or_path)
        return nbformat.read(path, as_version=4), path
    return nbformat.from_dict(copy.deepcopy(nb_or_path)), None


def generate_exercise(source_nb: NotebookNode | str | os.PathLike, *, header: str = "",
                      footer: str = "") -> NotebookNode:
    """The student version of an nbgrader source notebook (a notebook or a path).

    Applies nbgrader's preprocessors in ``nbgrader generate_assignment``'s order (see the
    module docstring for what is left out); the input is not modified.  Raises whatever
    nbgrader raises on a malformed source (unbalanced delimiters, a solution region in a
    non-solution cell, invalid or duplicate nbgrader metadata, ...).
    """
    nb, path = _read(source_nb)
    _ensure_cell_ids(nb)
    _, nb = nbformat.validator.normalize(nb)
    nb = nbformat.from_dict(nb)
    name = path.stem if path is not None else "notebook"
    resources: dict[str, Any] = {
        "unique_key": name,
        "metadata": {"name": name, "path": str(path.parent) if path is not None else os.getcwd()},
        "nbgrader": {"notebook": name},
    }
    for preprocessor in _preprocessors(header, footer):
        nb, resources = preprocessor(nb, resources)  # __call__ honours ``enabled``
    nbformat.validate(nb)
    return nb


def _to_text(nb: NotebookNode) -> str:
    """Serialise exactly as nbconvert's NotebookExporter does."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _solution_files(solutions_dir: Path) -> list[Path]:
    return sorted(p for p in solutions_dir.glob("*.ipynb") if not p.name.startswith("."))


def generate_all(solutions_dir: str | os.PathLike = "solutions",
                 exercises_dir: str | os.PathLike = "exercises", check: bool = False,
                 *, verbose: bool = True) -> list[Path]:
    """Generate ``exercises_dir/X.ipynb`` from every ``solutions_dir/X.ipynb``.

    ``check=False``: writes the exercises whose content changed and returns their paths.
    ``check=True``: writes nothing and returns the exercises that are stale or missing,
    plus exercises without a source notebook (orphans).  Paths are printed if ``verbose``.
    """
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    sources = _solution_files(solutions_dir)
    if not sources:
        raise FileNotFoundError(f"no *.ipynb in {solutions_dir.resolve()}")
    changed: list[Path] = []
    for source in sources:
        target = exercises_dir / source.name
        text = _to_text(generate_exercise(source))
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        changed.append(target)
        if check:
            if verbose:
                print(f"{'missing' if current is None else 'stale'}: {target} "
                      f"(from {source})", file=sys.stderr)
        else:
            _write_text(target, text)
            if verbose:
                print(f"wrote {target}")
    orphans = sorted(set(p.name for p in exercises_dir.glob("*.ipynb"))
                     - set(p.name for p in sources)) if exercises_dir.is_dir() else []
    for name in orphans:
        if verbose:
            print(f"orphan: {exercises_dir / name} has no source in {solutions_dir}",
                  file=sys.stderr)
        if check:
            changed.append(exercises_dir / name)
    return changed


# --------------------------------------------------------------------------- execution

def _default_cwd() -> Path:
    for candidate in (Path.cwd() / "solutions", _PACKAGE_REPO_ROOT / "solutions"):
        if candidate.is_dir():
            return candidate
    return Path.cwd()


def execute(nb: NotebookNode | str | os.PathLike, timeout: int = 120,
            cwd: str | os.PathLike | None = None, kernel_name: str | None = None) -> NotebookNode:
    """Execute a copy of ``nb`` with nbclient, errors allowed (every cell runs).

    ``cwd`` defaults to the repository's ``solutions/`` folder (``nncompress`` is importable
    from there); ``timeout`` is per cell.  The kernel is the notebook's kernelspec
    (``python3`` = the running interpreter, so the project's virtual environment).
    """
    from nbclient import NotebookClient

    nb, path = _read(nb)
    if cwd is None:
        cwd = path.parent if path is not None else _default_cwd()
    kernel_name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


# --------------------------------------------------------------------------- grading

def grade(executed_nb: NotebookNode | str | os.PathLike) -> tuple[float, float, dict[str, dict]]:
    """Autograde an executed notebook with nbgrader's own rules (``utils.determine_grade``).

    Returns ``(score, max_score, per_cell)``; ``per_cell[grade_id]`` is a dict with
    ``score``, ``max_score`` and ``status``:

    * ``"passed"`` / ``"failed"``: an autograded test cell; nbgrader gives 0 if its output
      holds an error *or anything on stderr* (a printed warning fails a test cell!), partial
      credit if the cell's value is a number, full points otherwise;
    * ``"modified"``: a test cell whose source no longer matches the checksum stored when
      the exercise was generated (the student edited the tests): 0 points;
    * ``"manual"``: a manually graded cell (markdown answer, task): score ``None``,
      counted as 0 in ``score``; an unanswered one (checksum unchanged) scores 0 as in
      nbgrader, with status ``"unanswered"``.
    """
    from nbgrader import utils

    nb, _ = _read(executed_nb)
    per_cell: dict[str, dict] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (utils.is_grade(cell) or utils.is_task(cell)):
            continue
        grade_id = meta.get("grade_id", f"cell-{len(per_cell)}")
        max_points = float(meta.get("points", 0))
        if utils.is_task(cell) and not utils.is_grade(cell):
            per_cell[grade_id] = {"score": None, "max_score": max_points, "status": "manual"}
            continue
        if (not utils.is_solution(cell) and "checksum" in meta
                and meta["checksum"] != utils.compute_checksum(cell)):
            per_cell[grade_id] = {"score": 0.0, "max_score": max_points, "status": "modified"}
            continue
        score, max_points = utils.determine_grade(cell)
        if utils.is_solution(cell):
            status = "manual" if score is None else "unanswered"
        else:
            status = "passed" if score == max_points else "failed"
        per_cell[grade_id] = {"score": None if score is None else float(score),
                              "max_score": float(max_points), "status": status}
    score = sum(c["score"] or 0.0 for c in per_cell.values())
    max_score = sum(c["max_score"] for c in per_cell.values())
    return score, max_score, per_cell


# --------------------------------------------------------------------------- classroom

COURSE_ID = "nncompress"

_CONFIG_TEMPLATE = '''\
# nbgrader configuration of the nncompress course, written by
# `python -m nncompress.course.grading course`.  Run nbgrader's commands in this folder.
import os

c = get_config()  # noqa: F821 (defined by nbgrader when it loads this file)
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# assignments (one per chapter, source/<name>/<name>.ipynb from the repository's solutions/):
#   {assignments}
# `nbgrader generate_assignment <name>` adds one to the gradebook.
# the notebooks import torch and nncompress: give a cell time
c.Execute.timeout = {timeout}
# where `nbgrader release_assignment` / `fetch_assignment` / `submit` / `collect` meet
# (nbgrader's default /srv/nbgrader/exchange); uncomment for a shared folder of your own:
# c.Exchange.root = "/srv/nbgrader/exchange"
'''


def _select(sources: list[Path], assignments) -> list[Path]:
    if assignments is None:
        return sources
    wanted = [str(a) for a in ([assignments] if isinstance(assignments, (str, os.PathLike))
                               else assignments)]
    chosen = []
    for name in wanted:
        match = [p for p in sources if p.stem == name or p.stem.split("_", 1)[0] == name
                 or p.name == name]
        if not match:
            raise ValueError(f"assignments: no solution notebook {name!r}; "
                             f"available: {[p.stem for p in sources]}")
        chosen += [p for p in match if p not in chosen]
    return chosen


def build_course(course_dir: str | os.PathLike, solutions_dir: str | os.PathLike = "solutions",
                 assignments=None, *, course_id: str = COURSE_ID, timeout: int = 120,
                 verbose: bool = False) -> list[str]:
    """Write a stock nbgrader course directory for the graded assignments.

    ``course_dir/nbgrader_config.py`` (course id, root = that folder, the assignments,
    a per-cell execution timeout) and ``course_dir/source/NAME/NAME.ipynb`` copied byte
    for byte from ``solutions_dir/NAME.ipynb`` (one assignment per chapter, named like
    its notebook, e.g. ``01_knowledge_distillation``).  ``assignments``: names (notebook
    stems, or chapter numbers like ``"01"``) to include; default all.  Returns the
    assignment names.  Existing files in ``source/`` are overwritten; nothing else in
    ``course_dir`` (release/, submitted/, the gradebook) is touched.

    Then, in ``course_dir``, nbgrader's own commands::

        nbgrader generate_assignment 01_knowledge_distillation   # -> release/
        nbgrader release_assignment 01_knowledge_distillation    # to the exchange
        nbgrader collect 01_knowledge_distillation               # -> submitted/<student>/
        nbgrader autograde 01_knowledge_distillation             # -> autograded/, gradebook.db
        nbgrader export                                          # -> grades.csv
    """
    course_dir, solutions_dir = Path(course_dir), Path(solutions_dir)
    sources = _solution_files(solutions_dir)
    if not sources:
        raise FileNotFoundError(f"no *.ipynb in {solutions_dir.resolve()}")
    sources = _select(sources, assignments)
    names = [p.stem for p in sources]
    for source in sources:
        target = course_dir / "source" / source.stem / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        if verbose:
            print(f"wrote {target}")
    config = course_dir / "nbgrader_config.py"
    _write_text(config, _CONFIG_TEMPLATE.format(
        course_id=course_id, assignments=", ".join(names), timeout=int(timeout)))
    if verbose:
        print(f"wrote {config}")
    return names


# --------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nncompress.course.grading", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write exercises/ from solutions/ (nbgrader)")
    gen.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 if an exercise is stale, missing or orphaned")
    gen.add_argument("--solutions", default="solutions", help="source notebooks (default: %(default)s)")
    gen.add_argument("--exercises", default="exercises", help="output folder (default: %(default)s)")
    grd = sub.add_parser("grade", help="execute notebooks (errors allowed) and autograde them")
    grd.add_argument("notebooks", nargs="+")
    grd.add_argument("--timeout", type=int, default=120, help="per cell, seconds")
    crs = sub.add_parser("course", help="write a stock nbgrader course directory "
                                        "(nbgrader_config.py, source/NAME/NAME.ipynb)")
    crs.add_argument("dir", help="the course directory to create or update")
    crs.add_argument("--solutions", default="solutions", help="source notebooks (default: %(default)s)")
    crs.add_argument("--assignment", "-a", action="append", dest="assignments", default=None,
                     help="only this assignment (notebook stem or chapter number; repeatable)")
    crs.add_argument("--course-id", default=COURSE_ID, help="default: %(default)s")
    args = parser.parse_args(argv)

    if args.command == "course":
        names = build_course(args.dir, args.solutions, args.assignments,
                             course_id=args.course_id, verbose=True)
        print(f"course {args.course_id!r} in {args.dir}: {', '.join(names)}\n"
              f"next: cd {args.dir} && nbgrader generate_assignment {names[0]}")
        return 0

    if args.command == "generate":
        changed = generate_all(args.solutions, args.exercises, check=args.check)
        if args.check:
            if changed:
                print(f"{len(changed)} exercise(s) out of date: run "
                      f"`python -m nncompress.course.grading generate`", file=sys.stderr)
                return 1
            print("exercises are up to date")
        elif not changed:
            print("exercises are up to date")
        return 0

    status = 0
    for path in args.notebooks:
        score, max_score, per_cell = grade(execute(path, timeout=args.timeout))
        print(f"{path}: {score:g} / {max_score:g}")
        for grade_id, cell in per_cell.items():
            shown = "-" if cell["score"] is None else f"{cell['score']:g}"
            print(f"  {grade_id:<32} {shown:>5} / {cell['max_score']:g}  {cell['status']}")
        status |= score < max_score
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
