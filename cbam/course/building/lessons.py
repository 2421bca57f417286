"""Finding the lessons and reading their sources, with the cell conventions of docs/authoring.md.

A lesson is ``solutions/NN_slug.py`` (jupytext percent format). Reading one gives its cells with
only the metadata the conventions use (tags, ``exercise``, ``check``), after checking that every
exercise cell is named, holds well-formed solution blocks and is followed by a check cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

from cbam.course.building.stubs import MarkerError, find_blocks, has_markers

SOURCE_NAME = re.compile(r"^(?P<number>\d{2})_(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)*)\.py$")
EXERCISE_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# The cell metadata the conventions define; jupytext's bookkeeping (lines_to_next_cell, ...) and
# anything an editor adds stays out of the generated notebooks.
CELL_METADATA_KEYS = ("tags", "exercise", "check")
EXERCISE_TAG = "exercise"
CHECK_TAG = "nbval-check-output"


class LessonError(ValueError):
    """A lesson source that breaks the conventions; the message names the file and the cell."""


@dataclass(frozen=True)
class Lesson:
    number: str
    slug: str
    root: Path

    @property
    def stem(self) -> str:
        return f"{self.number}_{self.slug}"

    @property
    def source(self) -> Path:
        return self.root / "solutions" / f"{self.stem}.py"

    @property
    def reference(self) -> Path:
        return self.root / "solutions" / f"{self.stem}.ipynb"

    @property
    def learner(self) -> Path:
        return self.root / "notebooks" / f"{self.stem}.ipynb"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def find_lessons(root: Path, numbers: Iterable[str] | None = None) -> list[Lesson]:
    """The lessons in ``root/solutions``, in order; ``numbers`` keeps only those ("00", ...)."""
    solutions = root / "solutions"
    if not solutions.is_dir():
        raise LessonError(
            f"no solutions/ directory in {root}; run from the repository root or pass --root"
        )
    lessons: dict[str, Lesson] = {}
    for path in sorted(solutions.glob("*.py")):
        match = SOURCE_NAME.match(path.name)
        if match is None:
            continue
        lesson = Lesson(match["number"], match["slug"], root)
        if lesson.number in lessons:
            raise LessonError(
                f"two sources for lesson {lesson.number}: "
                f"{lessons[lesson.number].source.name} and {path.name}"
            )
        lessons[lesson.number] = lesson
    if numbers is not None:
        wanted = [str(n).zfill(2) for n in numbers]
        missing = [n for n in wanted if n not in lessons]
        if missing:
            raise LessonError(
                f"no source for lesson {', '.join(missing)} in solutions/ "
                f"(found {', '.join(lessons) or 'none'})"
            )
        return [lessons[n] for n in sorted(set(wanted))]
    return [lessons[n] for n in sorted(lessons)]


def _header_lines(text: str, cell_count: int) -> list[int | None]:
    """1-based line of each cell's ``# %%`` header, to point error messages at the source."""
    headers = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("# %%")]
    if len(headers) == cell_count - 1:  # a first cell written before any header
        headers.insert(0, 1)
    return list(headers) if len(headers) == cell_count else [None] * cell_count


@dataclass
class SourceCells:
    """A lesson's cells as its source gives them, with where each one starts."""

    lesson: Lesson
    cells: list[nbformat.NotebookNode]
    lines: list[int | None]

    def where(self, index: int) -> str:
        cell = self.cells[index]
        first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
        first = first if len(first) <= 50 else first[:47] + "..."
        line = self.lines[index]
        at = f"line {line}, " if line is not None else ""
        return f"{self.lesson.relative(self.lesson.source)}, {at}cell {index + 1} ({first!r})"

    def exercise_cells(self) -> dict[str, int]:
        """Exercise name -> index of its cell."""
        return {
            cell.metadata["exercise"]: index
            for index, cell in enumerate(self.cells)
            if isinstance(cell.metadata.get("exercise"), str)
        }


