"""A readable results report of a run: ``python -m nncompress.course.report OUT``.

Reads what ``python -m nncompress.run --out OUT`` wrote (``OUT/summary.json`` and the
executed notebooks in ``OUT/executed/``) and writes

* ``OUT/report.md`` - the preset and the machine/environment the numbers come from,
  a table of every chapter (status, seconds, headline records), the total run time, the
  failures, and each chapter's first figures with all its records;
* ``OUT/figures/NN_k.png`` - the first ``k = 1, 2`` ``image/png`` outputs of chapter
  ``NN``'s executed notebook (``NN`` = the file name's number, else its stem).

``--update-readme README.md`` also copies the figures to ``docs/results/`` next to the
README and replaces the text between ``<!-- results:start -->`` and
``<!-- results:end -->`` in it with :func:`readme_block`::

    python -m nncompress.course.report runs/latest
    python -m nncompress.course.report runs/latest --update-readme README.md

From Python: :func:`write_report`, :func:`readme_block`, :func:`update_readme`.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"
MAX_FIGURES = 2      # per chapter
MAX_RECORDS = 4      # per chapter in the tables (all of them in the chapter sections)
HEADLINE = "12"      # the chapter whose first figure opens the report: the compression frontier


def headline(chapters: Sequence[Mapping]) -> Mapping | None:
    """The chapter whose first figure opens the report and the README block (chapter 12's
    accuracy/size/latency frontier), if it ran and drew one."""
    return next((c for c in chapters if c["key"] == HEADLINE and c["figures"]), None)


def _headline_lines(chapters: Sequence[Mapping], link_base: Path, level: str = "##") -> list[str]:
    c = headline(chapters)
    if c is None:
        return []
    fronts = "; ".join(f"{k} = {v}" for k, v in c["records"].items() if k.startswith(("front", "best", "smallest")))
    return ["", f"{level} The compression frontier ({c['name']})", "",
            f"![the accuracy / size / latency frontier of chapter {c['key']}]({_link(c['figures'][0], link_base)})"] \
        + ([f"", _md(fronts)] if fronts else [])


# --------------------------------------------------------------------------- reading

def load_summary(out_dir: str | os.PathLike) -> dict:
    """``OUT/summary.json`` as written by :mod:`nncompress.run`."""
    path = Path(out_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: run `python -m nncompress.run --out {out_dir}` first")
    return json.loads(path.read_text(encoding="utf-8"))


def chapter_key(notebook: str) -> str:
    """``"01"`` for ``01_knowledge_distillation.ipynb``; the stem if it has no number."""
    stem = Path(notebook).stem
    match = re.match(r"^(\d+)_", stem)
    return match.group(1) if match else re.sub(r"[^\w.-]", "_", stem)


def _executed_path(out_dir: Path, entry: Mapping[str, Any]) -> Path | None:
    """The executed notebook: ``OUT/executed/NAME`` (the folder may have moved), else the
    path recorded in the summary."""
    candidates = [out_dir / "executed" / entry.get("notebook", "")]
    if entry.get("executed"):
        candidates.append(Path(entry["executed"]))
    return next((p for p in candidates if p.name and p.is_file()), None)


def _read_notebook(path: Path | None):
    if path is None:
        return None
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # unreadable / truncated: a report without its figures
        return None


def png_outputs(nb) -> list[bytes]:
    """The decoded ``image/png`` outputs of a notebook's code cells, in order."""
    images = []
    for cell in nb.cells if nb is not None else []:
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {}) if output.get("output_type") in (
                "display_data", "execute_result") else {}
            png = data.get("image/png")
            if not png:
                continue
            if isinstance(png, list):
                png = "".join(png)
            try:
                images.append(base64.b64decode(png))
            except (binascii.Error, ValueError):
                continue
    return images


def _record_texts(entry: Mapping[str, Any], nb) -> dict[str, str]:
    """name -> shown text of a chapter's records (as the notebook displayed them)."""
    from .record import format_value, records_from_notebook

    if nb is not None:
        try:
            _, texts = records_from_notebook(nb)
            if texts:
                return dict(texts)
        except Exception:
            pass
    return {str(k): format_value(v) for k, v in (entry.get("records") or {}).items()}


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _seconds(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec} s" if minutes else f"{seconds:.1f} s"


def _environment_line(env: Mapping[str, Any]) -> str:
    gpu = env.get("cuda_device") or "none"
    parts = [f"preset **{env.get('preset', '?')}**", f"{env.get('cpu_count', '?')} CPUs",
             f"GPU: {gpu}", f"python {env.get('python', '?')}", f"torch {env.get('torch', '?')}",
             f"nncompress {env.get('nncompress', '?')}"]
    return " · ".join(parts)


