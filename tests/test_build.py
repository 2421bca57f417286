"""The lesson pipeline: stubbing, composing notebooks, and ``cbam-course build --check``.

Everything that edits files works on a copy in a temporary directory; the repository is only read.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from cbam.course.building import builder as build
from cbam.course.building import colab, config
from cbam.course.building.compose import learner_notebook, reference_notebook, to_text
from cbam.course.building.lessons import Lesson, LessonError, find_lessons, read_source
from cbam.course.building.stubs import MarkerError, find_blocks, solution_lines, stub_source

LESSON_00 = "00_tensors_and_shapes"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_build(capsys):
    """``cbam-course build ARGS --root ROOT``, in this process (torch is imported once)."""

    def run(*args: str, root: Path) -> Result:
        capsys.readouterr()
        code = build.main([*args, "--root", str(root)])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


# --- stubs ---------------------------------------------------------------------------------------


def test_stub_keeps_the_indentation_of_the_markers():
    source = (
        "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n"
    )
    assert stub_source(source, "add-one") == (
        "def f(x):\n"
        "    # YOUR CODE HERE\n"
        '    raise NotImplementedError("exercise add-one: write this part, then run the check '
        'cell below")'
    )


def test_stub_at_top_level_and_nested_deeper():
    source = (
        "### BEGIN SOLUTION\n"
        "a = 1\n"
        "### END SOLUTION\n"
        "class M:\n"
        "    def forward(self, x):\n"
        "        if x:\n"
        "            ### BEGIN SOLUTION\n"
        "            return x\n"
        "            ### END SOLUTION\n"
        "        return None\n"
    )
    lines = stub_source(source, "deep").splitlines()
    assert lines[0] == "# YOUR CODE HERE"
    assert lines[1].startswith('raise NotImplementedError("exercise deep: ')
    assert lines[2:5] == ["class M:", "    def forward(self, x):", "        if x:"]
    assert lines[5] == "            # YOUR CODE HERE"
    assert lines[6].startswith('            raise NotImplementedError("exercise deep: ')
    assert lines[7:] == ["        return None"]
    ast.parse("\n".join(lines))


def test_several_blocks_in_one_cell_keep_the_code_between_them():
    source = (
        "class Gate:\n"
        "    def __init__(self):\n"
        "        ### BEGIN SOLUTION\n"
        "        self.w = 2\n"
        "        ### END SOLUTION\n"
        "\n"
        "    def forward(self, x):\n"
        "        ### BEGIN SOLUTION\n"
        "        ### STUB: return x scaled by self.w\n"
        "        return self.w * x\n"
        "        ### END SOLUTION\n"
        "\n"
        "\n"
        "gate = Gate()\n"
    )
    stubbed = stub_source(source, "gate")
    assert stubbed.count("# YOUR CODE HERE") == 2
    assert "self.w = 2" not in stubbed and "return self.w * x" not in stubbed
    assert "    def forward(self, x):" in stubbed and stubbed.endswith("gate = Gate()")
    assert '"exercise gate: return x scaled by self.w"' in stubbed
    assert "STUB" not in stubbed
    ast.parse(stubbed)
    namespace: dict = {}
    with pytest.raises(NotImplementedError, match="^exercise gate: write this part"):
        exec(stubbed, namespace)


def test_stub_text_with_quotes_and_backslashes_is_a_valid_string():
    source = '### BEGIN SOLUTION\n### STUB: use "amax" \\ not max\nx = 1\n### END SOLUTION'
    stubbed = stub_source(source, "quoted")
    with pytest.raises(NotImplementedError) as raised:
        exec(stubbed, {})
    assert str(raised.value) == 'exercise quoted: use "amax" \\ not max'


def test_solution_lines_leave_out_markers_and_stub_text():
    source = "f = 1\n    ### BEGIN SOLUTION\n    ### STUB: hint\n    a = 2\n\n    ### END SOLUTION"
    assert solution_lines(source) == ["    a = 2", ""]
    assert [(b.begin, b.end, b.indent, b.stub_text) for b in find_blocks(source)] == [
        (1, 5, "    ", "hint")
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("### BEGIN SOLUTION\nx = 1\n", "line 1 has no '### END SOLUTION'"),
        ("x = 1\n### END SOLUTION\n", "line 2: '### END SOLUTION' without a '### BEGIN SOLUTION'"),
        (
            "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
            "line 2: '### BEGIN SOLUTION' inside the block opened on line 1",
        ),
        (
            "    ### BEGIN SOLUTION\n    x = 1\n### END SOLUTION\n",
            "line 3: '### END SOLUTION' is "
            "indented 0 characters but its '### BEGIN SOLUTION' on line 1 is indented 4",
        ),
        ("    ### BEGIN SOLUTION\nx = 1\n    ### END SOLUTION\n", "line 2 is indented less"),
        ("### STUB: hint\n", "line 1: '### STUB:' outside a solution block"),
        ("### BEGIN SOLUTION\n### STUB: a\n### STUB: b\n### END SOLUTION", "line 3: a second"),
        ("### BEGIN SOLUTION\n### STUB:\n### END SOLUTION", "needs the text"),
        ("## BEGIN SOLUTION\nx = 1\n## END SOLUTION\n", "line 1 '## BEGIN SOLUTION' looks like"),
        ("### BEGIN SOLUTION: the MLP\nx\n### END SOLUTION", "looks like a solution marker"),
        ("### begin solution\nx\n### end solution", "looks like a solution marker"),
    ],
)
def test_malformed_markers_are_errors_that_name_the_line(source, message):
    with pytest.raises(MarkerError) as raised:
        find_blocks(source)
    assert message in str(raised.value)


# --- lesson sources ------------------------------------------------------------------------------

EXERCISE = """# %% tags=["exercise"] exercise="{name}"
def {function}(x):
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION

