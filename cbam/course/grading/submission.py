"""Taking a learner's exercise cells out of a submitted notebook, and nothing else.

An exercise cell is found by its metadata ``exercise: <name>``, else by its cell id (the build
gives each exercise cell the id ``<name>``). Everything else in the submission (outputs, check
cells, cells the learner added) is ignored for grading; what looks unusual is reported as a note
so that an instructor knows what was ignored and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cbam.course.grading.notebook import Cell, Notebook
from cbam.course.grading.references import Reference


@dataclass
class Matched:
    """The learner's source for each exercise found, and notes on everything unusual."""

    sources: dict[str, str] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _exercise_of(cell: Cell, names: set[str]) -> str | None:
    if cell.exercise:
        return cell.exercise
    if cell.id in names:
        return cell.id
    return None


def _normalized(source: str) -> tuple[str, ...]:
    return tuple(line.rstrip() for line in source.strip().splitlines())


def _same_code(a: str, b: str) -> bool:
    return _normalized(a) == _normalized(b)


def _check_cell_notes(submission: Notebook, reference: Reference) -> list[str]:
    """Say which check cells were deleted or edited: the reference's are run either way."""
    notes = []
    by_id = {c.id: c for c in submission.cells if c.id}
    by_check: dict[str, list[Cell]] = {}
    for cell in submission.cells:
        if cell.check:
            by_check.setdefault(cell.check, []).append(cell)
    for name, cells in reference.check_cells.items():
        theirs = by_check.get(name, [])
        for position, cell in enumerate(cells):
            mine = by_id.get(cell.id) if cell.id else None
            if mine is None and position < len(theirs):
                mine = theirs[position]
            if mine is None:
                notes.append(f"the check cell of {name!r} is missing from the submission; the "
                             "reference's check cell was run (check cells are never taken from "
                             "a submission)")
            elif not mine.is_code or not _same_code(mine.source, cell.source):
                notes.append(f"the check cell of {name!r} was edited in the submission; the "
                             "reference's check cell was run instead")
    return notes


def match_exercises(submission: Notebook, reference: Reference) -> Matched:
    """The learner's exercise sources by name; missing, duplicate and unknown ones noted."""
    names = set(reference.exercises)
    found: dict[str, list[Cell]] = {}
    matched = Matched()
    for cell in submission.cells:
        name = _exercise_of(cell, names)
        if name is None:
            continue
        if not cell.is_code:
            matched.notes.append(f"cell {cell.number} is marked as exercise {name!r} but is a "
                                 f"{cell.cell_type} cell, not code; it was ignored")
            continue
        found.setdefault(name, []).append(cell)
    for name, cells in found.items():
        if name not in names:
            matched.notes.append(f"cell {cells[0].number} holds exercise {name!r}, which lesson "
                                 f"{reference.lesson} does not have; it was ignored")
            continue
        chosen = cells[-1]
        if len(cells) > 1:
            numbers = ", ".join(str(c.number) for c in cells)
            matched.notes.append(f"exercise {name!r} appears in {len(cells)} cells ({numbers}); "
                                 f"the last one (cell {chosen.number}) was graded")
        matched.sources[name] = chosen.source
        matched.cells[name] = chosen
    matched.missing = [name for name in reference.exercises if name not in matched.sources]
    matched.notes += _check_cell_notes(submission, reference)
    known = {_normalized(c.source) for c in reference.notebook.code_cells}
    added = [c for c in submission.code_cells
             if c.source.strip() and _normalized(c.source) not in known
             and _exercise_of(c, names) is None and not c.check]
    if added:
        numbers = ", ".join(str(c.number) for c in added[:8]) + (", …" if len(added) > 8 else "")
        matched.notes.append(f"{len(added)} code cell(s) not in the lesson, added or edited "
                             f"(cell {numbers}), were not run: only exercise cells are graded, "
                             "so code the exercises need must be inside them")
    return matched
