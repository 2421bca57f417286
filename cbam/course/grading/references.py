"""The executed reference notebooks the grader grades against: where they are, what they hold.

The reference of lesson ``NN`` is ``solutions/NN_slug.ipynb``, executed with its outputs stored.
The folder is found, in order, from ``--solutions DIR``, the ``CBAM_SOLUTIONS`` environment
variable, or the ``solutions/`` folder beside the installed ``cbam`` package (a clone of the
course repository).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cbam
from cbam.course.grading.notebook import Cell, Notebook, UnusableNotebook, read_notebook

SOLUTIONS_ENV = "CBAM_SOLUTIONS"
_REFERENCE_NAME = re.compile(r"^(\d\d)_[A-Za-z0-9_\-]+\.ipynb$")


class ReferenceProblem(Exception):
    """The references cannot be used (missing folder, lesson not found, not executed)."""


def solutions_dir(explicit: str | Path | None = None) -> Path:
    """The folder of reference notebooks: ``explicit``, else $CBAM_SOLUTIONS, else the repo's."""
    if explicit is not None:
        source, folder = "--solutions", Path(explicit)
    elif os.environ.get(SOLUTIONS_ENV):
        source, folder = f"${SOLUTIONS_ENV}", Path(os.environ[SOLUTIONS_ENV])
    else:
        source, folder = "the course repository", Path(cbam.__file__).resolve().parent.parent / (
            "solutions")
    if not folder.is_dir():
        raise ReferenceProblem(
            f"no solutions folder at {folder} (from {source}); grading needs the executed "
            f"reference notebooks: pass --solutions DIR or set {SOLUTIONS_ENV}"
        )
    return folder


def references_in(folder: Path) -> dict[str, Path]:
    """Lesson number -> its reference notebook, for every ``NN_slug.ipynb`` in ``folder``."""
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.ipynb")):
        match = _REFERENCE_NAME.match(path.name)
        if match:
            found.setdefault(match.group(1), path)
    return found


def reference_path(folder: Path, lesson: str) -> Path:
    found = references_in(folder)
    if lesson not in found:
        have = ", ".join(f"{n} ({p.stem})" for n, p in found.items()) or "none"
        raise ReferenceProblem(
            f"no reference notebook for lesson {lesson} in {folder} (expected {lesson}_*.ipynb; "
            f"found: {have}); run `cbam-course build` to generate the references"
        )
    return found[lesson]


@dataclass(frozen=True)
class Reference:
    """An executed lesson: its exercises in order and the check cells of each."""

    notebook: Notebook
    exercises: list[str]
    exercise_cells: dict[str, Cell]
    check_cells: dict[str, list[Cell]]

    @property
    def lesson(self) -> str | None:
        return self.notebook.lesson

    @property
    def path(self) -> Path:
        return self.notebook.path


def load_reference(path: Path) -> Reference:
    """Read a reference notebook and make sure it can be graded against."""
    try:
        notebook = read_notebook(path)
    except UnusableNotebook as error:
        raise ReferenceProblem(f"the reference notebook is unusable: {error}") from None
    exercise_cells: dict[str, Cell] = {}
    check_cells: dict[str, list[Cell]] = {}
    for cell in notebook.code_cells:
        if cell.exercise:
            if cell.exercise in exercise_cells:
                raise ReferenceProblem(f"{path}: exercise {cell.exercise!r} has two cells "
                                       f"({exercise_cells[cell.exercise].number} and "
                                       f"{cell.number}); exercise names must be unique")
            exercise_cells[cell.exercise] = cell
        elif cell.check:
            check_cells.setdefault(cell.check, []).append(cell)
    if not exercise_cells:
        raise ReferenceProblem(f"{path} has no exercise cells (code cells with metadata "
                               "'exercise'); nothing to grade")
    orphans = sorted(set(check_cells) - set(exercise_cells))
    if orphans:
        raise ReferenceProblem(f"{path}: check cells for unknown exercises {orphans}")
    for name, cells in check_cells.items():
        for cell in cells:
            if cell.execution_count is None or not cell.outputs:
                raise ReferenceProblem(
                    f"{path} is not executed: the check cell of {name!r} (cell {cell.number}) "
                    "has no stored output, so any submission would pass it; run "
                    "`cbam-course build` to execute the references"
                )
    return Reference(
        notebook=notebook,
        exercises=list(exercise_cells),
        exercise_cells=exercise_cells,
        check_cells=check_cells,
    )
