"""``cbam-course grade``: every exercise judged by the reference's checks, never by saved outputs.

Two sets of submissions are graded, each in one folder call of the command (two nbval runs at a
time): the course's own lessons (references, untouched learner notebooks, wrong and right
implementations from tests/grading_fixtures/) and a small test lesson built here
(tests/grading_fixtures/91_grading_fixture.py) for what the lessons must never contain: missing
and duplicated cells, hangs, tampering. Inputs that cannot be graded are tried without a run.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import csv
import io
import json
import os
import re
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbclient
import nbformat
import pytest
import torch

import cbam.checks.report
from cbam.course.grading import grader as grade
from cbam.course.grading import sandbox as grading_sandbox
from cbam.course.grading.grader import main
from cbam.course.grading.kernel_guard import ExecutionGuard
from cbam.course.grading.notebook import read_notebook
from cbam.course.grading.references import load_reference
from cbam.course.grading.submission import match_exercises
from cbam.course.grading.tamper import suspicious

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "grading_fixtures"
SOLUTIONS, NOTEBOOKS = ROOT / "solutions", ROOT / "notebooks"
COURSE_LESSONS = ("00", "01", "02", "03", "04")  # graded on every run: seconds each
LONG_LESSONS = ("05", "06", "07", "08")  # minutes each: graded when asked for
FIXTURE_TIMEOUT = 8  # s per cell for the test lesson, whose cells take well under a second

# snippet -> (lesson, the exercise it gets wrong)
WRONG = {
    "channel_sigmoid_each_branch": ("01", "channel-attention"),
    "channel_avg_only": ("01", "channel-attention"),
    "channel_unshared_mlps": ("01", "channel-attention"),
    "channel_returns_map": ("01", "channel-attention"),
    "spatial_fixed_padding": ("02", "spatial-attention"),
    "spatial_no_sigmoid": ("02", "spatial-attention"),
    "block_spatial_first": ("03", "cbam-block"),
    "resnet_attention_after_add": ("04", "attention-block"),
}
# snippet -> (lesson, the exercise it hands to cbam, what the refusal says)
SHORTCUTS = {
    "shortcut_channel_alias": ("01", "channel-attention",
                               "ChannelAttention is cbam's own class cbam.ChannelAttention: "
                               "write it yourself"),
    "shortcut_channel_built_name": ("01", "channel-attention",
                                    "ChannelAttention is cbam's own class"),
    "shortcut_block_wrapper": ("03", "cbam-block",
                               "CBAM delegates its forward to cbam.CBAM.forward: write it "
                               "yourself"),
}
# submission -> (lesson, {exercise: snippet}): right, but not the reference's way
RIGHT = {
    "01_other_ways": ("01", {"channel-descriptors": "channel_descriptors_adaptive",
                             "channel-attention": "channel_conv_mlp"}),
    "02_other_ways": ("02", {"spatial-attention": "spatial_other_names"}),
}


def snippet(name: str) -> str:
    return (FIXTURES / f"{name}.py").read_text(encoding="utf-8")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def save(notebook: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def exercise_sources(notebook: dict) -> dict[str, str]:
    return {c["metadata"]["exercise"]: "".join(c["source"]) for c in notebook["cells"]
            if "exercise" in c.get("metadata", {})}


def with_sources(notebook: dict, sources: dict[str, str]) -> dict:
    """A copy of ``notebook`` whose exercise cells hold ``sources``."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook["cells"]:
        name = cell.get("metadata", {}).get("exercise")
        if name in sources:
            cell["source"] = sources[name]
    return notebook


def cell_index(notebook: dict, *, exercise: str | None = None, check: str | None = None) -> int:
    for index, cell in enumerate(notebook["cells"]):
        metadata = cell.get("metadata", {})
        if (exercise and metadata.get("exercise") == exercise) or (
                check and metadata.get("check") == check):
            return index
    raise LookupError(f"no cell for exercise={exercise} check={check}")