"""
CHECK = """# %% tags=["nbval-check-output"] check="{name}"
print("checked {name}")

"""


def write_lesson(root: Path, text: str, stem: str = "01_sample") -> Lesson:
    (root / "solutions").mkdir(parents=True, exist_ok=True)
    (root / "solutions" / f"{stem}.py").write_text(text, encoding="utf-8")
    number, slug = stem.split("_", 1)
    return Lesson(number, slug, root)


def sample_text(name: str = "add-one") -> str:
    return (
        "# %% [markdown]\n# # A sample lesson\n\n"
        "# %%\nimport math\n\n"
        + EXERCISE.format(name=name, function=name.replace("-", "_"))
        + CHECK.format(name=name)
        + "# %% [markdown]\n# The end.\n"
    )


def lesson_error(tmp_path: Path, text: str) -> str:
    lesson = write_lesson(tmp_path, text)
    with pytest.raises(LessonError) as raised:
        read_source(lesson)
    message = str(raised.value)
    assert message.startswith("solutions/01_sample.py, line "), message
    return message


def test_a_well_formed_source_reads_with_only_the_conventional_metadata(tmp_path):
    source = read_source(write_lesson(tmp_path, sample_text()))
    assert [cell.cell_type for cell in source.cells] == [
        "markdown",
        "code",
        "code",
        "code",
        "markdown",
    ]
    assert source.cells[2].metadata == {"tags": ["exercise"], "exercise": "add-one"}
    assert source.cells[3].metadata == {"tags": ["nbval-check-output"], "check": "add-one"}
    assert source.lines == [1, 4, 7, 13, 16]


def test_markers_outside_an_exercise_cell(tmp_path):
    text = sample_text() + "# %%\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n"
    message = lesson_error(tmp_path, text)
    assert "line 18, cell 6 ('### BEGIN SOLUTION')" in message
    assert "solution markers outside an exercise cell" in message


def test_a_near_miss_marker_outside_an_exercise_cell(tmp_path):
    message = lesson_error(tmp_path, sample_text() + "# %%\n## END SOLUTION\n")
    assert "solution markers outside an exercise cell" in message


def test_unbalanced_markers_name_the_exercise_and_the_line(tmp_path):
    text = sample_text().replace("    ### END SOLUTION\n", "")
    message = lesson_error(tmp_path, text)
    assert "cell 3 ('def add_one(x):')" in message
    assert "exercise 'add-one': the '### BEGIN SOLUTION' on line 2 has no" in message


def test_an_exercise_cell_without_a_name(tmp_path):
    text = sample_text().replace(' exercise="add-one"', "")
    assert "exercise cell without a name" in lesson_error(tmp_path, text)


def test_an_exercise_name_without_the_tag(tmp_path):
    text = sample_text().replace('tags=["exercise"] exercise=', "exercise=")
    assert 'without the tag "exercise"' in lesson_error(tmp_path, text)


def test_an_exercise_name_that_is_not_lowercase_words(tmp_path):
    text = sample_text().replace('exercise="add-one"', 'exercise="Add One"')
    assert "must be lowercase letters and digits" in lesson_error(tmp_path, text)


def test_an_exercise_without_solution_blocks(tmp_path):
    text = sample_text()
    for marker in ("    ### BEGIN SOLUTION\n", "    ### END SOLUTION\n"):
        text = text.replace(marker, "")
    assert "has no '### BEGIN SOLUTION'" in lesson_error(tmp_path, text)


def test_duplicate_exercise_names_in_a_lesson(tmp_path):
    twice = EXERCISE.format(name="add-one", function="again") + CHECK.format(name="add-one")
    message = lesson_error(tmp_path, sample_text() + twice)
    assert "exercise 'add-one' is already the name of solutions/01_sample.py, line 7" in message


def test_an_exercise_without_a_check_cell(tmp_path):
    text = sample_text().replace(CHECK.format(name="add-one"), "")
    message = lesson_error(tmp_path, text)
    assert "cell 3 ('def add_one(x):'): exercise 'add-one' has no check cell" in message


def test_the_check_cell_must_come_right_after_its_exercise(tmp_path):
    check = CHECK.format(name="add-one")
    text = sample_text().replace(check, "# %%\nprint('in between')\n\n" + check)
    message = lesson_error(tmp_path, text)
    assert "has no check cell right after it; the next code cell is" in message
    assert "(\"print('in between')\")" in message


def test_a_check_cell_naming_no_exercise(tmp_path):
    text = sample_text() + CHECK.format(name="add-two")
    assert "check='add-two' names no exercise of this lesson" in lesson_error(tmp_path, text)


def test_a_check_cell_without_the_nbval_tag(tmp_path):
    text = sample_text().replace('tags=["nbval-check-output"] check=', "check=")
    assert 'must be tagged "nbval-check-output"' in lesson_error(tmp_path, text)


def test_exercise_names_are_unique_across_the_course(tmp_path, run_build):
    write_lesson(tmp_path, sample_text(), "01_sample")
    write_lesson(tmp_path, sample_text(), "02_other")
    result = run_build("--check", root=tmp_path)
    assert result.returncode == 1
    assert "exercise 'add-one' is in both 01_sample.py and 02_other.py" in result.stderr


def test_two_sources_for_one_lesson_number(tmp_path):
    write_lesson(tmp_path, sample_text(), "01_sample")
    write_lesson(tmp_path, sample_text(), "01_again")
    with pytest.raises(LessonError, match="two sources for lesson 01"):
        find_lessons(tmp_path)


def test_an_unknown_lesson_number(tmp_path, run_build):
    write_lesson(tmp_path, sample_text())
    result = run_build("--lesson", "07", root=tmp_path)
    assert result.returncode == 1
    assert "no source for lesson 07 in solutions/ (found 01)" in result.stderr


# --- composing the notebooks ---------------------------------------------------------------------


def test_notebooks_start_with_the_colab_badge_and_the_setup_cell(tmp_path):
    source = read_source(write_lesson(tmp_path, sample_text()))
    learner = learner_notebook(reference_notebook(source))
    badge, setup = learner.cells[:2]
    assert badge.cell_type == "markdown" and badge.id == "colab-badge"
    url = config.colab_url("notebooks/01_sample.ipynb")
    assert url == (
        "https://colab.research.google.com/github/cbam-course/cbam-course/blob/main/"
        "notebooks/01_sample.ipynb"
    )
    assert f"]({url})" in badge.source
    assert setup.id == "setup" and setup.source == colab.setup_source()
    assert 'if "google.colab" in sys.modules:' in setup.source
    assert f'"{config.REPOSITORY.replace("https://", "git+https://")}@main"' in setup.source
    assert 'DEVICE = "cuda" if torch.cuda.is_available() else "cpu"' in setup.source
    # Outside Colab the setup cell installs nothing and prints nothing.
    namespace: dict = {}
    exec(compile(setup.source, "setup", "exec"), namespace)
    assert namespace["DEVICE"] in ("cuda", "cpu")


def test_both_notebooks_share_ids_and_metadata(tmp_path):
    import cbam

    source = read_source(write_lesson(tmp_path, sample_text()))
    reference = reference_notebook(source)
    learner = learner_notebook(reference)
    assert reference.metadata == learner.metadata
    assert reference.metadata["cbam"] == {
        "lesson": "01",
        "slug": "sample",
        "course_version": cbam.__version__,
    }
    assert reference.metadata["kernelspec"]["name"] == "python3"
    ids = [cell.id for cell in reference.cells]
    assert ids == [cell.id for cell in learner.cells]
    assert len(set(ids)) == len(ids)
    assert ids[4:6] == ["add-one", "check-add-one"]
    assert all(len(i) <= 64 for i in ids)
    stubbed = learner.cells[4].source
    assert "return x + 1" not in stubbed and 'NotImplementedError("exercise add-one: ' in stubbed
    assert all(
        c.outputs == [] and c.execution_count is None
        for c in learner.cells
        if c.cell_type == "code"
    )
    nbformat.validate(learner)


def test_ids_are_stable_and_repeated_cells_get_distinct_ids(tmp_path):
    text = sample_text() + "# %%\nimport math\n"
    first = reference_notebook(read_source(write_lesson(tmp_path, text)))
    again = reference_notebook(read_source(write_lesson(tmp_path, text)))
    assert to_text(first) == to_text(again)
    ids = [cell.id for cell in first.cells]
    assert ids[3] != ids[-1] and ids[-1] == ids[3] + "-2"
    # A cell added at the top leaves the other cells' ids alone: diffs stay small.
    moved = reference_notebook(read_source(write_lesson(tmp_path, "# %%\nx = 0\n\n" + text)))
    assert [cell.id for cell in moved.cells][:2] + [cell.id for cell in moved.cells][3:] == ids


# --- the generated files in the repository ------------------------------------------------------


def test_generated_notebooks_match_their_sources(root):
    # As a user (and CI) runs it: the installed command, in the repository.
    result = subprocess.run(
        [sys.executable, "-m", "cbam.course.cli", "build", "--check"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


@pytest.fixture
def copy_of_lesson_00(root, tmp_path) -> Path:
    """Lesson 00's source and generated notebooks, alone in a temporary repository."""
    for folder, suffix in (("solutions", ".py"), ("solutions", ".ipynb"), ("notebooks", ".ipynb")):
        (tmp_path / folder).mkdir(exist_ok=True)
        shutil.copy(root / folder / f"{LESSON_00}{suffix}", tmp_path / folder)
    return tmp_path


