"""Course tooling: student exercises from nbgrader source notebooks, execution, grading.

The graded assignments live in ``solutions/NN_topic.ipynb`` in nbgrader *source* format
(``### BEGIN SOLUTION``/``### END SOLUTION`` and ``### BEGIN HIDDEN TESTS``/
``### END HIDDEN TESTS`` regions, nbgrader cell metadata).  The student versions in
``exercises/`` are generated from them by nbgrader's own preprocessors, applied in the
order ``nbgrader generate_assignment`` uses, minus the ones that need a gradebook
database or a course directory (``SaveCells``)::

    python -m nncompress.course.grading generate           # write exercises/*.ipynb
    python -m nncompress.course.grading generate --check   # exit 1 if any is stale or missing
    python -m nncompress.course.grading grade submitted/alice/01_knowledge_distillation.ipynb
    python -m nncompress.course.grading course classroom     # a stock nbgrader course directory

``grade`` never trusts the submission (as ``nbgrader autograde`` does not: it restores
from its gradebook): the notebook that runs is the instructor's source
(``solutions/<the submission's file name>``, or ``--source``) with only the text of the
student's solution cells put in, matched by ``grade_id``; test cells with their hidden
tests, set-up cells, points and grade ids come from the source.  The kernel is pinned
(this interpreter, or ``--kernel``), with a per-cell and a whole-notebook time limit and
the offline guard.  It still executes the student's code, as the user who runs it: run
it in a container or as an unprivileged user (see README).

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
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from .layout import repo_root

#: what replaces a ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region in a code cell
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
#: what replaces the whole source of a markdown solution cell
TEXT_STUB = "YOUR ANSWER HERE"

SOLUTION_DELIMITERS = ("BEGIN SOLUTION", "END SOLUTION")
HIDDEN_TEST_DELIMITERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
MARK_SCHEME_DELIMITERS = ("BEGIN MARK SCHEME", "END MARK SCHEME")

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

#: seconds one cell may run (``grade --timeout``)
DEFAULT_CELL_TIMEOUT = 120
#: seconds a whole notebook may run, kernel start included (``grade --notebook-timeout``)
DEFAULT_NOTEBOOK_TIMEOUT = 900
#: the kernel grading uses unless told otherwise: ipykernel in the running interpreter
PINNED_KERNEL = "nncompress-grading"
EXECUTION_STATUSES = ("ok", "timeout", "dead-kernel", "error")


class UnreadableNotebook(ValueError):
    """A submission or source that is not a readable notebook (the message names which)."""


def _default_solutions_dir() -> Path:
    for candidate in (Path.cwd() / "solutions", repo_root() / "solutions"):
        if candidate.is_dir():
            return candidate
    return Path.cwd()


def offline_guard_dir() -> Path | None:
    """The folder of the course's offline guard (:func:`nncompress.course.layout.offline_guard_dir`)."""
    from .layout import offline_guard_dir as guard

    return guard()


def _shut_down(client, km) -> None:
    """Stop the kernel that ``client`` ran on ``km``.  nbclient shuts a kernel down only when it
    created the kernel manager itself; given one (``km=``, as :func:`run` does to pin the
    kernel), it leaves the kernel running until the interpreter exits - every graded notebook
    would leave a ~750 MB kernel behind (36 of them, 21 GB, were alive in one test run)."""
    from jupyter_core.utils import run_sync

    kc = getattr(client, "kc", None)
    if kc is not None:
        kc.stop_channels()
    try:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # already gone (killed after a timeout, died): nothing left to stop
        pass


