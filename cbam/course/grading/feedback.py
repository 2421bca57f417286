"""Feedback a learner can be handed: one HTML page per graded notebook.

``cbam-course grade FOLDER --feedback DIR`` writes ``DIR/<student>/<notebook>.html`` for each
notebook (the same relative path as under FOLDER): the lesson, the points, each exercise's status
with the hint and the lines its checks printed, and the notes on that notebook. Nothing of any
other student is in it; the page holds its styles and needs no network.
"""

from __future__ import annotations

import html
from pathlib import Path, PurePath

from cbam.course.grading.report import Report

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.4rem 0.6rem; text-align: left; vertical-align: top; }
tr.passed td.status { color: #1a7f37; font-weight: 600; }
tr.failed td.status { color: #b42318; font-weight: 600; }
ul.lines { margin: 0.3rem 0 0; padding-left: 1.2rem; font-size: 0.9em; }
.score { font-size: 1.3em; }
"""


def feedback_path(report: Report, folder: Path) -> Path:
    """Where a report's page goes: the notebook's path below the graded folder, as .html."""
    name = PurePath(report.submission)
    if name.is_absolute() or ".." in name.parts:
        name = PurePath(report.student or "notebook", name.name)
    return folder.joinpath(*name.parts).with_suffix(".html")


def page(report: Report) -> str:
    """The feedback page of one graded notebook."""
    e = html.escape
    title = (f"Lesson {report.lesson}" + (f": {report.slug.replace('_', ' ')}" if report.slug
                                          else "")) if report.lesson else "Your notebook"
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Feedback: {e(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{e(title)}</h1>", f"<p>{e(PurePath(report.submission).name)}</p>"]
    if report.error is not None:
        parts.append(f"<p class=\"score\">Not graded: {e(report.error)}</p>")
    else:
        parts.append(f'<p class="score">{_number(report.points)} of '
                     f"{_number(report.points_possible)} points "
                     f"({report.score} of {report.out_of} exercises passed)</p>")
        parts.append("<table><tr><th>exercise</th><th>points</th><th>status</th>"
                     "<th>what the checks found</th></tr>")
        for result in report.exercises:
            kind = "passed" if result.passed else "failed"
            lines = "".join(f"<li>{e(line)}</li>" for line in result.lines)
            said = (f"{e(result.hint)}" if result.hint else "") + (
                f'<ul class="lines">{lines}</ul>' if lines else "")
            parts.append(f'<tr class="{kind}"><td>{e(result.name)}</td>'
                         f"<td>{_number(result.earned)} / {_number(result.points)}</td>"
                         f'<td class="status">{e(result.status)}</td><td>{said}</td></tr>')
        parts.append("</table>")
    remarks = [*report.warnings, *report.notes]
    if remarks:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(r)}</li>" for r in remarks)
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _number(value: float) -> str:
    return f"{value:g}"


def write_feedback(reports: list[Report], folder: Path) -> list[Path]:
    """One page per report under ``folder``; the paths written."""
    written = []
    for report in reports:
        path = feedback_path(report, folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page(report), encoding="utf-8")
        written.append(path)
    return written
