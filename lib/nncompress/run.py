"""Run course notebooks headless and summarise them: ``python -m nncompress.run``.

Usage::

    python -m nncompress.run                                  # every notebooks/NN_*.ipynb, in order
    python -m nncompress.run notebooks/01_knowledge_distillation.ipynb -p temperature 4
    python -m nncompress.run --preset gpu --jobs 2 --out runs/gpu --timeout 7200

Each notebook is executed by papermill in its own kernel (working directory: the
notebook's folder) with the ``-p NAME VALUE`` parameters injected (``VALUE`` is read
with :func:`ast.literal_eval`, else taken as a string) and ``--preset`` as the
``preset`` parameter.  Parameters are first checked against the chapter's specs
(``nncompress.chapters.specs``), so a typo fails at once (exit code 2) before any
kernel starts.

Outputs, under ``--out`` (default ``runs/latest`` in the repository):

* ``executed/NAME.ipynb`` - the executed copies (also of failed runs, up to the error);
* ``summary.json`` - per notebook: status, seconds, the values passed to
  :func:`nncompress.record.record`, the error, the parameters; plus the environment;
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
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .record import records_from_notebook, to_jsonable

STATUSES = ("ok", "error", "timeout", "missing-data", "ran-nothing", "interrupted")
MIN_CELL_SECONDS = 1.0          # a notebook whose cells ran for less than this "ran nothing"
DEFAULT_TIMEOUT = 900.0         # seconds per notebook in the cpu preset (chapters aim at <= 90 s)
KILL_GRACE = 30.0               # after a timeout, how long the kernel may take to go away
INJECTED_TAG = "injected-parameters"
ERROR_MARKER_TAG = "papermill-error-cell-tag"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
#: kernel environment for --no-progress: tqdm off, and nncompress.train's own switch
NO_PROGRESS_ENV = {"TQDM_DISABLE": "1", "NNCOMPRESS_PROGRESS": "0"}


class UsageError(ValueError):
    """The run was asked for something impossible (a missing notebook, clashing names)."""


# --------------------------------------------------------------------------- paths

def repo_root() -> Path:
    """The repository: the parent of ``lib/`` holding this package, else the cwd."""
    here = Path(__file__).resolve()
    if here.parent.parent.name == "lib":
        return here.parent.parent.parent
    return Path.cwd()


def default_notebooks(root: Path | None = None) -> list[Path]:
    """``notebooks/NN_*.ipynb`` of the repository, in order."""
    folder = (root or repo_root()) / "notebooks"
    return sorted(folder.glob(NOTEBOOK_GLOB))


def default_out(root: Path | None = None) -> Path:
    return (root or repo_root()) / "runs" / "latest"


# --------------------------------------------------------------------------- parameters

def parse_value(text: str) -> Any:
    """A ``-p`` value: a Python literal if it is one (``3``, ``0.5``, ``None``, ``[1, 2]``,
    ``'x'``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _chapter_specs(stem: str) -> Mapping | None:
    """The chapter's parameter specs, or None when no chapter registry knows it."""
    try:
        from . import chapters
        specs = chapters.specs
    except (ImportError, AttributeError):
        return None
    names = [stem]
    match = re.match(r"^\d\d_(.+)$", stem)
    if match:
        names.append(match.group(1))
    for name in names:
        try:
            return specs(name)
        except KeyError:
            continue
    return None


def validate_parameters(notebook: str | Path, parameters: Mapping[str, Any]) -> None:
    """Check ``parameters`` against the notebook's chapter specs (when it has some).

    Raises :class:`nncompress.params.ParameterError` naming the notebook and the
    offending parameter.
    """
    specs = _chapter_specs(Path(notebook).stem)
    if specs is None:
        return
    from .params import ParameterError, resolve

    try:
        resolve(specs, **dict(parameters))
    except ParameterError as exc:
        raise ParameterError(f"{Path(notebook).name}: {exc}") from None


# --------------------------------------------------------------------------- results

@dataclass
class Result:
    """How one notebook run went."""

    notebook: str                     # file name, e.g. "01_knowledge_distillation.ipynb"
    path: str                         # the source notebook
    status: str
    seconds: float                    # wall clock, kernel start included
    records: dict = field(default_factory=dict)
    error: str | None = None
    parameters: dict = field(default_factory=dict)
    executed: str | None = None       # the executed copy
    cell_seconds: float | None = None  # sum of the cells' run times
    error_cell: int | None = None     # index of the failing cell in the source notebook
    record_text: dict = field(default_factory=dict)
    peak_rss_mb: float | None = None   # peak resident memory of the kernel (sampled every 0.2 s)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def failed(self, allow_missing_data: bool = False) -> bool:
        return not (self.ok or (allow_missing_data and self.status == "missing-data"))

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "records": self.records,
            "error": self.error,
            "parameters": to_jsonable(self.parameters),
            "cell_seconds": None if self.cell_seconds is None else round(self.cell_seconds, 2),
            "error_cell": self.error_cell,
            "peak_rss_mb": self.peak_rss_mb,
            "executed": self.executed,
        }


