"""The project's own wiring: dependency lists agree, the command line answers, lint is clean."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import tomllib

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