def exercise_name(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("exercise")


def check_name(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("check")


def read_source(lesson: Lesson) -> SourceCells:
    """The lesson's cells, checked against the conventions (raises LessonError)."""
    text = lesson.source.read_text(encoding="utf-8")
    try:
        notebook = jupytext.reads(text, fmt="py:percent")
    except Exception as error:  # jupytext's own errors name no file
        raise LessonError(
            f"{lesson.relative(lesson.source)}: jupytext cannot read it: {error}"
        ) from error
    cells = []
    for cell in notebook.cells:
        metadata = {key: cell.metadata[key] for key in CELL_METADATA_KEYS if key in cell.metadata}
        cells.append(_new_cell(cell.cell_type, cell.source, metadata))
    source = SourceCells(lesson, cells, _header_lines(text, len(cells)))
    _check_conventions(source)
    return source


def _new_cell(cell_type: str, source: str, metadata: dict) -> nbformat.NotebookNode:
    makers = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }
    cell = makers[cell_type](source=source, metadata=metadata)
    del cell["id"]  # ids are given by the build, once all cells are known
    return cell


def _check_conventions(source: SourceCells) -> None:
    exercises: dict[str, int] = {}
    awaiting_check: str | None = None  # an exercise whose check cell must come next
    for index, cell in enumerate(source.cells):
        where = source.where(index)
        tags = cell.metadata.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise LessonError(f"{where}: tags must be a list of strings, got {tags!r}")
        target = check_name(cell)
        if awaiting_check is not None and cell.cell_type == "code":
            if target != awaiting_check:
                found = f"; the next code cell is {where}"
                raise LessonError(
                    _no_check_cell(source, exercises[awaiting_check], awaiting_check, found)
                )
            awaiting_check = None
        name = exercise_name(cell)
        if EXERCISE_TAG in tags or name is not None:
            _check_exercise_cell(where, cell, tags, name)
            if name in exercises:
                raise LessonError(
                    f"{where}: exercise {name!r} is already the name of "
                    f"{source.where(exercises[name])}; names must be unique"
                )
            exercises[name] = index
            awaiting_check = name
        elif has_markers(cell.source):
            raise LessonError(
                f"{where}: solution markers outside an exercise cell; tag the cell "
                'with tags=["exercise"] exercise="<name>" or remove the markers'
            )
        if target is not None:
            _check_check_cell(where, cell, tags, target, exercises, source)
    if awaiting_check is not None:
        raise LessonError(_no_check_cell(source, exercises[awaiting_check], awaiting_check, ""))


def _no_check_cell(source: SourceCells, index: int, name: str, found: str) -> str:
    return (
        f"{source.where(index)}: exercise {name!r} has no check cell right after it{found}; "
        f'the next code cell must be tagged ["{CHECK_TAG}"] with check="{name}" and call '
        "cbam.checks"
    )


def _check_exercise_cell(where: str, cell, tags: list[str], name: object) -> None:
    if name is None:
        raise LessonError(
            f'{where}: exercise cell without a name; add exercise="<name>" '
            "(lowercase words joined by hyphens) to its # %% line"
        )
    if EXERCISE_TAG not in tags:
        raise LessonError(
            f'{where}: exercise={name!r} without the tag "exercise"; write '
            f'tags=["exercise"] exercise="{name}"'
        )
    if not isinstance(name, str) or not EXERCISE_NAME.match(name):
        raise LessonError(
            f"{where}: exercise name {name!r} must be lowercase letters and digits "
            "joined by hyphens, such as 'channel-attention'"
        )
    if cell.cell_type != "code":
        raise LessonError(
            f"{where}: exercise {name!r} is a {cell.cell_type} cell; exercises are code cells"
        )
    try:
        blocks = find_blocks(cell.source)
    except MarkerError as error:
        raise LessonError(f"{where}: exercise {name!r}: {error}") from None
    if not blocks:
        raise LessonError(
            f"{where}: exercise {name!r} has no '### BEGIN SOLUTION' ... "
            "'### END SOLUTION' block, so learners would get the solution"
        )


def _check_check_cell(where, cell, tags, target, exercises, source: SourceCells) -> None:
    if cell.cell_type != "code":
        raise LessonError(
            f"{where}: check={target!r} on a {cell.cell_type} cell; checks are code cells"
        )
    if EXERCISE_TAG in tags:
        raise LessonError(f"{where}: a cell is either an exercise or a check, not both")
    if target not in exercises:
        later = source.exercise_cells().get(target)
        if later is not None:
            raise LessonError(
                f"{where}: checks exercise {target!r}, which comes later "
                f"({source.where(later)}); a check cell follows its exercise"
            )
        known = ", ".join(exercises) or "none so far"
        raise LessonError(
            f"{where}: check={target!r} names no exercise of this lesson "
            f"(exercises above it: {known})"
        )
    if CHECK_TAG not in tags or "nbval-ignore-output" in tags:
        raise LessonError(
            f'{where}: check cell {target!r} must be tagged "{CHECK_TAG}" (and not '
            '"nbval-ignore-output") so graders compare its lines'
        )
