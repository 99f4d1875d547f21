"""The classroom: a stock nbgrader course built by ``nncompress.course.grading.build_course``.

One assignment (chapter 01), three students, graded by nbgrader's own commands
(``generate_assignment``, ``autograde``) run as a teacher would, in the course folder:
the solution scores full points, the untouched release zero, a partly done one strictly
in between; the release holds no solution or hidden-test text.  ~30-60 s (three kernels).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import nbgrader  # noqa: E402,F401  (a declared test dependency: missing means broken set-up)

from nncompress.course import grading  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = ROOT / "solutions"
ASSIGNMENT = "01_knowledge_distillation"
MARKERS = [*grading.SOLUTION_DELIMITERS, *grading.HIDDEN_TEST_DELIMITERS,
           *grading.MARK_SCHEME_DELIMITERS]

pytestmark = pytest.mark.slow  # nbgrader's own commands and kernels

assert (SOLUTIONS_DIR / f"{ASSIGNMENT}.ipynb").exists(), f"solutions/{ASSIGNMENT}.ipynb is missing"


def nbgrader(course: Path, *args: str) -> str:
    """Run stock ``nbgrader`` in the course folder (as ``python -m nbgrader``, with the
    interpreter's bin/ on PATH: nbgrader calls ``alembic`` to create the gradebook)."""
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def filled(released: nbformat.NotebookNode, source: nbformat.NotebookNode,
           grade_ids: set[str]) -> nbformat.NotebookNode:
    """The released notebook with the solution cells ``grade_ids`` answered with the
    source's code (the rest left as released)."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.from_dict(released)
    done = set()
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in grade_ids and cell.metadata["nbgrader"].get("solution"):
            cell.source = "\n".join(line for line in answers[grade_id].split("\n")
                                    if not any(m in line for m in grading.SOLUTION_DELIMITERS))
            done.add(grade_id)
    assert done == grade_ids, f"no solution cells {grade_ids - done}"
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course with assignment 01 generated, three submissions, autograded."""
    course = tmp_path_factory.mktemp("course")
    assert grading.build_course(course, SOLUTIONS_DIR, [ASSIGNMENT]) == [ASSIGNMENT]
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")

    released = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    source = nbformat.read(SOLUTIONS_DIR / f"{ASSIGNMENT}.ipynb", as_version=4)
    every = {c.metadata["nbgrader"]["grade_id"] for c in source.cells
             if c.metadata.get("nbgrader", {}).get("solution")}
    submissions = {
        "full": filled(released, source, every),
        "untouched": released,
        "partial": filled(released, source, {"softmax_t"}),
    }
    for student, nb in submissions.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
        (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")
    nbgrader(course, "autograde", ASSIGNMENT, "--force")
    return course


@pytest.fixture(scope="module")
def scores(course) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s: (gb.find_submission(ASSIGNMENT, s).score,
                    gb.find_submission(ASSIGNMENT, s).max_score)
                for s in ("full", "untouched", "partial")}


def test_build_course_writes_a_stock_course(tmp_path):
    names = grading.build_course(tmp_path, SOLUTIONS_DIR)
    assert names == sorted(p.stem for p in SOLUTIONS_DIR.glob("*.ipynb"))
    for name in names:
        copied = tmp_path / "source" / name / f"{name}.ipynb"
        assert copied.read_bytes() == (SOLUTIONS_DIR / f"{name}.ipynb").read_bytes()
    config = (tmp_path / "nbgrader_config.py").read_text()
    assert "c.CourseDirectory.course_id = 'nncompress'" in config
    assert "c.CourseDirectory.root" in config
    assert grading.build_course(tmp_path / "one", SOLUTIONS_DIR, ["01"]) == [ASSIGNMENT]
    with pytest.raises(ValueError, match="no solution notebook"):
        grading.build_course(tmp_path / "x", SOLUTIONS_DIR, ["99_nothing"])


def test_cli_builds_a_course(tmp_path):
    assert grading.main(["course", str(tmp_path / "c"), "--solutions", str(SOLUTIONS_DIR),
                         "-a", ASSIGNMENT]) == 0
    assert (tmp_path / "c" / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()


def test_release_has_no_solution_or_hidden_tests(course):
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    raw = release.read_text(encoding="utf-8")
    for marker in MARKERS:
        assert marker not in raw, f"{marker!r} in the release"
    source = nbformat.read(SOLUTIONS_DIR / f"{ASSIGNMENT}.ipynb", as_version=4)
    secret = []   # every substantial line inside a hidden-test region of the source
    for c in source.cells:
        inside = False
        for line in c.source.split("\n"):
            if "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) >= 25:
                secret.append(line.strip())
    assert secret, "no hidden test lines found in the source"
    assert not [line for line in secret if line in raw]
    # the release is what `python -m nncompress.course.grading generate` commits as exercises/
    committed = ROOT / "exercises" / f"{ASSIGNMENT}.ipynb"
    if committed.exists():
        assert release.read_bytes() == committed.read_bytes()


def test_solution_scores_full_points(scores):
    score, max_score = scores["full"]
    assert max_score > 0 and score == max_score, scores


def test_untouched_release_scores_zero(scores):
    assert scores["untouched"][0] == 0, scores


def test_partial_submission_scores_in_between(scores):
    score, max_score = scores["partial"]
    assert 0 < score < max_score, scores
    source = nbformat.read(SOLUTIONS_DIR / f"{ASSIGNMENT}.ipynb", as_version=4)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points", 0)
              for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert score == points["test_softmax_t"], (scores, points)  # only task 1 was done
