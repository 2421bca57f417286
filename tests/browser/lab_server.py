"""Start a private JupyterLab server for browser tests: random token, free port on 127.0.0.1,
and its own config, data, runtime and settings folders, so nothing of the user's leaks in or out.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# JupyterLab settings for a test run: every cell stays in the page (JupyterLab 4 may otherwise
# leave cells outside the viewport unrendered), and no news prompt covers the notebook.
USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def page_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def shutdown_kernels(self) -> None:
        for kernel in self.api("/api/kernels"):
            self.api(f"/api/kernels/{kernel['id']}", method="DELETE")

    def log_tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""


def lab_command() -> list[str]:
    """The environment's own JupyterLab (beside this Python), so the kernel sees ``cbam``."""
    script = Path(sys.executable).with_name("jupyter-lab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jupyterlab"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_lab(notebook_dir: Path, *, start_timeout: float = 120.0) -> Iterator[Lab]:
    """A JupyterLab serving ``notebook_dir`` until the ``with`` block ends."""
    home = Path(tempfile.mkdtemp(prefix="cbam-lab-"))
    settings = home / "lab-settings"
    for name, values in USER_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        MPLBACKEND="agg",
    )
    token, port = secrets.token_hex(16), free_port()
    log = home / "server.log"
    command = [
        *lab_command(),
        "--no-browser",
        "--allow-root",  # CI runs as root
        f"--IdentityProvider.token={token}",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={notebook_dir}",
        "--LabApp.news_url=None",
        "--LabApp.extension_manager=readonly",  # no extension catalogue to fetch
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab = Lab(url=f"http://127.0.0.1:{port}", token=token, root=notebook_dir, log=log)
    try:
        _wait_until_up(lab, server, start_timeout)
        yield lab
    finally:
        _stop(lab, server)
        shutil.rmtree(home, ignore_errors=True)


def _wait_until_up(lab: Lab, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {server.returncode}:\n{lab.log_tail()}"
            )
        try:
            lab.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{lab.log_tail()}")


def _stop(lab: Lab, server: subprocess.Popen) -> None:
    if server.poll() is None:
        try:
            lab.shutdown_kernels()  # the server would too, but a kernel must never outlive it
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Its own session (start_new_session): this ends the server and what it started.
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
