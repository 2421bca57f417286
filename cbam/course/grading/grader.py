"""``cbam-course grade``: grade submitted notebooks against the executed reference notebooks.

A learner's saved outputs count for nothing. The grader takes only the exercise cells' sources
from a submission, puts them into a copy of the lesson's executed reference notebook and runs
nbval on that copy: an exercise passes when every one of its check cells prints what the
reference printed. The submission itself is only ever read. See docs/grading.md.

    cbam-course grade alice.ipynb               # one report, exit status 0 / 1 / 2
    cbam-course grade submissions/ --gradebook grades.csv
    cbam-course grade submissions/ --summary class.html    # what the class got wrong
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cbam.checks.own_work import WRITE_IT_YOURSELF
from cbam.course.grading import probes, sandbox, scratch
from cbam.course.grading.class_report import SUFFIXES as SUMMARY_SUFFIXES
from cbam.course.grading.class_report import write_summary
from cbam.course.grading.feedback import write_feedback
from cbam.course.grading.gradebook import gradebook, write_gradebook
from cbam.course.grading.graded_run import (
    RUNNING,
    CellResult,
    CellRole,
    RunOutcome,
    build_graded_copy,
    run_graded_copy,
)
from cbam.course.grading.notebook import Notebook, UnusableNotebook, normalize_lesson, read_notebook
from cbam.course.grading.references import (
    Reference,
    ReferenceProblem,
    load_reference,
    reference_path,
    references_in,
    solutions_dir,
)
from cbam.course.grading.report import PASSED, ExerciseResult, Report
from cbam.course.grading.submission import Matched, match_exercises
from cbam.course.grading.tamper import suspicious

# Generous defaults: a training cell of lesson 05 takes minutes on a busy CPU, and a cell cut
# short by mistake fails a right exercise. --timeout 60 suits lessons 00-04.
DEFAULT_CELL_TIMEOUT = 300.0  # s for one cell
DEFAULT_TOTAL_TIMEOUT = 1800.0  # s for one whole notebook
_MARKS = ("✓", "✗")
REFUSED = "refused"  # the exercise handed in cbam's own solution
MAX_LINES, MAX_LINE, MAX_HINT = 40, 400, 600  # what a report keeps of a check's printing


# --- which lesson -----------------------------------------------------------------------------


def _infer_lesson(submission: Notebook, folder: Path) -> str | None:
    """The one lesson whose exercise names the submission's cells carry, if there is one."""
    overlaps = {}
    for lesson, path in references_in(folder).items():
        try:
            reference = load_reference(path)
        except ReferenceProblem:
            continue
        # By name where the cells kept their ids or metadata, else by what they define.
        overlaps[lesson] = len(match_exercises(submission, reference).sources)
    best = max(overlaps.values(), default=0)
    winners = [lesson for lesson, n in overlaps.items() if n == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


def _choose_lesson(submission: Notebook, asked: str | None, folder: Path) -> str:
    own = submission.lesson
    if asked is not None and own is not None and asked != own:
        slug = f" ({submission.slug})" if submission.slug else ""
        raise UnusableNotebook(
            f"this is a notebook of lesson {own}{slug}, not of lesson {asked}; grade it with "
            f"--lesson {own}, or ask the learner for the lesson {asked} notebook"
        )
    lesson = own or asked or _infer_lesson(submission, folder)
    if lesson is None:
        raise UnusableNotebook(
            "cannot tell which lesson this notebook is: it has no 'cbam' lesson metadata and its "
            "cells carry no exercise of any lesson; pass --lesson NN"
        )
    return lesson


def _version_warning(submission: Notebook, reference: Reference, matched: Matched) -> str | None:
    """A submission from another course version is graded only if its exercises are the same."""
    theirs, ours = submission.course_version, reference.notebook.course_version
    if theirs is None or ours is None or theirs == ours:
        return None
    names = {c.exercise for c in submission.cells if c.exercise}
    unknown = sorted(names - set(reference.exercises))
    if matched.missing or unknown:
        raise UnusableNotebook(
            f"this notebook is from course version {theirs}, the reference from version {ours}, "
            f"and their exercises differ (missing here: {matched.missing or 'none'}; not in "
            f"the reference: {unknown or 'none'}); grade it against the solutions of version "
            f"{theirs} (--solutions DIR)"
        )
    return (f"this notebook is from course version {theirs}, the reference from version {ours}; "
            "its exercise names match, so it was graded against the current checks")


# --- verdicts ---------------------------------------------------------------------------------


def _is_stub(source: str, name: str) -> bool:
    return re.search(rf"raise\s+NotImplementedError\(\s*[\"']exercise {re.escape(name)}\b",
                     source) is not None


def _mark_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(_MARKS)]


