"""nncompress.course.runner (the notebook runner, ``python -m nncompress.run``) and nncompress.course.record.

Kernel starts are expensive on a shared CPU: these tests execute 5 tiny notebooks in
all (2 through the Python API, 1 timeout, 2 through the CLI).
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

import nncompress
from nncompress.course import execute, report, runner as run
from nncompress.course.params import ParameterError, Spec, common_specs

rec = importlib.import_module("nncompress.course.record")  # the attribute nncompress.course.record is the function

PY = sys.executable


def make_nb(path: Path, *cells, params: str = "x = 1\npreset = None") -> Path:
    """A notebook with a `parameters` cell followed by ``cells`` (code strings)."""
    nb = new_notebook(cells=[new_code_cell(params, metadata={"tags": ["parameters"]})]
                      + [new_code_cell(c) if isinstance(c, str) else c for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))
    return path


OK_CELLS = (
    "import os, time\ntime.sleep(1.1)",
    "from nncompress.course.record import record\n"
    "record('x', x * 1.5)\n"
    "record('label', '81.2 ± 0.9')\n"
    "record('cwd', os.getcwd())\n"
    "record('tqdm_disable', os.environ.get('TQDM_DISABLE'))\n"
    "import nncompress as nc\n"
    "nc.claim('x is positive', holds=x > 0, evidence=f'x = {x}')",
)


# --------------------------------------------------------------------------- no kernel

@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.5", 0.5), ("1e-3", 1e-3), ("None", None), ("True", True),
    ("[1, 2]", [1, 2]), ("'x'", "x"), ("resnet", "resnet"), ("/tmp/data", "/tmp/data"),
])
def test_parse_value(text, value):
    assert run.parse_value(text) == value


def _executed(*outputs, count=1):
    cell = new_code_cell("pass", execution_count=count, outputs=list(outputs))
    cell.metadata["papermill"] = {"duration": 2.0}
    return new_notebook(cells=[cell])


def _error(ename, evalue):
    return new_output("error", ename=ename, evalue=evalue, traceback=[])


@pytest.mark.parametrize("ename, evalue, status", [
    ("DatasetNotFound", "cifar10 is not under data_root", "missing-data"),
    ("FileNotFoundError", "dataset 'cifar10' not found in /data", "missing-data"),
    ("FileNotFoundError", "[Errno 2] No such file: 'config.yaml'", "error"),
    ("ValueError", "boom\nsecond line", "error"),
])
def test_classify_errors(ename, evalue, status):
    info = execute.classify(_executed(_error(ename, evalue)))
    assert info["status"] == status
    assert info["error"] == f"{ename}: {evalue.splitlines()[0]}"
    assert info["error_cell"] == 0


def test_classify_ran_nothing_and_ok():
    assert execute.classify(_executed())["status"] == "ok"
    quick = _executed()
    quick.cells[0].metadata["papermill"]["duration"] = 0.1
    assert execute.classify(quick)["status"] == "ran-nothing"
    assert execute.classify(_executed(count=None))["status"] == "ran-nothing"
    assert execute.classify(_executed(), timed_out=True, timeout=5)["status"] == "timeout"


def test_record_outside_ipython(capsys):
    np = pytest.importorskip("numpy")
    rec.clear()
    rec.record("acc", np.float32(0.5))
    rec.record("gain", 2.3, fmt="{:.1f} pts")
    rec.record("curve", np.arange(3))
    rec.record("bad", float("nan"))
    rec.record("acc", 0.75, fmt=".1%")  # replaces
    assert capsys.readouterr().out.splitlines() == [
        "acc = 0.5", "gain = 2.3 pts", "curve = [0, 1, 2]", "bad = nan", "acc = 75.0%"]
    assert rec.recorded() == {"acc": 0.75, "gain": 2.3, "curve": [0, 1, 2], "bad": "nan"}
    assert isinstance(rec.recorded()["curve"][0], int)
    json.dumps(rec.recorded(), allow_nan=False)
    with pytest.raises(ValueError):
        rec.record("", 1)
    rec.clear()
    assert rec.recorded() == {}


def test_records_from_notebook():
    bundle = {"text/plain": "x = 1.5", rec.MIME: {"name": "x", "value": 1.5, "text": "1.5"}}
    nb = _executed(new_output("display_data", data=bundle),
                   new_output("stream", name="stdout", text="hi\n"))
    assert rec.records_from_notebook(nb) == ({"x": 1.5}, {"x": "1.5"})


# --------------------------------------------------------------------------- parameter validation

@pytest.fixture
def fake_chapters(monkeypatch):
    """A chapter registry knowing only the chapter "fake" (notebook 01_fake.ipynb)."""
    specs = {**common_specs(), "x": Spec(int, 1), "temperature": Spec(float, 4.0, low=0.0)}

    def lookup(name):
        if name != "01_fake":
            raise KeyError(name)
        return specs

    import nncompress.course
    from nncompress.course.params import resolve

    module = types.ModuleType("nncompress.course.chapters")
    module.CHAPTERS = {"01_fake": "ch01_fake"}
    module.specs = lookup
    module.resolve = lambda chapter, namespace=None, **values: resolve(lookup(chapter), namespace, **values)
    monkeypatch.setitem(sys.modules, "nncompress.course.chapters", module)
    monkeypatch.setattr(nncompress.course, "chapters", module, raising=False)
    return specs


def test_unknown_parameter_exits_2(tmp_path, fake_chapters, capsys):
    nb = make_nb(tmp_path / "01_fake.ipynb", *OK_CELLS)
    out = tmp_path / "out"
    code = run.main([str(nb), "-p", "temprature", "3", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "temprature" in err and "did you mean 'temperature'" in err
    assert "Traceback" not in err
    assert not out.exists()  # failed before anything ran

    assert run.main([str(nb), "-p", "temperature", "'hot'", "--out", str(out), "-q"]) == 2
    assert "'temperature'" in capsys.readouterr().err
    run.validate_parameters(nb, {"temperature": 3, "preset": "gpu"})  # fine
    run.validate_parameters(tmp_path / "ok.ipynb", {"anything": 1})  # no chapter: unchecked


def test_preset_conflict(tmp_path, fake_chapters):
    nb = make_nb(tmp_path / "01_fake.ipynb", *OK_CELLS)
    with pytest.raises(ParameterError, match="conflicts"):
        run.run_notebooks([nb], {"preset": "cpu"}, preset="gpu", out=tmp_path / "o")
    with pytest.raises(ParameterError, match="preset"):
        run.run_notebooks([nb], preset="tpu", out=tmp_path / "o")


@pytest.mark.slow
def test_unknown_parameter_real_chapter_cli(tmp_path):
    """Against the real registry, through the real CLI: every course notebook has a chapter."""
    notebooks = run.default_notebooks()
    assert notebooks and all(run.chapter_of(p) is not None for p in notebooks)
    path = notebooks[1]
    proc = subprocess.run([PY, "-m", "nncompress.run", str(path), "-p", "no_such_param", "1",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "no_such_param" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- executing

@pytest.mark.slow
def test_run_notebooks_api(tmp_path):
    ok = make_nb(tmp_path / "ok.ipynb", *OK_CELLS)
    nothing = make_nb(tmp_path / "nothing.ipynb")                   # parameters cell only
    empty = tmp_path / "empty.ipynb"                                 # no code at all
    nbformat.write(new_notebook(cells=[new_markdown_cell("# just text")]), str(empty))
    out = tmp_path / "out"

    results = run.run_notebooks([ok, nothing, empty], parameters={"x": 4}, out=out,
                                timeout=120, progress=False, quiet=True)

    assert [r.notebook for r in results] == ["ok.ipynb", "nothing.ipynb", "empty.ipynb"]
    assert [r.status for r in results] == ["ok", "ran-nothing", "ran-nothing"]
    good = results[0]
    assert good.ok and good.error is None
    assert good.records["x"] == 6.0 and good.records["label"] == "81.2 ± 0.9"
    assert Path(good.records["cwd"]).resolve() == tmp_path.resolve()   # ran in its folder
    assert good.records["tqdm_disable"] == "1"                          # progress=False
    assert good.cell_seconds >= 1.1 and good.seconds >= good.cell_seconds
    assert results[1].error.startswith("the cells ran for")
    assert results[2].error == "no code cell was executed"

    executed = nbformat.read(str(out / "executed" / "ok.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "x = 4" in injected[0].source
    texts = [o["data"]["text/plain"] for c in executed.cells for o in c.get("outputs", [])
             if o.get("output_type") == "display_data"]
    assert "x = 6.0" in texts

    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is False
    assert summary["failed"] == ["nothing.ipynb", "empty.ipynb"]
    env = summary["environment"]
    for key in ("python", "torch", "torchvision", "nncompress", "platform", "cpu_count",
                "cuda_device", "preset", "started", "finished"):
        assert key in env
    assert env["preset"] == "cpu" and env["finished"]
    first = summary["notebooks"][0]
    assert first["notebook"] == "ok.ipynb" and first["status"] == "ok"
    assert first["parameters"] == {"x": 4} and first["records"]["x"] == 6.0
    assert first["seconds"] > 1
    assert first["claims"] == [{"text": "x is positive", "holds": True, "evidence": "x = 4", "expected": True}]

    md = (out / "summary.md").read_text()
    assert "| notebook | status | seconds | key records |" in md
    assert "| ok | ok |" in md and "x = 6.0" in md and "label = 81.2 ± 0.9" in md
    assert "| nothing | ran-nothing |" in md


@pytest.mark.slow
def test_timeout(tmp_path):
    slow = make_nb(tmp_path / "slow.ipynb", "import time\ntime.sleep(120)")
    [result] = run.run_notebooks([slow], out=tmp_path / "out", timeout=4, progress=False,
                                 quiet=True)
    assert result.status == "timeout"
    assert result.error == "timed out after 4 s"
    assert result.seconds < 60
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["notebooks"][0]["status"] == "timeout"


@pytest.mark.slow
def test_cli_parallel_with_failure(tmp_path):
    ok = make_nb(tmp_path / "ok.ipynb", *OK_CELLS)
    err = make_nb(tmp_path / "err.ipynb", "raise ValueError('boom\\nmore detail')")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.run([PY, "-m", "nncompress.run", str(ok), str(err), "-p", "x", "2",
                           "--out", str(out), "--jobs", "2", "--no-progress", "--timeout", "120"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "start  ok.ipynb" in proc.stdout and "start  err.ipynb" in proc.stdout
    assert "1/2 notebooks ok" in proc.stdout
    assert "FAILED err.ipynb: error: ValueError: boom" in proc.stderr
    assert "Traceback" not in proc.stderr

    summary = json.loads((out / "summary.json").read_text())
    by_name = {n["notebook"]: n for n in summary["notebooks"]}
    assert [n["notebook"] for n in summary["notebooks"]] == ["ok.ipynb", "err.ipynb"]
    assert by_name["ok.ipynb"]["status"] == "ok"
    assert by_name["ok.ipynb"]["records"]["x"] == 3.0          # -p x 2 reached the kernel
    assert by_name["err.ipynb"]["status"] == "error"
    assert by_name["err.ipynb"]["error"] == "ValueError: boom"
    assert by_name["err.ipynb"]["error_cell"] == 1
    assert summary["environment"]["jobs"] == 2
    assert (out / "executed" / "err.ipynb").exists()
    md = (out / "summary.md").read_text()
    assert "| err | error |" in md and "ValueError: boom" in md


# --------------------------------------------------------------------------- grid

def test_grid_points_product_and_errors():
    assert run.grid_points({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    with pytest.raises(run.UsageError, match="--grid a: expected a non-empty list"):
        run.grid_points({"a": 3})
    with pytest.raises(run.UsageError, match="non-empty"):
        run.grid_points({"a": []})


def test_write_grid_table(tmp_path):
    rows = [{"point": 0, "parameters": {"r": 0.5}, "notebook": "12_x.ipynb", "status": "ok", "seconds": 3.21,
             "records": {"acc": 0.9}, "record_text": {"acc": "0.9"}, "error": None, "folder": "f"},
            {"point": 1, "parameters": {"r": 0.75}, "notebook": "12_x.ipynb", "status": "error", "seconds": 1.0,
             "records": {}, "record_text": {}, "error": "boom", "folder": "g"}]
    run.write_grid(tmp_path, rows)
    md = (tmp_path / "grid.md").read_text().splitlines()
    assert md[0] == "| notebook | r | status | seconds | acc |"
    assert md[2] == "| 12_x | 0.5 | ok | 3.2 | 0.9 |" and md[3] == "| 12_x | 0.75 | error | 1.0 |  |"
    assert json.loads((tmp_path / "grid.json").read_text())[1]["error"] == "boom"


@pytest.mark.slow
def test_cli_grid_runs_every_point(tmp_path):
    nb = make_nb(tmp_path / "g.ipynb", "import time\ntime.sleep(1.1)", "from nncompress.course.record import record\nrecord('twice', 2 * x)")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.run([PY, "-m", "nncompress.run", str(nb), "--grid", "x", "[1, 5]", "--out", str(out),
                           "--no-progress", "--timeout", "120"],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2/2 grid runs ok" in proc.stdout
    rows = json.loads((out / "grid.json").read_text())
    assert [(r["parameters"]["x"], r["records"]["twice"]) for r in rows] == [(1, 2), (5, 10)]
    assert (out / "grid" / "01_x=5" / "summary.json").exists()
    assert "| g | 5 | ok |" in (out / "grid.md").read_text()


def test_summary_shows_the_frontier_first():
    env = {"preset": "cpu", "started": "now"}
    ok12 = execute.Result("12_compression_pipeline.ipynb", "x", "ok", 80.0)
    def summary(*results):
        return {"environment": env, "notebooks": [r.to_dict() for r in results]}

    md = report.summary_markdown(summary(execute.Result("01_a.ipynb", "x", "ok", 1.0), ok12))
    assert md.index("![the compression frontier (chapter 12)](figures/12_1.png)") < md.index("| notebook |")
    failed12 = execute.Result("12_compression_pipeline.ipynb", "x", "error", 1.0)
    assert "figures/12_1.png" not in report.summary_markdown(summary(failed12))
