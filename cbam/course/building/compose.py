"""Putting a lesson's notebooks together from its source cells (no execution here).

Both notebooks share their metadata and cell ids, so a grader can match a learner's cells with
the reference's: an exercise cell's id is the exercise's name, a check cell's ``check-<name>``,
any other cell's a hash of its type and source (stable when cells are inserted elsewhere).
"""

from __future__ import annotations

import copy
import hashlib

import nbformat

import cbam
from cbam.course.building import colab
from cbam.course.building.lessons import Lesson, SourceCells, check_name, exercise_name
from cbam.course.building.stubs import stub_source

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# What a kernel reports, minus its Python version: the files stay the same on every machine.
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
_ID_PREFIX = {"code": "code", "markdown": "md", "raw": "raw"}


def notebook_metadata(lesson: Lesson) -> dict:
    return {
        "cbam": {"lesson": lesson.number, "slug": lesson.slug, "course_version": cbam.__version__},
        "kernelspec": dict(KERNELSPEC),
        "language_info": copy.deepcopy(LANGUAGE_INFO),
    }


def _natural_id(cell: nbformat.NotebookNode) -> str:
    if cell.get("id"):
        return cell.id
    if exercise_name(cell):
        return exercise_name(cell)
    if check_name(cell):
        return f"check-{check_name(cell)}"
    digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()
    return f"{_ID_PREFIX[cell.cell_type]}-{digest[:8]}"


def assign_ids(cells: list[nbformat.NotebookNode]) -> None:
    """Give every cell its id; exercises keep their names, any other repeat gets -2, -3, ..."""
    taken = {exercise_name(cell) for cell in cells if exercise_name(cell)}
    for cell in cells:
        if exercise_name(cell):
            cell.id = exercise_name(cell)
            continue
        base = candidate = _natural_id(cell)
        count = 1
        while candidate in taken:
            count += 1
            candidate = f"{base}-{count}"
        taken.add(candidate)
        cell.id = candidate


def reference_notebook(source: SourceCells) -> nbformat.NotebookNode:
    """The reference notebook before execution: stamped cells, the source's cells, ids, metadata."""
    lesson = source.lesson
    cells = [colab.badge_cell(lesson.relative(lesson.learner)), colab.setup_cell()]
    cells += [copy.deepcopy(cell) for cell in source.cells]
    assign_ids(cells)
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=notebook_metadata(lesson))
    return notebook


def learner_notebook(reference: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The reference with each solution block replaced by its stub and every output cleared."""
    learner = copy.deepcopy(reference)
    for cell in learner.cells:
        if exercise_name(cell):
            cell.source = stub_source(cell.source, exercise_name(cell))
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return learner


def to_text(notebook: nbformat.NotebookNode) -> str:
    """The notebook as the build writes it (sorted keys, one-space indent, final newline)."""
    nbformat.validate(notebook)
    text = nbformat.writes(notebook, version=4)
    return text if text.endswith("\n") else text + "\n"