def _kernel_manager(kernel: str | None):
    """A kernel manager for ``kernel``: None = ipykernel in the running interpreter
    (whatever the notebook's kernelspec says), else an installed kernelspec by name."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager

    if kernel is None:
        spec = KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name=f"Python ({sys.executable})", language="python")

        class PinnedKernelSpecs(KernelSpecManager):
            def get_kernel_spec(self, kernel_name):
                if kernel_name != PINNED_KERNEL:
                    raise NoSuchKernel(kernel_name)
                return spec

        return AsyncKernelManager(kernel_name=PINNED_KERNEL, kernel_spec_manager=PinnedKernelSpecs())
    specs = KernelSpecManager()
    try:
        specs.get_kernel_spec(kernel)
    except NoSuchKernel:
        raise ValueError(f"kernel: no Jupyter kernel named {kernel!r}; installed: "
                         f"{sorted(specs.find_kernel_specs())} (or None: this interpreter)") from None
    return AsyncKernelManager(kernel_name=kernel, kernel_spec_manager=specs)


def _check_seconds(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value == float("inf"):
        raise ValueError(f"{name}: {value!r} is not a positive number of seconds (or None: no limit)")
    return float(value)


@dataclass
class Execution:
    """How one notebook ran: ``status`` is one of :data:`EXECUTION_STATUSES` (``ok``: every
    cell ran, errors in cells allowed); cells after a timeout or a dead kernel did not run."""

    nb: NotebookNode = field(repr=False)
    status: str
    error: str | None
    seconds: float
    kernel: str                      # what ran the cells
    offline: bool                    # whether the offline guard was on PYTHONPATH
    exception: BaseException | None = field(default=None, repr=False)


def run(nb: NotebookNode | str | os.PathLike, *, cell_timeout: float | None = DEFAULT_CELL_TIMEOUT,
        notebook_timeout: float | None = DEFAULT_NOTEBOOK_TIMEOUT,
        cwd: str | os.PathLike | None = None, kernel: str | None = None, offline: bool = True,
        env: dict[str, str] | None = None) -> Execution:
    """Execute a copy of ``nb`` with nbclient, errors allowed (every cell runs).

    The kernel is pinned: ``kernel=None`` is ipykernel in the running interpreter, a name
    is that installed kernelspec; the notebook's own kernelspec is ignored.  No cell may
    run longer than ``cell_timeout`` and all of them together (kernel start included) no
    longer than ``notebook_timeout`` seconds (None: no limit); on a timeout the kernel is
    killed and the remaining cells do not run.  ``offline``: the kernel starts with the
    offline guard (:func:`offline_guard_dir`) on ``PYTHONPATH`` when the checkout has one.
    ``env`` is added to the kernel's environment.  ``cwd`` defaults to the notebook's
    folder, else the repository's ``solutions/`` (``nncompress`` is importable from there).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    cell_timeout = _check_seconds("cell_timeout", cell_timeout)
    notebook_timeout = _check_seconds("notebook_timeout", notebook_timeout)
    nb, path = _read(nb)
    if cwd is None:
        cwd = path.parent if path is not None else _default_solutions_dir()
    km = _kernel_manager(kernel)
    kernel_env = {**os.environ, **(env or {})}
    guard = offline_guard_dir() if offline else None
    if guard is not None:
        kernel_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(guard), kernel_env.get("PYTHONPATH")]))

    start = time.monotonic()
    deadline = None if notebook_timeout is None else start + notebook_timeout

    def remaining() -> float | None:
        return None if deadline is None else deadline - time.monotonic()

    def timeout_for(cell) -> int | None:  # nbclient reads 0 as "no limit": at least 1 s
        limits = [t for t in (cell_timeout, remaining()) if t is not None]
        return max(1, math.ceil(min(limits))) if limits else None

    client = NotebookClient(
        nb, km=km, timeout_func=timeout_for, allow_errors=True, shutdown_kernel="immediate",
        startup_timeout=max(1, math.ceil(min(60.0, notebook_timeout or 60.0))),
        resources={"metadata": {"path": str(cwd)}})
    status, error, exc = "ok", None, None
    try:
        client.execute(env=kernel_env)
    except CellTimeoutError as e:
        left = remaining()
        which = (f"the notebook ran past its limit of {notebook_timeout:g} s"
                 if left is not None and left <= 1 else f"a cell ran past its limit of {cell_timeout:g} s")
        status, error, exc = "timeout", which, e
    except DeadKernelError as e:
        status, error, exc = "dead-kernel", "the kernel died", e
    except Exception as e:  # the kernel did not start, ...
        left = remaining()
        if left is not None and left <= 0:
            status, error = "timeout", f"the notebook ran past its limit of {notebook_timeout:g} s"
        else:
            status, error = "error", f"{type(e).__name__}: {e}"
        exc = e
    finally:
        _shut_down(client, km)
    label = kernel or f"{PINNED_KERNEL} ({sys.executable})"
    return Execution(nb=nb, status=status, error=error, seconds=time.monotonic() - start,
                     kernel=label, offline=guard is not None, exception=exc)


