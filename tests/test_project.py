"""The project's own wiring: dependency lists agree, the command line answers, lint is clean,
and the README's ``make lab`` serves the course (as root too) from the learner's own folder."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tomllib
from browser.lab_server import free_port

# conda calls a few packages by other names than PyPI does.
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_DEPENDENCIES = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _pyproject_requirements(root) -> dict[str, str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += [r for r in extra if not r.startswith("cbam")]
    return dict(_split(r) for r in requirements)


def _conda_requirements(root) -> dict[str, str]:
    text = (root / "environment.yml").read_text().split("dependencies:", 1)[1]
    lines = re.findall(r"^  - (?!pip:)(\S.*)$", text, flags=re.MULTILINE)
    found = {}
    for line in lines:
        name, spec = _split(line)
        name = CONDA_TO_PYPI.get(name, name)
        if name not in NOT_DEPENDENCIES:
            found[name] = spec
    return found


def test_environment_yml_matches_pyproject(root):
    pypi, conda = _pyproject_requirements(root), _conda_requirements(root)
    assert conda == pypi, (
        f"only in pyproject: {sorted(set(pypi) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(pypi))}; "
        f"different ranges: {[n for n in pypi if n in conda and pypi[n] != conda[n]]}"
    )


def test_torch_is_a_range_not_a_pin(root):
    pypi = _pyproject_requirements(root)
    assert pypi["torch"].startswith(">="), "a pinned torch breaks on Colab's newer release"


def test_cli_lists_its_commands():
    out = subprocess.run([sys.executable, "-m", "cbam.course.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for command in ("table4", "build", "grade", "bench"):
        assert command in out


def test_cli_rejects_an_unknown_command():
    run = subprocess.run([sys.executable, "-m", "cbam.course.cli", "trian"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "unknown command 'trian'" in run.stderr


def test_ruff_is_clean(root):
    ruff = pytest.importorskip("ruff", reason="ruff is a dev dependency: pip install -e '.[dev]'")
    del ruff
    run = subprocess.run([sys.executable, "-m", "ruff", "check", str(root)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _wait_for_lab(server: subprocess.Popen, url: str, token: str, timeout: float = 120) -> dict:
    """The server's listing of its root folder, once it answers."""
    headers = {"Authorization": f"token {token}"}
    request = urllib.request.Request(f"{url}/api/contents", headers=headers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"make lab exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"make lab served nothing on {url} within {timeout:.0f} s")


def test_make_lab_serves_the_learner_copy(root, tmp_path):
    """``make lab`` starts JupyterLab (as root it adds --allow-root and says so) on a folder of
    the learner's own: every learner notebook is copied there once, an answered one is kept."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed: the README's commands need it")
    venv = Path(sys.executable).parent.parent
    if not (venv / "bin" / "jupyter-lab").exists():
        pytest.skip(f"no JupyterLab in {venv}: pip install -e '.[course]'")
    mine = tmp_path / "mine"
    mine.mkdir()
    answered = mine / "00_tensors_and_shapes.ipynb"
    answered.write_text('{"the learner": "answers"}')
    token, port = secrets.token_hex(16), free_port()
    home = tmp_path / "jupyter"  # the user's own Jupyter settings stay out of it
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    lab_args = (
        f"--no-browser --ServerApp.ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
        f"--IdentityProvider.token={token} --LabApp.news_url=None"
    )
    command = [
        "make", "--no-print-directory", "-C", str(root), "lab",
        f"VENV={venv}", f"LEARNER_DIR={mine}", f"LAB_ARGS={lab_args}",
        # This test runs inside the installed environment: make must not reinstall it.
        "-o", f"{venv}/.installed",
    ]  # fmt: skip
    log = tmp_path / "make-lab.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        listing = _wait_for_lab(server, f"http://127.0.0.1:{port}", token)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    output = log.read_text(errors="replace")
    served = sorted(item["name"] for item in listing["content"])
    lessons = sorted(path.name for path in (root / "notebooks").glob("*.ipynb"))
    assert served == lessons, output
    assert answered.read_text() == '{"the learner": "answers"}', "make lab overwrote an answer"
    assert (mine / lessons[-1]).read_bytes() == (root / "notebooks" / lessons[-1]).read_bytes()
    if os.geteuid() == 0:
        assert "running as root: starting JupyterLab with --allow-root" in output, output
