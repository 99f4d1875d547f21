"""Grading that cannot be forged (issue 21, item 1): ``grading.grade_submission`` and
``python -m nncompress.course.grading grade``.

A submission contributes the text of its solution cells and nothing else: test cells (with
their hidden tests), set-up cells, points and grade ids come from the instructor's source;
the kernel is pinned; a whole-notebook time limit holds.  Most cases use a tiny synthetic
assignment written by the test (one kernel start each, ~2 s); one case uses chapter 01.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import compute_checksum

from nncompress.course import grading

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "solutions" / "01_knowledge_distillation.ipynb"
NAME = "hw.ipynb"

kernel = pytest.mark.slow  # starts a kernel


def meta(grade_id, *, solution=False, grade=False, locked=False, points=None) -> dict:
    nbg = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
           "solution": solution, "task": False}
    if points is not None:
        nbg["points"] = points
    return {"nbgrader": nbg}


def code(source, **kw):
    return nbformat.v4.new_code_cell(source, metadata=meta(**kw) if kw else {})


def answer(grade_id, body):
    return code(f"def {grade_id}(*args):\n    ### BEGIN SOLUTION\n{body}\n    ### END SOLUTION",
                grade_id=grade_id, solution=True)


def graded(grade_id, visible, hidden, points):
    return code(f"{visible}\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS",
                grade_id=grade_id, grade=True, locked=True, points=points)


def source_notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def assignment() -> nbformat.NotebookNode:
    """Two tasks: ``add`` (2 points) and ``double`` (3 points), each with a hidden test."""
    return source_notebook(
        nbformat.v4.new_markdown_cell("# Homework\nTotal: 5 points", metadata=meta("header", locked=True)),
        code("OFFSET = 0", grade_id="setup", locked=True),
        answer("add", "    a, b = args\n    return a + b + OFFSET"),
        graded("test_add", "assert add(1, 2) == 3", "assert add(-5, 7) == 2, 'hidden'", 2),
        answer("double", "    return 2 * args[0]"),
        graded("test_double", "assert double(2) == 4", "assert double(-3) == -6, 'hidden'", 3),
    )


@pytest.fixture
def course(tmp_path):
    """``solutions/hw.ipynb`` (the source) and a function writing a submission ``hw.ipynb``."""
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nbformat.write(assignment(), solutions / NAME)

    def submit(nb, student="alice") -> Path:
        path = tmp_path / "submitted" / student / NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    return solutions, submit


def released(source=None) -> nbformat.NotebookNode:
    return grading.generate_exercise(source or assignment())


def cell_of(nb, grade_id):
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell


def answered(nb, **bodies) -> nbformat.NotebookNode:
    for grade_id, body in bodies.items():
        cell_of(nb, grade_id).source = f"def {grade_id}(*args):\n{body}"
    return nb


def forged(nb, *, checksums: str, keep=()) -> nbformat.NotebookNode:
    """Every code cell but the solution cells ``keep`` set to ``pass``, nbgrader checksums
    recomputed with nbgrader's own function (``checksums="recomputed"``) or deleted."""
    for cell in nb.cells:
        nbg = cell.metadata.get("nbgrader")
        if cell.cell_type == "code" and (nbg or {}).get("grade_id") not in keep:
            cell.source = "pass"
        if nbg is not None:
            if checksums == "recomputed":
                nbg["checksum"] = compute_checksum(cell)
            else:
                nbg.pop("checksum", None)
    return nb


def statuses(report) -> dict:
    return {gid: (c["score"], c["status"]) for gid, c in report.per_cell.items()}


# --------------------------------------------------------------------------- scores