def _first_line(text: Any) -> str:
    text = str(text or "").strip()
    return text.splitlines()[0] if text else ""


def _error_text(ename: str, evalue: Any) -> str:
    line = _first_line(evalue)
    return f"{ename}: {line}" if line else ename


def is_missing_data(ename: str, evalue: Any) -> bool:
    """Whether an error means "the dataset is not there" (not a bug in the notebook)."""
    if ename == "DatasetNotFound" or ename.endswith(("DatasetNotFound", "DatasetNotFoundError")):
        return True
    if ename == "FileNotFoundError":
        return re.search(r"data\s?set|data_root|data root", str(evalue), re.IGNORECASE) is not None
    return False


def _source_cells(nb) -> list:
    """The executed notebook's cells that come from the source notebook."""
    return [c for c in nb.cells
            if not {INJECTED_TAG, ERROR_MARKER_TAG} & set(c.get("metadata", {}).get("tags", []))]


def _has_code(nb) -> bool:
    return any(c.cell_type == "code" and c.source.strip() for c in nb.cells)


def classify(nb, exc: BaseException | None = None, *, timed_out: bool = False,
             interrupted: bool = False, timeout: float | None = None) -> dict:
    """Status, error, cell seconds and failing cell of an executed notebook ``nb``.

    ``exc`` is what papermill raised (None if it returned), ``timed_out`` whether the
    wall-clock guard fired.
    """
    cells = _source_cells(nb) if nb is not None else []
    ran = [c for c in cells if c.cell_type == "code" and c.get("execution_count") is not None]
    durations = [c.get("metadata", {}).get("papermill", {}).get("duration") for c in nb.cells] \
        if nb is not None else []
    cell_seconds = sum(d for d in durations if isinstance(d, (int, float)))
    out = {"status": "ok", "error": None, "cell_seconds": cell_seconds, "error_cell": None}

    error_output = None
    for index, cell in enumerate(cells):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if o.get("output_type") == "error":
                error_output, out["error_cell"] = o, index
                break
        if error_output is not None:
            break

    ename = type(exc).__name__ if exc is not None else None
    if interrupted:
        out.update(status="interrupted", error="interrupted")
    elif timed_out or ename in ("CellTimeoutError", "TimeoutError"):
        limit = f" after {timeout:g} s" if timeout else ""
        out.update(status="timeout", error=f"timed out{limit}")
        if out["error_cell"] is None:  # the cell that was running: the last one started
            started = [i for i, c in enumerate(cells)
                       if c.get("metadata", {}).get("papermill", {}).get("start_time")]
            out["error_cell"] = started[-1] if started else None
    elif error_output is not None or exc is not None:
        if error_output is not None:
            name, value = error_output.get("ename", "Error"), error_output.get("evalue", "")
        else:
            name = getattr(exc, "ename", None) or ename
            value = getattr(exc, "evalue", None) or str(exc)
        status = "missing-data" if is_missing_data(name, value) else "error"
        out.update(status=status, error=_error_text(name, value))
    elif nb is None or not ran:
        out.update(status="ran-nothing", error="no code cell was executed")
    elif cell_seconds < MIN_CELL_SECONDS:
        out.update(status="ran-nothing",
                   error=f"the cells ran for {cell_seconds:.2f} s (< {MIN_CELL_SECONDS:g} s): "
                         "did the notebook do anything?")
    return out


