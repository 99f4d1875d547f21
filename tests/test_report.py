"""``nncompress.course.report``: report.md, figures and the README block from a run's output.

Built on a synthetic run folder (summary.json + tiny executed notebooks made with
nbformat); no chapter is executed.
"""
from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import nbformat
import pytest

from nncompress.course import report
from nncompress.course.record import MIME


def tiny_png(shade: int) -> bytes:
    """A valid 2x2 grey PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + bytes([shade, shade]) for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PNGS = [tiny_png(s) for s in (10, 120, 250)]


def record_output(name, value, text):
    return nbformat.v4.new_output("display_data", data={
        "text/plain": f"{name} = {text}", MIME: {"name": name, "value": value, "text": text}})


def png_output(png: bytes):
    return nbformat.v4.new_output("display_data", data={
        "image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"})


@pytest.fixture
def run_dir(tmp_path) -> Path:
    out = tmp_path / "run"
    (out / "executed").mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# chapter 1"),
        nbformat.v4.new_code_cell("plot()", outputs=[png_output(PNGS[0])]),
        nbformat.v4.new_code_cell("plot(); plot()", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="hi\n"),
            png_output(PNGS[1]), png_output(PNGS[2])]),
        nbformat.v4.new_code_cell("record()", outputs=[
            record_output("kd_gain_pts", 2.345, "2.3 pts"),
            record_output("student_acc", 0.81, "81.0%")]),
    ])
    nbformat.write(nb, out / "executed" / "01_knowledge_distillation.ipynb")
    summary = {
        "environment": {"python": "3.11.9", "torch": "2.14.1", "torchvision": "0.29.1",
                        "nncompress": "0.1.0", "platform": "Linux-x86_64", "cpu_count": 2,
                        "cuda_device": None, "preset": "cpu",
                        "started": "2026-11-24T00:00:00+00:00",
                        "finished": "2026-11-24T00:02:05+00:00", "jobs": 1},
        "ok": False, "failed": ["02_broken.ipynb"],
        "notebooks": [
            {"notebook": "00_setup_and_tour.ipynb", "status": "ok", "seconds": 20.0,
             "records": {"n_params": 1234}, "error": None, "parameters": {},
             "executed": "/elsewhere/executed/00_setup_and_tour.ipynb"},  # not there: no figures
            {"notebook": "01_knowledge_distillation.ipynb", "status": "ok", "seconds": 95.5,
             "records": {"kd_gain_pts": 2.345, "student_acc": 0.81}, "error": None,
             "parameters": {}, "executed": "/elsewhere/01_knowledge_distillation.ipynb"},
            {"notebook": "02_broken.ipynb", "status": "error", "seconds": 9.5, "records": {},
             "error": "ValueError: bad | thing", "parameters": {}, "executed": None},
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def test_write_report(run_dir):
    path = report.write_report(run_dir)
    assert path == run_dir / "report.md"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# nncompress results")
    for expected in ("preset", "cpu", "Linux-x86_64", "2.14.1", "| CPUs | 2 |", "GPU | none",
                     "2026-11-24T00:00:00"):
        assert expected in text, expected
    # the chapter table: status, seconds, headline records (as the notebook showed them)
    row01 = next(line for line in text.splitlines()
                 if line.startswith("| [01_knowledge_distillation]"))
    assert "| ok | 95.5 |" in row01 and "kd_gain_pts = 2.3 pts" in row01 and "81.0%" in row01
    row00 = next(line for line in text.splitlines() if line.startswith("| [00_setup_and_tour]"))
    assert "n_params = 1234" in row00  # from summary.json when no executed notebook
    row02 = next(line for line in text.splitlines() if line.startswith("| [02_broken]"))
    assert "| **error** | 9.5 |" in row02
    assert "ValueError: bad | thing" in text.split("## Not ok")[1]
    assert "2 min 5 s" in text  # total 125 s
    # figures: the first two PNGs of chapter 01, byte for byte, linked relative to OUT
    assert (run_dir / "figures" / "01_1.png").read_bytes() == PNGS[0]
    assert (run_dir / "figures" / "01_2.png").read_bytes() == PNGS[1]
    assert not (run_dir / "figures" / "01_3.png").exists()
    assert sorted(p.name for p in (run_dir / "figures").iterdir()) == ["01_1.png", "01_2.png"]
    assert "](figures/01_1.png)" in text and "](figures/01_2.png)" in text


def test_stale_figures_are_replaced(run_dir):
    (run_dir / "figures").mkdir()
    (run_dir / "figures" / "01_3.png").write_bytes(b"old")
    report.write_report(run_dir, max_figures=1)
    assert sorted(p.name for p in (run_dir / "figures").iterdir()) == ["01_1.png"]


def test_cli_and_missing_summary(run_dir, tmp_path, capsys):
    assert report.main([str(run_dir)]) == 0
    assert (run_dir / "report.md").is_file()
    assert report.main([str(tmp_path / "nothing")]) == 2
    assert "summary.json" in capsys.readouterr().err


def test_readme_block_and_update(run_dir, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    readme = repo / "README.md"
    readme.write_text("# course\n\n## Results\n\n<!-- results:start -->\nold table\n"
                      "<!-- results:end -->\n\n## More\ntext\n", encoding="utf-8")
    block = report.readme_block(run_dir, readme_dir=repo)
    assert (repo / "docs" / "results" / "01_1.png").read_bytes() == PNGS[0]
    assert "[1](docs/results/01_1.png)" in block and "[2](docs/results/01_2.png)" in block
    assert "preset **cpu**" in block and "kd_gain_pts = 2.3 pts" in block

    assert report.main([str(run_dir), "--update-readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "old table" not in text
    assert text.startswith("# course\n\n## Results\n\n<!-- results:start -->\n")
    assert text.endswith("<!-- results:end -->\n\n## More\ntext\n")
    assert block.strip() in text
    assert report.update_readme(readme, block) is False  # idempotent

    bad = tmp_path / "bad.md"
    bad.write_text("no markers\n")
    with pytest.raises(ValueError, match="results:start"):
        report.update_readme(bad, block)
    assert bad.read_text() == "no markers\n"


def test_total_is_the_wall_clock_with_parallel_jobs(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["environment"].update(jobs=2, finished="2026-11-24T00:01:10+00:00")
    (run_dir / "summary.json").write_text(json.dumps(summary))
    text = report.write_report(run_dir).read_text(encoding="utf-8")
    assert "total run time 1 min 10 s on 2 parallel jobs" in text
    assert "add up to 2 min 5 s" in text


def test_frontier_of_chapter_12_comes_first(run_dir, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot()", outputs=[
        png_output(PNGS[2]), record_output("front_bytes", ["KD→DC", "int8"], '["KD→DC", "int8"]'),
        record_output("teacher_acc", 0.94, "0.94")])])
    nbformat.write(nb, run_dir / "executed" / "12_compression_pipeline.ipynb")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["notebooks"].append({"notebook": "12_compression_pipeline.ipynb", "status": "ok", "seconds": 80.0,
                                 "records": {}, "error": None, "parameters": {}, "executed": None})
    (run_dir / "summary.json").write_text(json.dumps(summary))
    text = report.write_report(run_dir).read_text()
    first_image = text.index("![")
    assert text.index("## The compression frontier (12_compression_pipeline)") < first_image
    assert text[first_image:].startswith("![the accuracy / size / latency frontier of chapter 12](figures/12_1.png)")
    assert text.index("## The compression frontier") < text.index("## Chapters")
    assert 'front_bytes = ["KD→DC", "int8"]' in text and "teacher_acc" not in text.split("## Chapters")[0]
    assert (run_dir / "figures" / "12_1.png").read_bytes() == PNGS[2]
    block = report.readme_block(run_dir, tmp_path / "results", tmp_path)
    assert block.index("### The compression frontier") < block.index("| chapter |")
    assert "](results/12_1.png)" in block.split("| chapter |")[0]


def test_no_frontier_section_without_chapter_12(run_dir):
    assert "compression frontier" not in report.write_report(run_dir).read_text()


def test_claims_are_listed_in_summary_and_report(tmp_path):
    """Each chapter's checked claims appear with held / did not hold in summary.md and report.md."""
    from nncompress.course import report as rep

    claims = [{"text": "KD beats scratch", "holds": True, "evidence": "+5.0 pts, 95 % CI [+1.0, +9.0], n = 5",
               "expected": True},
              {"text": "AT beats KD", "holds": False, "evidence": "-0.5 pts, 95 % CI [-3.0, +2.0], n = 5",
               "expected": False},
              {"text": "SP beats KD", "holds": False, "evidence": "n = 5", "expected": True}]
    summary = {"environment": {"preset": "cpu", "started": "s", "finished": "f"},
               "notebooks": [{"notebook": "01_x.ipynb", "status": "ok", "seconds": 3.0, "records": {},
                              "claims": claims}]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    md = rep.summary_markdown(summary)
    assert "## Checked claims (1 of 3 held)" in md
    assert "- held: KD beats scratch — +5.0 pts" in md
    assert "- did not hold: AT beats KD" in md
    assert "- **did not hold (expected to)**: SP beats KD" in md
    text = rep.write_report(tmp_path).read_text()
    assert "Checked claims: 1 of 3 held in this run." in text and "**did not hold (expected to)**: SP beats KD" in text


def test_merge_runs_and_a_second_table_in_the_readme_block(tmp_path):
    """The test suite writes one run folder per chapter; merged, they give one summary, and the
    README block shows the real-data run beside the default one."""
    from nncompress.course import report as rep

    def run_folder(name, notebook, status, claims):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({
            "environment": {"preset": "cpu", "started": f"2026-01-0{len(name) % 9}", "finished": "2026-02-01"},
            "notebooks": [{"notebook": notebook, "status": status, "seconds": 2.0,
                           "records": {"acc": 0.5}, "record_text": {"acc": "0.5"}, "claims": claims}]}))
        return folder

    held = [{"text": "t", "holds": True, "evidence": "", "expected": True}]
    a = run_folder("a", "02_b.ipynb", "ok", held)
    b = run_folder("bb", "01_a.ipynb", "ok", held + [{"text": "u", "holds": False, "evidence": "", "expected": True}])
    merged = rep.merge_runs([a, b], tmp_path / "merged")
    data = json.loads(merged.read_text())
    assert [n["notebook"] for n in data["notebooks"]] == ["01_a.ipynb", "02_b.ipynb"] and data["ok"]
    fm = run_folder("fm", "07_c.ipynb", "ok", held)
    block = rep.readme_block(tmp_path / "merged", tmp_path / "res", tmp_path, also=[("Fashion-MNIST", fm)])
    assert "| 01_a | ok |" in block and "1/2 (1 expected did not hold)" in block
    assert "### Fashion-MNIST" in block and "| 07_c | ok |" in block


def test_long_record_values_are_cut_in_table_cells():
    from nncompress.course.report import MAX_RECORD_CHARS, records_shown

    shown = records_shown({"curve": "x" * 500, "a": "1", "b": "2"}, limit=2)
    assert shown[0].startswith("curve = x") and shown[0].endswith("…")
    assert len(shown[0]) == len("curve = ") + MAX_RECORD_CHARS
    assert shown[1:] == ["a = 1", "(+1 more)"]
