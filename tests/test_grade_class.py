"""A realistic class, graded as an instructor hands grades back: a gradebook row per student,
a feedback page per notebook, and honest work graded right however it was saved.

Six students hand in lesson 01 (one also lesson 02), saved the ways notebooks reach an
instructor: untouched learner notebooks filled in, a notebook copied into a new one (cell ids
and metadata regenerated) with a helper in a cell of its own, a Colab export, a JupyterLab save
with its outputs, a blank one, and one whose first exercise is wrong while the later ones are
right. One run of the real command grades them all, in the sandbox.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cbam.course.grading import sandbox

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS, NOTEBOOKS = ROOT / "solutions", ROOT / "notebooks"
LESSON01, LESSON02 = "01_channel_attention.ipynb", "02_spatial_attention.ipynb"

pytestmark = pytest.mark.skipif(
    sandbox.available() is not None and os.environ.get("CBAM_REQUIRE_SANDBOX") != "1",
    reason=f"the grader runs each notebook in a sandbox, and none can be made here: "
           f"{sandbox.available()}",
)

WRONG_DESCRIPTORS = """def channel_descriptors(x):
    return x.sum(dim=(2, 3)), x.amax(dim=(2, 3))
"""
HELPER = """def _pool_pair(x):
    return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
"""
USES_HELPER = """def channel_descriptors(x):
    return _pool_pair(x)
"""


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _solved(lesson_file: str, **replaced: str) -> dict:
    """The learner notebook with the reference's answers, except those ``replaced``."""
    answers = {c["metadata"]["exercise"]: "".join(c["source"])
               for c in _load(SOLUTIONS / lesson_file)["cells"]
               if "exercise" in c.get("metadata", {})}
    answers.update({k.replace("_", "-"): v for k, v in replaced.items()})
    notebook = copy.deepcopy(_load(NOTEBOOKS / lesson_file))
    for cell in notebook["cells"]:
        name = cell.get("metadata", {}).get("exercise")
        if name in answers:
            cell["source"] = answers[name]
    return notebook


def _regenerated(notebook: dict) -> dict:
    """Copied cell by cell into a new notebook: new ids, no metadata; a helper cell added."""
    fresh = nbformat.v4.new_notebook()
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell.get("metadata", {}).get("exercise") == "channel-descriptors":
            fresh.cells.append(nbformat.v4.new_code_cell(HELPER))
            source = USES_HELPER
        make = (nbformat.v4.new_code_cell if cell["cell_type"] == "code"
                else nbformat.v4.new_markdown_cell)
        fresh.cells.append(make(source))
    fresh.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    return fresh


def _colab_export(notebook: dict) -> dict:
    """As File > Download .ipynb gives it: Colab's own cell ids in the metadata, no cell ids,
    the lesson metadata kept at the notebook level, outputs saved."""
    exported = copy.deepcopy(notebook)
    exported["nbformat_minor"] = 0
    exported["metadata"] = {"colab": {"provenance": []}, "kernelspec": {"name": "python3",
                                                                      "display_name": "Python 3"},
                            "cbam": notebook["metadata"].get("cbam", {}),
                            "accelerator": "GPU"}
    for number, cell in enumerate(exported["cells"]):
        cell.pop("id", None)
        cell["metadata"] = {"id": f"x{number:04d}Colab"}
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["saved\n"]}]
    return exported


def _with_outputs(notebook: dict) -> dict:
    """A JupyterLab save after running: execution counts and outputs everywhere."""
    saved = copy.deepcopy(notebook)
    for number, cell in enumerate(saved["cells"]):
        if cell["cell_type"] == "code":
            cell["execution_count"] = number
            cell["outputs"] = [{"output_type": "stream", "name": "stdout",
                                "text": ["✓ whatever was printed when it ran\n"]}]
    return saved