def execute(nb: NotebookNode | str | os.PathLike, timeout: int = DEFAULT_CELL_TIMEOUT,
            cwd: str | os.PathLike | None = None, kernel_name: str | None = None, *,
            notebook_timeout: float | None = None, offline: bool = True) -> NotebookNode:
    """The executed copy of ``nb`` (see :func:`run`; ``timeout`` is per cell); raises
    nbclient's ``CellTimeoutError`` / ``DeadKernelError`` if the notebook did not run to
    the end."""
    result = run(nb, cell_timeout=timeout, notebook_timeout=notebook_timeout, cwd=cwd,
                 kernel=kernel_name, offline=offline)
    if result.exception is not None:
        raise result.exception
    return result.nb


# --------------------------------------------------------------------------- grading

def grade(executed_nb: NotebookNode | str | os.PathLike) -> tuple[float, float, dict[str, dict]]:
    """Autograde an executed notebook with nbgrader's own rules (``utils.determine_grade``).

    This trusts the notebook's nbgrader metadata (points, checksums): use it on notebooks
    you built, e.g. by :func:`assemble`; grade students' files with :func:`grade_submission`.
    Returns ``(score, max_score, per_cell)``; ``per_cell[grade_id]`` is a dict with
    ``score``, ``max_score`` and ``status``:

    * ``"passed"`` / ``"failed"``: an autograded test cell; nbgrader gives 0 if its output
      holds an error *or anything on stderr* (a printed warning fails a test cell!), partial
      credit if the cell's value is a number, full points otherwise;
    * ``"not run"``: a test code cell that was never executed (after a timeout or a dead
      kernel): 0 points (nbgrader's rule alone would see no error and give full points);
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
        if (not utils.is_solution(cell) and cell.cell_type == "code"
                and cell.get("execution_count") is None):
            per_cell[grade_id] = {"score": 0.0, "max_score": max_points, "status": "not run"}
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


def read_notebook(path: str | os.PathLike, role: str = "notebook") -> NotebookNode:
    """``path`` read as a notebook; ``role`` ("submission", "source") names it in the errors:
    ``FileNotFoundError`` if it is not a file, :class:`UnreadableNotebook` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{role}: {path} does not exist or is not a file")
    try:
        nb = nbformat.read(path, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as error:  # OSError, not JSON, not nbformat 4, ...: all mean "unreadable"
        raise UnreadableNotebook(f"{role}: cannot read {path} as a notebook: "
                                 f"{type(error).__name__}: {error}") from None
    return nb


def find_source(submission: str | os.PathLike, source: str | os.PathLike | None = None,
                solutions_dir: str | os.PathLike | None = None) -> Path:
    """The instructor's source notebook of ``submission``: ``source`` if given, else
    ``solutions_dir/<the submission's file name>`` (default: the repository's ``solutions/``)."""
    if source is not None:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"source: {path} does not exist or is not a file")
        return path
    folder = Path(solutions_dir) if solutions_dir is not None else _default_solutions_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"solutions_dir: {folder} is not a folder")
    path = folder / Path(submission).name
    if not path.is_file():
        raise FileNotFoundError(
            f"submission {Path(submission).name!r}: no source notebook {path}; available: "
            f"{[p.name for p in _solution_files(folder)]}; name the source explicitly (--source)")
    return path


