"""``cbam-course build``: the reference and learner notebooks of every lesson, from its source.

For each ``solutions/NN_slug.py`` the build writes

* ``solutions/NN_slug.ipynb``, the reference: executed with nbclient (in ``solutions/``), outputs
  stored, metadata clean, the same bytes on every run;
* ``notebooks/NN_slug.ipynb``, the learner notebook: solutions replaced by stubs, no outputs.

``--check`` executes nothing: it says which generated file no longer matches its source (cells,
ids, metadata; the learner notebook byte for byte). The reference's outputs are nbval's business.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from pathlib import Path

import nbformat

from cbam.course.building.compose import learner_notebook, reference_notebook, to_text
from cbam.course.building.execute import ExecutionFailed, execute_notebook
from cbam.course.building.lessons import (
    SOURCE_NAME,
    Lesson,
    LessonError,
    SourceCells,
    find_lessons,
    read_source,
)

DEFAULT_TIMEOUT = 600


def _where(source: SourceCells, reference: nbformat.NotebookNode):
    """Names a reference cell by its place in the source (or as a cell the build adds)."""
    added = len(reference.cells) - len(source.cells)

    def where(index: int) -> str:
        if index >= added:
            return source.where(index - added)
        reference_path = source.lesson.relative(source.lesson.reference)
        return f"{reference_path}, the {reference.cells[index].id!r} cell the build adds"

    return where


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file holds it already (its time stamp then stays)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def build_lesson(lesson: Lesson, *, timeout: int = DEFAULT_TIMEOUT) -> tuple[float, list[Path]]:
    """Write the lesson's learner and (executed) reference notebooks.

    Returns the execution time in seconds and the files whose content changed.
    """
    source = read_source(lesson)
    expected = reference_notebook(source)
    changed = []
    if _write_if_changed(lesson.learner, to_text(learner_notebook(expected))):
        changed.append(lesson.learner)
    reference = copy.deepcopy(expected)  # executed in place; the skeleton keeps clean metadata
    seconds = execute_notebook(
        reference,
        lesson.source.parent,
        timeout=timeout,
        where=_where(source, reference),
        label=lesson.stem,
    )
    # Kernels and nbclient add metadata of their own (language version, ...): keep only ours.
    reference.metadata = expected.metadata
    for cell, clean in zip(reference.cells, expected.cells, strict=True):
        cell.metadata = clean.metadata
    if _write_if_changed(lesson.reference, to_text(reference)):
        changed.append(lesson.reference)
    return seconds, changed


# --- check -------------------------------------------------------------------------------------


def _excerpt(line: str, column: int) -> str:
    """About 50 characters of ``line`` around ``column``, where two versions part."""
    start = max(0, column - 20)
    text = line[start : start + 50]
    return repr(("..." if start else "") + text + ("..." if start + 50 < len(line) else ""))


def _first_difference(expected: str, actual: str) -> str:
    expected_lines, actual_lines = expected.splitlines(), actual.splitlines()
    for number, (want, got) in enumerate(zip(expected_lines, actual_lines, strict=False), 1):
        if want != got:
            pairs = enumerate(zip(want, got, strict=False))
            column = next((i for i, (a, b) in pairs if a != b), min(len(want), len(got)))
            return (
                f"line {number} is {_excerpt(got, column)}, the source gives "
                f"{_excerpt(want, column)}"
            )
    more = len(actual_lines) - len(expected_lines)
    return f"{abs(more)} line(s) {'more' if more > 0 else 'fewer'} than the source gives"


def notebook_differences(
    expected: nbformat.NotebookNode, actual: nbformat.NotebookNode, *, outputs: bool
) -> list[str]:
    """What differs between two notebooks, in words; outputs only when ``outputs`` is true."""
    found = []
    versions = (actual.get("nbformat"), actual.get("nbformat_minor"))
    if versions != (expected.nbformat, expected.nbformat_minor):
        found.append(
            f"nbformat {versions[0]}.{versions[1]} instead of "
            f"{expected.nbformat}.{expected.nbformat_minor}"
        )
    metadata = actual.get("metadata", {})
    keys = sorted(
        k
        for k in set(metadata) | set(expected.metadata)
        if metadata.get(k) != expected.metadata.get(k)
    )
    if keys:
        found.append(f"notebook metadata differs in {', '.join(keys)}")
    actual_cells = actual.get("cells", [])
    expected_ids = [cell.id for cell in expected.cells]
    actual_ids = [cell.get("id") for cell in actual_cells]
    # Align the two cell lists by id; an edited cell gets a new id (ids of ordinary cells hash
    # their source), so a changed range of equal length is compared cell by cell.
    pairs = []
    matcher = difflib.SequenceMatcher(a=expected_ids, b=actual_ids, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            pairs += zip(range(j1, j2), expected.cells[i1:i2], actual_cells[j1:j2], strict=True)
            continue
        if i2 > i1:
            missing = ", ".join(_label(cell) for cell in expected.cells[i1:i2][:3])
            found.append(
                f"lacks {i2 - i1} cell(s) the source gives before cell {j1 + 1}: {missing}"
            )
        if j2 > j1:
            extra = ", ".join(_label(cell) for cell in actual_cells[j1:j2][:3])
            found.append(f"cells {j1 + 1} to {j2} are not in the source: {extra}")
    for position, want, got in pairs:
        what = []
        if got.get("id") != want.id:
            what.append(f"id {got.get('id')!r} instead of {want.id!r}")
        if got.get("cell_type") != want.cell_type:
            what.append(f"type {got.get('cell_type')} instead of {want.cell_type}")
        if got.get("source") != want.source:
            difference = _first_difference(want.source, got.get("source", ""))
            what.append(f"source differs ({difference})")
        if got.get("metadata") != want.metadata:
            got_metadata = dict(got.get("metadata", {}))
            what.append(f"metadata {got_metadata} instead of {dict(want.metadata)}")
        if outputs and want.cell_type == "code":
            if got.get("outputs") != want.outputs:
                what.append("has stored outputs" if got.get("outputs") else "outputs differ")
            if got.get("execution_count") != want.execution_count:
                what.append(
                    f"execution_count {got.get('execution_count')} instead of "
                    f"{want.execution_count}"
                )
        if what:
            found.append(f"cell {position + 1} ({got.get('id')!r}): " + "; ".join(what))
    return found


def _label(cell) -> str:
    first = next((line.strip() for line in cell.get("source", "").splitlines() if line.strip()), "")
    return f"{cell.get('id')!r} ({first[:40]!r})"


def _executed_in_order(reference: nbformat.NotebookNode) -> list[str]:
    """A reference is executed top to bottom once: counts 1, 2, 3, ... on non-empty code cells."""
    count = 0
    for cell in reference.get("cells", []):
        if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
            continue
        count += 1
        if cell.get("execution_count") != count:
            return [
                f"cell {cell.get('id')!r} has execution_count {cell.get('execution_count')}, "
                f"expected {count}: the file was not executed top to bottom by the build"
            ]
    return []


def _read(path: Path, relative: str) -> tuple[nbformat.NotebookNode | None, str | None]:
    if not path.exists():
        return None, f"{relative}: missing"
    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4), None
    except Exception as error:  # malformed JSON, an unknown nbformat
        return None, f"{relative}: not a readable notebook ({type(error).__name__}: {error})"


def check_lesson(lesson: Lesson) -> list[str]:
    """Problems with the lesson's generated files, one line each; empty when up to date."""
    source = read_source(lesson)
    expected_reference = reference_notebook(source)
    expected_learner = learner_notebook(expected_reference)
    problems = []

    learner_relative = lesson.relative(lesson.learner)
    learner, problem = _read(lesson.learner, learner_relative)
    if problem:
        problems.append(problem)
    else:
        expected_text = to_text(expected_learner)
        if lesson.learner.read_text(encoding="utf-8") != expected_text:
            found = notebook_differences(expected_learner, learner, outputs=True)
            found = found or ["its JSON is not written the way the build writes it"]
            problems += [f"{learner_relative}: {line}" for line in found]

    reference_relative = lesson.relative(lesson.reference)
    reference, problem = _read(lesson.reference, reference_relative)
    if problem:
        problems.append(problem)
    else:
        found = notebook_differences(expected_reference, reference, outputs=False)
        found += _executed_in_order(reference)
        problems += [f"{reference_relative}: {line}" for line in found]
    return problems


