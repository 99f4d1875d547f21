"""Graded assignments: ``solutions/*.ipynb`` (nbgrader source) and ``exercises/*.ipynb``.

For every source notebook: the committed exercise is what nbgrader's preprocessors make
of it today (byte for byte); the solution executes and scores full marks; the student
version executes to the end and scores 0; no solution or hidden-test line reaches the
student version; the first markdown cell states the learning goals, the total points
(``Total: N points``, equal to the points in the metadata) and a time estimate
(``Time estimate: ... N minutes``).  New chapters are picked up automatically.

Regenerate the exercises with ``python -m nncompress.course.grading generate``.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import nbgrader  # noqa: E402,F401  (a declared test dependency: missing means broken set-up)

from nncompress.course import grading  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = ROOT / "solutions"
EXERCISES_DIR = ROOT / "exercises"
SOLUTIONS = sorted(p for p in SOLUTIONS_DIR.glob("*.ipynb") if not p.name.startswith("."))
per_solution = pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)

CELL_TIMEOUT = 60  # seconds per cell; a whole assignment should run in ~10 s
MARKERS = [*grading.SOLUTION_DELIMITERS, *grading.HIDDEN_TEST_DELIMITERS,
           *grading.MARK_SCHEME_DELIMITERS]


def exercise_of(solution: Path) -> Path:
    path = EXERCISES_DIR / solution.name
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `python -m nncompress.course.grading generate`")
    return path


@functools.lru_cache(maxsize=None)
def executed(path: Path) -> nbformat.NotebookNode:
    """Each notebook runs once per session (two kernels in all for one chapter)."""
    return grading.execute(path, timeout=CELL_TIMEOUT)


def errors(nb) -> list[str]:
    return [f"cell {cell.get('id', i)}: {out.ename}: {out.evalue}"
            for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for out in cell.outputs if out.output_type == "error"]


def secret_lines(solution_nb) -> list[str]:
    """Lines nbgrader must remove: inside solution/hidden-test/mark-scheme regions, and the
    whole source of solution cells without a region (nbgrader replaces those entirely)."""
    from nbgrader import utils

    regions = [grading.SOLUTION_DELIMITERS, grading.HIDDEN_TEST_DELIMITERS,
               grading.MARK_SCHEME_DELIMITERS]
    found = []
    for cell in solution_nb.cells:
        lines = cell.source.split("\n")
        has_region = False
        for begin, end in regions:
            inside = False
            for line in lines:
                if begin in line:
                    inside = has_region = True
                elif end in line:
                    inside = False
                elif inside:
                    found.append(line)
        if utils.is_solution(cell) and not any(b in cell.source for b, _ in regions):
            found.extend(lines)
    # blank lines and lone brackets can legitimately appear anywhere
    return [line.strip() for line in found if re.search(r"\w", line)]


# --------------------------------------------------------------------------- (i) current

def test_there_are_assignments():
    assert SOLUTIONS, "no solutions/NN_topic.ipynb found"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exercises")
    grading.generate_all(SOLUTIONS_DIR, out, verbose=False)
    return out


@per_solution
def test_exercise_is_current(solution, generated):
    fresh = (generated / solution.name).read_bytes()
    assert exercise_of(solution).read_bytes() == fresh, (
        f"exercises/{solution.name} is stale: run `python -m nncompress.course.grading generate`")


def test_check_mode_reports_nothing_stale_and_no_orphans():
    assert grading.generate_all(SOLUTIONS_DIR, EXERCISES_DIR, check=True, verbose=False) == []


def test_check_mode_flags_missing_stale_and_orphaned(tmp_path):
    (tmp_path / "orphan.ipynb").write_text("{}")
    stale = tmp_path / SOLUTIONS[0].name
    stale.write_text("{}")
    flagged = {p.name for p in grading.generate_all(SOLUTIONS_DIR, tmp_path, check=True, verbose=False)}
    assert flagged == {p.name for p in SOLUTIONS} | {"orphan.ipynb"}
    assert stale.read_text() == "{}", "check mode must not write"


def test_generation_is_deterministic_and_leaves_its_input_alone():
    nb = nbformat.read(SOLUTIONS[0], as_version=4)
    before = nbformat.writes(nb)
    first = nbformat.writes(grading.generate_exercise(nb))
    assert nbformat.writes(grading.generate_exercise(nb)) == first
    assert nbformat.writes(nb) == before


@pytest.mark.slow
def test_same_output_as_nbgrader_generate_assignment(tmp_path):
    """Our pipeline (no gradebook) gives byte-identical files to nbgrader's own command."""
    source = tmp_path / "source" / "assignment"
    source.mkdir(parents=True)
    for solution in SOLUTIONS:
        (source / solution.name).write_bytes(solution.read_bytes())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "assignment",
                           f"--CourseDirectory.root={tmp_path}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for solution in SOLUTIONS:
        released = (tmp_path / "release" / "assignment" / solution.name).read_bytes()
        assert exercise_of(solution).read_bytes() == released, solution.name