@pytest.fixture
def check_copy(run_build):
    return lambda copy: run_build("--check", root=copy)


def test_check_fails_when_a_source_was_edited(copy_of_lesson_00, check_copy):
    assert check_copy(copy_of_lesson_00).returncode == 0
    source = copy_of_lesson_00 / "solutions" / f"{LESSON_00}.py"
    text = source.read_text(encoding="utf-8")
    source.write_text(
        text.replace("# ## Reductions over dims", "# ## Reducing over dims"), encoding="utf-8"
    )
    result = check_copy(copy_of_lesson_00)
    assert result.returncode == 1
    for path in (f"notebooks/{LESSON_00}.ipynb", f"solutions/{LESSON_00}.ipynb"):
        assert f"{path}: cell " in result.stderr
    assert (
        "source differs (line 1 is '## Reductions over dims', the source gives "
        "'## Reducing over dims')" in result.stderr
    )
    assert "cbam-course build" in result.stderr


def test_check_fails_when_a_solution_changed(copy_of_lesson_00, check_copy):
    source = copy_of_lesson_00 / "solutions" / f"{LESSON_00}.py"
    text = source.read_text(encoding="utf-8")
    edited = text.replace(
        "return x * weights[:, :, None, None]", "return x * weights.view(*weights.shape, 1, 1)"
    )
    assert edited != text
    source.write_text(edited, encoding="utf-8")
    result = check_copy(copy_of_lesson_00)
    assert result.returncode == 1
    assert f"solutions/{LESSON_00}.ipynb: cell " in result.stderr
    assert "('apply-gate'): source differs" in result.stderr
    # The learner notebook has a stub there, so it is still what the source gives.
    assert f"notebooks/{LESSON_00}.ipynb" not in result.stderr