# --------------------------------------------------------------------------- execution

class _KernelHandle:
    """Lets the watchdog find (and kill) the kernel papermill started."""

    def __init__(self):
        self.managers: list = []
        self.lock = threading.Lock()

    def rss_bytes(self) -> int:
        """Resident memory of the kernel process and its children (0 if not running)."""
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil comes with jupyter
            return 0
        with self.lock:
            managers = list(self.managers)
        total = 0
        for km in managers:
            process = getattr(getattr(km, "provisioner", None), "process", None)
            if process is None or process.poll() is not None:
                continue
            try:
                proc = psutil.Process(process.pid)
                total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def kill(self) -> None:
        with self.lock:
            managers = list(self.managers)
        for km in managers:
            provisioner = getattr(km, "provisioner", None)
            process = getattr(provisioner, "process", None)
            if process is None or process.poll() is not None:
                continue
            pgid = getattr(provisioner, "pgid", None)
            try:
                if pgid and hasattr(os, "killpg"):
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    process.kill()
            except (ProcessLookupError, PermissionError, OSError):
                pass


def _kernel_manager_class(extra_env: Mapping[str, str], handle: _KernelHandle, log=None):
    """An AsyncKernelManager that adds ``extra_env`` to the kernel's environment,
    sends the kernel process's own stdout/stderr to ``log`` (a file) and registers
    itself with ``handle``."""
    from jupyter_client.manager import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            env = dict(kw.pop("env", None) or os.environ)
            env.update(extra_env)
            kw["env"] = env
            if log is not None:
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", subprocess.STDOUT)
            with handle.lock:
                handle.managers.append(self)
            return await super().start_kernel(**kw)

    return RunKernelManager


def execute(path: str | Path, executed: str | Path, parameters: Mapping[str, Any] | None = None,
            *, kernel: str = "python3", timeout: float | None = DEFAULT_TIMEOUT,
            env: Mapping[str, str] | None = None, abort: threading.Event | None = None,
            log_output: bool = False) -> Result:
    """Execute one notebook with papermill into ``executed`` and classify the run.

    ``timeout`` (seconds, None: no limit) bounds every cell (papermill's
    ``execution_timeout``) and the whole notebook (a watchdog kills the kernel).
    ``env`` is added to the kernel's environment only.  Setting ``abort`` kills the
    kernel too (status ``interrupted``).
    """
    import nbformat

    path, executed = Path(path).resolve(), Path(executed).resolve()
    parameters = dict(parameters or {})
    executed.parent.mkdir(parents=True, exist_ok=True)
    base = dict(notebook=path.name, path=str(path), parameters=parameters)
    start = time.monotonic()

    source = nbformat.read(path, as_version=4)
    if not _has_code(source):  # nothing to run: don't even start a kernel
        nbformat.write(source, executed)
        info = classify(source)
        return Result(**base, status=info["status"], seconds=time.monotonic() - start,
                      error=info["error"], executed=str(executed), cell_seconds=0.0)

    import papermill

    handle = _KernelHandle()
    done = threading.Event()
    fired = threading.Event()
    interrupted = threading.Event()

    peak = [0]

    def watchdog():
        deadline = None if not timeout else start + timeout
        while not done.wait(0.2):
            peak[0] = max(peak[0], handle.rss_bytes())
            if abort is not None and abort.is_set():
                interrupted.set()
            elif deadline is not None and time.monotonic() > deadline:
                fired.set()
            else:
                continue
            handle.kill()  # again every 0.2 s, in case the kernel was still starting

    guard = threading.Thread(target=watchdog, name=f"watchdog-{path.stem}", daemon=True)
    guard.start()
    exc: BaseException | None = None
    nb = None
    # the kernel process's own output (ipykernel warnings, crashes of C extensions)
    kernel_log = executed.with_suffix(".kernel.log")
    log = open(kernel_log, "wb")
    try:
        nb = papermill.execute_notebook(
            str(path), str(executed), parameters=parameters, kernel_name=kernel,
            progress_bar=False, log_output=log_output, cwd=None,
            execution_timeout=int(timeout) + 1 if timeout else None,
            # the kernel's working directory, without papermill's process-wide chdir
            # (which is not thread-safe): nbclient passes resources.metadata.path as cwd
            resources={"metadata": {"path": str(path.parent)}},
            kernel_manager_class=_kernel_manager_class(dict(env or {}), handle, log),
        )
    except Exception as error:  # papermill's execution error, a timeout, a dead kernel...
        exc = error
    finally:
        done.set()
        guard.join()
        log.close()
    seconds = time.monotonic() - start
    if nb is None and executed.exists():
        try:
            nb = nbformat.read(executed, as_version=4)
        except Exception:
            nb = None
    info = classify(nb, exc, timed_out=fired.is_set(), interrupted=interrupted.is_set(),
                    timeout=timeout)
    if info["status"] == "error" and nb is None and exc is not None:
        info["error"] = _error_text(type(exc).__name__, exc)
    if info["status"] == "error" and type(exc).__name__ == "DeadKernelError":
        info["error"] += f" (kernel output: {kernel_log})"
    records, texts = records_from_notebook(nb) if nb is not None else ({}, {})
    return Result(**base, status=info["status"], seconds=seconds, records=records,
                  error=info["error"], executed=str(executed) if executed.exists() else None,
                  cell_seconds=info["cell_seconds"], error_cell=info["error_cell"],
                  record_text=texts, peak_rss_mb=round(peak[0] / 2**20, 1) if peak[0] else None)


