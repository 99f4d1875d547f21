"""Every chapter executes in its default preset (papermill, through the course runner),
then nbval re-executes the stored notebooks and compares the cells marked
``# NBVAL_CHECK_OUTPUT`` (deterministic numbers: shapes, parameter counts, FLOPs, bytes).

The nbval pass shares the checkpoint cache the papermill pass filled, so it re-uses the
trained teachers and students instead of training them again (the course's own promise).
"""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
from nncompress.course.layout import offline_guard_dir

OFFLINE = offline_guard_dir()  # sitecustomize that refuses non-loopback connections

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def course_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("course-cache")


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS][:2] == ["00", "01"]


def test_notebooks_are_diff_friendly():
    """Stored notebooks keep outputs only where nbval compares them (nbtools check)."""
    proc = subprocess.run([sys.executable, "-m", "nncompress.course.nbtools", "check", *map(str, NOTEBOOKS)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_default_preset(notebook, tmp_path, course_cache, monkeypatch):
    from nncompress.course.runner import run_notebooks

    monkeypatch.setenv("NNCOMPRESS_CACHE", str(course_cache))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(OFFLINE), os.environ.get("PYTHONPATH")])))
    out = ROOT / "artifacts" / "notebook-runs" / notebook.stem  # kept: executed copy, summary, timings
    (result,) = run_notebooks([notebook], out=out, progress=False, quiet=True)
    assert result.status == "ok", f"{result.status}: {result.error} (cell {result.error_cell})"
    assert result.records, "a chapter must record its headline numbers with nc.record(...)"
    assert result.peak_rss_mb is not None and result.peak_rss_mb < 2048, \
        f"kernel peak memory {result.peak_rss_mb} MiB (goal: <= 2 GiB so the course runs on a laptop)"
    assert (out / "summary.json").exists() and (out / "summary.md").exists()
    from nncompress.course.claims import failed_expected

    broken = failed_expected(result.claims)
    assert not broken, "claims the chapter expects to hold did not hold in this run:\n" + "\n".join(
        f"- {c['text']} ({c['evidence']})" for c in broken)


def _image_chapters():
    """Chapters whose default (cpu) data are images: each must also run on real Fashion-MNIST."""
    from nncompress.course import chapters

    out = []
    for path in NOTEBOOKS:
        spec = chapters.specs(path.stem).get("data")
        if spec is not None and spec.default_for("cpu") == "shapes":
            out.append(path)
    return out


IMAGE_CHAPTERS = _image_chapters()


def test_image_chapters_accept_fashion_mnist():
    assert [p.stem[:2] for p in IMAGE_CHAPTERS] == ["07", "09", "10"]  # the chapters whose data are images
    from nncompress.course import chapters

    for path in IMAGE_CHAPTERS:
        assert "fashion-mnist" in chapters.specs(path.stem)["data"].choices, path.stem


@pytest.mark.parametrize("notebook", IMAGE_CHAPTERS, ids=lambda p: p.stem)
def test_image_chapter_runs_on_fashion_mnist(notebook, course_cache, monkeypatch):
    """Issue 18: every image chapter runs on real images (Debian's dataset-fashion-mnist) in its
    default preset sizes, beside the default run; its records and claims go to the report."""
    from nncompress.course.runner import run_notebooks

    monkeypatch.setenv("NNCOMPRESS_CACHE", str(course_cache))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(OFFLINE), os.environ.get("PYTHONPATH")])))
    out = ROOT / "artifacts" / "notebook-runs-fashion-mnist" / notebook.stem
    (result,) = run_notebooks([notebook], parameters={"data": "fashion-mnist"}, out=out, progress=False, quiet=True)
    assert result.status == "ok", f"{result.status}: {result.error} (cell {result.error_cell})"
    assert result.records