# --------------------------------------------------------------------------- chapters

def collect(out_dir: str | os.PathLike, *, max_figures: int = MAX_FIGURES,
            figures_dir: str | os.PathLike | None = None) -> tuple[dict, list[dict]]:
    """``(summary, chapters)``; extracts every chapter's first ``max_figures`` PNGs to
    ``figures_dir`` (default ``OUT/figures``) as ``NN_k.png``.

    Each chapter is a dict: ``key``, ``name`` (stem), ``status``, ``seconds``, ``error``,
    ``records`` (name -> text) and ``figures`` (paths of the written PNGs).
    """
    out_dir = Path(out_dir)
    summary = load_summary(out_dir)
    figures_dir = Path(figures_dir) if figures_dir is not None else out_dir / "figures"
    chapters = []
    used: set[str] = set()
    for entry in summary.get("notebooks", []):
        key = chapter_key(entry.get("notebook", "notebook"))
        base, n = key, 1
        while key in used:  # two notebooks with the same number: keep both
            key, n = f"{base}-{n}", n + 1
        used.add(key)
        nb = _read_notebook(_executed_path(out_dir, entry))
        for stale in figures_dir.glob(f"{key}_*.png") if figures_dir.is_dir() else []:
            if re.fullmatch(rf"{re.escape(key)}_\d+\.png", stale.name):
                stale.unlink()
        figures = []
        for k, png in enumerate(png_outputs(nb)[:max_figures], start=1):
            figures_dir.mkdir(parents=True, exist_ok=True)
            path = figures_dir / f"{key}_{k}.png"
            path.write_bytes(png)
            figures.append(path)
        chapters.append({
            "key": key, "name": Path(entry.get("notebook", key)).stem,
            "status": entry.get("status", "?"), "seconds": entry.get("seconds"),
            "error": entry.get("error"), "records": _record_texts(entry, nb),
            "figures": figures, "executed": nb is not None, "claims": list(entry.get("claims") or []),
        })
    return summary, chapters


#: a record's text in a table cell is cut to this many characters (a dict of curve points would
#: otherwise fill the README); the whole value stays in summary.json and report.md's details
MAX_RECORD_CHARS = 120


def records_shown(records: Mapping[str, str], limit: int = MAX_RECORDS, width: int = MAX_RECORD_CHARS) -> list[str]:
    """``"name = value"`` for the first ``limit`` records, each value cut to ``width`` characters
    (marked "…"), then "(+N more)" when some were left out."""
    cut = lambda v: v if len(v) <= width else v[:width - 1].rstrip() + "…"
    shown = [f"{k} = {cut(str(v))}" for k, v in list(records.items())[:limit]]
    if len(records) > limit:
        shown.append(f"(+{len(records) - limit} more)")
    return shown


def _records_cell(records: Mapping[str, str], limit: int = MAX_RECORDS) -> str:
    return _md("; ".join(records_shown(records, limit))) or "-"


def _status(status: str) -> str:
    return status if status == "ok" else f"**{status}**"


def _total_seconds(chapters: Sequence[Mapping]) -> float:
    return sum(c["seconds"] for c in chapters if isinstance(c["seconds"], (int, float)))