# --------------------------------------------------------------------------- summary

def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cuda_device() -> str | None:
    torch = sys.modules.get("torch")  # only if already imported: importing torch is slow
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
        except Exception:
            pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
            if out.returncode == 0 and names:
                return ", ".join(names)
        except (OSError, subprocess.SubprocessError):
            pass
    return None


def environment(preset: str | None = None) -> dict:
    """What the results depend on: versions, machine, preset."""
    if preset is None:
        from .params import common_specs

        preset = common_specs()["preset"].default
    return {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "torchvision": _version("torchvision"),
        "nncompress": _version("nncompress"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cuda_device": _cuda_device(),
        "preset": preset,
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(results: Sequence[Result], env: Mapping[str, Any], *,
                     max_records: int = 4) -> str:
    """``summary.md``: one table row per notebook, then the failures."""
    parts = [f"preset **{env.get('preset')}**", f"python {env.get('python')}",
             f"torch {env.get('torch')}", f"nncompress {env.get('nncompress')}",
             f"{env.get('cpu_count')} CPUs", f"GPU: {env.get('cuda_device') or 'none'}"]
    lines = [f"# nncompress run, {env.get('started', '')}", "", " · ".join(parts), ""]
    from .report import HEADLINE, chapter_key

    if any(chapter_key(r.notebook) == HEADLINE and r.ok for r in results):
        # written by the report at the end of the run (python -m nncompress.run always writes it)
        lines += [f"![the compression frontier (chapter {HEADLINE})](figures/{HEADLINE}_1.png)", ""]
    lines += ["| notebook | status | seconds | key records |", "|---|---|---:|---|"]
    for r in results:
        texts = r.record_text or {k: str(v) for k, v in r.records.items()}
        shown = [f"{k} = {v}" for k, v in list(texts.items())[:max_records]]
        if len(texts) > max_records:
            shown.append(f"(+{len(texts) - max_records} more)")
        lines.append(f"| {_md_cell(Path(r.notebook).stem)} | {r.status} | {r.seconds:.1f} | "
                     f"{_md_cell('; '.join(shown))} |")
    failed = [r for r in results if not r.ok]
    if failed:
        lines += ["", "## Not ok", ""]
        for r in failed:
            where = f" (cell {r.error_cell})" if r.error_cell is not None else ""
            lines.append(f"* **{r.notebook}** - {r.status}{where}: {r.error}")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, results: Sequence[Result], env: Mapping[str, Any], *,
                  allow_missing_data: bool = False) -> None:
    failed = [r.notebook for r in results if r.failed(allow_missing_data)]
    data = {"environment": dict(env), "ok": not failed, "failed": failed,
            "notebooks": [r.to_dict() for r in results]}
    _atomic_write(out / "summary.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    _atomic_write(out / "summary.md", summary_markdown(results, env))


# --------------------------------------------------------------------------- runner

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
                  abort: threading.Event | None = None) -> list[Result]:
    """Execute notebooks and write ``OUT/executed/*.ipynb``, ``summary.json``, ``summary.md``.

    ``paths`` default to the repository's ``notebooks/NN_*.ipynb``; ``out`` to
    ``runs/latest`` there.  ``timeout`` is per notebook in seconds (``None``/``0``: no
    limit; default :data:`DEFAULT_TIMEOUT` in the cpu preset, no limit in gpu).
    ``progress=False`` disables progress bars in the kernels (``TQDM_DISABLE=1``,
    ``NNCOMPRESS_PROGRESS=0``) and the bar over notebooks; the default is on unless
    the ``CI`` environment variable is set.

    Raises :class:`nncompress.params.ParameterError` (before running anything) if a
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
    jobs = max(1, int(jobs))
    out = Path(out).resolve() if out is not None else default_out()
    (out / "executed").mkdir(parents=True, exist_ok=True)

    env_for_kernel: dict[str, str] = {"NNCOMPRESS_RUN": "1"}
    if not progress:
        env_for_kernel.update(NO_PROGRESS_ENV)
    if jobs > 1:  # parallel kernels share the cores instead of each taking all of them
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            if var not in os.environ:
                env_for_kernel[var] = threads

    env = environment(parameters.get("preset"))
    env.update(started=_now(), finished=None, jobs=jobs, timeout=timeout, kernel=kernel)
    results: dict[int, Result] = {}
    lock = threading.Lock()
    abort = abort or threading.Event()

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
                            error=_error_text(type(exc).__name__, exc))
        if not quiet:
            shown = "; ".join(f"{k} = {v}" for k, v in list(result.record_text.items())[:4])
            detail = f"  {shown}" if result.ok else f"  {result.error}"
            _say(f"[{index + 1}/{len(paths)}] {result.status:<6} {path.name}  "
                 f"{result.seconds:.1f} s{detail}")
        with lock:
            results[index] = result
            write_summary(out, ordered(), env, allow_missing_data=allow_missing_data)
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
            write_summary(out, ordered(), env, allow_missing_data=allow_missing_data)
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
    out = Path(out).resolve() if out is not None else default_out()
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
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="notebooks run in parallel (default 1)")
    parser.add_argument("--timeout", type=float, default=None,
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
    parser.add_argument("--grid", nargs=2, action="append", default=[], metavar=("NAME", "VALUES"),
                        help="sweep a parameter over a Python list of values (repeatable: the "
                             "Cartesian product); results in OUT/grid.md and OUT/grid.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    parameters = {name: parse_value(value) for name, value in args.parameter}
    paths = [Path(p) for p in args.notebooks] if args.notebooks else default_notebooks()
    if not paths:
        print(f"error: no notebooks given and none found in {repo_root() / 'notebooks'}",
              file=sys.stderr)
        return 2
    timeout = "default" if args.timeout is None else (args.timeout or None)
    common = dict(preset=args.preset, out=args.out, jobs=args.jobs, timeout=timeout, kernel=args.kernel,
                  progress=args.progress, quiet=args.quiet, allow_missing_data=args.allow_missing_data)
    if args.grid:
        return _main_grid(args, paths, parameters, common)
    results, code = _guarded(lambda: run_notebooks(paths, parameters, **common))
    if code is not None:
        return code
    out = args.out.resolve() if args.out is not None else default_out()
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return None, 130


def _main_grid(args, paths, parameters, common) -> int:
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
