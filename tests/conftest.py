"""Shared test fixtures.

``figures`` collects measured numbers (lesson times, grading times, ...) that tests report; they
are printed together at the end of the run, so a plain ``pytest`` shows them without ``-s``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_FIGURES: list[str] = []


@pytest.fixture
def figures():
    """Call ``figures("lesson 01 under nbval", "12.3 s")`` to report a measured figure."""

    def report(name: str, value: str) -> None:
        _FIGURES.append(f"{name}: {value}")

    return report


@pytest.fixture
def root() -> Path:
    return ROOT


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("measured figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
