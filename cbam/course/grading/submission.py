"""Taking a learner's exercise cells out of a submitted notebook, and the cells they added.

An exercise cell is found by its metadata ``exercise: <name>``, else by its cell id (the build
gives each exercise cell the id ``<name>``), else by its content: the functions and classes the
exercise defines (a notebook copied into a new one, or exported, loses both ids and metadata).
Code cells the learner added (a helper in a cell of its own) are kept, with the exercise they
follow, so that they run where they ran for the learner. Outputs and check cells are ignored for
grading; what looks unusual is reported as a note so that an instructor knows what was ignored.
"""

from __future__ import annotations

import ast
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
    # The cells the learner added, by the exercise they follow (None: before the first one).
    added: dict[str | None, list[Cell]] = field(default_factory=dict)


def defined_names(source: str) -> frozenset[str]:
    """The functions and classes a cell defines at its top level."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return frozenset()
    return frozenset(node.name for node in tree.body
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


def _markers(reference: Reference) -> dict[str, frozenset[str]]:
    """Each exercise's content markers: what its reference cell defines."""
    found = {}
    for name, cell in reference.exercise_cells.items():
        if defined := defined_names(cell.source):
            found[name] = defined
    return found


def _exercise_of(cell: Cell, names: set[str],
                 markers: dict[str, frozenset[str]] | None = None) -> str | None:
    if cell.exercise:
        return cell.exercise
    if cell.id in names:
        return cell.id
    if markers and cell.is_code and not cell.check:
        defined = defined_names(cell.source)
        fits = [name for name, wanted in markers.items() if wanted <= defined]
        if len(fits) == 1:
            return fits[0]
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
            if mine is None and any(_same_code(c.source, cell.source)
                                    for c in submission.code_cells):
                continue  # there, unchanged, but without its id and metadata
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
    markers = _markers(reference)
    found: dict[str, list[Cell]] = {}
    matched = Matched()
    by_content = []
    for cell in submission.cells:
        name = _exercise_of(cell, names, markers)
        if name is None:
            continue
        if not (cell.exercise or cell.id in names):
            by_content.append((cell.number, name))
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
    if by_content:
        shown = ", ".join(f"cell {number} as {name!r}" for number, name in by_content[:6])
        matched.notes.append(f"{len(by_content)} exercise cell(s) had lost their ids and "
                             f"metadata and were found by what they define ({shown})")
    known = {_normalized(c.source) for c in reference.notebook.code_cells}
    anchor: str | None = None
    chosen = {id(cell) for cell in matched.cells.values()}
    for cell in submission.cells:
        name = _exercise_of(cell, names, markers)
        if name is not None:
            if id(cell) in chosen:
                anchor = name
            continue
        if (cell.is_code and cell.source.strip() and not cell.check
                and _normalized(cell.source) not in known):
            matched.added.setdefault(anchor, []).append(cell)
    added = [c for cells in matched.added.values() for c in cells]
    if added:
        numbers = ", ".join(str(c.number) for c in added[:8]) + (", …" if len(added) > 8 else "")
        matched.notes.append(f"{len(added)} code cell(s) not in the lesson, added or edited "
                             f"(cell {numbers}), were run in their place among the exercise "
                             "cells; they are not graded themselves")
    return matched