def _wall_seconds(env: Mapping[str, Any]) -> float | None:
    """finished - started of the run (None if either is missing)."""
    from datetime import datetime

    try:
        return (datetime.fromisoformat(env["finished"])
                - datetime.fromisoformat(env["started"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def _total_text(env: Mapping[str, Any], chapters: Sequence[Mapping]) -> str:
    """"2 min 5 s" (the wall clock of the run when known, else the chapters' sum)."""
    wall, total = _wall_seconds(env), _total_seconds(chapters)
    if wall is None:
        return _duration(total)
    jobs = env.get("jobs") or 1
    extra = f" on {jobs} parallel jobs; the chapters' own times add up to {_duration(total)}" \
        if jobs > 1 else ""
    return f"{_duration(wall)}{extra}"


def _link(path: Path, relative_to: Path) -> str:
    return Path(os.path.relpath(path, relative_to)).as_posix()


def report_markdown(summary: Mapping[str, Any], chapters: Sequence[Mapping],
                    link_base: Path) -> str:
    """The text of ``report.md`` (figure links relative to ``link_base``)."""
    env = summary.get("environment", {})
    ok = sum(c["status"] == "ok" for c in chapters)
    lines = [f"# nncompress results — preset {env.get('preset', '?')}", "",
             f"{ok}/{len(chapters)} chapters ok · total run time {_total_text(env, chapters)}",
             "",
             "## Produced on", "", "| | |", "|---|---|"]
    rows = [("preset", env.get("preset")), ("started", env.get("started")),
            ("finished", env.get("finished")), ("platform", env.get("platform")),
            ("CPUs", env.get("cpu_count")), ("GPU", env.get("cuda_device") or "none"),
            ("python", env.get("python")), ("torch", env.get("torch")),
            ("torchvision", env.get("torchvision")), ("nncompress", env.get("nncompress")),
            ("kernel", env.get("kernel")), ("timeout per notebook (s)", env.get("timeout"))]
    lines += [f"| {name} | {_md(value)} |" for name, value in rows if value is not None]
    lines += _headline_lines(chapters, link_base)
    lines += ["", "## Chapters", "", "| chapter | status | seconds | headline records | figures |",
              "|---|---|---:|---|---:|"]
    for c in chapters:
        lines.append(f"| [{_md(c['name'])}](#{_anchor(c)}) | {_status(c['status'])} | "
                     f"{_seconds(c['seconds'])} | {_records_cell(c['records'])} | "
                     f"{len(c['figures'])} |")
    lines.append(f"| **total** | {ok}/{len(chapters)} ok | "
                 f"{_total_seconds(chapters):.1f} | | |")
    failed = [c for c in chapters if c["status"] != "ok"]
    if failed:
        lines += ["", "## Not ok", ""]
        lines += [f"* **{c['name']}** — {c['status']}: {c['error'] or ''}".rstrip(": ")
                  for c in failed]
    for c in chapters:
        lines += ["", f"## {c['name']}", ""]
        lines.append(f"{_status(c['status'])} in {_seconds(c['seconds'])} s"
                     + ("" if c["executed"] else " (no executed notebook found)"))
        if c["records"]:
            lines.append("")
            lines += [f"* `{name}` = {text}" for name, text in c["records"].items()]
        if c["claims"]:
            held = sum(x["holds"] for x in c["claims"])
            lines += ["", f"Checked claims: {held} of {len(c['claims'])} held in this run.", ""]
            lines += [f"* {_claim_verdict(x)}: {_md(x['text'])}" + (f" — {_md(x['evidence'])}" if x.get("evidence") else "")
                      for x in c["claims"]]
        for k, fig in enumerate(c["figures"], start=1):
            lines += ["", f"![{c['name']}, figure {k}]({_link(fig, link_base)})"]
    return "\n".join(lines) + "\n"


def _anchor(chapter: Mapping) -> str:
    """GitHub's heading anchor for ``## name``."""
    return re.sub(r"[^\w\- ]", "", chapter["name"].lower()).replace(" ", "-")


def write_report(out_dir: str | os.PathLike, *, max_figures: int = MAX_FIGURES) -> Path:
    """Write ``OUT/report.md`` and ``OUT/figures/NN_k.png``; returns the report's path."""
    out_dir = Path(out_dir)
    summary, chapters = collect(out_dir, max_figures=max_figures)
    path = out_dir / "report.md"
    _atomic_write(path, report_markdown(summary, chapters, out_dir))
    return path


# --------------------------------------------------------------------------- summary.md

def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(summary: Mapping[str, Any], *, max_records: int = MAX_RECORDS) -> str:
    """``summary.md`` from the data of ``summary.json``: one table row per notebook, the
    claims each chapter checked, then the failures."""
    env = summary.get("environment", {})
    notebooks = summary.get("notebooks", [])
    parts = [f"preset **{env.get('preset')}**", f"python {env.get('python')}",
             f"torch {env.get('torch')}", f"nncompress {env.get('nncompress')}",
             f"{env.get('cpu_count')} CPUs", f"GPU: {env.get('cuda_device') or 'none'}"]
    lines = [f"# nncompress run, {env.get('started', '')}", "", " · ".join(parts), ""]
    if env.get("finished") is None:
        lines += ["**This run has not finished** (still running, or it was stopped).", ""]
    if any(chapter_key(n["notebook"]) == HEADLINE and n["status"] == "ok" for n in notebooks):
        # written by the report at the end of the run (python -m nncompress.run always writes it)
        lines += [f"![the compression frontier (chapter {HEADLINE})](figures/{HEADLINE}_1.png)", ""]
    lines += ["| notebook | status | seconds | key records |", "|---|---|---:|---|"]
    for n in notebooks:
        texts = n.get("record_text") or {k: str(v) for k, v in (n.get("records") or {}).items()}
        shown = records_shown(texts, max_records)
        lines.append(f"| {_md_cell(Path(n['notebook']).stem)} | {n['status']} | {float(n.get('seconds') or 0):.1f} | "
                     f"{_md_cell('; '.join(shown))} |")
    lines += claims_markdown(notebooks)
    failed = [n for n in notebooks if n["status"] != "ok"]
    if failed:
        lines += ["", "## Not ok", ""]
        for n in failed:
            where = f" (cell {n['error_cell']})" if n.get("error_cell") is not None else ""
            lines.append(f"* **{n['notebook']}** - {n['status']}{where}: {n.get('error')}")
    return "\n".join(lines) + "\n"


def _claim_verdict(c: Mapping[str, Any]) -> str:
    if c["holds"]:
        return "held"
    return "**did not hold (expected to)**" if c.get("expected", True) else "did not hold"


def claims_markdown(notebooks: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines listing every chapter's checked claims: held / did not hold (and whether the
    chapter expected it to hold)."""
    with_claims = [n for n in notebooks if n.get("claims")]
    if not with_claims:
        return []
    held = sum(c["holds"] for n in with_claims for c in n["claims"])
    total = sum(len(n["claims"]) for n in with_claims)
    lines = ["", f"## Checked claims ({held} of {total} held)", ""]
    for n in with_claims:
        lines.append(f"**{_md_cell(Path(n['notebook']).stem)}**")
        lines.append("")
        for c in n["claims"]:
            evidence = f" — {_md_cell(c['evidence'])}" if c.get("evidence") else ""
            lines.append(f"- {_claim_verdict(c)}: {_md_cell(c['text'])}{evidence}")
        lines.append("")
    return lines


# --------------------------------------------------------------------------- README

def _claims_cell(chapter: Mapping) -> str:
    claims = chapter.get("claims") or []
    if not claims:
        return "-"
    held = sum(c["holds"] for c in claims)
    broken = sum(1 for c in claims if not c["holds"] and c.get("expected", True))
    return f"{held}/{len(claims)}" + (f" ({broken} expected did not hold)" if broken else "")


def _chapter_table(chapters: Sequence[Mapping], readme_dir: Path) -> list[str]:
    lines = ["| chapter | status | seconds | headline records | claims held | figures |",
             "|---|---|---:|---|---|---|"]
    for c in chapters:
        figs = " ".join(f"[{k}]({_link(f, readme_dir)})" for k, f in enumerate(c["figures"], 1))
        lines.append(f"| {_md(c['name'])} | {_status(c['status'])} | {_seconds(c['seconds'])} | "
                     f"{_records_cell(c['records'])} | {_claims_cell(c)} | {figs or '-'} |")
    return lines


def readme_block(out_dir: str | os.PathLike, results_dir: str | os.PathLike | None = None,
                 readme_dir: str | os.PathLike | None = None, *,
                 max_figures: int = MAX_FIGURES, also: Sequence[tuple[str, str | os.PathLike]] = ()) -> str:
    """A Markdown block for the README: where the numbers come from, the chapter table
    (with each chapter's checked claims: held / made) and links to the figures, which are
    copied to ``results_dir``; then one more table per ``(label, run folder)`` in ``also``
    (e.g. the same chapters run on real Fashion-MNIST images), figures in ``results_dir/<label>``.

    ``readme_dir`` (default: the repository root) is where the README lives, so links are
    relative to it; ``results_dir`` defaults to ``readme_dir/docs/results``.  The block
    has no markers (see :func:`update_readme`).
    """
    from .layout import repo_root

    readme_dir = Path(readme_dir) if readme_dir is not None else repo_root()
    results_dir = Path(results_dir) if results_dir is not None else readme_dir / "docs" / "results"
    summary, chapters = collect(out_dir, max_figures=max_figures, figures_dir=results_dir)
    env = summary.get("environment", {})
    when = str(env.get("finished") or env.get("started") or "")[:10]
    lines = [f"Latest run{f' ({when})' if when else ''}: {_environment_line(env)}; "
             f"total {_total_text(env, chapters)}.", *_headline_lines(chapters, readme_dir, "###"), "",
             *_chapter_table(chapters, readme_dir)]
    for label, folder in also:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-").lower() or "extra"
        extra_summary, extra = collect(folder, max_figures=max_figures, figures_dir=results_dir / slug)
        extra_env = extra_summary.get("environment", {})
        lines += ["", f"### {label}", "",
                  f"{_environment_line(extra_env)}; total {_total_text(extra_env, extra)}.", "",
                  *_chapter_table(extra, readme_dir)]
    return "\n".join(lines) + "\n"


def merge_runs(folders: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """One run folder from several (e.g. the test suite's one folder per chapter): every
    notebook of every ``summary.json`` in name order, the executed copies copied to
    ``OUT/executed/``, the environment of the first with the earliest start and latest finish.
    Returns ``OUT/summary.json``."""
    out = Path(out)
    (out / "executed").mkdir(parents=True, exist_ok=True)
    summaries = [(Path(f), load_summary(f)) for f in folders]
    if not summaries:
        raise ValueError("merge_runs: no run folders given")
    notebooks = []
    for folder, summary in summaries:
        for entry in summary.get("notebooks", []):
            executed = _executed_path(folder, entry)
            entry = dict(entry)
            if executed is not None and executed.is_file():
                target = out / "executed" / executed.name
                shutil.copyfile(executed, target)
                entry["executed"] = str(target)
            notebooks.append(entry)
    notebooks.sort(key=lambda n: n.get("notebook", ""))
    envs = [s.get("environment", {}) for _, s in summaries]
    env = dict(envs[0])
    starts = [e["started"] for e in envs if e.get("started")]
    ends = [e["finished"] for e in envs if e.get("finished")]
    env.update(started=min(starts) if starts else None,
               finished=max(ends) if len(ends) == len(envs) else None)
    failed = [n["notebook"] for n in notebooks if n.get("status") != "ok"]
    complete = env["finished"] is not None
    data = {"environment": env, "ok": complete and not failed, "complete": complete, "failed": failed,
            "notebooks": notebooks}
    path = out / "summary.json"
    _atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    _atomic_write(out / "summary.md", summary_markdown(data))
    return path


def update_readme(readme: str | os.PathLike, block: str) -> bool:
    """Replace the text between :data:`START_MARKER` and :data:`END_MARKER` in ``readme``
    with ``block`` (markers kept).  Returns whether the file changed.  Raises
    ``ValueError`` if the markers are missing, repeated or out of order."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    starts, ends = text.count(START_MARKER), text.count(END_MARKER)
    if starts != 1 or ends != 1 or text.index(START_MARKER) > text.index(END_MARKER):
        raise ValueError(f"{readme}: needs exactly one {START_MARKER!r} followed by one "
                         f"{END_MARKER!r} (found {starts} and {ends})")
    head, rest = text.split(START_MARKER, 1)
    _, tail = rest.split(END_MARKER, 1)
    new = f"{head}{START_MARKER}\n{block.rstrip()}\n{END_MARKER}{tail}"
    if new == text:
        return False
    _atomic_write(readme, new)
    return True


def _atomic_write(path: Path, text: str) -> None:
    from ..cache import atomic_write_bytes

    atomic_write_bytes(Path(path), text.encode("utf-8"))


# --------------------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nncompress.course.report",
                                     description="Write OUT/report.md and OUT/figures/ from a run "
                                                 "of python -m nncompress.run.")
    parser.add_argument("out", type=Path, help="the run's output folder (e.g. runs/latest)")
    parser.add_argument("--max-figures", type=int, default=MAX_FIGURES,
                        help="figures per chapter (default %(default)s)")
    parser.add_argument("--update-readme", type=Path, metavar="README",
                        help=f"also replace the block between {START_MARKER} and {END_MARKER} "
                             "in this file, with figures copied to --results-dir")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where the README's figures go (default: docs/results next to it)")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="DIR", default=None,
                        help="first merge these run folders (e.g. artifacts/notebook-runs/*) into OUT")
    parser.add_argument("--also", nargs=2, action="append", default=[], metavar=("LABEL", "DIR"),
                        help="with --update-readme: one more table for another run (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.merge:
            print(f"merged {len(args.merge)} run folder(s) into {merge_runs(args.merge, args.out)}")
        path = write_report(args.out, max_figures=args.max_figures)
        print(f"wrote {path}")
        if args.update_readme is not None:
            readme_dir = args.update_readme.resolve().parent
            block = readme_block(args.out, args.results_dir, readme_dir,
                                 max_figures=args.max_figures, also=[(l, Path(d)) for l, d in args.also])
            changed = update_readme(args.update_readme, block)
            print(f"{'updated' if changed else 'unchanged'}: {args.update_readme}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
