"""Run course notebooks headless and summarise them: ``python -m nncompress.run``.

(This module is ``nncompress.course.runner``; ``nncompress.run`` is its command-line name.)

Usage::

    python -m nncompress.run                                  # every notebooks/NN_*.ipynb, in order
    python -m nncompress.run notebooks/01_knowledge_distillation.ipynb -p temperature 4
    python -m nncompress.run --preset gpu --jobs 2 --out runs/gpu --timeout 7200

Each notebook is executed by papermill in its own kernel (working directory: the
notebook's folder) with the ``-p NAME VALUE`` parameters injected (``VALUE`` is read
with :func:`ast.literal_eval`, else taken as a string) and ``--preset`` as the
``preset`` parameter.  Parameters are first checked against the chapter's specs
(``nncompress.course.chapters.specs``), so a typo fails at once (exit code 2) before any
kernel starts.

Outputs, under ``--out`` (default ``runs/latest`` in the repository):

* ``executed/NAME.ipynb`` - the executed copies (also of failed runs, up to the error);
* ``summary.json`` - per notebook: status, seconds, the values passed to
  :func:`nncompress.course.record.record`, the error, the parameters; plus the environment;
  rewritten after every notebook, so an interrupted run keeps what finished;
* ``summary.md`` - the same as a Markdown table.

A notebook's status is ``ok``, ``error`` (exception name and first line of its
message), ``timeout``, ``missing-data`` (``DatasetNotFound``, or a
``FileNotFoundError`` about a dataset), ``ran-nothing`` (no code cell ran, or the cells
took less than one second together) or ``interrupted``.  Everything but ``ok`` is a
failure: the exit code is 1 (``--allow-missing-data`` tolerates ``missing-data``).

The same is available from Python as :func:`run_notebooks`.
"""
from __future__ import annotations

import argparse
import ast
import json
import keyword
import os
import re
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..cache import atomic_write_bytes
from .env import environment
from .execute import DEFAULT_TIMEOUT, Result, execute, error_text
from .layout import default_notebooks, default_out, repo_root
from .record import to_jsonable

#: kernel environment for --no-progress: tqdm off, and nncompress.train's own switch
NO_PROGRESS_ENV = {"TQDM_DISABLE": "1", "NNCOMPRESS_PROGRESS": "0"}

class UsageError(ValueError):
    """The run was asked for something impossible (a missing notebook, clashing names)."""


# --------------------------------------------------------------------------- parameters

