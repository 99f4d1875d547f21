"""Checked claims: every sentence of a chapter's reading that depends on this run's numbers.

A chapter never asserts a run-dependent reading in static Markdown.  It states it as a
claim, with the evidence computed in the run::

    nc.claim("KD beats training from scratch at 500 labels",
             holds=cmp.significant and cmp.mean > 0, evidence=cmp.text())

Each call prints ``✓ holds: <text> — <evidence>`` or, plainly,
``✗ DOES NOT HOLD in this run: <text> — <evidence>``, and (inside Jupyter / papermill)
displays a machine-readable output that the runner collects into ``summary.json``; the
run summary and the report list every chapter's claims with held / did not hold.

``expected`` says whether the chapter's text expects the claim to hold in the default
preset.  The test suite executes every chapter and fails when an expected claim does not
hold; a claim with ``expected=False`` is a question the run answers either way (e.g. "is
the gap resolved at n = 3 seeds?"), printed but never a test failure.
"""
from __future__ import annotations

from typing import Any, Mapping

from .record import displayed_payloads, ipython_shell, to_jsonable

MIME = "application/vnd.nncompress.claim+json"

_CLAIMS: list[dict[str, Any]] = []


def claim(text: str, holds: bool, evidence: Any = "", *, expected: bool = True) -> bool:
    """Print ``text`` with its ``evidence`` and whether it ``holds`` in this run; returns ``holds``.

    ``holds`` must be a real boolean computed from the run (numpy / torch booleans are
    accepted), never a constant string.  The claim is also kept in :func:`claims`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"claim text must be a non-empty string, got {text!r}")
    if hasattr(holds, "item"):
        holds = holds.item()
    if not isinstance(holds, bool):
        raise TypeError(f"claim holds= must be a bool computed from the run, got {holds!r} "
                        f"({type(holds).__name__})")
    entry = {"text": text.strip(), "holds": holds, "evidence": str(evidence),
             "expected": bool(expected)}
    _CLAIMS.append(entry)
    line = format_claim(entry)
    if ipython_shell() is not None:
        from IPython.display import display

        display({"text/plain": line, MIME: to_jsonable(entry)}, raw=True)
    else:
        print(line)
    return holds


def format_claim(entry: Mapping[str, Any]) -> str:
    mark = "✓ holds" if entry["holds"] else "✗ DOES NOT HOLD in this run"
    evidence = f" — {entry['evidence']}" if entry.get("evidence") else ""
    return f"{mark}: {entry['text']}{evidence}"


def claims() -> list[dict[str, Any]]:
    """The claims made in this process so far (copies), in order."""
    return [dict(c) for c in _CLAIMS]


def clear() -> None:
    _CLAIMS.clear()


def claims_from_notebook(nb) -> list[dict[str, Any]]:
    """The claims an executed notebook displayed, in order."""
    return [{"text": str(p["text"]), "holds": bool(p["holds"]), "evidence": str(p.get("evidence", "")),
             "expected": bool(p.get("expected", True))}
            for p in displayed_payloads(nb, MIME) if "text" in p and "holds" in p]


def failed_expected(entries) -> list[dict[str, Any]]:
    """The claims a chapter expected to hold that did not."""
    return [c for c in entries if c["expected"] and not c["holds"]]


__all__ = ["MIME", "claim", "claims", "clear", "claims_from_notebook", "failed_expected", "format_claim"]
