"""A class report: what a class got wrong, lesson by lesson, not only its scores.

``cbam-course grade FOLDER --summary report.html`` (or ``.md``) writes, for each lesson graded:

* each exercise's pass rate, read from the gradebook's table (the same 1s and 0s the CSV holds,
  computed once, in ``cbam.course.grading.gradebook``);
* the mistakes the checks named, with how many submissions made each: the hints of the ``✗``
  lines ("a sigmoid on each branch, then summed: ...") are the names, so a mistake is counted
  under the words the learners saw;
* the submissions flagged as suspicious, or refused for handing in cbam's own solution;
* a bar chart of the pass rates (matplotlib), embedded in the file.

The HTML file holds everything it shows (styles and chart inline), so it opens without a
network.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cbam.checks.own_work import WRITE_IT_YOURSELF
from cbam.course.grading.gradebook import Gradebook
from cbam.course.grading.report import ExerciseResult, Report

SUFFIXES = (".md", ".html")


@dataclass
class ExerciseSummary:
    name: str
    graded: int = 0
    passed: int = 0
    mistakes: Counter = field(default_factory=Counter)  # named mistake -> submissions

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class Flag:
    submission: str
    exercise: str
    why: str


@dataclass
class LessonSummary:
    lesson: str
    slug: str | None
    submissions: int = 0
    exercises: dict[str, ExerciseSummary] = field(default_factory=dict)
    flagged: list[Flag] = field(default_factory=list)


@dataclass
class ClassSummary:
    lessons: list[LessonSummary]
    ungradable: list[tuple[str, str]]  # (submission, why it could not be graded)


def _named_mistakes(result: ExerciseResult) -> list[str]:
    """The mistakes a failed exercise's checks named: each ✗ line's hint, else the verdict's."""
    named = []
    for line in result.lines:
        if not line.startswith("✗"):
            continue
        text = re.sub(rf"^✗\s*{re.escape(result.name)}\s*:\s*", "", line)
        named.append(text.split(" — ", 1)[1] if " — " in text else text)
    return named or [result.hint or result.status]


def _flag(result: ExerciseResult) -> str | None:
    if result.status == "suspicious":
        return result.hint
    shortcut = [m for m in _named_mistakes(result) if m.endswith(WRITE_IT_YOURSELF)]
    return f"refused as a shortcut: {shortcut[0]}" if shortcut else None


def summarize(book: Gradebook) -> ClassSummary:
    """Per lesson: pass counts from the gradebook's table, mistakes and flags from the reports."""
    lessons: dict[str, LessonSummary] = {}
    ungradable = []
    for report, row in zip(book.reports, book.table, strict=True):
        if report.error is not None or report.lesson is None:
            ungradable.append((report.submission, report.error or "no lesson"))
            continue
        lesson = lessons.setdefault(report.lesson, LessonSummary(report.lesson, report.slug))
        lesson.submissions += 1
        for result in report.exercises:
            summary = lesson.exercises.setdefault(result.name, ExerciseSummary(result.name))
            summary.graded += 1
            summary.passed += int(row[result.name])
            if result.passed:
                continue
            summary.mistakes.update(set(_named_mistakes(result)))  # once per submission
            why = _flag(result)
            if why:
                lesson.flagged.append(Flag(report.submission, result.name, why))
    return ClassSummary([lessons[k] for k in sorted(lessons)], ungradable)


# --- rendering -----------------------------------------------------------------------------------


