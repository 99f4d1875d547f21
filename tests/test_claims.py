"""``nc.claim``: run-dependent sentences printed with their evidence and whether they hold."""
import numpy as np
import pytest
import torch

import nncompress as nc
from nncompress.course import claims


@pytest.fixture(autouse=True)
def _fresh():
    claims.clear()
    yield
    claims.clear()


def test_claim_prints_and_keeps(capsys):
    assert nc.claim("A beats B", holds=True, evidence="+2.0 pts, 95 % CI [+0.5, +3.5], n = 5") is True
    assert nc.claim("C beats D", holds=False, evidence="n = 3") is False
    out = capsys.readouterr().out.splitlines()
    assert out == ["✓ holds: A beats B — +2.0 pts, 95 % CI [+0.5, +3.5], n = 5",
                   "✗ DOES NOT HOLD in this run: C beats D — n = 3"]
    assert [c["holds"] for c in claims.claims()] == [True, False]
    assert claims.failed_expected(claims.claims()) == [claims.claims()[1]]


def test_claim_accepts_numpy_and_torch_booleans():
    assert nc.claim("x", holds=np.bool_(True)) is True
    assert nc.claim("y", holds=torch.tensor(False)) is False


@pytest.mark.parametrize("holds", ["yes", 1, None, 0.5])
def test_claim_needs_a_computed_boolean(holds):
    with pytest.raises(TypeError, match="holds= must be a bool"):
        nc.claim("text", holds=holds)


def test_claim_needs_text():
    with pytest.raises(ValueError):
        nc.claim("  ", holds=True)


def test_unexpected_claim_is_never_a_failure():
    nc.claim("resolved at n = 3?", holds=False, expected=False)
    assert claims.failed_expected(claims.claims()) == []


def test_claims_from_notebook_reads_the_displayed_outputs():
    entry = {"text": "t", "holds": False, "evidence": "e", "expected": True}
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {"text/plain": "x", claims.MIME: entry}},
        {"output_type": "stream", "text": "noise"}]}, {"cell_type": "markdown", "source": "m"}]}
    assert claims.claims_from_notebook(nb) == [entry]