def _grade_id(cell: Any) -> str | None:
    """A submitted cell's grade id, or None (a hostile file may hold anything anywhere)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    grade_id = nbg.get("grade_id") if isinstance(nbg, dict) else None
    return grade_id if isinstance(grade_id, str) else None


@dataclass
class Assembly:
    """The notebook to execute for one submission, and what was taken from where."""

    nb: NotebookNode = field(repr=False)
    answered: list[str] = field(default_factory=list)       # solution cells taken from the submission
    unanswered: dict[str, str] = field(default_factory=dict)  # solution grade id -> why not
    dropped: list[str] = field(default_factory=list)        # submitted cells not used, and why
    restored: list[str] = field(default_factory=list)       # source cells the submission had changed

    def notes(self) -> list[str]:
        return ([f"{gid}: unanswered ({why})" for gid, why in self.unanswered.items()]
                + [f"dropped: {what}" for what in self.dropped]
                + [f"{gid}: edited in the submission; the source's cell was run"
                   for gid in self.restored])


def assemble(submission: NotebookNode | str | os.PathLike,
             source: NotebookNode | str | os.PathLike) -> Assembly:
    """The notebook that grading executes: the instructor's ``source`` with the student's
    answers from ``submission`` in its solution cells.

    As ``nbgrader autograde`` does from its gradebook: every cell that is not a solution
    cell (markdown, locked set-up code, test cells *with their hidden tests*) and every
    cell's nbgrader metadata (grade ids, points) come from the source; only the source
    of a solution cell comes from the submission, matched by ``grade_id``.  A solution
    cell missing from the submission, present more than once or changed to another cell
    type keeps the exercise's stub (unanswered); submitted cells with unknown grade ids or
    none are dropped.  The kernelspec is the pinned one (see :func:`run`).
    """
    from nbgrader import utils

    src, _ = _read(source)
    student, _ = _read(submission)
    exercise = generate_exercise(src)  # validates the source; stubs, checksums, cell ids
    if len(exercise.cells) != len(src.cells):
        raise ValueError("source: nbgrader changed the number of cells (a header or footer?)")
    solution_ids = {c.metadata.nbgrader.grade_id for c in exercise.cells if utils.is_solution(c)}
    # a non-solution cell as released, or as in the source (hidden tests and all)
    other_ids = {c.metadata.nbgrader.grade_id: {c.source, o.source}
                 for c, o in zip(exercise.cells, src.cells)
                 if _grade_id(c) is not None and not utils.is_solution(c)}
    plain_sources = {c.source for c in exercise.cells if _grade_id(c) is None}
    submitted: dict[str, list] = {}
    out = Assembly(nb=exercise)
    for index, cell in enumerate(student.get("cells", [])):
        grade_id = _grade_id(cell)
        if grade_id in solution_ids:
            submitted.setdefault(grade_id, []).append(cell)
        elif grade_id in other_ids:
            if not isinstance(cell, dict) or cell.get("source") not in other_ids[grade_id]:
                out.restored.append(grade_id)
        elif grade_id is not None:
            out.dropped.append(f"cell {index}: grade_id {grade_id!r} is not in the source")
        elif not isinstance(cell, dict) or cell.get("source") not in plain_sources:
            out.dropped.append(f"cell {index}: not a cell of the assignment (no grade_id)")

    nb = exercise
    for cell, original in zip(nb.cells, src.cells):
        if not utils.is_solution(cell):
            cell.source = original.source  # hidden tests and mark schemes back in
            cell.metadata.get("nbgrader", {}).pop("checksum", None)
            continue
        grade_id = cell.metadata.nbgrader.grade_id
        answers = submitted.get(grade_id, [])
        if not answers:
            out.unanswered[grade_id] = "missing from the submission"
        elif len(answers) > 1:
            out.unanswered[grade_id] = f"{len(answers)} cells carry this grade_id"
        elif answers[0].get("cell_type") != cell.cell_type or not isinstance(answers[0].get("source"), str):
            out.unanswered[grade_id] = f"the cell is no longer a {cell.cell_type} cell"
        elif answers[0]["source"] == cell.source:
            out.unanswered[grade_id] = "the stub is unchanged"
        else:
            cell.source = answers[0]["source"]  # metadata (checksum of the stub) stays the exercise's
            out.answered.append(grade_id)
    nb.metadata["kernelspec"] = {"name": PINNED_KERNEL, "display_name": "pinned by the grader",
                                 "language": "python"}
    return out


@dataclass
class Report:
    """The grade of one submission: ``per_cell`` as in :func:`grade` (points from the source)."""

    submission: str
    source: str
    score: float
    max_score: float
    per_cell: dict[str, dict]
    status: str                      # how execution went (:data:`EXECUTION_STATUSES`)
    error: str | None
    seconds: float
    kernel: str
    offline: bool
    notes: list[str] = field(default_factory=list)
    executed: NotebookNode | None = field(default=None, repr=False)

    @property
    def full_marks(self) -> bool:
        return self.status == "ok" and self.score == self.max_score

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "executed"}


def grade_submission(submission: str | os.PathLike, source: str | os.PathLike | None = None, *,
                     solutions_dir: str | os.PathLike | None = None,
                     cell_timeout: float | None = DEFAULT_CELL_TIMEOUT,
                     notebook_timeout: float | None = DEFAULT_NOTEBOOK_TIMEOUT,
                     kernel: str | None = None, offline: bool = True,
                     cwd: str | os.PathLike | None = None) -> Report:
    """Grade a student's notebook file against the instructor's source notebook.

    The source is ``source`` or ``solutions_dir/<the submission's file name>``
    (:func:`find_source`); the notebook that runs is :func:`assemble`'s (the source with
    the student's answers), executed by :func:`run` (pinned kernel, per-cell and
    whole-notebook limits, offline guard) in ``cwd`` (default: a fresh temporary folder,
    removed afterwards: nothing the student's code writes lands beside the sources), and
    scored by :func:`grade`.  Nothing in the submission but the text of its solution
    cells is used: its tests, points, checksums and kernelspec are ignored.  Student code
    runs as the user calling this, with that user's rights: isolate it (see README).
    Raises ``FileNotFoundError`` / :class:`UnreadableNotebook` for a missing or
    unreadable submission or source.
    """
    submission_path = Path(submission)
    student = read_notebook(submission_path, "submission")
    source_path = find_source(submission_path, source, solutions_dir)
    src = read_notebook(source_path, "source")
    assembly = assemble(student, src)
    with tempfile.TemporaryDirectory(prefix="nncompress-grade-", ignore_cleanup_errors=True) as scratch:
        execution = run(assembly.nb, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                        cwd=cwd or scratch, kernel=kernel, offline=offline)
    score, max_score, per_cell = grade(execution.nb)
    notes = assembly.notes()
    if offline and not execution.offline:
        notes.append("no offline guard in this checkout: the kernel had network access")
    return Report(submission=str(submission_path), source=str(source_path), score=score,
                  max_score=max_score, per_cell=per_cell, status=execution.status,
                  error=execution.error, seconds=execution.seconds, kernel=execution.kernel,
                  offline=execution.offline, notes=notes, executed=execution.nb)


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
    grd = sub.add_parser("grade", help="grade submissions against the instructor's source notebooks "
                                      "(runs the student's code: see README on isolating it)")
    grd.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    grd.add_argument("--source", default=None,
                     help="the instructor's source notebook (default: SOLUTIONS/<submission's name>)")
    grd.add_argument("--solutions", default=None,
                     help="folder of source notebooks (default: solutions/ here or in the repository)")
    grd.add_argument("--timeout", type=_seconds, default=DEFAULT_CELL_TIMEOUT,
                     help="seconds per cell (default: %(default)s)")
    grd.add_argument("--notebook-timeout", type=_seconds, default=DEFAULT_NOTEBOOK_TIMEOUT,
                     help="seconds per notebook, kernel start included (default: %(default)s)")
    grd.add_argument("--kernel", default=None,
                     help="an installed Jupyter kernel (default: this interpreter; never the "
                          "submission's kernelspec)")
    grd.add_argument("--allow-network", action="store_true",
                     help="do not start the kernel with the offline guard")
    grd.add_argument("--json", default=None, metavar="PATH", help="also write the grades as JSON")
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

    return _grade_command(args)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _print_report(report: Report) -> None:
    print(f"{report.submission}: {report.score:g} / {report.max_score:g}"
          f"  (source {report.source}; kernel {report.kernel}; {report.seconds:.1f} s)")
    for grade_id, cell in report.per_cell.items():
        shown = "-" if cell["score"] is None else f"{cell['score']:g}"
        print(f"  {grade_id:<32} {shown:>5} / {cell['max_score']:g}  {cell['status']}")
    print(f"  {'total':<32} {report.score:>5g} / {report.max_score:g}")
    if report.status != "ok":
        print(f"  execution stopped: {report.status}: {report.error}")
    for note in report.notes:
        print(f"  note: {note}")


def _grade_command(args) -> int:
    """Exit status: 0 every submission got full marks, 1 one did not (or did not run to the
    end), 2 a submission or source was missing or unreadable."""
    status, reports = 0, []
    for path in args.submissions:
        try:
            report = grade_submission(path, args.source, solutions_dir=args.solutions,
                                      cell_timeout=args.timeout,
                                      notebook_timeout=args.notebook_timeout, kernel=args.kernel,
                                      offline=not args.allow_network)
        except (FileNotFoundError, UnreadableNotebook, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            status = 2
            continue
        _print_report(report)
        reports.append(report.to_dict())
        if not report.full_marks:
            status = max(status, 1)
    if args.json:
        _write_text(Path(args.json), json.dumps(reports, indent=1) + "\n")
    return status

if __name__ == "__main__":
    sys.exit(main())