def test_check_fails_when_a_generated_file_is_missing(copy_of_lesson_00, check_copy):
    (copy_of_lesson_00 / "notebooks" / f"{LESSON_00}.ipynb").unlink()
    result = check_copy(copy_of_lesson_00)
    assert result.returncode == 1
    assert f"notebooks/{LESSON_00}.ipynb: missing" in result.stderr


def test_check_fails_on_a_learner_notebook_saved_with_outputs(copy_of_lesson_00, check_copy):
    path = copy_of_lesson_00 / "notebooks" / f"{LESSON_00}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    cell = next(c for c in notebook.cells if c.cell_type == "code" and c.id != "setup")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    nbformat.write(notebook, path)
    result = check_copy(copy_of_lesson_00)
    assert result.returncode == 1
    assert f"({cell.id!r}): has stored outputs" in result.stderr


def test_check_fails_on_a_reference_that_was_not_executed(copy_of_lesson_00, check_copy):
    path = copy_of_lesson_00 / "solutions" / f"{LESSON_00}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, path)
    result = check_copy(copy_of_lesson_00)
    assert result.returncode == 1
    assert "cell 'setup' has execution_count None, expected 1" in result.stderr


def test_check_fails_on_timing_metadata_and_unreadable_files(copy_of_lesson_00, check_copy):
    path = copy_of_lesson_00 / "solutions" / f"{LESSON_00}.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    notebook["cells"][1]["metadata"]["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    notebook["metadata"]["widgets"] = {"state": {}}
    path.write_text(json.dumps(notebook), encoding="utf-8")
    (copy_of_lesson_00 / "notebooks" / f"{LESSON_00}.ipynb").write_text("{not json")
    result = check_copy(copy_of_lesson_00)
    assert result.returncode == 1
    assert "cell 2 ('setup'): metadata {'execution':" in result.stderr
    assert "notebook metadata differs in widgets" in result.stderr
    assert f"notebooks/{LESSON_00}.ipynb: not a readable notebook" in result.stderr


