"""The runner fails fast and honestly (issue: "nothing trusted that should not be").

Parameter names never become code; SIGTERM leaves an honest summary; an old summary never
sits beside new output; a grid is validated before its first point runs; bad ``--jobs``,
``--timeout`` and ``--out`` are clear errors before anything runs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from nncompress.course import runner as run
from nncompress.course.params import ParameterError

from test_run import OK_CELLS, fake_chapters, make_nb  # noqa: F401  (fixture)

PY = sys.executable


def _cli(*args, cwd, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    return subprocess.run([PY, "-m", "nncompress.run", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


# --------------------------------------------------------------------------- names never become code

@pytest.mark.parametrize("name", ["x = 1; open('pwn', 'w').write('pwn'); y", "import os", "a-b", "1x",
                                  "", "class", "x\ny", "__import__('os')"])
def test_parameter_name_must_be_an_identifier(tmp_path, name):
    nb = make_nb(tmp_path / "plain.ipynb", *OK_CELLS)   # no chapter: only the name is checked
    with pytest.raises(ParameterError, match="not allowed: expected a Python identifier"):
        run.validate_parameters(nb, {name: 1})
    code = run.main([str(nb), "-p", name, "1", "--out", str(tmp_path / "out"), "-q"])
    assert code == 2
    assert not (tmp_path / "pwn").exists() and not Path("pwn").exists()


@given(st.text(min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_accepted_name_is_a_plain_identifier(name):
    try:
        run.check_parameter_name(name)
    except ParameterError:
        return
    assert name.isidentifier()
    compile(f"{name} = 1", "<p>", "exec")        # a single assignment, nothing else


# --------------------------------------------------------------------------- CLI arguments

@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "--jobs"), (["--jobs", "-1"], "--jobs"), (["--jobs", "two"], "--jobs"),
    (["--timeout", "-5"], "--timeout"), (["--timeout", "nan"], "--timeout"),
])
def test_bad_jobs_and_timeout_are_usage_errors(tmp_path, args, message, capsys):
    nb = make_nb(tmp_path / "plain.ipynb", *OK_CELLS)
    with pytest.raises(SystemExit) as exit_:
        run.main([str(nb), *args, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "not allowed" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_api_rejects_bad_jobs_and_timeout(tmp_path):
    nb = make_nb(tmp_path / "plain.ipynb", *OK_CELLS)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(run.UsageError, match="jobs"):
            run.run_notebooks([nb], out=tmp_path / "o", jobs=bad)
    with pytest.raises(run.UsageError, match="timeout"):
        run.run_notebooks([nb], out=tmp_path / "o", timeout=-5)


def test_bad_out_is_a_clear_error(tmp_path, capsys):
    nb = make_nb(tmp_path / "plain.ipynb", *OK_CELLS)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert run.main([str(nb), "--out", str(a_file), "-q"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert run.main([str(nb), "--out", str(a_file / "sub"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and "Traceback" not in err


def test_repeated_parameter_is_an_error(tmp_path, capsys):
    nb = make_nb(tmp_path / "plain.ipynb", *OK_CELLS)
    assert run.main([str(nb), "-p", "x", "1", "-p", "x", "2", "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "more than once" in capsys.readouterr().err


# --------------------------------------------------------------------------- grid

def test_grid_is_validated_before_the_first_point(tmp_path, fake_chapters, capsys):
    nb = make_nb(tmp_path / "01_fake.ipynb", *OK_CELLS)
    out = tmp_path / "out"
    code = run.main([str(nb), "--grid", "temperature", "[2.0, 'hot']", "--out", str(out), "-q"])
    assert code == 2
    assert "'temperature'" in capsys.readouterr().err
    assert not (out / "grid").exists()           # point 0 never ran


def test_repeated_grid_name_is_an_error(tmp_path, capsys):
    nb = make_nb(tmp_path / "plain.ipynb", *OK_CELLS)
    code = run.main([str(nb), "--grid", "x", "[1]", "--grid", "x", "[2]", "--out", str(tmp_path / "o"), "-q"])
    assert code == 2
    assert "more than once" in capsys.readouterr().err
    code = run.main([str(nb), "-p", "x", "1", "--grid", "x", "[2]", "--out", str(tmp_path / "o"), "-q"])
    assert code == 2
    assert "both a -p parameter and a --grid parameter" in capsys.readouterr().err


# --------------------------------------------------------------------------- honest summaries

@pytest.mark.slow
def test_old_summary_never_left_beside_new_output(tmp_path):
    out = tmp_path / "out"
    (out / "executed").mkdir(parents=True)
    stale = {"ok": True, "failed": [], "notebooks": [{"notebook": "old.ipynb", "status": "ok"}]}
    (out / "summary.json").write_text(json.dumps(stale))
    (out / "report.md").write_text("old report")
    (out / "executed" / "slow.ipynb").write_text("{}")
    slow = make_nb(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    proc = subprocess.Popen([PY, "-m", "nncompress.run", str(slow), "--out", str(out), "--no-progress",
                             "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # the run's own summary replaces the old one at once
            try:
                summary = json.loads((out / "summary.json").read_text())
            except (OSError, ValueError):
                summary = {}
            if "environment" in summary:
                break
            time.sleep(0.2)
        assert summary.get("ok") is False and summary.get("complete") is False
        assert not (out / "report.md").exists()
        assert "old.ipynb" not in json.dumps(summary)
        time.sleep(4)                       # the kernel has started and is running the cell
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is False
    assert [n["status"] for n in summary["notebooks"]] == ["interrupted"]
    assert summary["environment"]["finished"]
    assert "interrupted" in (out / "summary.md").read_text()


def test_threads_are_pinned_per_kernel(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert run.threads_per_kernel(1) == run.DEFAULT_THREADS == 1     # reproducible numbers by default
    assert run.threads_per_kernel(1, threads=8) == 8
    assert run.threads_per_kernel(4, threads=8) == 2                 # the cores shared out over the jobs
    assert run.threads_per_kernel(16, threads=3) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert run.threads_per_kernel(4) == 3