def _orphans(root: Path, lessons: list[Lesson]) -> list[str]:
    stems = {lesson.stem for lesson in lessons}
    found = []
    for folder in ("solutions", "notebooks"):
        for path in sorted((root / folder).glob("*.ipynb")):
            if SOURCE_NAME.match(path.stem + ".py") and path.stem not in stems:
                found.append(
                    f"{folder}/{path.name}: no source solutions/{path.stem}.py "
                    "(renamed or removed lesson?); delete it or restore the source"
                )
    return found


def _repeated_exercises(lessons: list[Lesson]) -> list[str]:
    """Exercise names are unique in the whole course (a grader finds a cell by its name)."""
    seen: dict[str, Lesson] = {}
    found = []
    for lesson in lessons:
        try:
            names = read_source(lesson).exercise_cells()
        except LessonError:
            continue  # reported with the lesson itself
        for name in names:
            if name in seen:
                found.append(
                    f"exercise {name!r} is in both {seen[name].source.name} and "
                    f"{lesson.source.name}; exercise names are unique in the course"
                )
            seen[name] = lesson
    return found


# --- command line ------------------------------------------------------------------------------


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cbam-course build",
        description="Build the reference (solutions/NN_slug.ipynb, executed) and learner "
        "(notebooks/NN_slug.ipynb) notebooks from the sources solutions/NN_slug.py.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="execute nothing; fail when a generated file differs from what its source gives",
    )
    parser.add_argument(
        "--lesson",
        action="append",
        metavar="NN",
        help="only this lesson (repeatable), e.g. --lesson 00",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="the repository root (default: the current directory)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT,
        help=f"seconds a cell may run (default {DEFAULT_TIMEOUT})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    root = (args.root or Path.cwd()).resolve()
    problems: list[str] = []
    try:
        lessons = find_lessons(root, args.lesson)
    except LessonError as error:
        print(f"cbam-course build: {error}", file=sys.stderr)
        return 1
    if args.lesson is None:
        problems += _repeated_exercises(lessons)

    if args.check:
        if args.lesson is None:
            problems += _orphans(root, lessons)
        for lesson in lessons:
            try:
                problems += check_lesson(lesson)
            except LessonError as error:
                problems.append(str(error))
        if problems:
            print(f"cbam-course build --check: {len(problems)} problem(s):", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            print("Run `cbam-course build` (or `--lesson NN`) to regenerate them.", file=sys.stderr)
            return 1
        print(f"cbam-course build --check: {len(lessons)} lesson(s) up to date")
        return 0

    for lesson in lessons:
        try:
            seconds, changed = build_lesson(lesson, timeout=args.timeout)
        except (LessonError, ExecutionFailed) as error:
            problems.append(str(error))
            print(f"{lesson.stem}: FAILED", flush=True)
            continue
        written = ", ".join(lesson.relative(path) for path in changed) or "nothing changed"
        print(f"{lesson.stem}: executed in {seconds:.1f} s; {written}", flush=True)
    if problems:
        print(f"cbam-course build: {len(problems)} problem(s):", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