def test_check_fails_on_a_generated_notebook_without_source(copy_of_lesson_00, check_copy):
    shutil.copy(
        copy_of_lesson_00 / "notebooks" / f"{LESSON_00}.ipynb",
        copy_of_lesson_00 / "notebooks" / "09_gone.ipynb",
    )
    result = check_copy(copy_of_lesson_00)
    assert result.returncode == 1
    assert "notebooks/09_gone.ipynb: no source solutions/09_gone.py" in result.stderr


@pytest.mark.notebooks
def test_building_twice_gives_the_same_bytes(copy_of_lesson_00, run_build, check_copy):
    """Execution leaves nothing that changes from run to run (timestamps, widget ids, ...)."""
    paths = [
        copy_of_lesson_00 / "solutions" / f"{LESSON_00}.ipynb",
        copy_of_lesson_00 / "notebooks" / f"{LESSON_00}.ipynb",
    ]
    for path in paths:
        path.unlink()
    texts = []
    for _ in range(2):
        result = run_build("--lesson", "00", root=copy_of_lesson_00)
        assert result.returncode == 0, result.stderr
        assert f"{LESSON_00}: executed in" in result.stdout
        texts.append([path.read_text(encoding="utf-8") for path in paths])
        for path in paths:
            path.unlink()
    assert texts[0] == texts[1]
    # What the build writes passes the check: the two agree on what a source gives.
    for path, text in zip(paths, texts[0], strict=True):
        path.write_text(text, encoding="utf-8")
    result = check_copy(copy_of_lesson_00)
    assert result.returncode == 0, result.stderr


@pytest.mark.notebooks
def test_a_failing_cell_names_the_lesson_and_the_cell(tmp_path, run_build):
    write_lesson(tmp_path, sample_text() + "# %%\n1 / 0\n")
    result = run_build(root=tmp_path)
    assert result.returncode == 1
    assert (
        "solutions/01_sample.py, line 18, cell 6 ('1 / 0') raised ZeroDivisionError"
        in result.stderr
    )
    # The learner notebook does not need execution, so it is written anyway.
    assert (tmp_path / "notebooks" / "01_sample.ipynb").exists()
    assert not (tmp_path / "solutions" / "01_sample.ipynb").exists()


def test_main_reports_a_missing_solutions_folder(tmp_path, run_build):
    result = run_build("--check", root=tmp_path)
    assert result.returncode == 1
    assert "no solutions/ directory in" in result.stderr
