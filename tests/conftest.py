import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: skips that are facts of the machine, not missing set-up (e.g. a quantized engine this
#: CPU's torch build lacks) start their reason with this; every other skip fails in CI
OPTIONAL = "optional:"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every unit test gets its own empty checkpoint cache; progress bars off."""
    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NNCOMPRESS_PROGRESS", "0")
    yield


@pytest.fixture
def root():
    return ROOT


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (``CI=true``) a skipped test is a failed test: CI cannot pass by skipping the
    browser tests, nbgrader, the real datasets or anything else it is meant to run.  Only
    skips whose reason starts with ``optional:`` stay skips."""
    outcome = yield
    report = outcome.get_result()
    if not in_ci() or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if reason.removeprefix("Skipped: ").startswith(OPTIONAL):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"


def pytest_collectreport(report):
    """A whole module skipped at collection (``pytest.skip(allow_module_level=True)``) fails in CI too."""
    if in_ci() and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not reason.removeprefix("Skipped: ").startswith(OPTIONAL):
            report.outcome = "failed"
            report.longrepr = f"module skipped in CI (CI=true), which counts as a failure: {reason}"
