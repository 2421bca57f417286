"""Colab's versions (scripts/colab_versions*.txt): the course's floors never ask for more than
Colab has, and every line is a pin."""

from __future__ import annotations

import re

import pytest
import tomllib
from packaging.requirements import Requirement

RUNTIMES = ["colab_versions.txt", "colab_versions_2026.07.txt"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_versions(path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict((canonical(line.split("==")[0]), line.split("==")[1]) for line in lines)


@pytest.mark.parametrize("versions", RUNTIMES)
def test_every_line_is_a_pin_and_the_file_names_its_python(root, versions):
    text = (root / "scripts" / versions).read_text()
    assert re.search(r"^# python: 3\.\d+$", text, flags=re.MULTILINE), "the script reads it"
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines, "no versions"
    unpinned = [line for line in lines if not re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][^ +]*", line)]
    assert unpinned == []


@pytest.mark.parametrize("versions", RUNTIMES)
def test_no_floor_is_above_colabs_version(root, versions):
    colab = read_versions(root / "scripts" / versions)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + project["optional-dependencies"]["course"]
    # Every runtime dependency must be one Colab has, or the setup cell would install it.
    checked = 0
    for line in requirements:
        requirement = Requirement(line)
        name = canonical(requirement.name)
        if name not in colab:
            assert line not in project["dependencies"], f"Colab has no {name}"
            continue
        assert requirement.specifier.contains(colab[name]), (
            f"{line} refuses Colab's {name} {colab[name]} ({versions}): the setup cell would "
            "change it in a running session"
        )
        checked += 1
    assert checked >= len(project["dependencies"])
