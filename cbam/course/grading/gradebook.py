"""A gradebook: one row per graded submission, one column per exercise.

CSV for a spreadsheet (1 = passed, 0 = failed, empty = not an exercise of that notebook's
lesson; the reasons in a last column), JSON for scripts (the full reports as well).
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
    table: list[dict[str, object]]


def gradebook(reports: list[Report]) -> Gradebook:
    header, table = rows(reports)
    return Gradebook(list(reports), exercise_columns(reports), header, table)


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
    reports, header, table = book.reports, book.header, book.table
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        data = {"exercises": exercise_columns(reports), "rows": table,
                "reports": [r.to_dict() for r in reports]}
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=header)
        writer.writeheader()
        writer.writerows(table)