def fingerprints(folder: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*.ipynb"))}


@dataclass
class Graded:
    """One folder call: its exit status, what it printed, its reports by submission name."""

    status: int
    printed: str
    reports: dict[str, dict]
    gradebook: Path


def needs_sandbox() -> None:
    """Grading runs each notebook in a sandbox: skip, saying why, where none can be made (CI sets
    CBAM_REQUIRE_SANDBOX=1 and installs bubblewrap, so that there these tests never skip)."""
    why = grading_sandbox.available()
    if why is not None and os.environ.get("CBAM_REQUIRE_SANDBOX") != "1":
        pytest.skip(f"the grader runs each notebook in a sandbox, and none can be made here: {why}")


def grade_folder(folder: Path, *args: str, gradebook: Path) -> Graded:
    needs_sandbox()
    before = fingerprints(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main([str(folder), "--jobs", "2", "--gradebook", str(gradebook), *args])
    # The submissions are only ever read: same bytes, same modification time.
    assert fingerprints(folder) == before
    printed = out.getvalue()
    if "--json" in args:
        reports = {r["submission"]: r for r in json.loads(printed)}
    else:
        reports = {r["submission"]: r for r in json.loads(gradebook.read_text())["reports"]}
    return Graded(status, printed, reports, gradebook)


def exercises(report: dict) -> dict[str, dict]:
    return {e["name"]: e for e in report["exercises"]}


# ---------------------------------------------------------------------------------------------
# The course's lessons


def _built(lesson: str) -> Path | None:
    found = sorted(SOLUTIONS.glob(f"{lesson}_*.ipynb"))
    return found[0] if found else None


def _needs(lesson: str) -> Path:
    reference = _built(lesson)
    if reference is None or not (NOTEBOOKS / reference.name).exists():
        pytest.skip(f"lesson {lesson} is not built yet (no solutions/{lesson}_*.ipynb and "
                    f"notebooks/{lesson}_*.ipynb); run `cbam-course build`")
    return reference


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Graded:
    """The course's references, learner notebooks, wrong and right solutions: one folder call."""
    folder = tmp_path_factory.mktemp("course") / "submissions"
    built = [lesson for lesson in COURSE_LESSONS if _built(lesson)
             and (NOTEBOOKS / _built(lesson).name).exists()]
    if not built:
        pytest.skip("no lesson is built yet (solutions/NN_*.ipynb); run `cbam-course build`")
    for lesson in built:
        reference = _built(lesson)
        for kind, source in (("reference", reference), ("learner", NOTEBOOKS / reference.name)):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(source, folder / kind / reference.name)
    for name, (lesson, exercise) in WRONG.items():
        if lesson in built:
            reference = load(_built(lesson))
            sources = exercise_sources(reference) | {exercise: snippet(name)}
            learner = load(NOTEBOOKS / _built(lesson).name)
            save(with_sources(learner, sources), folder / "wrong" / f"{name}.ipynb")
    for name, (lesson, exercise, _) in SHORTCUTS.items():
        if lesson in built:
            sources = exercise_sources(load(_built(lesson))) | {exercise: snippet(name)}
            save(with_sources(load(NOTEBOOKS / _built(lesson).name), sources),
                 folder / "shortcut" / f"{name}.ipynb")
    if "01" in built:  # a mistake made twice, for the class report's counts
        sources = exercise_sources(load(_built("01"))) | {
            "channel-attention": snippet("channel_sigmoid_each_branch")}
        save(with_sources(load(NOTEBOOKS / _built("01").name), sources),
             folder / "wrong" / "channel_sigmoid_each_branch_again.ipynb")
    for name, (lesson, replaced) in RIGHT.items():
        if lesson in built:
            reference = load(_built(lesson))
            sources = exercise_sources(reference) | {e: snippet(s) for e, s in replaced.items()}
            learner = load(NOTEBOOKS / _built(lesson).name)
            save(with_sources(learner, sources), folder / "right" / f"{name}.ipynb")
    return grade_folder(folder, "--summary", str(folder.parent / "class.html"),
                        gradebook=folder.parent / "gradebook.json")


def _report(course: Graded, name: str) -> dict:
    assert name in course.reports, f"{name} was not graded; graded: {sorted(course.reports)}"
    return course.reports[name]


@pytest.mark.parametrize("lesson", COURSE_LESSONS)
def test_every_reference_solution_scores_full_marks(course, lesson, figures):
    reference = _needs(lesson)
    report = _report(course, f"reference/{reference.name}")
    failed = {e["name"]: e["hint"] for e in report["exercises"] if not e["passed"]}
    assert report["out_of"] > 0 and not failed, failed
    assert report["exit_code"] == 0 and report["lesson"] == lesson
    figures(f"grading lesson {lesson}'s reference (two notebooks graded at a time)",
            f"{report['seconds']:.1f} s (budget 30 s)")


@pytest.mark.parametrize("lesson", LONG_LESSONS)
def test_the_long_lessons_references_score_full_marks(lesson, figures):
    if not os.environ.get("CBAM_GRADE_LONG_LESSONS"):
        pytest.skip("lessons 05-08 train, profile and time for minutes each; set "
                    "CBAM_GRADE_LONG_LESSONS=1 to grade their references too")
    reference = _needs(lesson)
    needs_sandbox()
    report = grade.grade_submission(reference)
    assert report.score == report.out_of > 0, report.to_text()
    figures(f"grading lesson {lesson}'s reference (alone)", f"{report.seconds:.1f} s")


def test_time_to_grade_one_lesson(figures):
    """Lesson 01's reference graded alone: the time an instructor waits for one notebook."""
    reference = _needs("01")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    needs_sandbox()
    report = grade.grade_submission(reference)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # A sandbox's processes are counted by its cgroup: rusage stops at its pid namespace.
    cpu = report.cpu_seconds
    if cpu is None:
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert report.score == report.out_of > 0, report.to_text()
    figures("grading one lesson (01's reference, alone)",
            f"{report.seconds:.1f} s wall, {cpu:.1f} s CPU (pytest, nbval and the kernel); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; budget 30 s")


@pytest.mark.parametrize("lesson", COURSE_LESSONS)
def test_every_untouched_learner_notebook_scores_zero(course, lesson):
    reference = _needs(lesson)
    report = _report(course, f"learner/{reference.name}")
    assert report["score"] == 0 and report["exit_code"] == 1
    assert [e["name"] for e in report["exercises"]] == load_reference(reference).exercises
    for result in report["exercises"]:
        assert (result["status"], result["hint"]) == ("not implemented", "not implemented")
    assert re.search(r"FAIL\s+\S+\s+not implemented", course.printed)


@pytest.mark.parametrize("name", WRONG)
def test_a_wrong_implementation_fails_its_exercise_only(course, name):
    lesson, exercise = WRONG[name]
    _needs(lesson)
    results = exercises(_report(course, f"wrong/{name}.ipynb"))
    wrong = results.pop(exercise)
    assert wrong["status"] == "failed", wrong
    # The hint is what the check printed, not a generic message.
    assert wrong["hint"] and "not implemented" not in wrong["hint"]
    assert any(line.startswith("✗") for line in wrong["lines"])
    assert all(r["passed"] for r in results.values()), results


@pytest.mark.parametrize("name", SHORTCUTS)
def test_cbams_own_solution_fails_its_exercise_with_the_hint(course, name):
    lesson, exercise, hint = SHORTCUTS[name]
    _needs(lesson)
    results = exercises(_report(course, f"shortcut/{name}.ipynb"))
    refused = results.pop(exercise)
    assert refused["status"] == "refused" and hint in refused["hint"], refused
    assert all(r["passed"] for r in results.values()), results


def test_the_class_report_counts_the_named_mistakes(course):
    _needs("01")
    page = (course.gradebook.parent / "class.html").read_text(encoding="utf-8")
    assert "class report written to" in course.printed
    # Made by two submissions, and named by the check's own words.
    assert ('<span class="count">2 ×</span> a sigmoid on each branch, then summed: add the two '
            "MLP outputs first, then apply one sigmoid") in page
    assert '<span class="count">1 ×</span> only the average-pooled descriptor is used' in page
    assert "shortcut/shortcut_channel_alias.ipynb, channel-attention: refused as a shortcut: " \
           "ChannelAttention is cbam&#x27;s own class cbam.ChannelAttention" in page
    # The pass rates are the gradebook's.
    book = json.loads(course.gradebook.read_text())
    rows = [r for r in book["rows"] if r["lesson"] == "01"]
    passed = sum(r["channel-attention"] for r in rows)
    assert (f'<tr data-exercise="channel-attention"><td>channel-attention</td>'
            f'<td class="number">{passed} of {len(rows)}</td>') in page


def test_the_class_report_opens_in_chromium_without_a_network(course):
    _needs("01")
    from browser import notebook_page as nb

    if not Path(nb.CHROMIUM).exists():
        if os.environ.get("CBAM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CBAM_REQUIRE_BROWSER=1 but there is no Chromium at {nb.CHROMIUM}")
        pytest.skip(f"no Chromium at {nb.CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    page_path = course.gradebook.parent / "class.html"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=nb.CHROMIUM, args=nb.CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()
            fetched = []
            page.on("request", lambda request: fetched.append(request.url))
            page.goto(page_path.as_uri())
            charts = page.locator("img.chart")
            assert charts.count() == len({r["lesson"] for r in course.reports.values()
                                          if r["lesson"]})
            # Each chart decoded: a width in pixels, drawn from the data inside the file.
            widths = charts.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
            assert all(w and w > 100 for w in widths), widths
            assert page.locator("section#lesson-01 ul.mistakes li").count() >= 4
            assert all(url.startswith(("file:", "data:")) for url in fetched), fetched
        finally:
            browser.close()


@pytest.mark.parametrize("name", RIGHT)
def test_right_implementations_in_other_ways_pass(course, name):
    lesson, _ = RIGHT[name]
    _needs(lesson)
    report = _report(course, f"right/{name}.ipynb")
    assert report["score"] == report["out_of"] > 0, (report["error"], report["exercises"])


def test_the_gradebook_has_a_row_per_submission_and_a_column_per_exercise(course):
    book = json.loads(course.gradebook.read_text())
    assert len(book["rows"]) == len(course.reports)
    for row in book["rows"]:
        report = course.reports[row["submission"]]
        for result in report["exercises"]:
            assert row[result["name"]] == int(result["passed"])
        assert row["score"] == report["score"]
    assert course.status == 1  # some submissions fail
    assert "gradebook written to" in course.printed


# ---------------------------------------------------------------------------------------------
# A test lesson, built here: missing cells, hangs, tampering


STUB = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION\n?", re.M | re.S)


def _learner_version(reference: nbformat.NotebookNode) -> nbformat.NotebookNode:
    learner = copy.deepcopy(reference)
    for cell in learner.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        name = cell.metadata.get("exercise")
        if name:
            cell.source = STUB.sub(
                lambda m, name=name: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError("
                                     f"\"exercise {name}: see above\")\n", cell.source)
    return learner


def execute(notebook: nbformat.NotebookNode, folder: Path) -> None:
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()


@dataclass
class BuiltLesson:
    solutions: Path
    reference: dict
    learner: dict


@pytest.fixture(scope="module")
def lesson91(tmp_path_factory) -> BuiltLesson:
    """Lesson 91 (executed reference and learner notebook) and a lesson 92 beside it."""
    solutions = tmp_path_factory.mktemp("lessons") / "solutions"
    solutions.mkdir()
    shutil.copy(FIXTURES / "fixture_checks.py", solutions)
    notebook = jupytext.read(FIXTURES / "91_grading_fixture.py")
    notebook.metadata["cbam"] = {"lesson": "91", "slug": "grading_fixture",
                                 "course_version": "test-1"}
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    for index, cell in enumerate(notebook.cells):
        cell.id = cell.metadata.get("exercise") or f"cell-{index}"
    execute(notebook, solutions)
    nbformat.write(notebook, solutions / "91_grading_fixture.ipynb")
    other = copy.deepcopy(notebook)  # another lesson: other exercise names, no need to run
    other.metadata["cbam"].update(lesson="92", slug="other_fixture")
    for cell in other.cells:
        if "exercise" in cell.metadata:
            cell.metadata["exercise"] = cell.id = "other-" + cell.metadata["exercise"]
        if "check" in cell.metadata:
            cell.metadata["check"] = "other-" + cell.metadata["check"]
    nbformat.write(other, solutions / "92_other_fixture.ipynb")
    return BuiltLesson(solutions, json.loads(nbformat.writes(notebook)),
                      json.loads(nbformat.writes(_learner_version(notebook))))


def _edge_cases(lesson: BuiltLesson) -> dict:
    """Missing, duplicated, broken and extra cells, edited and deleted checks, forged outputs."""
    right = exercise_sources(lesson.reference)
    notebook = with_sources(lesson.learner, right | {
        "cbam-block": "class CBAM(nn.Module:\n    pass\n",  # a syntax error
    })
    outputs = {c["id"]: c.get("outputs", []) for c in lesson.reference["cells"]}
    for cell in notebook["cells"]:  # every cell shows the reference's ✓ lines
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = outputs.get(cell["id"], []), 1
    cells = notebook["cells"]
    check = cells[cell_index(notebook, check="cbam-block")]
    check["source"] = 'print("✓ cbam-block: CBAM(16, 4, 7) is channel attention, then spatial")\n'
    del cells[cell_index(notebook, check="attention-in-block")]
    spatial = cell_index(notebook, exercise="spatial-attention")
    first_try = copy.deepcopy(cells[spatial])
    first_try["source"], first_try["id"] = snippet("spatial_fixed_padding"), "first-try"
    cells.insert(spatial, first_try)  # the wrong first try comes first; the last one counts
    del cells[cell_index(notebook, exercise="channel-attention")]
    cells.append({"cell_type": "code", "execution_count": None, "id": "bonus",
                  "metadata": {"exercise": "bonus-exercise", "tags": ["exercise"]},
                  "outputs": [], "source": "bonus = 1\n"})
    cells.append({"cell_type": "code", "execution_count": None, "id": "mine", "metadata": {},
                  "outputs": [], "source": "helper = 2\n"})
    return notebook


@pytest.fixture(scope="module")
def graded_lesson91(lesson91, tmp_path_factory) -> Graded:
    folder = tmp_path_factory.mktemp("test-lesson") / "submissions"
    right = exercise_sources(lesson91.reference)
    save(_edge_cases(lesson91), folder / "edge_cases.ipynb")
    save(with_sources(lesson91.learner, right | {
        "channel-attention": snippet("fixture_hang_ignoring_interrupt"),
        "cbam-block": snippet("fixture_endless_forward"),
    }), folder / "hangs.ipynb")
    save(with_sources(lesson91.learner, right | {
        "channel-attention": snippet("fixture_kernel_exit"),
    }), folder / "kernel_exit.ipynb")
    save(with_sources(lesson91.learner, right | {
        "channel-attention": snippet("fixture_print_patch"),
        "spatial-attention": snippet("fixture_allclose_patch"),
    }), folder / "tampering.ipynb")
    own = nbformat.reads(json.dumps(with_sources(lesson91.learner, right | {
        "channel-attention": snippet("channel_avg_only")})), as_version=4)
    own.metadata["cbam"]["course_version"] = "test-0"  # an older copy, same exercises
    execute(own, lesson91.solutions)  # saved with its own outputs, ✗ lines and all
    nbformat.write(own, folder / "own_outputs.ipynb")
    return grade_folder(folder, "--json", "--solutions", str(lesson91.solutions),
                        "--timeout", str(FIXTURE_TIMEOUT),
                        gradebook=folder.parent / "gradebook.csv")


def test_a_wrong_solution_saved_with_its_own_outputs_still_fails(graded_lesson91):
    report = graded_lesson91.reports["own_outputs.ipynb"]
    results = exercises(report)
    assert results["channel-attention"]["status"] == "failed"
    assert "only the average pooling" in results["channel-attention"]["hint"]
    assert report["score"] == 3 and report["exit_code"] == 1
    assert "course version test-0" in report["warnings"][0]
    assert "exercise names match, so it was graded" in report["warnings"][0]


def test_missing_duplicated_broken_and_extra_cells_are_reported(graded_lesson91):
    report = graded_lesson91.reports["edge_cases.ipynb"]
    results = exercises(report)
    assert results["channel-attention"]["status"] == "missing"
    assert results["channel-attention"]["hint"] == "exercise cell missing"
    # The outputs copied from the reference (all ✓) did not help the broken exercise.
    assert results["cbam-block"]["hint"].startswith("the exercise cell raised SyntaxError")
    assert results["spatial-attention"]["passed"]  # its last cell, not the wrong first try
    assert results["attention-in-block"]["passed"]  # its deleted check cell was not needed
    assert report["score"] == 2
    notes = "\n".join(report["notes"])
    assert "'spatial-attention' appears in 2 cells" in notes
    assert "the check cell of 'cbam-block' was edited" in notes
    assert "the check cell of 'attention-in-block' is missing" in notes
    assert "'bonus-exercise', which lesson 91 does not have" in notes
    assert "1 code cell(s) not in the lesson" in notes


def test_hangs_time_out_and_the_other_exercises_are_still_graded(graded_lesson91):
    report = graded_lesson91.reports["hangs.ipynb"]
    results = exercises(report)
    assert report["score"] == 2, json.dumps(report, indent=1, ensure_ascii=False)
    # Swallowed interrupt: the kernel is replaced and the cells before are run again.
    assert results["channel-attention"]["status"] == "timed out"
    assert results["channel-attention"]["hint"] == f"timed out after {FIXTURE_TIMEOUT} s"
    assert results["spatial-attention"]["passed"]
    # An ordinary endless loop: interrupted, and nbval goes on in the same kernel.
    assert results["cbam-block"]["status"] == "timed out"
    assert results["attention-in-block"]["passed"]
    assert any("kernel was restarted 1 time" in note for note in report["notes"])


def test_a_kernel_that_dies_is_reported_as_dying_not_as_a_timeout(graded_lesson91):
    report = graded_lesson91.reports["kernel_exit.ipynb"]
    results = exercises(report)
    died = results["channel-attention"]
    assert died["status"] == "failed", died
    assert "the kernel died while the exercise's check ran (its code crashed or exited " \
           "Python); grading it took" in died["hint"]
    seconds = int(re.search(r"grading it took (\d+) s", died["hint"])[1])
    assert seconds < FIXTURE_TIMEOUT  # noticed at once, not after the cell's timeout
    assert "timed out" not in died["hint"]
    # The kernel was replaced and the later exercises graded as usual.
    assert results["spatial-attention"]["passed"] and results["cbam-block"]["passed"]


def test_tampering_is_flagged_and_does_not_spill_over(graded_lesson91):
    results = exercises(graded_lesson91.reports["tampering.ipynb"])
    assert results["channel-attention"]["status"] == "suspicious"
    assert "touches the builtins" in results["channel-attention"]["hint"]
    # torch.allclose patched under another name: the scan misses it, the run-time guard sees it.
    assert results["spatial-attention"]["status"] == "suspicious"
    assert "torch.allclose" in results["spatial-attention"]["hint"]
    assert results["cbam-block"]["passed"] and results["attention-in-block"]["passed"]


def test_the_csv_gradebook(graded_lesson91):
    with graded_lesson91.gradebook.open(newline="", encoding="utf-8") as stream:
        rows = {row["student"]: row for row in csv.DictReader(stream)}
    # Notebooks straight in the graded folder: each is its own student, by its name.
    assert set(rows) == {Path(name).stem for name in graded_lesson91.reports}
    row = rows["own_outputs"]
    assert (row["lesson 91"], row["out_of"], row["channel-attention"],
            row["channel-attention status"], row["cbam-block"]) == ("3", "4", "0", "failed", "1")
    assert row["failures"].startswith("own_outputs.ipynb: channel-attention: ")
    assert "only the average pooling" in row["failures"]
    assert graded_lesson91.status == 1


# ---------------------------------------------------------------------------------------------
# Input that cannot be graded: exit status 2 and a message, without running anything


def run_cli(*args: str) -> tuple[int, str, str]:
    needs_sandbox()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def test_malformed_json_is_refused_and_left_as_it_was(tmp_path, lesson91):
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [{"cell_type": "code", "source": "x = 1"', encoding="utf-8")
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    status, out, _ = run_cli(str(path), "--solutions", str(lesson91.solutions), "--json")
    assert status == 2
    report = json.loads(out)
    assert report["exit_code"] == 2 and "is not valid JSON" in report["error"]
    assert "line 1" in report["error"]
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize(("content", "message"), [
    ("", "is empty"),
    ("[1, 2]", "holds JSON list, not a Jupyter notebook"),
    ('{"metadata": {}}', "expected a 'cells' list"),
    ('{"worksheets": []}', "nbformat 3 notebook"),
])
def test_files_that_are_not_notebooks_are_refused(tmp_path, lesson91, content, message):
    path = tmp_path / "submission.ipynb"
    path.write_text(content, encoding="utf-8")
    status, out, _ = run_cli(str(path), "--solutions", str(lesson91.solutions))
    assert status == 2
    assert "cannot grade" in out and message in out


def test_a_notebook_of_another_lesson_is_refused(tmp_path, lesson91):
    other = load(lesson91.solutions / "92_other_fixture.ipynb")
    path = save(other, tmp_path / "92.ipynb")
    status, out, _ = run_cli(str(path), "--lesson", "91", "--solutions",
                             str(lesson91.solutions))
    assert status == 2
    assert "this is a notebook of lesson 92 (other_fixture), not of lesson 91" in out


def test_another_course_version_with_other_exercises_is_refused(tmp_path, lesson91):
    notebook = copy.deepcopy(lesson91.learner)
    notebook["metadata"]["cbam"]["course_version"] = "test-0"
    notebook["cells"][cell_index(notebook, exercise="cbam-block")]["metadata"]["exercise"] = (
        "cbam-module")
    notebook["cells"][cell_index(notebook, exercise="cbam-module")]["id"] = "cbam-module"
    status, out, _ = run_cli(str(save(notebook, tmp_path / "old.ipynb")), "--solutions",
                             str(lesson91.solutions))
    assert status == 2
    assert "from course version test-0, the reference from version test-1" in out
    assert "missing here: ['cbam-block']" in out and "['cbam-module']" in out


def test_a_notebook_that_names_no_lesson(tmp_path, lesson91):
    notebook = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {},
                           "outputs": [], "execution_count": None}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = save(notebook, tmp_path / "anything.ipynb")
    status, out, _ = run_cli(str(path), "--solutions", str(lesson91.solutions))
    assert status == 2 and "pass --lesson NN" in out
    status, out, _ = run_cli(str(path), "--lesson", "91", "--solutions",
                             str(lesson91.solutions))
    assert status == 2 and "none of lesson 91's exercise cells" in out


def test_the_lesson_is_inferred_from_exercise_names(lesson91):
    notebook = copy.deepcopy(lesson91.learner)
    del notebook["metadata"]["cbam"]
    path = save(notebook, lesson91.solutions.parent / "unnamed" / "x.ipynb")
    assert grade._infer_lesson(read_notebook(path), lesson91.solutions) == "91"


def test_an_unexecuted_reference_is_refused(tmp_path, lesson91):
    solutions = tmp_path / "solutions"
    reference = load(lesson91.solutions / "91_grading_fixture.ipynb")
    for cell in reference["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    save(reference, solutions / "91_grading_fixture.ipynb")
    path = save(lesson91.learner, tmp_path / "learner.ipynb")
    status, out, _ = run_cli(str(path), "--solutions", str(solutions))
    assert status == 2 and "is not executed" in out and "cbam-course build" in out


def test_a_notebook_past_the_overall_timeout_is_not_graded(tmp_path, lesson91):
    path = save(lesson91.reference, tmp_path / "slow.ipynb")
    needs_sandbox()
    report = grade.grade_submission(path, solutions=lesson91.solutions, total_timeout=2)
    assert report.exit_code == 1 and report.score == 0
    assert {e.status for e in report.exercises} == {"not run"}
    assert report.exercises[0].hint == "not graded: the whole notebook ran past 2 s"


def test_missing_solutions_and_missing_files(tmp_path, lesson91, monkeypatch):
    path = save(lesson91.learner, tmp_path / "learner.ipynb")
    status, out, _ = run_cli(str(path), "--solutions", str(tmp_path / "nowhere"))
    assert status == 2 and "no solutions folder at" in out
    monkeypatch.setenv("CBAM_SOLUTIONS", str(tmp_path))
    status, out, _ = run_cli(str(path))
    assert status == 2 and "no reference notebook for lesson 91" in out
    status, _, err = run_cli(str(tmp_path / "absent.ipynb"))
    assert status == 2 and "no such file or folder" in err
    status, _, err = run_cli(str(path), "--gradebook", "grades.xlsx")
    assert status == 2 and "must end in .csv or .json" in err


# ---------------------------------------------------------------------------------------------
# The parts, without a kernel


def test_matching_takes_the_metadata_then_the_cell_id(lesson91, tmp_path):
    notebook = copy.deepcopy(lesson91.learner)
    cell = notebook["cells"][cell_index(notebook, exercise="cbam-block")]
    del cell["metadata"]["exercise"]  # still found by its id
    cell["source"] = "found by id"
    path = save(notebook, tmp_path / "n.ipynb")
    reference = load_reference(lesson91.solutions / "91_grading_fixture.ipynb")
    matched = match_exercises(read_notebook(path), reference)
    assert matched.sources["cbam-block"] == "found by id" and not matched.missing
    assert not matched.notes


def test_the_guard_names_and_undoes_changes_to_what_the_checks_rely_on(monkeypatch):
    guard = ExecutionGuard()
    allclose = torch.allclose
    monkeypatch.setattr(torch, "allclose", lambda *args, **kwargs: True)
    monkeypatch.setattr(builtins, "print", len)
    monkeypatch.setattr(cbam.checks.report.run_checks, "__code__", (lambda e, c: True).__code__)
    # torch wrapping its own function (as importing torch._dynamo does) is not tampering.
    monkeypatch.setattr(torch, "manual_seed", torch._disable_dynamo(torch.manual_seed))
    changed = guard.changes()
    assert torch.allclose is allclose and builtins.print is not len
    assert set(changed) == {"torch.allclose", "builtins.print",
                            "cbam.checks.report.run_checks.__code__"}
    assert guard.changes() == []


@pytest.mark.parametrize("source", [
    "import cbam.checks.channel\ncbam.checks.channel.run_checks = None",
    "from cbam import checks",
    "import sys\nsys.modules['cbam.checks'] = None",
    "import builtins\nbuiltins.print = len",
    "print = lambda *a: None",
    "print('\\u2713 channel-attention: ok')",
    "print('✓ channel-attention: ok')",
    "print(chr(10003))",
    "import sys\nsys.stdout = open('/dev/null', 'w')",
    "get_ipython().input_transformers_post.append(f)",
    "exec('x = 1')",
    "torch.allclose = lambda *a, **k: True",
    "import inspect\ninspect.currentframe().f_back",
    "!pip install cheat",
    "check_channel_attention(ChannelAttention)",
])
def test_the_scan_flags_code_that_reaches_for_the_checks(source):
    assert suspicious(source, ["check_channel_attention"])


@pytest.mark.parametrize("source", [
    snippet("channel_conv_mlp"),
    snippet("spatial_other_names"),
    "model = torch.compile(model)\nmodel.eval()\ntorch.backends.cudnn.benchmark = True",
    "%timeit block(x)\n# the checks (cbam.checks) print ✓ or ✗",
    "if a != b:\n    print(f'{a} differs')",
])
def test_the_scan_leaves_ordinary_code_alone(source):
    assert suspicious(source, ["check_channel_attention"]) == []