@pytest.mark.slow
@kernel
def test_solution_scores_full_and_the_command_says_so(course, tmp_path, capsys):
    solutions, submit = course
    path = submit(assignment())
    out = tmp_path / "grades.json"
    assert grading.main(["grade", str(path), "--solutions", str(solutions), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test_add" in text and "test_double" in text and "5 / 5" in text
    [report] = json.loads(out.read_text())
    assert (report["score"], report["max_score"], report["status"]) == (5, 5, "ok")
    assert report["source"] == str(solutions / NAME)


@pytest.mark.slow
@kernel
def test_untouched_exercise_scores_zero_and_exits_1(course, capsys):
    solutions, submit = course
    path = submit(released())
    assert grading.main(["grade", str(path), "--solutions", str(solutions)]) == 1
    report = grading.grade_submission(path, solutions_dir=solutions, kernel="python3")
    assert report.kernel == "python3" and report.status == "ok"  # the teacher may name a kernel
    assert (report.score, report.max_score) == (0, 5)
    assert statuses(report) == {"test_add": (0, "failed"), "test_double": (0, "failed")}
    assert set(grading.assemble(released(), assignment()).unanswered) == {"add", "double"}


@pytest.mark.slow
@kernel
def test_forged_submission_with_recomputed_checksums_scores_only_what_it_solved(course):
    solutions, submit = course
    nb = forged(answered(released(), add="    return args[0] + args[1]"), checksums="recomputed",
                keep={"add"})
    # the forgery fools anything that trusts the submission: run as submitted, full marks
    score, max_score, _ = grading.grade(grading.execute(nb, notebook_timeout=120))
    assert score == max_score == 5
    report = grading.grade_submission(submit(nb), solutions_dir=solutions)
    assert statuses(report) == {"test_add": (2, "passed"), "test_double": (0, "failed")}
    assert (report.score, report.max_score) == (2, 5)


@pytest.mark.slow
@kernel
def test_deleted_checksums_score_zero(course):
    solutions, submit = course
    report = grading.grade_submission(submit(forged(released(), checksums="deleted")),
                                      solutions_dir=solutions)
    assert (report.score, report.max_score) == (0, 5)
    assert {s for _, s in statuses(report).values()} == {"failed"}


@pytest.mark.slow
@kernel
def test_edited_test_cells_are_replaced_by_the_source_with_its_hidden_tests(course):
    solutions, submit = course
    # add: hard-coded to pass the visible test only; double: correct
    nb = answered(released(), add="    return 3", double="    return 2 * args[0]")
    for grade_id in ("test_add", "test_double"):
        cell_of(nb, grade_id).source = "assert True"
    report = grading.grade_submission(submit(nb), solutions_dir=solutions)
    assert statuses(report) == {"test_add": (0, "failed"), "test_double": (3, "passed")}
    assert any("test_add: edited" in note for note in report.notes), report.notes
    executed = cell_of(report.executed, "test_add")
    assert "hidden" in executed.source and executed.outputs[0]["evalue"] == "hidden"


@pytest.mark.slow
@kernel
def test_points_and_grade_ids_come_from_the_source(course):
    solutions, submit = course
    nb = answered(released(), add="    return args[0] + args[1]")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader["points"] = 100
    bonus = code("assert True", grade_id="bonus", grade=True, locked=True, points=50)
    nb.cells.append(bonus)
    report = grading.grade_submission(submit(nb), solutions_dir=solutions)
    assert report.max_score == 5 and set(report.per_cell) == {"test_add", "test_double"}
    assert report.score == 2
    assert any("'bonus' is not in the source" in note for note in report.notes), report.notes


@pytest.mark.slow
@kernel
def test_kernel_is_pinned_offline_and_in_a_scratch_folder(tmp_path):
    """The submission names a kernel that does not exist: it runs anyway, in this interpreter,
    with the offline guard on, in a temporary folder (not beside the source or submission)."""
    source = source_notebook(
        answer("f", "    return 1"),
        code(f"import sys\nassert f() == 1 and sys.executable == {sys.executable!r}",
             grade_id="test_pinned", grade=True, locked=True, points=1),
        code("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 9), timeout=2)\n"
             "except OSError as e:\n    blocked = type(e).__name__ == 'NetworkDisabled'\n"
             "assert blocked, 'network reachable'",
             grade_id="test_offline", grade=True, locked=True, points=1),
        code(f"import os\nassert os.path.realpath(os.getcwd()) != {str(tmp_path.resolve())!r}\n"
             "open('left_behind.txt', 'w').close()",
             grade_id="test_scratch_cwd", grade=True, locked=True, points=1))
    nbformat.write(source, tmp_path / "source.ipynb")
    nb = answered(grading.generate_exercise(source), f="    return 1")
    nb.metadata["kernelspec"] = {"name": "no-such-kernel-anywhere", "display_name": "evil",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / NAME)
    report = grading.grade_submission(tmp_path / NAME, tmp_path / "source.ipynb")
    assert report.status == "ok" and report.offline, report
    assert statuses(report) == {"test_pinned": (1, "passed"), "test_offline": (1, "passed"),
                                "test_scratch_cwd": (1, "passed")}
    assert not list(tmp_path.rglob("left_behind.txt")), "the kernel ran beside the files"


@pytest.mark.slow
@kernel
def test_whole_notebook_timeout(tmp_path):
    source = source_notebook(
        answer("f", "    return 1"),
        code("import time\nfor _ in range(60):\n    time.sleep(1)", grade_id="slow", locked=True),
        code("assert f() == 1", grade_id="test_f", grade=True, locked=True, points=1))
    nbformat.write(source, tmp_path / "source.ipynb")
    nbformat.write(answered(grading.generate_exercise(source), f="    return 1"), tmp_path / NAME)
    start = time.monotonic()
    report = grading.grade_submission(tmp_path / NAME, tmp_path / "source.ipynb",
                                      cell_timeout=60, notebook_timeout=6)
    assert time.monotonic() - start < 40
    assert report.status == "timeout" and "notebook" in report.error, report
    assert statuses(report) == {"test_f": (0, "not run")}
    assert not report.full_marks


@pytest.mark.slow
@kernel
def test_chapter_01_solution_full_forgery_zero(tmp_path):
    solution = grading.grade_submission(CHAPTER)
    assert solution.score == solution.max_score == 10, solution.per_cell
    exercise = nbformat.read(ROOT / "exercises" / CHAPTER.name, as_version=4)
    path = tmp_path / CHAPTER.name
    nbformat.write(forged(exercise, checksums="recomputed"), path)
    report = grading.grade_submission(path, solutions_dir=ROOT / "solutions")
    assert (report.score, report.max_score) == (0, 10), report.per_cell


# --------------------------------------------------------------------------- assembly (no kernel)

def test_assembly_matches_solution_cells_by_grade_id():
    nb = released()
    add = cell_of(nb, "add")
    add.source = "def add(a, b):\n    return a + b"
    nb.cells.append(nbformat.from_dict(add))                  # add: twice
    nb.cells.remove(cell_of(nb, "double"))                    # double: missing
    nb.cells.append(code("import os", grade_id="mine"))       # unknown id
    nb.cells.append(code("print('scratch')"))                 # no id
    assembly = grading.assemble(nb, assignment())
    assert assembly.answered == []
    assert set(assembly.unanswered) == {"add", "double"}
    assert "2 cells" in assembly.unanswered["add"] and "missing" in assembly.unanswered["double"]
    assert len(assembly.dropped) == 2
    built = assembly.nb
    stubs = released()
    for grade_id in ("add", "double"):
        assert cell_of(built, grade_id).source == cell_of(stubs, grade_id).source
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in built.cells] == \
           [c.metadata.get("nbgrader", {}).get("grade_id") for c in assignment().cells]
    assert built.metadata.kernelspec.name == grading.PINNED_KERNEL


def test_assembly_ignores_a_changed_cell_type():
    nb = released()
    cell = cell_of(nb, "add")
    nb.cells[nb.cells.index(cell)] = nbformat.v4.new_markdown_cell("def add(a, b): return a + b",
                                                                   metadata=cell.metadata)
    assert "no longer a code cell" in grading.assemble(nb, assignment()).unanswered["add"]


def test_grade_gives_zero_to_test_cells_that_never_ran():
    cell = code("assert True", grade_id="t", grade=True, locked=True, points=2)
    assert cell.execution_count is None
    score, max_score, per_cell = grading.grade(nbformat.v4.new_notebook(cells=[cell]))
    assert (score, max_score, per_cell["t"]["status"]) == (0, 2, "not run")


# --------------------------------------------------------------------------- errors (no kernel)

def test_missing_source_is_a_clear_error(course, tmp_path):
    solutions, submit = course
    other = tmp_path / "elsewhere" / "other.ipynb"
    other.parent.mkdir()
    nbformat.write(released(), other)
    with pytest.raises(FileNotFoundError, match=r"'other.ipynb'.*available: \['hw.ipynb'\].*--source"):
        grading.grade_submission(other, solutions_dir=solutions)
    with pytest.raises(FileNotFoundError, match="source: .*nope.ipynb does not exist"):
        grading.grade_submission(other, tmp_path / "nope.ipynb")


@pytest.mark.parametrize("content", ["", "not json", "{}", '{"cells": 3, "metadata": {}, '
                                     '"nbformat": 4, "nbformat_minor": 5}'],
                         ids=["empty", "not-json", "empty-object", "cells-not-a-list"])
def test_unreadable_submission_is_a_clear_error(course, content, capsys):
    solutions, submit = course
    path = submit(released())
    path.write_text(content)
    with pytest.raises(grading.UnreadableNotebook, match="submission: cannot read .*hw.ipynb"):
        grading.grade_submission(path, solutions_dir=solutions)
    assert grading.main(["grade", str(path), "--solutions", str(solutions)]) == 2
    assert "error: submission: cannot read" in capsys.readouterr().err


def test_unreadable_source_and_missing_submission(course, tmp_path, capsys):
    solutions, submit = course
    path = submit(released())
    (solutions / NAME).write_text("{broken")
    with pytest.raises(grading.UnreadableNotebook, match="source: cannot read"):
        grading.grade_submission(path, solutions_dir=solutions)
    assert grading.main(["grade", str(tmp_path / "absent.ipynb"), "--solutions", str(solutions)]) == 2
    assert "submission: " in capsys.readouterr().err


@pytest.mark.parametrize("name, value", [("cell_timeout", 0), ("notebook_timeout", -5),
                                         ("cell_timeout", float("nan")), ("notebook_timeout", "60")])
def test_bad_timeouts_are_refused_before_a_kernel_starts(name, value):
    with pytest.raises(ValueError, match=f"{name}: .* positive number of seconds"):
        grading.run(assignment(), **{name: value})


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel: no Jupyter kernel named 'no-such-kernel'"):
        grading.run(assignment(), kernel="no-such-kernel")


@pytest.mark.parametrize("flag", ["--timeout", "--notebook-timeout"])
def test_command_refuses_bad_timeouts(flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        grading.main(["grade", "x.ipynb", flag, "-5"])
    assert exit_.value.code == 2 and "positive number of seconds" in capsys.readouterr().err


def test_run_leaves_no_kernel_behind():
    """nbclient does not shut down a kernel whose manager it was given (grading.run pins the
    kernel that way): without an explicit shutdown every graded notebook left a ~750 MB kernel
    alive until the test process ended."""
    import time

    import nbformat
    import psutil

    from nncompress.course import grading as g

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1")])
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    for _ in range(2):
        assert g.run(nb, offline=False).status == "ok"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and {p.pid for p in me.children(recursive=True)} - before:
        time.sleep(0.2)
    left = [p.cmdline() for p in me.children(recursive=True) if p.pid not in before]
    assert not left, left
