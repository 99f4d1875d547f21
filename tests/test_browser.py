"""The course in a real browser: JupyterLab from .venv driven by headless Chromium (playwright).

tests/test_notebooks.py executes every notebook in full (papermill + nbval); these tests check
what only a browser shows: the notebooks render in JupyterLab, their cells run there without
error output, and the interactive widgets (ipywidgets) really redraw when a student moves them.

Needs Debian's ``chromium`` (``apt-get install chromium``; .ci/run installs it when missing).
Without it the module is skipped; with it every failure is a failure. Screenshots are written to
``artifacts/browser/`` (gitignored). The notebooks are opened as copies in
``artifacts/browser/work/`` so nothing in ``notebooks/`` is ever modified.
"""
from __future__ import annotations

import io
import re
import secrets
import shutil
import time
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium); "
                "the JupyterLab browser tests need it", allow_module_level=True)

import nbformat  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from browser_util import NOTEBOOK_STATE_JS, RUN_COMMAND_JS, SELECT_CELL_JS, LabServer  # noqa: E402

ART = ROOT / "artifacts" / "browser"
WORK = ART / "work"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
KD = ROOT / "notebooks" / "01_knowledge_distillation.ipynb"
OTHERS = [nb for nb in NOTEBOOKS if nb != KD]

# A tiny but complete configuration of chapter 01 (values allowed by nc.course.resolve,
# see lib/nncompress/chapters/ch01_kd.py): every cell runs, in seconds instead of a minute.
KD_SMALL = dict(n_train=2000, n_test=500, n_val=200, n_labelled=200, teacher_epochs=2, student_epochs=5,
                n_seeds=1, temperatures=[1.0, 4.0], alphas=[0.9])

KERNEL_START_S = 240      # kernel start + page load, on 2 shared cores
RUN_ALL_S = 8 * 60        # the small chapter-01 run: ~30 s quiet, several times that under load
FEW_CELLS_S = 180         # parameters + validation cell (imports torch)
REDRAW_S = 90


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    tmp = tmp_path_factory.mktemp("jupyterlab")
    server = LabServer(ROOT, tmp / "jupyter", cache=tmp / "cache")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class Notebook:
    """One notebook open in its own JupyterLab page (own browser context and workspace)."""

    def __init__(self, lab: LabServer, page, path: Path):
        self.lab, self.page, self.path = lab, page, path

    def state(self):
        return self.page.evaluate(NOTEBOOK_STATE_JS)

    def wait(self, ok, timeout: float, what: str, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        while True:
            st = self.state()
            if ok(st):
                return st
            dialog = self.page.locator(".jp-Dialog")
            if dialog.count():
                raise AssertionError(f"unexpected JupyterLab dialog while waiting for {what}: "
                                     f"{dialog.first.inner_text()!r}")
            if time.monotonic() > deadline:
                self.screenshot(f"FAILED_{self.path.stem}.png")
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last state: {st}\n"
                                     f"--- JupyterLab log (tail) ---\n{self.lab.log()}")
            self.page.wait_for_timeout(interval * 1000)

    def wait_idle(self, timeout: float, what: str):
        """Kernel idle, no [*] prompt, and the command started last has settled - twice in a row."""
        seen = []

        def ok(st):
            done = self.page.evaluate("() => !window.__ncCommand || window.__ncCommand.done")
            seen.append(st["ready"] and st["kernel"] == "idle" and st["running"] == 0 and done)
            return seen[-2:] == [True, True]

        st = self.wait(ok, timeout, what)
        err = self.page.evaluate("() => window.__ncCommand && window.__ncCommand.error")
        assert not err, f"JupyterLab command failed: {err}"
        return st

    def command(self, command_id: str, args: dict | None = None):
        self.page.evaluate(RUN_COMMAND_JS, [command_id, args or {}])

    def screenshot(self, name: str, locator=None) -> Path:
        out = ART / name
        (locator or self.page).screenshot(path=str(out), **({} if locator else {"full_page": True}))
        print(f"screenshot: {out}")
        return out


@pytest.fixture
def open_notebook(lab, browser):
    contexts = []

    def _open(path: Path) -> Notebook:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        workspace = f"test-{secrets.token_hex(4)}"  # a fresh workspace: no tabs restored from before
        rel = path.relative_to(ROOT).as_posix()
        page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{rel}?token={lab.token}", wait_until="load",
                  timeout=KERNEL_START_S * 1000)
        nb = Notebook(lab, page, path)
        nb.wait(lambda st: st["ready"] and st["path"] == rel and st["kernel"] == "idle",
                KERNEL_START_S, f"{rel} to open with an idle kernel")
        return nb

    yield _open
    for ctx in contexts:
        ctx.close()
    lab.shutdown_kernels()


def _small_kd_copy() -> Path:
    nb = nbformat.read(KD, as_version=4)
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    params.source += "\n# browser test: a tiny configuration (the full run is tests/test_notebooks.py)\n" + \
        "".join(f"{k} = {v!r}\n" for k, v in KD_SMALL.items())
    out = WORK / "01_knowledge_distillation_small.ipynb"
    nbformat.write(nb, out)
    return out


def _title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        if c.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", c.source, re.M)
            if m:
                return m.group(1).strip()
    raise AssertionError(f"{path.name} has no '# title' markdown heading")


def _pixels_differ(a: bytes, b: bytes) -> bool:
    from PIL import Image, ImageChops

    ia, ib = (Image.open(io.BytesIO(x)).convert("RGB") for x in (a, b))
    return ia.size != ib.size or ImageChops.difference(ia, ib).getbbox() is not None


