import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every unit test gets its own empty checkpoint cache; progress bars off."""
    monkeypatch.setenv("NNCOMPRESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NNCOMPRESS_PROGRESS", "0")
    yield


@pytest.fixture
def root():
    return ROOT