def _chart(lesson: LessonSummary) -> str:
    """The lesson's pass rates as a horizontal bar chart, a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    names = list(lesson.exercises)
    rates = [100 * lesson.exercises[n].rate for n in names]
    figure = Figure(figsize=(6.4, 0.5 + 0.45 * len(names)), layout="constrained")
    axes = figure.add_subplot()
    bars = axes.barh(names[::-1], rates[::-1], color="#4c72b0")
    axes.bar_label(bars, labels=[f"{r:.0f} %" for r in rates[::-1]], padding=3)
    axes.set_xlim(0, 115)
    axes.set_xlabel(f"submissions that passed, % (of {lesson.submissions})")
    axes.set_title(f"lesson {lesson.lesson}: pass rate per exercise")
    axes.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _title(lesson: LessonSummary) -> str:
    return f"Lesson {lesson.lesson}" + (f" ({lesson.slug})" if lesson.slug else "")


def to_markdown(summary: ClassSummary) -> str:
    lines = ["# Class report", ""]
    for lesson in summary.lessons:
        lines += [f"## {_title(lesson)}", "", f"{lesson.submissions} submission(s).", "",
                  f"![pass rates of lesson {lesson.lesson}](data:image/png;base64,"
                  f"{_chart(lesson)})", "",
                  "| exercise | passed | pass rate |", "| --- | ---: | ---: |"]
        lines += [f"| {e.name} | {e.passed} of {e.graded} | {100 * e.rate:.0f} % |"
                  for e in lesson.exercises.values()]
        lines += ["", "### Mistakes the checks named", ""]
        for exercise in lesson.exercises.values():
            if exercise.mistakes:
                lines.append(f"**{exercise.name}**")
                lines.append("")
                lines += [f"- {n} × {mistake}" for mistake, n in exercise.mistakes.most_common()]
                lines.append("")
        lines += ["### Suspicious or refused as shortcuts", ""]
        lines += [f"- {f.submission}, {f.exercise}: {f.why}" for f in lesson.flagged] or ["none"]
        lines.append("")
    if summary.ungradable:
        lines += ["## Not graded", ""]
        lines += [f"- {name}: {why}" for name, why in summary.ungradable]
        lines.append("")
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ccc; padding: 0.3rem 0.8rem; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
li .count { font-weight: bold; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
"""


def to_html(summary: ClassSummary) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Class report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Class report</h1>"]
    for lesson in summary.lessons:
        parts += [f'<section class="lesson" id="lesson-{e(lesson.lesson)}">',
                  f"<h2>{e(_title(lesson))}</h2>",
                  f"<p>{lesson.submissions} submission(s).</p>",
                  f'<img class="chart" alt="pass rate per exercise of lesson {e(lesson.lesson)}" '
                  f'src="data:image/png;base64,{_chart(lesson)}">',
                  '<table class="rates"><tr><th>exercise</th><th>passed</th><th>pass rate</th>'
                  "</tr>"]
        parts += [f'<tr data-exercise="{e(x.name)}"><td>{e(x.name)}</td>'
                  f'<td class="number">{x.passed} of {x.graded}</td>'
                  f'<td class="number">{100 * x.rate:.0f} %</td></tr>'
                  for x in lesson.exercises.values()]
        parts += ["</table>", "<h3>Mistakes the checks named</h3>"]
        for exercise in lesson.exercises.values():
            if not exercise.mistakes:
                continue
            parts += [f"<h4>{e(exercise.name)}</h4>", '<ul class="mistakes">']
            parts += [f'<li><span class="count">{n} ×</span> {e(m)}</li>'
                      for m, n in exercise.mistakes.most_common()]
            parts.append("</ul>")
        parts += ["<h3>Suspicious or refused as shortcuts</h3>", '<ul class="flagged">']
        parts += [f"<li>{e(f.submission)}, {e(f.exercise)}: {e(f.why)}</li>"
                  for f in lesson.flagged] or ["<li>none</li>"]
        parts += ["</ul>", "</section>"]
    if summary.ungradable:
        parts += ["<h2>Not graded</h2>", "<ul>"]
        parts += [f"<li>{e(name)}: {e(why)}</li>" for name, why in summary.ungradable]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_summary(book: Gradebook, path: Path) -> ClassSummary:
    """Write the class report of ``book`` to ``path``, Markdown or HTML by its suffix."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"the summary must end in .md or .html, got {path.name!r}")
    summary = summarize(book)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = to_html(summary) if suffix == ".html" else to_markdown(summary)
    path.write_text(text, encoding="utf-8")
    return summary


def reports_summary(reports: list[Report]) -> ClassSummary:
    """The summary of ``reports``, for callers that have no gradebook yet."""
    from cbam.course.grading.gradebook import gradebook

    return summarize(gradebook(reports))