# student -> {notebook file: (notebook, expected points)}
def _class() -> dict[str, dict[str, tuple[dict, int]]]:
    return {
        "s01": {LESSON01: (_solved(LESSON01), 3), LESSON02: (_solved(LESSON02), 3)},
        "s02": {LESSON01: (_solved(LESSON01, channel_descriptors=WRONG_DESCRIPTORS), 2)},
        "s03": {LESSON01: (_load(NOTEBOOKS / LESSON01), 0)},
        "s04": {LESSON01: (_regenerated(_solved(LESSON01)), 3)},
        "s05": {LESSON01: (_colab_export(_solved(LESSON01)), 3)},
        "s06": {LESSON01: (_with_outputs(_solved(LESSON01)), 3)},
    }


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    if not all((folder / name).exists() for folder in (SOLUTIONS, NOTEBOOKS)
               for name in (LESSON01, LESSON02)):
        pytest.skip("lessons 01 and 02 are not built; run `cbam-course build`")
    root = tmp_path_factory.mktemp("class")
    submissions, expected = root / "submissions", {}
    for student, notebooks in _class().items():
        for name, (notebook, points) in notebooks.items():
            path = submissions / student / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")
            expected[f"{student}/{name}"] = points
    run = subprocess.run(
        [sys.executable, "-m", "cbam.course.cli", "grade", str(submissions), "--jobs", "2",
         "--timeout", "90", "--gradebook", str(root / "grades.csv"),
         "--feedback", str(root / "feedback"), "--json"],
        capture_output=True, text=True, timeout=1500, check=False)
    assert run.stdout, run.stderr[-3000:]
    reports = {r["submission"]: r for r in json.loads(run.stdout)}
    with (root / "grades.csv").open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    return {"run": run, "reports": reports, "expected": expected, "rows": rows, "root": root}


def test_each_notebook_gets_the_points_its_work_earns(graded_class):
    got = {name: report["points"] for name, report in graded_class["reports"].items()}
    assert got == graded_class["expected"], {
        name: [(e["name"], e["status"], e["hint"][:200]) for e in r["exercises"]]
        for name, r in graded_class["reports"].items()
        if r["points"] != graded_class["expected"][name]}


def test_a_right_exercise_is_not_failed_by_an_earlier_wrong_one(graded_class):
    report = graded_class["reports"][f"s02/{LESSON01}"]
    status = {e["name"]: e["status"] for e in report["exercises"]}
    assert status == {"channel-descriptors": "failed", "shared-mlp": "passed",
                      "channel-attention": "passed"}
    assert any("graded with the reference's channel-descriptors" in n for n in report["notes"])


def test_regenerated_cells_are_found_and_a_helper_cell_is_kept(graded_class):
    report = graded_class["reports"][f"s04/{LESSON01}"]
    assert report["score"] == 3, report["exercises"]
    assert any("found by what they define" in note for note in report["notes"])
    assert any("were run in their place" in note for note in report["notes"])


def test_the_gradebook_has_one_row_per_student_with_points_and_statuses(graded_class):
    rows = {row["student"]: row for row in graded_class["rows"]}
    assert sorted(rows) == ["s01", "s02", "s03", "s04", "s05", "s06"]
    assert (rows["s01"]["lesson 01"], rows["s01"]["lesson 02"], rows["s01"]["total"],
            rows["s01"]["out_of"]) == ("3", "3", "6", "6")
    assert (rows["s02"]["channel-descriptors"], rows["s02"]["channel-descriptors status"],
            rows["s02"]["channel-attention status"]) == ("0", "failed", "passed")
    assert rows["s03"]["channel-attention status"] == "not implemented"
    assert rows["s03"]["lesson 02"] == "0"  # handed nothing in for lesson 02
    assert {row["sandbox"] for row in rows.values()} == {"yes"}


def test_a_feedback_page_per_notebook_opens_in_chromium(graded_class):
    from browser import notebook_page as nb

    if not Path(nb.CHROMIUM).exists():
        if os.environ.get("CBAM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CBAM_REQUIRE_BROWSER=1 but there is no Chromium at {nb.CHROMIUM}")
        pytest.skip(f"no Chromium at {nb.CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    folder = graded_class["root"] / "feedback"
    pages = sorted(folder.rglob("*.html"))
    assert [p.relative_to(folder).as_posix() for p in pages] == sorted(
        name.replace(".ipynb", ".html") for name in graded_class["expected"])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=nb.CHROMIUM, args=nb.CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True)
            for path in pages:
                name = path.relative_to(folder).with_suffix(".ipynb").as_posix()
                page = context.new_page()
                page.goto(path.as_uri())
                points = graded_class["expected"][name]
                assert page.locator("p.score").inner_text().startswith(f"{points} of 3 points")
                rows = page.locator("table tr").count()
                assert rows == 4  # a header and one row per exercise
                text = page.locator("body").inner_text()
                others = {s for s in ("s01", "s02", "s03", "s04", "s05", "s06")
                          if s != name.split("/")[0]}
                assert not any(other in text for other in others)
                page.close()
        finally:
            browser.close()
    wrong = (folder / "s02" / LESSON01).with_suffix(".html").read_text(encoding="utf-8")
    assert "avg is the sum over H and W" in wrong
