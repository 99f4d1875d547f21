"""Execute one notebook headless with papermill and classify how it went.

:func:`execute` runs a notebook in its own kernel (working directory: the notebook's
folder) under a watchdog that enforces a whole-notebook time limit, samples the kernel's
peak memory and can abort it; :func:`classify` turns the executed notebook (and what
papermill raised) into a status: ``ok``, ``error``, ``timeout``, ``missing-data``,
``ran-nothing`` or ``interrupted``.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .claims import claims_from_notebook
from .record import records_from_notebook, to_jsonable

STATUSES = ("ok", "error", "timeout", "missing-data", "ran-nothing", "interrupted")
MIN_CELL_SECONDS = 1.0          # a notebook whose cells ran for less than this "ran nothing"
DEFAULT_TIMEOUT = 900.0         # seconds per notebook in the cpu preset (chapters aim at <= 90 s)
KILL_GRACE = 30.0               # after a timeout, how long the kernel may take to go away
INJECTED_TAG = "injected-parameters"
ERROR_MARKER_TAG = "papermill-error-cell-tag"


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
    claims: list = field(default_factory=list)  # nc.claim(...) outputs: text, holds, evidence, expected

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
            "record_text": self.record_text,
            "claims": self.claims,
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


def error_text(ename: str, evalue: Any) -> str:
    line = _first_line(evalue)
    return f"{ename}: {line}" if line else ename


def is_missing_data(ename: str, evalue: Any) -> bool:
    """Whether an error means "the dataset is not there" (not a bug in the notebook)."""
    if ename == "DatasetNotFound" or ename.endswith(("DatasetNotFound", "DatasetNotFoundError")):
        return True
    if ename == "FileNotFoundError":
        return re.search(r"data\s?set|data_root|data root", str(evalue), re.IGNORECASE) is not None
    return False


def source_cells(nb) -> list:
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
    cells = source_cells(nb) if nb is not None else []
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
        out.update(status=status, error=error_text(name, value))
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
        info["error"] = error_text(type(exc).__name__, exc)
    if info["status"] == "error" and type(exc).__name__ == "DeadKernelError":
        info["error"] += f" (kernel output: {kernel_log})"
    records, texts = records_from_notebook(nb) if nb is not None else ({}, {})
    claims = claims_from_notebook(nb) if nb is not None else []
    return Result(**base, status=info["status"], seconds=seconds, records=records,
                  error=info["error"], executed=str(executed) if executed.exists() else None,
                  cell_seconds=info["cell_seconds"], error_cell=info["error_cell"],
                  record_text=texts, claims=claims, peak_rss_mb=round(peak[0] / 2**20, 1) if peak[0] else None)


