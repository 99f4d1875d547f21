"""nncompress.course.nbtools: strip / check / store, and the nbval sanitize file."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nncompress.course import nbtools

PY = sys.executable
CFG = Path(__file__).with_name("nbval_sanitize.cfg")


def dirty_notebook():
    """A notebook as Jupyter/papermill leave it: outputs, counts, timings."""
    timing = {"papermill": {"duration": 1.2, "status": "completed"},
              "execution": {"iopub.status.busy": "2025-01-01T00:00:00Z"},
              "ExecuteTime": {"end_time": "2025-01-01"}, "collapsed": False, "scrolled": True}
    plain = new_code_cell("print('noise')", execution_count=3, metadata={**timing, "tags": ["x"]},
                          outputs=[new_output("stream", name="stdout", text="noise\n")])
    marked = new_code_cell(
        "# NBVAL_CHECK_OUTPUT\nprint(answer)", execution_count=4, metadata=dict(timing),
        outputs=[new_output("stream", name="stdout", text="answer 42\n"),
                 new_output("stream", name="stdout", text="took 12.3 s at 0x7f3a2b1c9d30\n"),
                 new_output("stream", name="stderr", text=" 50%|#####     | 5/10\r100%|##########| "
                                                          "10/10 [00:01<00:00, 9.5it/s]\n"),
                 new_output("display_data", data={"text/plain": "<Figure size 640x480>",
                                                  "image/png": "iVBORw0KGgo="},
                            metadata={"image/png": {"width": 640}}),
                 new_output("execute_result", execution_count=4,
                            data={"text/plain": "tensor([1., 2.], device='cuda:0')"})])
    nb = new_notebook(cells=[new_markdown_cell("# Title"), plain, marked])
    nb.metadata["papermill"] = {"parameters": {}}
    return nb


def test_strip_keeps_only_marked_outputs():
    nb = nbtools.strip_outputs(dirty_notebook())
    _, plain, marked = nb.cells
    assert plain.outputs == [] and plain.execution_count is None
    assert plain.metadata == {"tags": ["x"]}                      # tags survive, timings go
    assert marked.execution_count == nbtools.STORED_COUNT and marked.metadata == {}  # nbval needs a count
    assert "papermill" not in nb.metadata
    kinds = [(o.output_type, o.get("name")) for o in marked.outputs]
    assert kinds == [("stream", "stdout"), ("stream", "stderr"), ("display_data", None),
                     ("execute_result", None)]
    assert marked.outputs[0].text == "answer 42\ntook DURATION at 0xADDR\n"
    assert marked.outputs[1].text == "PROGRESS\n"
    assert marked.outputs[2].data == {"text/plain": "<Figure size 640x480>"}   # no image
    assert marked.outputs[3].data == {"text/plain": "tensor([1., 2.])"}
    assert marked.outputs[3].execution_count == nbtools.STORED_COUNT
    nbformat.validate(nb)
    # idempotent, and then clean
    again = nbtools.strip_outputs(nbformat.from_dict(nb))
    assert nbformat.writes(again) == nbformat.writes(nb)
    assert nbtools.problems(nb) == []


def test_problems_lists_cells():
    found = nbtools.problems(dirty_notebook())
    assert any(p.startswith("cell 1 (\"print('noise')\")") and "outputs without" in p
               for p in found)
    assert any(p.startswith("cell 2") and "execution count 4" in p for p in found)
    assert "notebook metadata 'papermill'" in found


@pytest.mark.slow
def test_strip_and_check_cli(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    nbformat.write(dirty_notebook(), str(path))
    assert nbtools.main(["check", str(path)]) == 1
    assert "outputs without" in capsys.readouterr().out
    assert nbtools.main(["strip", str(path)]) == 0
    assert "stripped" in capsys.readouterr().out
    mtime = path.stat().st_mtime_ns
    assert nbtools.main(["strip", str(path)]) == 0                  # nothing left to do
    assert capsys.readouterr().out == "" and path.stat().st_mtime_ns == mtime
    assert nbtools.main(["check", str(path)]) == 0

    # a stray output in an unmarked cell: the real CLI fails and names the cell
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[1].outputs = [new_output("stream", name="stdout", text="stray\n")]
    nbformat.write(nb, str(path))
    proc = subprocess.run([PY, "-m", "nncompress.course.nbtools", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cell 1 (\"print('noise')\"): outputs without a # NBVAL_CHECK_OUTPUT marker" in proc.stdout
    assert nbtools.main(["check", str(tmp_path / "missing.ipynb")]) == 2


@pytest.mark.slow
def test_store_executes_and_keeps_marked_outputs(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    nb = new_notebook(cells=[
        new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("print('noise', x)"),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nprint('answer', x * 2)\nprint('took 1.5 s')"),
        new_markdown_cell("done"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))

    assert nbtools.main(["store", str(path), "-p", "x", "21", "--timeout", "120"]) == 0
    assert "stored" in capsys.readouterr().out
    stored = nbformat.read(str(path), as_version=4)
    assert [c.source for c in stored.cells] == [c.source for c in nb.cells]  # no injected cell
    assert stored.cells[1].outputs == []
    assert [o.text for o in stored.cells[2].outputs] == ["answer 42\ntook DURATION\n"]
    assert all(c.get("execution_count") == (nbtools.STORED_COUNT if c.get("outputs") else None) for c in stored.cells)
    assert "papermill" not in stored.metadata
    assert nbtools.problems(stored) == []


SAMPLES = [
    "epoch 3:  45%|####5     | 45/100 [00:01<00:02, 30.12it/s, loss=0.3]",
    "train: 45it [00:01, 30.12it/s]",
    "took 12.3 s, 5ms, 1.2e-3 s, 3 min; 0:00:12 elapsed; 2.5 s/it",
    "at 2025-11-23T23:50:36.123+00:00 and Mon Nov 23 23:50:36 2025",
    "<function f at 0x7f3a2b1c9d30>",
    "tensor([1., 2.], device='cuda:0', grad_fn=<AddBackward0>) device(type='cuda', index=0)",
    "device=cpu; saved to /tmp/pytest-7/ckpt.pt and /home/me/.cache/x, /root/y",
]


@pytest.mark.parametrize("text, expected", [
    (SAMPLES[0], "epoch 3:  PROGRESS"),
    (SAMPLES[1], "train: PROGRESS"),
    (SAMPLES[2], "took DURATION, DURATION, DURATION, DURATION; H:MM:SS elapsed; RATE"),
    (SAMPLES[3], "at DATE and DATE"),
    (SAMPLES[4], "<function f at 0xADDR>"),
    (SAMPLES[5], "tensor([1., 2.], grad_fn=<AddBackward0>) device(type=DEVICE)"),
    (SAMPLES[6], "device=DEVICE; saved to PATH and PATH, PATH"),
    ("kd_gain_pts = 2.3; 81.2 ± 0.9; 10 samples; resnet2h; and/or", None),
])
def test_sanitize(text, expected):
    out = nbtools.sanitize(text)
    assert out == (text if expected is None else expected)
    assert nbtools.sanitize(out) == out  # idempotent: stored outputs stay stable


def test_sanitize_cfg_in_sync_and_parsed_by_nbval():
    assert CFG.read_text(encoding="utf-8") == nbtools.sanitize_cfg(), \
        "regenerate: python -m nncompress.course.nbtools sanitize-cfg > tests/nbval_sanitize.cfg"
    plugin = pytest.importorskip("nbval.plugin")
    patterns = plugin.get_sanitize_patterns(CFG.read_text(encoding="utf-8"))
    assert patterns == [(regex, replace) for _, regex, replace in nbtools.SANITIZE]