def test_chapter01_missing_class_on_fashion_mnist(course_cache, monkeypatch):
    """Issue 18: Hinton et al.'s missing-class experiment (2015, §3) on real images - Fashion-MNIST
    with MLPs (the paper's MNIST setting uses MLPs; teacher: its 1200-1200 net with dropout).  The
    student never sees a label of the missing class; with a bias fix chosen on validation, the
    distilled student recognises it and the scratch student does not."""
    from nncompress.course.runner import run_notebooks

    notebook = ROOT / "notebooks" / "01_knowledge_distillation.ipynb"
    monkeypatch.setenv("NNCOMPRESS_CACHE", str(course_cache))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(OFFLINE), os.environ.get("PYTHONPATH")])))
    out = ROOT / "artifacts" / "notebook-runs-fashion-mnist" / notebook.stem
    (result,) = run_notebooks([notebook], parameters={"data": "fashion-mnist", "teacher": "mlp-1200", "student": "mlp-64"},
                              out=out, progress=False, quiet=True)
    assert result.status == "ok", f"{result.status}: {result.error} (cell {result.error_cell})"
    missing = [c for c in result.claims if "KD student recognises more test" in c["text"]]
    assert len(missing) == 1, [c["text"] for c in result.claims]
    assert missing[0]["holds"], missing[0]


def test_offline_guard_blocks_the_network():
    """The guard the notebook kernels run under really refuses outside connections."""
    code = ("import socket\n"
            "try:\n    socket.create_connection(('93.184.216.34', 80), timeout=2)\nexcept OSError as e:\n"
            "    print(type(e).__name__)\n"
            "try:\n    socket.getaddrinfo('example.com', 443)\nexcept OSError as e:\n    print(type(e).__name__)\n")
    env = {**os.environ, "PYTHONPATH": str(OFFLINE)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split()
    assert out == ["NetworkDisabled", "NetworkDisabled"]


def test_stored_outputs_match_nbval(course_cache):
    env = {**os.environ, "NNCOMPRESS_CACHE": str(course_cache), "NNCOMPRESS_PROGRESS": "0",
           "PYTHONPATH": str(OFFLINE), "OMP_NUM_THREADS": "1"}  # the runner's default: the same numbers
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), "--nbval-cell-timeout", "600",
         *map(str, NOTEBOOKS)],
        cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_chapter01_gpu_preset_code_path_on_images(tmp_path, monkeypatch):
    """The gpu preset distils CNNs on images; run that code path at toy size on the CPU."""
    from nncompress.course.runner import run_notebooks

    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path / "cache"))
    params = dict(data="shapes", teacher="cnn-tiny", student="cnn-tiny", n_train=700, n_test=200, n_val=100,
                  n_labelled=200, teacher_epochs=1, student_epochs=1, n_seeds=1, temperatures=[4.0],
                  alphas=[0.9])
    (result,) = run_notebooks([ROOT / "notebooks" / "01_knowledge_distillation.ipynb"], parameters=params,
                              out=tmp_path / "out", progress=False, quiet=True)
    assert result.status == "ok", f"{result.status}: {result.error} (cell {result.error_cell})"
    assert result.records["best_temperature"] == 4.0


def test_chapter12_gpu_preset_code_path_on_images(tmp_path, monkeypatch):
    """The gpu preset compresses 2-D CNNs (BatchNorm fusion for int8, channel pruning of SimpleCNN,
    a DesignNet redesign, a CNN early-exit backbone); run that code path at toy size on the CPU."""
    from nncompress.course.runner import run_notebooks

    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path / "cache"))
    params = dict(data="shapes", teacher="cnn-small", student="cnn-tiny", redesign="design-separable",
                  n_train=600, n_test=200, n_val=100, n_labelled=300, teacher_epochs=1, student_epochs=1,
                  finetune_epochs=1, exit_widths=[8, 16], n_seeds=1, sweep_ratios=[0.5], latency_batch=16,
                  latency_blocks=6, pt2e=False, order_sparsities=[0.5], order_bits=[3])
    (result,) = run_notebooks([ROOT / "notebooks" / "12_compression_pipeline.ipynb"], parameters=params,
                              out=tmp_path / "out", progress=False, quiet=True)
    assert result.status == "ok", f"{result.status}: {result.error} (cell {result.error_cell})"
    assert result.records["front_bytes"] and result.records["smallest_within_loss"] is not None
