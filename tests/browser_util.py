"""Helpers for tests/test_browser.py: a throw-away JupyterLab server and page-side probes.

The server runs from this interpreter's environment (.venv) with its own config, data,
runtime, settings and workspace folders (nothing of the user's Jupyter set-up is read or
written), exposes ``window.jupyterapp`` so the tests drive JupyterLab through its own
command registry instead of menus, and is killed at the end.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# JupyterLab user settings written into the temporary settings dir.
SETTINGS = {
    # every cell stays in the DOM (the default windowing drops off-screen cells)
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # never write the (temporary) notebooks back to disk behind the test's back
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # no "receive Jupyter news?" toast over the page; no update check (no network)
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Light"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    def __init__(self, root: Path, tmp: Path, *, cache: Path, startup_timeout: float = 180.0):
        self.root, self.tmp = Path(root), Path(tmp)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        dirs = {k: self.tmp / k for k in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for plugin, values in SETTINGS.items():
            f = dirs["settings"] / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        env = {**os.environ,
               "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
               "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
               "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "IPYTHONDIR": str(dirs["ipython"]),
               "NNCOMPRESS_CACHE": str(cache), "NNCOMPRESS_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
        env.pop("MPLBACKEND", None)  # the kernel must use its inline backend
        self.log_path = self.tmp / "jupyterlab.log"
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               "--allow-root",  # CI containers run as root; harmless otherwise
               f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['workspaces']}"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self._wait(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def _wait(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer /api/status within {timeout:.0f} s:\n{self.log()}")

    def shutdown_kernels(self):
        """Delete every session (and its kernel) so the next page starts from a clean server."""
        try:
            for s in self.api("sessions"):
                self.api(f"sessions/{s['id']}", method="DELETE")
        except Exception:  # best effort: the server is killed at the end anyway
            pass

    def log(self, tail: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its kernels (own session)
                self.proc.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self._log.close()


# --- page-side probes (run in the browser through page.evaluate) -----------------------------

# The current notebook panel: is it open and ready, its kernel status, its code cells'
# execution counts, any running cell ([*]) and every error-looking output.
NOTEBOOK_STATE_JS = r"""
() => {
  const app = window.jupyterapp;
  if (!app) return {ready: false, why: 'no window.jupyterapp'};
  const w = app.shell.currentWidget;
  if (!w || !w.content || !w.sessionContext || !w.context || !w.context.isReady) return {ready: false, why: 'no notebook'};
  const sc = w.sessionContext;
  const kernel = sc.session && sc.session.kernel;
  const cells = w.content.model.cells;
  const code = [], errors = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    code.push({index: i, count: c.executionCount});
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      if (o.output_type === 'error') {
        errors.push({cell: i, kind: 'error', text: `${o.ename}: ${o.evalue}`});
      } else if (o.output_type === 'stream' && o.name === 'stderr') {
        const text = Array.isArray(o.text) ? o.text.join('') : String(o.text);
        if (/Traceback|Error/.test(text)) errors.push({cell: i, kind: 'stderr', text: text.slice(0, 2000)});
      }
    }
  }
  const running = Array.from(document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt'))
      .filter(p => p.textContent.includes('*')).length;
  const domErrors = Array.from(document.querySelectorAll(
      '.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
      .map(e => e.textContent).filter(t => /Traceback|Error/.test(t)).map(t => t.slice(0, 2000));
  return {ready: true, kernel: kernel ? kernel.status : null, kernelName: kernel ? kernel.name : null,
          busy: sc.isBusy ?? null, path: w.context.path, nCells: cells.length, code, running, errors, domErrors};
}
"""

# Run a JupyterLab command without blocking page.evaluate on its promise.
RUN_COMMAND_JS = r"""
([id, args]) => {
  window.__ncCommand = {done: false, error: null};
  window.jupyterapp.commands.execute(id, args || {})
    .then(() => { window.__ncCommand.done = true; })
    .catch(e => { window.__ncCommand.done = true; window.__ncCommand.error = String(e); });
}
"""

SELECT_CELL_JS = r"""
(index) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  nb.activeCellIndex = index;
  nb.deselectAll();
  return nb.activeCellIndex;
}
"""