def test_kd_notebook_runs_and_temperature_slider_redraws(open_notebook):
    """Chapter 01 runs top to bottom in JupyterLab (Run All) without error output, and moving the
    temperature slider of ``nc.course.widgets.temperature_explorer`` redraws the bar chart.

    The notebook runs in a tiny configuration (a copy with the parameters cell overridden): the
    full notebook is executed by tests/test_notebooks.py, this test checks the UI. It ends with a
    screenshot in the dark theme (figures keep their white background; nothing asserted there
    beyond the absence of errors).
    """
    nb = open_notebook(_small_kd_copy())
    page = nb.page
    page.locator(".jp-Notebook .jp-MarkdownOutput h1").first.wait_for(state="visible")

    t0 = time.monotonic()
    nb.command("notebook:run-all-cells")
    st = nb.wait_idle(RUN_ALL_S, "Run All Cells to finish")
    print(f"run all cells: {time.monotonic() - t0:.0f} s")
    nb.screenshot("01_after_run_all.png")
    assert not st["errors"] and not st["domErrors"], f"error output: {st['errors'] or st['domErrors']}"
    not_run = [c["index"] for c in st["code"] if c["count"] is None]
    assert not not_run, f"code cells that did not run: {not_run}"

    interact = page.locator(".widget-interact").filter(
        has=page.locator(".widget-label", has_text=re.compile(r"^\s*T\s*$")))
    assert interact.count() == 1, "expected one interact widget with a slider labelled T"
    interact.scroll_into_view_if_needed()
    handle = interact.locator(".widget-slider .noUi-handle").first
    readout = interact.locator(".widget-readout").first
    image = interact.locator(".widget-output img").first
    image.wait_for(state="visible")
    src_before, value_before = image.get_attribute("src"), readout.inner_text().strip()
    assert value_before == "1.00", f"slider starts at T={value_before}"
    before = nb.screenshot("01_temperature_T1.png", interact.locator(".widget-output").first)

    handle.focus()
    for _ in range(12):  # step 0.05 in log10: 12 steps -> T = 10**0.6 ~ 3.98
        handle.press("ArrowRight")
        page.wait_for_timeout(50)
    value_after = readout.inner_text().strip()
    if value_after == value_before:  # keyboard ignored by this slider build: drag the handle instead
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 120, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        value_after = readout.inner_text().strip()
    assert float(value_after) > float(value_before), f"slider did not move: T {value_before} -> {value_after}"

    # the last redraw has arrived: the figure's title shows the new T, and the kernel is idle again
    nb.wait_idle(REDRAW_S, "the redraw after moving the slider")
    image.wait_for(state="visible")
    deadline = time.monotonic() + REDRAW_S
    while image.get_attribute("src") == src_before and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert image.get_attribute("src") != src_before, "the figure was not redrawn after moving the slider"
    after = nb.screenshot(f"01_temperature_T{value_after}.png", interact.locator(".widget-output").first)
    assert before.read_bytes() != after.read_bytes()
    assert _pixels_differ(before.read_bytes(), after.read_bytes()), "screenshots before/after are identical"

    # dark theme: the same notebook, for a human to check that figures stay readable
    nb.command("apputils:change-theme", {"theme": "JupyterLab Dark"})
    page.wait_for_function("() => document.body.dataset.jpThemeName === 'JupyterLab Dark'", timeout=60_000)
    nb.wait_idle(60, "the theme change")
    page.wait_for_timeout(1000)
    interact.scroll_into_view_if_needed()
    nb.screenshot("01_dark_theme_widget.png", interact)
    nb.screenshot("01_dark_theme_page.png")
    st = nb.state()
    assert not st["errors"] and not st["domErrors"], f"error output: {st['errors'] or st['domErrors']}"
    nb.command("apputils:change-theme", {"theme": "JupyterLab Light"})
    page.wait_for_function("() => document.body.dataset.jpThemeName === 'JupyterLab Light'", timeout=60_000)
    nb.wait_idle(60, "the theme change back to light")


def test_there_are_other_notebooks():
    assert OTHERS, "expected notebooks besides chapter 01 in notebooks/"


@pytest.mark.parametrize("notebook", OTHERS, ids=lambda p: p.stem)
def test_notebook_renders_and_first_cells_run(notebook, open_notebook):
    """Each other chapter renders in JupyterLab (title, every cell) and its first two code cells
    (parameters, then resolve/validation) run there without error output."""
    copy = WORK / notebook.name
    shutil.copyfile(notebook, copy)
    source = nbformat.read(copy, as_version=4)
    nb = open_notebook(copy)
    page = nb.page

    title = page.locator(".jp-Notebook .jp-MarkdownOutput h1").first
    title.wait_for(state="visible")
    expected = _title(copy)
    assert expected in title.inner_text(), f"title {title.inner_text()!r}, expected {expected!r}"
    cells = page.locator(".jp-Notebook .jp-Cell")
    assert cells.count() == len(source.cells), f"{cells.count()} cells rendered, notebook has {len(source.cells)}"
    assert cells.last.is_visible() or cells.last.bounding_box() is not None

    st = nb.state()
    first_two = [c["index"] for c in st["code"]][:2]
    assert len(first_two) == 2, f"{notebook.name}: fewer than two code cells"
    for index in first_two:
        assert page.evaluate(SELECT_CELL_JS, index) == index
        nb.command("notebook:run-cell")
        st = nb.wait_idle(FEW_CELLS_S, f"code cell {index} to run")
        count = next(c["count"] for c in st["code"] if c["index"] == index)
        assert count is not None, f"code cell {index} did not run"
    nb.screenshot(f"{notebook.stem}.png")
    assert not st["errors"] and not st["domErrors"], f"error output: {st['errors'] or st['domErrors']}"