def _bounded(lines: list[str]) -> list[str]:
    """At most MAX_LINES check lines of at most MAX_LINE characters: a submission that prints a
    flood gets a report and a gradebook that still open, and a note that they were cut."""
    kept = [line if len(line) <= MAX_LINE else line[:MAX_LINE] + " … (cut)"
            for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        kept.append(f"… {len(lines) - MAX_LINES} more line(s) cut")
    return kept


def _hint(text: str) -> str:
    return text if len(text) <= MAX_HINT else text[:MAX_HINT] + " … (cut)"


def _short(line: str, name: str) -> str:
    """'✗ name: what — hint' -> 'what — hint' (the report already names the exercise)."""
    return re.sub(rf"^✗\s*{re.escape(name)}\s*:\s*", "", line)


def _verdict(
    name: str,
    source: str,
    parts: dict[str, list[CellResult]],
    run: RunOutcome,
    cell_timeout: float,
    guard_works: bool,
    judgement: probes.Judgement | None = None,
) -> ExerciseResult:
    exercise, checks, guards = parts["exercise"], parts["check"], parts["guard"]
    lines = _bounded([line for c in checks for line in _mark_lines(c.printed)])
    if guard_works:
        changed = [line.split("grader: ", 1)[-1] for g in guards
                   for line in _mark_lines(g.printed)]
        if changed or any(g.outcome == "failed" for g in guards):
            what = "; ".join(changed) or "the grader's guard was removed"
            return ExerciseResult(name, "suspicious", f"tampering detected: {what}", lines)
    cells = exercise + checks
    if any(c.kernel_died for c in cells):
        where = "exercise cell" if any(c.kernel_died for c in exercise) else "check"
        took = sum(c.seconds for c in cells)
        return ExerciseResult(name, "failed", f"the kernel died while the exercise's {where} "
                                              "ran (its code crashed or exited Python); grading "
                                              f"it took {took:.0f} s", lines)
    if any(c.timed_out for c in cells):
        return ExerciseResult(name, "timed out", f"timed out after {cell_timeout:g} s", lines)
    if any(c.outcome == "not run" for c in checks):
        why = (f"the whole notebook ran past {run.overall_timeout:g} s" if run.overall_timeout
               else "nbval did not run its check cell")
        return ExerciseResult(name, "not run", f"not graded: {why}", lines)
    if all(c.outcome == PASSED for c in checks):
        if judgement is None or judgement.passed:
            return ExerciseResult(name, PASSED, "", lines)
        # The check cell printed the reference's lines, but the learner's code, given the
        # grader's own inputs, did not compute the reference's values: the probe decides.
        status = REFUSED if judgement.refused else "failed"
        return ExerciseResult(name, status, judgement.hint, lines)
    if judgement is not None and judgement.refused:
        # The check cell's own refusal, if it printed one, is what the learner saw.
        said = [_short(line, name) for line in lines
                if line.startswith("✗") and WRITE_IT_YOURSELF in line]
        return ExerciseResult(name, REFUSED, said[0] if said else judgement.hint, lines)
    failures = [line for line in lines if line.startswith("✗")]
    errors = [c.error for c in exercise if c.error]
    if (_is_stub(source, name) or any("not implemented" in line for line in failures)
            or any(e.startswith("NotImplementedError") for e in errors)):
        return ExerciseResult(name, "not implemented", "not implemented", lines)
    if errors:
        return ExerciseResult(name, "failed", f"the exercise cell raised {errors[0]}", lines)
    if failures:
        return ExerciseResult(name, "failed", _hint("; ".join(_short(f, name) for f in failures)),
                              lines)
    check_errors = [c.error for c in checks if c.error]
    if check_errors:
        return ExerciseResult(name, "failed", f"the check cell raised {check_errors[0]}", lines)
    if any(c.outcome == "skipped" for c in checks):
        return ExerciseResult(name, "failed", "its check cell is skipped in the reference", lines)
    return ExerciseResult(name, "failed", "the check printed something other than the "
                                          "reference's lines", lines)


def _other_cell_notes(roles: list[CellRole], run: RunOutcome, results: dict) -> list[str]:
    notes = []
    failed = []
    for role, cell in zip(roles, run.cells, strict=True):
        if role.kind == "added" and cell.error:
            notes.append(f"a cell the learner added (`{role.summary}`) raised {cell.error}")
        if role.kind == "other" and cell.outcome == "failed":
            why = cell.error and f"raised {cell.error}" or "output differs"
            if cell.timed_out:
                why = "timed out"
            failed.append(f"cell {role.number} `{role.summary}` ({why})")
        elif (role.kind == "exercise" and cell.error and role.exercise in results
              and results[role.exercise].passed):
            notes.append(f"the cell of {role.exercise!r} raised {cell.error}, yet its checks "
                         "passed")
    if failed:
        shown = "; ".join(failed[:5]) + ("; …" if len(failed) > 5 else "")
        notes.append(f"{len(failed)} other cell(s) of the lesson failed (they do not count "
                     f"towards the score): {shown}")
    if run.restarts:
        again = ("the cells before were run again" if not run.replay_gaps else
                 f"the cells before were run again, but {run.replay_gaps} of them could not be, "
                 "so later cells may miss what those defined")
        notes.append(f"the kernel was restarted {run.restarts} time(s) after code that could "
                     f"not be interrupted; {again}")
    if run.overall_timeout:
        notes.append(f"the run was stopped after {run.overall_timeout:g} s (--total-timeout)")
    return notes


def _sanitize_file(folder: Path) -> Path | None:
    """The course's nbval sanitize patterns, if the repository holding the references has them."""
    candidates = [folder.resolve().parent / "tests" / "nbval_sanitize.cfg",
                  Path(__file__).resolve().parents[3] / "tests" / "nbval_sanitize.cfg"]
    return next((c for c in candidates if c.is_file()), None)


# --- grading ----------------------------------------------------------------------------------


def grade_submission(
    path: str | Path,
    *,
    lesson: str | int | None = None,
    solutions: str | Path | None = None,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
    name: str | None = None,
    threads: int | None = None,
    limits: sandbox.Limits | None = None,
    trusted: bool = False,
) -> Report:
    """Grade one submitted notebook; problems with the input end up in ``Report.error``.

    The notebook's code runs in a sandbox with ``limits`` (default ``sandbox.Limits()``);
    ``trusted=True`` runs it without one, and the report says so.
    """
    started = time.perf_counter()
    report = Report(submission=name or str(path), student=student_of(name or str(path)))
    if RUNNING.stopping:
        report.error = "the grader was told to stop before this notebook was graded"
        return report
    if trusted:
        limits = None
        report.sandbox = None
        report.warnings.append("graded WITHOUT a sandbox (--no-sandbox): its code ran with the "
                               "grader's permissions, and its grade is only as good as its "
                               "author's intentions")
    else:
        limits = limits or sandbox.Limits()
        why = sandbox.available()
        if why is not None:
            report.error = (f"no sandbox can be made on this machine ({why}), so this notebook's "
                            "code was not run; install what is missing, or grade work you trust "
                            "with --no-sandbox")
            return report
    try:
        submission = read_notebook(path)
        folder = solutions_dir(solutions)
        asked = normalize_lesson(lesson)
        chosen = _choose_lesson(submission, asked, folder)
        reference = load_reference(reference_path(folder, chosen))
        report.lesson, report.slug = chosen, reference.notebook.slug or submission.slug
        report.reference = str(reference.path)
        matched = match_exercises(submission, reference)
        if submission.lesson is None and len(matched.missing) == len(reference.exercises):
            raise UnusableNotebook(
                f"none of lesson {chosen}'s exercise cells ({', '.join(reference.exercises)}) "
                "is in this notebook, and it has no 'cbam' lesson metadata: is it a lesson "
                f"{chosen} notebook?"
            )
        warning = _version_warning(submission, reference, matched)
    except (UnusableNotebook, ReferenceProblem) as problem:
        report.error = str(problem)
        report.seconds = time.perf_counter() - started
        return report
    if warning:
        report.warnings.append(warning)
    if submission.lesson is None:
        report.warnings.append(f"the notebook has no 'cbam' lesson metadata; it was graded as "
                               f"lesson {chosen}")
    report.notes += matched.notes
    try:
        _grade(report, reference, matched, folder, cell_timeout, total_timeout, threads, limits)
    except Exception as error:  # whatever a submission left behind, the class run goes on
        report.error = f"the grader failed on this notebook: {type(error).__name__}: {error}"
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Grading:
    """What one submission's runs share: the reference, the options, the learner's cells."""

    reference: Reference
    folder: Path
    cell_timeout: float
    total_timeout: float
    threads: int | None
    limits: sandbox.Limits | None
    added: dict[str | None, list[str]]
    probed: frozenset[str]


def _run(grading: _Grading, sources: dict[str, str | None]) -> tuple[RunOutcome, list, int]:
    """One sandboxed nbval run of the graded copy holding ``sources``: (run, roles, seed)."""
    content, roles = build_graded_copy(grading.reference, sources, grading.probed,
                                       grading.added)
    seed = secrets.randbits(62)  # the probes' inputs: drawn now, known to no one before
    workdir = scratch.make()
    try:
        run = run_graded_copy(content, roles, grading.reference.path.parent, workdir,
                              cell_timeout=grading.cell_timeout,
                              total_timeout=grading.total_timeout,
                              sanitize=_sanitize_file(grading.folder), threads=grading.threads,
                              limits=grading.limits, probe_seed=seed)
    finally:
        scratch.remove(workdir)
    return run, roles, seed


def _judged(grading: _Grading, name: str, source: str, run: RunOutcome, roles: list,
            seed: int) -> ExerciseResult:
    parts: dict[str, list[CellResult]] = {"exercise": [], "check": [], "guard": []}
    for role, cell in zip(roles, run.cells, strict=True):
        if role.exercise == name and role.kind in parts:
            parts[role.kind].append(cell)
    lesson = grading.reference.lesson
    judgement = (probes.judge(lesson, name, seed, run.probes.get(name))
                 if name in grading.probed else None)
    return _verdict(name, source, parts, run, grading.cell_timeout,
                    run.cells[0].outcome == PASSED, judgement)


def _grade(report: Report, reference: Reference, matched: Matched, folder: Path,
           cell_timeout: float, total_timeout: float, threads: int | None,
           limits: sandbox.Limits | None) -> None:
    check_functions = set()
    for cells in reference.check_cells.values():
        for cell in cells:
            check_functions |= set(re.findall(r"\bcheck_\w+", cell.source))
    flagged = {name: reasons for name, source in matched.sources.items()
               if (reasons := suspicious(source, check_functions))}
    # Suspicious code is not run: it could change what the other exercises' checks print.
    sources = {name: (None if name in flagged else source)
               for name, source in matched.sources.items()}
    added: dict[str | None, list[str]] = {}
    for after, cells in matched.added.items():
        for cell in cells:
            if reasons := suspicious(cell.source, check_functions):
                report.notes.append(f"cell {cell.number}, which the learner added, was not run: "
                                    + "; ".join(reasons))
            else:
                added.setdefault(after, []).append(cell.source)
    grading = _Grading(reference, folder, cell_timeout, total_timeout, threads, limits, added,
                       probes.probed(reference.lesson) & set(reference.exercises))
    run, roles, seed = _run(grading, sources)
    report.sandbox = run.sandbox
    report.cpu_seconds = run.cpu_seconds
    if run.out_of_memory:
        report.notes.append(f"the notebook's code went past the memory cap of "
                            f"{limits.memory_gib:g} GiB, and the process that did was stopped")
    if run.cells[0].outcome != PASSED:
        report.warnings.append("the grader's prologue failed, so tampering at run time was not "
                               f"watched for ({run.cells[0].error or run.cells[0].outcome})")
    if all(c.outcome == "not run" for c in run.cells) and not run.overall_timeout:
        report.error = f"nbval could not run the graded copy; its output ended:\n{run.log}"
        return
    results = {}
    for name in reference.exercises:
        if name in matched.missing:
            results[name] = ExerciseResult(name, "missing", "exercise cell missing")
        elif name in flagged:
            results[name] = ExerciseResult(
                name, "suspicious",
                "suspicious code, not run: " + "; ".join(flagged[name])
                + " (an instructor should read this cell)")
        elif not reference.check_cells.get(name):
            report.notes.append(f"exercise {name!r} has no check cell in the reference; it is "
                                "not graded")
        else:
            results[name] = _judged(grading, name, matched.sources[name], run, roles, seed)
    _judge_on_their_own(grading, sources, results, report)
    for name, result in results.items():
        result.points = _points(reference, name)
    report.exercises = list(results.values())
    report.notes += _other_cell_notes(roles, run, results)


def _points(reference: Reference, name: str) -> float:
    """What an exercise is worth: its cell's ``points`` metadata in the reference, else 1."""
    value = reference.exercise_cells[name].metadata.get("points", 1)
    return float(value) if isinstance(value, (int, float)) and value >= 0 else 1.0


# Failures that another exercise's answer cannot have caused.
_OWN_FAULT = ("missing", "suspicious", REFUSED, "timed out", "not run")


def _judge_on_their_own(grading: _Grading, sources: dict[str, str | None], results: dict,
                        report: Report) -> None:
    """Grade again each failed exercise that follows a failed one, with the reference's answers
    to the earlier failed exercises in place of the learner's: an exercise is judged on its own,
    not failed by an earlier wrong answer it builds on (lesson 01's module calls the learner's
    descriptors). One more run per set of earlier failures, only for notebooks that have them."""
    order = grading.reference.exercises
    groups: dict[tuple[str, ...], list[str]] = {}
    for index, name in enumerate(order):
        if (name not in results or results[name].passed or results[name].status in _OWN_FAULT
                or _is_stub(sources.get(name) or "", name)):
            continue
        earlier = tuple(e for e in order[:index] if e in results and not results[e].passed)
        if earlier:
            groups.setdefault(earlier, []).append(name)
    for earlier, names in groups.items():
        alone = dict(sources)
        for exercise in earlier:
            alone[exercise] = grading.reference.exercise_cells[exercise].source
        run, roles, seed = _run(grading, alone)
        given = ", ".join(earlier)
        for name in names:
            before = results[name]
            after = _judged(grading, name, sources[name] or "", run, roles, seed)
            if after.passed:
                after.hint = (f"passes on its own: graded with the reference's {given} in place "
                              f"of yours, since with yours it failed ({before.hint})")
                report.notes.append(f"{name!r} was graded with the reference's {given}: with "
                                    f"the learner's own it failed, so {given} is what to fix")
            results[name] = after


# --- several submissions ----------------------------------------------------------------------


def find_submissions(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(notebook, name in the gradebook) for each file given and each notebook under a folder."""
    found = []
    for given in map(Path, paths):
        if given.is_dir():
            for path in sorted(given.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in path.parts:
                    found.append((path, path.relative_to(given).as_posix()))
        else:
            found.append((given, str(given)))
    return found


def student_of(name: str) -> str:
    """The student a submission belongs to: the folder that holds it when the notebook keeps
    its lesson's file name (``s017/01_channel_attention.ipynb`` -> ``s017``), else the
    notebook's own name (``alice.ipynb`` -> ``alice``)."""
    path = Path(name)
    if re.match(r"\d\d_", path.stem) and len(path.parts) > 1:
        return path.parent.name
    return path.stem


def grade_many(
    submissions: Sequence[tuple[Path, str]], *, jobs: int | None = None, **options: object
) -> list[Report]:
    """Grade several notebooks, ``jobs`` nbval runs at a time; reports in the given order."""
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(submissions) or 1))
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(grade_submission, path, name=name, threads=threads, **options)
                   for path, name in submissions]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- command line -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cbam-course grade",
        description="Grade submitted lesson notebooks against the executed reference notebooks "
                    "(only the exercise cells are taken from a submission).",
    )
    parser.add_argument("paths", nargs="+", metavar="SUBMISSION.ipynb|FOLDER",
                        help="notebooks to grade; a folder is searched for *.ipynb")
    parser.add_argument("--lesson", metavar="NN", help="the lesson when a notebook does not say")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT, metavar="S",
                        help=f"seconds one cell may run (default {DEFAULT_CELL_TIMEOUT:g})")
    parser.add_argument("--total-timeout", type=float, default=DEFAULT_TOTAL_TIMEOUT,
                        metavar="S", help="seconds one whole notebook may run (default "
                                          f"{DEFAULT_TOTAL_TIMEOUT:g})")
    parser.add_argument("--solutions", metavar="DIR",
                        help="folder of executed reference notebooks (default: $CBAM_SOLUTIONS, "
                             "else the course repository's solutions/)")
    parser.add_argument("--gradebook", metavar="OUT.csv|OUT.json",
                        help="write one row per submission, a column per exercise")
    parser.add_argument("--summary", metavar="OUT.md|OUT.html",
                        help="write a class report: pass rates, the mistakes the checks named "
                             "and how often, flagged submissions, a chart")
    parser.add_argument("--feedback", metavar="DIR",
                        help="write a page a learner can read for each notebook (HTML), under "
                             "DIR at the notebook's own path")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="notebooks graded at once (default: the number of CPUs)")
    parser.add_argument("--memory", type=float, default=sandbox.DEFAULT_MEMORY_GIB,
                        metavar="GIB", help="memory cap of one notebook's sandbox (default "
                                            f"{sandbox.DEFAULT_MEMORY_GIB:g} GiB)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run the notebooks' code without a sandbox, with your permissions: "
                             "only for work you trust (the report says so)")
    return parser


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM or SIGINT: end every sandbox now, let the workers clean up, exit."""
    RUNNING.end_all()
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.timeout <= 0 or args.total_timeout <= 0:
        print("cbam-course grade: --timeout and --total-timeout must be positive seconds",
              file=sys.stderr)
        return 2
    if args.gradebook and Path(args.gradebook).suffix.lower() not in (".csv", ".json"):
        print(f"cbam-course grade: --gradebook must end in .csv or .json, got {args.gradebook}",
              file=sys.stderr)
        return 2
    if args.summary and Path(args.summary).suffix.lower() not in SUMMARY_SUFFIXES:
        print(f"cbam-course grade: --summary must end in .md or .html, got {args.summary}",
              file=sys.stderr)
        return 2
    if not args.memory > 0:
        print(f"cbam-course grade: --memory must be a positive number of GiB, got {args.memory}",
              file=sys.stderr)
        return 2
    if not args.no_sandbox and (why := sandbox.available()) is not None:
        print(f"cbam-course grade: no sandbox can be made here: {why}. A submission is code "
              "that would run with your permissions; grade only work you trust with "
              "--no-sandbox", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"cbam-course grade: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    submissions = find_submissions(args.paths)
    if not submissions:
        print(f"cbam-course grade: no notebooks (*.ipynb) in {', '.join(args.paths)}",
              file=sys.stderr)
        return 2
    # Told to stop, the grader ends its sandboxes before it exits (from the main thread only,
    # where Python lets a program handle signals).
    before = ({signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)}
              if threading.current_thread() is threading.main_thread() else {})
    try:
        reports = grade_many(submissions, jobs=args.jobs, lesson=args.lesson,
                             solutions=args.solutions, cell_timeout=args.timeout,
                             total_timeout=args.total_timeout,
                             limits=sandbox.Limits(memory_gib=args.memory),
                             trusted=args.no_sandbox)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    book = gradebook(reports)  # the numbers of the gradebook and of the summary, once
    if args.gradebook:
        write_gradebook(book, Path(args.gradebook))
    if args.summary:
        write_summary(book, Path(args.summary))
    if args.feedback:
        write_feedback(reports, Path(args.feedback))
    single = len(reports) == 1 and not Path(args.paths[0]).is_dir()
    if args.json:
        data = reports[0].to_dict() if single else [r.to_dict() for r in reports]
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(errors="replace")  # a terminal without ✓/✗ still reads
        print("\n\n".join(r.to_text() for r in reports))
        if not single:
            total = sum(r.exit_code == 0 for r in reports)
            print(f"\n{total} of {len(reports)} submission(s) passed every exercise")
        if args.gradebook:
            print(f"gradebook written to {args.gradebook}")
        if args.summary:
            print(f"class report written to {args.summary}")
        if args.feedback:
            print(f"feedback written to {args.feedback}/, one page per notebook")
    return max(r.exit_code for r in reports)