# --------------------------------------------------------------------------- (ii) solutions

@pytest.mark.slow
@per_solution
def test_solution_scores_full_marks(solution):
    nb = executed(solution)
    score, max_score, per_cell = grading.grade(nb)
    assert max_score > 0, "no graded test cells"
    assert not errors(nb), errors(nb)
    assert score == max_score, per_cell
    assert all(c["status"] == "passed" for c in per_cell.values()), per_cell


# --------------------------------------------------------------------------- (iii) exercises

@pytest.mark.slow
@per_solution
def test_exercise_runs_to_the_end_and_scores_zero(solution):
    exercise = exercise_of(solution)
    nb = executed(exercise)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), "execution stopped early"
    score, max_score, per_cell = grading.grade(nb)
    assert max_score == grading.grade(executed(solution))[1], "points differ from the solution"
    assert score == 0, f"the unmodified exercise earns points: {per_cell}"
    assert {c["status"] for c in per_cell.values()} == {"failed"}, per_cell


# --------------------------------------------------------------------------- (iv) no leaks

@per_solution
def test_no_solution_or_hidden_test_leaks(solution):
    source = nbformat.read(solution, as_version=4)
    exercise = nbformat.read(exercise_of(solution), as_version=4)
    raw = exercise_of(solution).read_text(encoding="utf-8")
    for marker in MARKERS:
        assert marker not in raw, f"{marker!r} left in the exercise"
    shown = {line.strip() for cell in exercise.cells for line in cell.source.split("\n")}
    text = "\n".join(cell.source for cell in exercise.cells)
    secrets = secret_lines(source)
    assert secrets, "no solution region found: is this an nbgrader source notebook?"
    leaked = [line for line in secrets if line in shown or (len(line) >= 25 and line in text)]
    assert not leaked, f"solution/hidden-test lines in the exercise: {leaked}"
    outputs = [c.get("id") for c in exercise.cells if c.cell_type == "code" and c.outputs]
    assert not outputs, f"exercise cells with outputs: {outputs}"


# --------------------------------------------------------------------------- (v) front matter

@per_solution
def test_first_markdown_cell_states_goals_points_and_time(solution):
    exercise = nbformat.read(exercise_of(solution), as_version=4)
    first = next((c for c in exercise.cells if c.cell_type == "markdown"), None)
    assert first is not None, "no markdown cell"
    text = re.sub(r"[*_`]", "", first.source)  # ignore emphasis
    assert re.search(r"^#\s+\S", text, re.M), "no title (# heading)"
    assert re.search(r"learning goals?", text, re.I), "no learning goal(s)"
    total = re.search(r"\btotal\W*(\d+(?:\.\d+)?)\s*points?\b", text, re.I)
    assert total, "no 'Total: N points'"
    points = sum(float(c.metadata["nbgrader"].get("points", 0)) for c in exercise.cells
                 if c.metadata.get("nbgrader", {}).get("grade"))
    assert float(total.group(1)) == points, f"states {total.group(1)} points, metadata has {points:g}"
    assert re.search(r"time[^\n]*?\d+\s*(?:min|minutes)\b", text, re.I), "no time estimate in minutes"


# --------------------------------------------------------------------------- grade() itself

def _graded_cell(source, outputs, points=2, grade_id="t"):
    cell = nbformat.v4.new_code_cell(source, outputs=outputs, metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "grade_id": grade_id,
        "points": points, "schema_version": 3, "task": False}})
    cell.execution_count = 1  # it ran (grade() gives a test cell that never ran 0)
    return cell


@pytest.mark.parametrize("outputs, expected", [
    ([], 2.0),
    ([nbformat.v4.new_output("stream", name="stdout", text="ok\n")], 2.0),
    ([nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])], 0.0),
    ([nbformat.v4.new_output("stream", name="stderr", text="UserWarning: ...\n")], 0.0),
], ids=["silent", "stdout", "error", "stderr-warning"])
def test_grade_follows_nbgrader_rules(outputs, expected):
    nb = nbformat.v4.new_notebook(cells=[_graded_cell("assert True", outputs)])
    score, max_score, per_cell = grading.grade(nb)
    assert (score, max_score) == (expected, 2.0)
    assert per_cell["t"]["status"] == ("passed" if expected else "failed")


def test_grade_gives_zero_for_edited_test_cells():
    from nbgrader import utils

    cell = _graded_cell("assert check()", [])
    cell.metadata.nbgrader["checksum"] = utils.compute_checksum(cell)
    cell.source = "pass  # tests deleted"
    score, _, per_cell = grading.grade(nbformat.v4.new_notebook(cells=[cell]))
    assert score == 0 and per_cell["t"]["status"] == "modified"
