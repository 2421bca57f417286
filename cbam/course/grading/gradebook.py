"""A gradebook: one row per student, the points of each lesson and each exercise.

The CSV is what a learning management system imports: a row per student (the folder that holds
their notebooks, ``submissions/s017/01_....ipynb`` -> ``s017``), then for each lesson its points,
for each exercise its points and its status (passed, failed, not implemented, refused, ...), the
total, whether the code ran in the sandbox, and the reasons for what failed. The JSON gradebook
holds the same student rows, one row per submission (``rows``: 1 = passed, 0 = failed, the table
the class report counts from) and the full reports.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from cbam.course.grading.report import Report


def exercise_columns(reports: list[Report]) -> list[str]:
    """Every exercise of the graded lessons, in lesson order, then in the lessons' own order."""
    columns: list[str] = []
    for report in sorted(reports, key=lambda r: r.lesson or ""):
        columns += [e.name for e in report.exercises if e.name not in columns]
    return columns


def _reasons(report: Report) -> str:
    if report.error is not None:
        return f"cannot grade: {report.error}"
    return "; ".join(f"{e.name}: {e.hint or e.status}" for e in report.exercises if not e.passed)


@dataclass
class Gradebook:
    """The graded reports and the table made from them, once: the CSV/JSON gradebook and the
    class summary (``cbam.course.grading.class_report``) both read their numbers from ``table``."""

    reports: list[Report]
    columns: list[str]
    header: list[str]
    table: list[dict[str, object]]  # one row per submission
    student_header: list[str]
    students: list[dict[str, object]]  # one row per student: what the CSV holds


def gradebook(reports: list[Report]) -> Gradebook:
    header, table = rows(reports)
    student_header, students = student_rows(reports)
    return Gradebook(list(reports), exercise_columns(reports), header, table, student_header,
                     students)


def _points(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 2)


def student_rows(reports: list[Report]) -> tuple[list[str], list[dict[str, object]]]:
    """One row per student: points per lesson and per exercise, each exercise's status."""
    lessons = sorted({r.lesson for r in reports if r.lesson and r.error is None})
    columns = exercise_columns([r for r in reports if r.error is None])
    possible = {}
    for report in reports:
        if report.error is None and report.lesson:
            possible.setdefault(report.lesson, report.points_possible)
    header = ["student", *(f"lesson {lesson}" for lesson in lessons)]
    for name in columns:
        header += [name, f"{name} status"]
    header += ["total", "out_of", "sandbox", "failures"]
    by_student: dict[str, list[Report]] = {}
    for report in reports:
        by_student.setdefault(report.student or report.submission, []).append(report)
    table = []
    for student, theirs in sorted(by_student.items()):
        row: dict[str, object] = {key: "" for key in header}
        row["student"] = student
        graded = {}
        for report in theirs:  # a lesson handed in twice: the last notebook counts
            if report.error is None and report.lesson:
                graded[report.lesson] = report
        for lesson, report in graded.items():
            row[f"lesson {lesson}"] = _points(report.points)
            for result in report.exercises:
                row[result.name] = _points(result.earned)
                row[f"{result.name} status"] = result.status
        for lesson in lessons:
            if lesson not in graded:
                row[f"lesson {lesson}"] = 0  # nothing handed in for it counts as nothing
        row["total"] = _points(sum(r.points for r in graded.values()))
        row["out_of"] = _points(sum(possible.values()))
        confined = {bool(r.sandbox) for r in graded.values()}
        row["sandbox"] = "" if not confined else ("yes" if confined == {True} else "no")
        row["failures"] = "; ".join(
            f"{Path(r.submission).name}: {reason}" for r in theirs if (reason := _reasons(r)))
        table.append(row)
    return header, table


def rows(reports: list[Report]) -> tuple[list[str], list[dict[str, object]]]:
    columns = exercise_columns(reports)
    header = ["submission", "lesson", "score", "out_of", *columns, "sandbox", "failures"]
    table = []
    for report in reports:
        row: dict[str, object] = {
            "submission": report.submission, "lesson": report.lesson or "",
            "score": report.score if report.error is None else "",
            "out_of": report.out_of if report.error is None else "",
        }
        verdicts = {e.name: int(e.passed) for e in report.exercises}
        row.update({name: verdicts.get(name, "") for name in columns})
        # Whether its code ran confined: "no" only for work graded with --no-sandbox.
        row["sandbox"] = "" if report.error is not None else ("yes" if report.sandbox else "no")
        row["failures"] = _reasons(report)
        table.append(row)
    return header, table


def write_gradebook(reports: list[Report] | Gradebook, path: Path) -> None:
    """Write ``reports`` (or the gradebook made from them) to ``path``, CSV or JSON by its
    suffix."""
    book = reports if isinstance(reports, Gradebook) else gradebook(reports)
    reports, table = book.reports, book.table
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        data = {"exercises": exercise_columns(reports), "students": book.students,
                "rows": table, "reports": [r.to_dict() for r in reports]}
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=book.student_header)
        writer.writeheader()
        writer.writerows(book.students)
