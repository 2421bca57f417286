"""nbval over every executed reference notebook in solutions/: each cell's output is compared.

Each lesson runs in a pytest of its own (as an instructor runs it), with only genuine noise
sanitised (tests/nbval_sanitize.cfg). The wall time of each lesson is reported as a figure, and
the total of lessons 00-04, whose budget is 2.5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cbam.course.building.execute import kernel_environment

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
CORE_LESSONS = ("00", "01", "02", "03", "04")
CORE_BUDGET_S = 150
CELL_TIMEOUT_S = 600

# Lesson number -> (wall seconds, CPU seconds, passed) under nbval, for lessons run by this pytest.
_runs: dict[str, tuple[float, float, bool]] = {}


def _children_cpu() -> float:
    """CPU seconds of finished child processes (pytest and its kernel), user and system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def nbval(notebook: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            str(notebook.relative_to(ROOT)),
            "--nbval-sanitize-with",
            str(SANITIZE.relative_to(ROOT)),
            "--nbval-current-env",
            "--nbval-cell-timeout",
            str(CELL_TIMEOUT_S),
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
            "--color=no",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        env=kernel_environment(),  # the references were made without a GPU
    )


def test_every_source_has_a_reference_to_run():
    """A lesson without its reference notebook would silently escape nbval."""
    sources = {path.stem for path in (ROOT / "solutions").glob("[0-9][0-9]_*.py")}
    assert sources, "no lesson sources in solutions/"
    missing = sorted(sources - {path.stem for path in REFERENCES})
    assert not missing, f"no reference notebook for {missing}: run `cbam-course build`"


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", REFERENCES, ids=[path.stem for path in REFERENCES])
def test_reference_notebook_reproduces_its_outputs(notebook, figures):
    start, cpu_start = time.perf_counter(), _children_cpu()
    result = nbval(notebook)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu_start
    lesson = notebook.name[:2]
    # CPU seconds beside the wall time: on a shared machine the wall time also counts waiting.
    figures(f"lesson {lesson} under nbval", f"{seconds:.1f} s ({cpu:.1f} s CPU)")
    _runs[lesson] = (seconds, cpu, result.returncode == 0)
    assert result.returncode == 0, (
        f"nbval failed on {notebook.relative_to(ROOT)}:\n{result.stdout[-6000:]}\n"
        f"{result.stderr[-2000:]}"
    )


@pytest.mark.notebooks
def test_core_lessons_total_time(figures):
    """The total of 00-04 under nbval, a figure beside its budget (not a timed assertion)."""
    present = [path.name[:2] for path in REFERENCES if path.name[:2] in CORE_LESSONS]
    if not present:
        pytest.skip("none of lessons 00-04 has a reference notebook yet")
    not_run = [lesson for lesson in present if lesson not in _runs]
    if not_run:
        pytest.skip(
            f"lessons {', '.join(not_run)} were not run under nbval by this pytest "
            "(deselected), so there is no total to report"
        )
    failed = [lesson for lesson in present if not _runs[lesson][2]]
    wall = sum(_runs[lesson][0] for lesson in present)
    cpu = sum(_runs[lesson][1] for lesson in present)
    note = f"; {', '.join(failed)} failed" if failed else ""
    figures(
        f"lessons {present[0]}-{present[-1]} under nbval, total ({len(present)} lessons)",
        f"{wall:.1f} s ({cpu:.1f} s CPU; budget {CORE_BUDGET_S} s on a 2-core CPU{note})",
    )
    assert not failed, f"lessons {failed} failed under nbval (their times are in the total)"