def parse_value(text: str) -> Any:
    """A ``-p`` value: a Python literal if it is one (``3``, ``0.5``, ``None``, ``[1, 2]``,
    ``'x'``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def check_parameter_name(name: Any) -> str:
    """``name`` if it can be a notebook parameter: a Python identifier that is not a keyword.

    papermill writes ``NAME = VALUE`` into the notebook, so anything else would become code."""
    from .params import ParameterError

    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(f"parameter name {name!r} is not allowed: expected a Python identifier "
                             "(letters, digits and _, not starting with a digit, not a keyword)")
    return name


def chapter_of(notebook: str | Path) -> str | None:
    """The chapter a notebook belongs to (its file stem, when a chapter module declares it)."""
    from . import chapters

    stem = Path(notebook).stem
    return stem if stem in chapters.CHAPTERS else None


def validate_parameters(notebook: str | Path, parameters: Mapping[str, Any]) -> None:
    """Check ``parameters`` against the notebook's chapter specs and cross-checks (when it
    belongs to a chapter); every name must be an identifier in any case.

    Raises :class:`nncompress.course.params.ParameterError` naming the notebook and the
    offending parameter.
    """
    from . import chapters
    from .params import ParameterError

    for name in parameters:
        check_parameter_name(name)
    chapter = chapter_of(notebook)
    if chapter is None:
        return
    try:
        chapters.resolve(chapter, **dict(parameters))
    except ParameterError as exc:
        raise ParameterError(f"{Path(notebook).name}: {exc}") from None

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (through :func:`nncompress.cache.atomic_write_bytes`)."""
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def write_summary(out: Path, results: Sequence[Result], env: Mapping[str, Any], *,
                  allow_missing_data: bool = False, expected: int | None = None) -> None:
    """``OUT/summary.json`` (the machine-readable record of the run) and ``OUT/summary.md``
    (rendered from it by :func:`nncompress.course.report.summary_markdown`).

    ``ok`` is true only for a finished run (``env["finished"]`` set) in which all
    ``expected`` notebooks (default: ``len(results)``) ran ok, so a summary written while
    the run is going on, or left by a stopped run, never says ``ok``."""
    from .report import summary_markdown

    failed = [r.notebook for r in results if r.failed(allow_missing_data)]
    complete = env.get("finished") is not None and len(results) >= (expected or len(results))
    data = {"environment": dict(env), "ok": complete and not failed, "complete": complete,
            "failed": failed, "notebooks": [r.to_dict() for r in results]}
    write_text(out / "summary.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    write_text(out / "summary.md", summary_markdown(data))


def clear_previous_run(out: Path, paths: Sequence[Path]) -> None:
    """Remove what an earlier run left in ``out`` that this run would otherwise sit beside:
    its summary, report and figures, and the executed copies of the notebooks about to run."""
    import shutil

    for name in ("summary.json", "summary.md", "report.md"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "figures", ignore_errors=True)
    for p in paths:
        for stale in (out / "executed" / p.name, (out / "executed" / p.name).with_suffix(".kernel.log")):
            stale.unlink(missing_ok=True)


def out_path(out: str | Path | None) -> Path:
    """The output folder a run writes to (``--out``, else :func:`default_out`); nothing created."""
    return Path(out).expanduser().resolve() if out is not None else default_out()


def prepare_out(out: str | Path | None) -> Path:
    """The output folder, created; a :class:`UsageError` if it cannot be one."""
    out = out_path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    try:
        (out / "executed").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return out


# --------------------------------------------------------------------------- runner

#: intra-op threads of a kernel unless asked otherwise: one.  Results of training depend on
#: the thread count (float reductions are summed in another order), so one fixed default makes
#: a chapter's numbers - and the claims its text checks - the same on every machine; it also
#: keeps ``--jobs N`` (N <= cores) from oversubscribing the cores.
DEFAULT_THREADS = 1


def threads_per_kernel(jobs: int, threads: int | None = None) -> int:
    """Intra-op threads of each kernel: ``threads`` when given (at most the cores shared out
    over ``jobs``), else ``OMP_NUM_THREADS`` of the caller's environment when set, else
    :data:`DEFAULT_THREADS`."""
    share = max(1, (os.cpu_count() or 1) // max(1, jobs))
    if threads is not None:
        return max(1, min(int(threads), share))
    explicit = os.environ.get("OMP_NUM_THREADS", "")
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    return DEFAULT_THREADS


def _say(text: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


def _progress_default() -> bool:
    return not os.environ.get("CI")


def run_notebooks(paths: Iterable[str | Path] | None = None,
                  parameters: Mapping[str, Any] | None = None, preset: str | None = None,
                  out: str | Path | None = None, jobs: int = 1,
                  timeout: float | None | str = "default", kernel: str = "python3",
                  progress: bool | None = None, quiet: bool = False,
                  allow_missing_data: bool = False,
                  abort: threading.Event | None = None, offline: bool = False,
                  threads: int | None = None) -> list[Result]:
    """Execute notebooks and write ``OUT/executed/*.ipynb``, ``summary.json``, ``summary.md``.

    ``paths`` default to the repository's ``notebooks/NN_*.ipynb``; ``out`` to
    ``runs/latest`` there.  ``timeout`` is per notebook in seconds (``None``/``0``: no
    limit; default :data:`DEFAULT_TIMEOUT` in the cpu preset, no limit in gpu).
    ``progress=False`` disables progress bars in the kernels (``TQDM_DISABLE=1``,
    ``NNCOMPRESS_PROGRESS=0``) and the bar over notebooks; the default is on unless
    the ``CI`` environment variable is set.

    Raises :class:`nncompress.course.params.ParameterError` (before running anything) if a
    parameter is unknown to a notebook's chapter or not allowed, :class:`UsageError`
    for a missing notebook.  Returns the results in the order of ``paths``.
    """
    paths = [Path(p).resolve() for p in (default_notebooks() if paths is None else paths)]
    for p in paths:
        if not p.is_file():
            raise UsageError(f"no such notebook: {p}")
    names = [p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"notebooks with the same file name would overwrite each other: {dupes}")
    parameters = dict(parameters or {})
    if preset is not None:
        if "preset" in parameters and parameters["preset"] != preset:
            from .params import ParameterError

            raise ParameterError(f"--preset {preset} conflicts with -p preset {parameters['preset']}")
        parameters["preset"] = preset
    for p in paths:
        validate_parameters(p, parameters)

    if timeout == "default":
        timeout = DEFAULT_TIMEOUT if parameters.get("preset") in (None, "cpu") else None
    timeout = float(timeout) if timeout else None
    progress = _progress_default() if progress is None else progress
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs = {jobs!r} is not allowed: expected an integer >= 1")
    if timeout is not None and timeout < 0:
        raise UsageError(f"timeout = {timeout!r} is not allowed: expected seconds >= 0 (0: no limit)")
    out = prepare_out(out)
    clear_previous_run(out, paths)

    env_for_kernel: dict[str, str] = {"NNCOMPRESS_RUN": "1"}
    if offline:  # the kernels refuse every non-loopback connection
        from .layout import offline_guard_dir

        guard = offline_guard_dir()
        if guard is None:
            raise UsageError("--offline: the offline guard (nncompress/course/offline) is missing")
        env_for_kernel["PYTHONPATH"] = os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")]))
    if not progress:
        env_for_kernel.update(NO_PROGRESS_ENV)
    # every kernel's intra-op threads are pinned: parallel kernels share the cores instead of
    # each taking all of them (an explicit OMP_NUM_THREADS in the caller's environment wins)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env_for_kernel[var] = str(threads_per_kernel(jobs, threads))

    env = environment(parameters.get("preset"))
    env.update(started=_now(), finished=None, jobs=jobs, timeout=timeout, kernel=kernel,
               threads_per_kernel=threads_per_kernel(jobs, threads))
    results: dict[int, Result] = {}
    lock = threading.Lock()
    abort = abort or threading.Event()
    write_summary(out, [], env, expected=len(paths))  # replaces any earlier summary at once

    def ordered() -> list[Result]:
        return [results[i] for i in sorted(results)]

    def one(index: int, path: Path) -> Result:
        if abort.is_set():
            return Result(path.name, str(path), "interrupted", 0.0, error="not started",
                          parameters=parameters)
        if not quiet:
            _say(f"[{index + 1}/{len(paths)}] start  {path.name}")
        try:
            result = execute(path, out / "executed" / path.name, parameters, kernel=kernel,
                             timeout=timeout, env=env_for_kernel, abort=abort)
        except Exception as exc:  # e.g. an unreadable notebook: a failure, not a crash
            result = Result(path.name, str(path), "error", 0.0, parameters=parameters,
                            error=error_text(type(exc).__name__, exc))
        if not quiet:
            shown = "; ".join(f"{k} = {v}" for k, v in list(result.record_text.items())[:4])
            detail = f"  {shown}" if result.ok else f"  {result.error}"
            _say(f"[{index + 1}/{len(paths)}] {result.status:<6} {path.name}  "
                 f"{result.seconds:.1f} s{detail}")
        with lock:
            results[index] = result
            write_summary(out, ordered(), env, allow_missing_data=allow_missing_data,
                          expected=len(paths))
        return result

    from tqdm.auto import tqdm

    bar = tqdm(total=len(paths), desc="notebooks", unit="nb", disable=not progress or quiet,
               file=sys.stderr)
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nncompress-run")
    try:
        futures = [pool.submit(one, i, p) for i, p in enumerate(paths)]
        for future in futures:
            while True:  # poll, so that Ctrl-C reaches the main thread
                try:
                    future.result(timeout=0.5)
                    break
                except TimeoutError:
                    continue
            bar.update(1)
    except KeyboardInterrupt:
        abort.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        with lock:
            for i, p in enumerate(paths):
                results.setdefault(i, Result(p.name, str(p), "interrupted", 0.0,
                                             error="not started", parameters=parameters))
            env["finished"] = _now()
            write_summary(out, ordered(), env, allow_missing_data=allow_missing_data,
                          expected=len(paths))
    return ordered()


# --------------------------------------------------------------------------- grid

def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The Cartesian product of ``{parameter: [values]}`` as a list of parameter dicts (the
    first parameter varies slowest)."""
    import itertools

    for name, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise UsageError(f"--grid {name}: expected a non-empty list of values, got {values!r}")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _slug(point: Mapping[str, Any]) -> str:
    text = "_".join(f"{k}={v}" for k, v in point.items())
    return re.sub(r"[^A-Za-z0-9=._-]+", "-", text)[:120]


def run_grid(paths: Iterable[str | Path], grid: Mapping[str, Sequence[Any]],
             parameters: Mapping[str, Any] | None = None, out: str | Path | None = None,
             **kwargs: Any) -> list[dict[str, Any]]:
    """Run ``paths`` once per point of ``grid`` (papermill parameters on top of
    ``parameters``): ``OUT/grid/NN_point/`` holds each run's summary and executed notebooks;
    ``OUT/grid.json`` and ``OUT/grid.md`` list one row per (point, notebook) with the point's
    parameters, status, seconds and the notebook's recorded values - a sweep whose results
    are the notebooks' own ``record(...)`` calls.  ``kwargs`` go to :func:`run_notebooks`.
    """
    paths = [Path(p) for p in paths]
    points = grid_points(grid)
    for point in points:  # every point is checked before the first one runs
        for p in paths:
            validate_parameters(p, {**dict(parameters or {}), **point})
    out = prepare_out(out)
    rows: list[dict[str, Any]] = []
    for i, point in enumerate(points):
        sub = out / "grid" / f"{i:02d}_{_slug(point)}"
        results = run_notebooks(paths, {**dict(parameters or {}), **point}, out=sub, **kwargs)
        for r in results:
            rows.append({"point": i, "parameters": point, "notebook": r.notebook, "status": r.status,
                         "seconds": round(r.seconds, 1), "records": to_jsonable(r.records),
                         "record_text": r.record_text, "error": r.error, "folder": str(sub)})
        write_grid(out, rows)
    return rows


def write_grid(out: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``OUT/grid.json`` (every row) and ``OUT/grid.md`` (a table: parameters, status,
    seconds, then one column per recorded value)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.json").write_text(json.dumps(list(rows), indent=1, default=str))
    params = list(dict.fromkeys(k for r in rows for k in r["parameters"]))
    records = list(dict.fromkeys(k for r in rows for k in (r.get("record_text") or r["records"])))
    head = ["notebook", *params, "status", "seconds", *records]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        texts = r.get("record_text") or {k: str(v) for k, v in r["records"].items()}
        cells = [Path(r["notebook"]).stem, *(str(r["parameters"].get(k, "")) for k in params), r["status"],
                 f"{r['seconds']:.1f}", *(str(texts.get(k, "")).replace("|", "/") for k in records)]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "grid.md").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- CLI

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected an integer >= 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected seconds >= 0 (0: no limit)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nncompress.run",
        description="Execute course notebooks with papermill and write "
                    "OUT/summary.json, OUT/summary.md and OUT/executed/*.ipynb.")
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                        help="notebooks to run (default: notebooks/NN_*.ipynb of the repository)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"),
                        help="set a notebook parameter; VALUE is a Python literal or a string "
                             "(repeatable)")
    parser.add_argument("--preset", help="the preset parameter, e.g. cpu or gpu")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: runs/latest in the repository)")
    parser.add_argument("--jobs", "-j", type=_positive_int, default=1,
                        help="notebooks run in parallel (default 1)")
    parser.add_argument("--timeout", type=_seconds, default=None,
                        help=f"seconds per notebook; 0: no limit (default {DEFAULT_TIMEOUT:g} "
                             "in the cpu preset, no limit in gpu)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                       help="TQDM_DISABLE=1 and NNCOMPRESS_PROGRESS=0 in the kernels, no progress "
                            "bar (default when $CI is set)")
    group.add_argument("--progress", dest="progress", action="store_true",
                       help="keep progress bars even when $CI is set")
    parser.add_argument("--allow-missing-data", action="store_true",
                        help="do not fail for notebooks whose dataset is missing")
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-notebook lines")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="intra-op threads per kernel (default: $OMP_NUM_THREADS, else 1 - the "
                             "chapters' numbers depend on it; at most cores / --jobs)")
    parser.add_argument("--offline", action="store_true",
                        help="run the kernels under the offline guard (every non-loopback connection refused)")
    parser.add_argument("--grid", nargs=2, action="append", default=[], metavar=("NAME", "VALUES"),
                        help="sweep a parameter over a Python list of values (repeatable: the "
                             "Cartesian product); results in OUT/grid.md and OUT/grid.json")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: kernels killed, an honest "interrupted" summary."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    names = [name for name, _ in args.parameter]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        print(f"error: -p {repeated[0]} is given more than once", file=sys.stderr)
        return 2
    parameters = {name: parse_value(value) for name, value in args.parameter}
    paths = [Path(p) for p in args.notebooks] if args.notebooks else default_notebooks()
    if not paths:
        print(f"error: no notebooks given and none found in {repo_root() / 'notebooks'}",
              file=sys.stderr)
        return 2
    timeout = "default" if args.timeout is None else (args.timeout or None)
    common = dict(preset=args.preset, out=args.out, jobs=args.jobs, timeout=timeout, kernel=args.kernel,
                  progress=args.progress, quiet=args.quiet, allow_missing_data=args.allow_missing_data,
                  offline=args.offline, threads=args.threads)
    if args.grid:
        return _main_grid(args, paths, parameters, common)
    results, code = _guarded(lambda: run_notebooks(paths, parameters, **common))
    if code is not None:
        return code
    out = out_path(args.out)          # run_notebooks created and checked it
    failed = [r for r in results if r.failed(args.allow_missing_data)]
    if not args.quiet:
        print(f"{len(results) - len(failed)}/{len(results)} notebooks ok; summary: "
              f"{out / 'summary.md'}")
        for r in failed:
            print(f"FAILED {r.notebook}: {r.status}: {r.error}", file=sys.stderr)
    try:  # the course results page: every chapter's headline numbers, figures and run time
        from .report import write_report

        report = write_report(out)
        if not args.quiet:
            print(f"report: {report}")
    except Exception as exc:  # a report problem never hides the run's own status
        print(f"warning: no report written: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _guarded(call):
    """``(call(), None)``, or ``(None, exit code)`` after printing why: 2 for a bad parameter
    or usage, 130 for Ctrl-C."""
    from .params import ParameterError

    try:
        return call(), None
    except (ParameterError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 2
    except Terminated:
        print("terminated (SIGTERM): the summary marks unfinished notebooks as interrupted", file=sys.stderr)
        return None, 143
    except KeyboardInterrupt:
        print("interrupted: the summary marks unfinished notebooks as interrupted", file=sys.stderr)
        return None, 130


def _main_grid(args, paths, parameters, common) -> int:
    names = [name for name, _ in args.grid]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        print(f"error: --grid {repeated[0]} is given more than once; give each parameter once "
              "with all its values", file=sys.stderr)
        return 2
    clash = sorted(set(names) & set(parameters))
    if clash:
        print(f"error: {clash[0]} is both a -p parameter and a --grid parameter", file=sys.stderr)
        return 2
    grid = {name: parse_value(values) for name, values in args.grid}
    rows, code = _guarded(lambda: run_grid(paths, grid, parameters, **common))
    if code is not None:
        return code
    out = args.out.resolve() if args.out is not None else default_out()
    failed = [r for r in rows if r["status"] != "ok"]
    if not args.quiet:
        print(f"{len(rows) - len(failed)}/{len(rows)} grid runs ok; table: {out / 'grid.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
