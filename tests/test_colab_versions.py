"""Colab's versions (scripts/colab_versions*.txt): the course's floors never ask for more than
Colab has, every line is a pin, and the before/after comparison of `make colab-check` names
what an installation changed."""

from __future__ import annotations

import importlib.util
import re

import pytest
import tomllib
from packaging.requirements import Requirement

RUNTIMES = ["colab_versions.txt", "colab_versions_2026.07.txt"]


def _load_freeze_diff(root):
    spec = importlib.util.spec_from_file_location(
        "colab_freeze_diff", root / "scripts" / "colab_freeze_diff.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def freeze_diff(root):
    return _load_freeze_diff(root)


@pytest.mark.parametrize("versions", RUNTIMES)
def test_every_line_is_a_pin_and_the_file_names_its_python(root, versions):
    text = (root / "scripts" / versions).read_text()
    assert re.search(r"^# python: 3\.\d+$", text, flags=re.MULTILINE), "the script reads it"
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines, "no versions"
    unpinned = [line for line in lines if not re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][^ +]*", line)]
    assert unpinned == []


@pytest.mark.parametrize("versions", RUNTIMES)
def test_no_floor_is_above_colabs_version(root, freeze_diff, versions):
    colab = freeze_diff.read_freeze((root / "scripts" / versions).read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + project["optional-dependencies"]["course"]
    # Every runtime dependency must be one Colab has, or the setup cell would install it.
    checked = 0
    for line in requirements:
        requirement = Requirement(line)
        name = freeze_diff.canonical(requirement.name)
        if name not in colab:
            assert line not in project["dependencies"], f"Colab has no {name}"
            continue
        assert requirement.specifier.contains(colab[name]), (
            f"{line} refuses Colab's {name} {colab[name]} ({versions}): the setup cell would "
            "change it in a running session"
        )
        checked += 1
    assert checked >= len(project["dependencies"])


def test_a_changed_package_is_named(freeze_diff):
    before = freeze_diff.read_freeze("scipy==1.16.3\ntqdm==4.67.3\nFoo_Bar==1.0\n")
    after = freeze_diff.read_freeze(
        "scipy==1.18.1\ntqdm==4.67.3\nfoo-bar==1.0\ncbam @ file:///src/cbam\n"
    )
    changed, added = freeze_diff.differences(before, after)
    assert changed == ["scipy 1.16.3 -> 1.18.1"]
    assert added == ["cbam file:///src/cbam"]


def test_a_removed_package_is_a_change(freeze_diff):
    changed, _ = freeze_diff.differences({"tqdm": "4.67.3"}, {})
    assert changed == ["tqdm 4.67.3 removed"]


def test_the_command_fails_on_a_change_and_passes_without(freeze_diff, tmp_path, capsys):
    before, after = tmp_path / "before.txt", tmp_path / "after.txt"
    before.write_text("numpy==2.1.3\n")
    after.write_text("numpy==2.1.3\ncbam==0.1.0\n")
    assert freeze_diff.main([str(before), str(after)]) == 0
    after.write_text("numpy==2.4.0\ncbam==0.1.0\n")
    assert freeze_diff.main([str(before), str(after)]) == 1
    assert "numpy 2.1.3 -> 2.4.0" in capsys.readouterr().out


def test_a_line_that_is_not_a_freeze_line_is_refused(freeze_diff):
    with pytest.raises(ValueError, match="numpy>=2"):
        freeze_diff.read_freeze("numpy>=2\n")
