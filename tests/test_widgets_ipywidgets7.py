"""The explorers under ipywidgets 7.7 (the version Colab ships) as well as 8.

pip resolves ``ipywidgets==7.7.*`` against this environment, and what it would add or replace
(ipywidgets itself, its matching widgetsnbextension and jupyterlab_widgets, ...) is installed into
a folder under pytest's cache, which goes first on PYTHONPATH for a second run of
tests/test_widgets.py. Later runs reuse the folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT = "ipywidgets==7.7.*"
WANTED_PREFIX = "7.7."


def _pip(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "pip", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` failed (exit {done.returncode}); it needs PyPI:\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )


def _install_ipywidgets7(cache: Path) -> Path:
    """The folder that holds ipywidgets 7.7 and what it needs beyond this environment."""
    site = cache / "site"
    if (site / "ipywidgets").is_dir():
        return site
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache))
    # Resolving against the installed packages keeps torch, IPython, traitlets... from this
    # environment: only what 7.7 needs in another version lands in the folder.
    _pip("install", "--dry-run", "--quiet", "--report", "report.json", REQUIREMENT, cwd=work)
    report = json.loads((work / "report.json").read_text())
    pins = [
        f"{item['metadata']['name']}=={item['metadata']['version']}" for item in report["install"]
    ]
    assert any(pin.lower().startswith("ipywidgets==7.7.") for pin in pins), pins
    _pip("install", "--quiet", "--no-deps", "--target", str(work / "site"), *pins, cwd=work)
    try:
        (work / "site").rename(site)  # atomic: a concurrent run keeps whichever came first
    except OSError:
        pass
    shutil.rmtree(work, ignore_errors=True)
    return site


# Runs inside the second interpreter: the version check and the tests share one process.
RUNNER = """
import sys, ipywidgets, pytest
print("ipywidgets", ipywidgets.__version__, "from", ipywidgets.__file__)
assert ipywidgets.__version__.startswith(sys.argv[1]), ipywidgets.__version__
assert ipywidgets.__file__.startswith(sys.argv[2]), ipywidgets.__file__
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_widgets.py"]))
"""


def test_widgets_pass_under_ipywidgets_7_7(request, figures):
    import ipywidgets

    if ipywidgets.__version__.startswith(WANTED_PREFIX):
        pytest.skip(
            f"this environment's ipywidgets is {ipywidgets.__version__} already: "
            "tests/test_widgets.py runs under it in this same session"
        )
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    folder = cache.mkdir("ipywidgets-7.7") if cache else None
    site = _install_ipywidgets7(
        Path(folder) if folder else Path(tempfile.gettempdir()) / "cbam-ipywidgets-7.7"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, WANTED_PREFIX, str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    version = re.search(r"^ipywidgets (\S+) from", output, re.MULTILINE)
    passed = re.search(r"(\d+) passed", output)
    assert version and passed and int(passed.group(1)) > 0, output[-3000:]
    assert "failed" not in output.splitlines()[-1], output[-3000:]
    figures("headless widget tests under ipywidgets " + version.group(1), passed.group(0))
