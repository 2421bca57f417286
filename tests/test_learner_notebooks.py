"""The learner notebooks in notebooks/: they run as a learner meets them, and give nothing away.

Executed cell by cell, a learner notebook must run without error up to its first exercise; each
exercise's stub must raise NotImplementedError naming that exercise (in the exercise cell, or
inside the check cell, which then prints a ✗ line instead of raising). The reference solution is
then put in the exercise cell and the run goes on, so every exercise's stub is reached and every
check cell is seen to pass with a solution in place.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cbam.checks.report import FAIL
from cbam.course.building import colab
from cbam.course.building.compose import learner_notebook, reference_notebook, to_text
from cbam.course.building.execute import kernel_environment
from cbam.course.building.lessons import Lesson, find_lessons, read_source
from cbam.course.building.stubs import find_blocks, has_markers

ROOT = Path(__file__).resolve().parent.parent
LEARNER_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 600


def _lessons() -> list[Lesson]:
    return find_lessons(ROOT) if (ROOT / "solutions").is_dir() else []


class LearnerRun:
    """One kernel that executes cells of a learner notebook, one at a time."""

    def __init__(self, notebook: nbformat.NotebookNode, cwd: Path) -> None:
        self.notebook = notebook
        self.client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(cwd)}},
            record_timing=False,
        )

    def run(self, cell: nbformat.NotebookNode, index: int) -> tuple[dict | None, str]:
        """Execute ``cell``; returns its error output (or None) and its printed text."""
        cell.outputs = []
        self.client.execute_cell(cell, index)
        error = next((out for out in cell.outputs if out.output_type == "error"), None)
        text = "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")
        return error, text


def _describe(error: dict) -> str:
    return f"{error['ename']}: {error['evalue']}"


def walk_learner_notebook(learner_path: Path, reference_path: Path, root: Path) -> list[str]:
    """Run the learner notebook as a learner would (see the module's docstring); returns the
    exercises met, in order, and raises AssertionError at the first thing that goes wrong."""
    learner = nbformat.read(learner_path, as_version=4)
    solutions = {cell.id: cell.source for cell in nbformat.read(reference_path, as_version=4).cells}
    cells = learner.cells
    run = LearnerRun(learner, learner_path.parent)
    where = learner_path.relative_to(root).as_posix()
    seen_exercises = []
    with run.client.setup_kernel(env=kernel_environment()):
        index = 0
        while index < len(cells):
            cell = cells[index]
            name = cell.metadata.get("exercise")
            if cell.cell_type != "code":
                index += 1
                continue
            if name is None:
                error, text = run.run(cell, index)
                if error is not None and "raises-exception" not in cell.metadata.get("tags", []):
                    stage = (
                        f"after exercise {seen_exercises[-1]!r} (its solution in place)"
                        if seen_exercises
                        else "before the first exercise"
                    )
                    raise AssertionError(
                        f"{where}: cell {cell.id!r} {stage} raised {_describe(error)}"
                    )
                if cell.metadata.get("check") and FAIL in text:
                    raise AssertionError(
                        f"{where}: check cell {cell.id!r} fails with the "
                        f"reference solution in place:\n{text}"
                    )
                index += 1
                continue

            # An exercise: first its stub, then the check cells right after it on the stub.
            seen_exercises.append(name)
            error, _ = run.run(cell, index)
            stub_raised = False
            if error is not None:
                assert error["ename"] == "NotImplementedError" and error["evalue"].startswith(
                    f"exercise {name}:"
                ), (
                    f"{where}: the stub of exercise {name!r} raised {_describe(error)}, "
                    f"expected NotImplementedError('exercise {name}: ...')"
                )
                stub_raised = True
            checks = []
            for later in range(index + 1, len(cells)):
                if cells[later].cell_type != "code":
                    continue
                if cells[later].metadata.get("check") != name:
                    break
                checks.append(later)
            assert checks, f"{where}: exercise {name!r} has no check cell right after it"
            for check in checks:
                stub_check = copy.deepcopy(cells[check])
                error, text = run.run(stub_check, check)
                assert error is None, (
                    f"{where}: check cell {cells[check].id!r} raised {_describe(error)} while "
                    f"exercise {name!r} is a stub; check cells print ✗ lines, never raise"
                )
                assert FAIL in text, (
                    f"{where}: check cell {cells[check].id!r} passes while "
                    f"exercise {name!r} is a stub:\n{text}"
                )
                stub_raised = stub_raised or f"{FAIL} {name}: not implemented yet" in text
            assert stub_raised, (
                f"{where}: the stub of exercise {name!r} was never reached: neither its cell nor "
                "its check cell ran into NotImplementedError"
            )

            # The learner's work, done: the reference solution goes in and the run goes on.
            cell.source = solutions[cell.id]
            error, _ = run.run(cell, index)
            assert error is None, (
                f"{where}: exercise {name!r} with the reference solution raised {_describe(error)}"
            )
            index += 1
    return seen_exercises


@pytest.mark.notebooks
@pytest.mark.parametrize("learner_path", LEARNER_NOTEBOOKS, ids=[p.stem for p in LEARNER_NOTEBOOKS])
def test_learner_notebook_stops_at_each_exercise_with_its_name(learner_path):
    reference_path = ROOT / "solutions" / learner_path.name
    assert reference_path.exists(), f"{learner_path.name} has no reference in solutions/"
    met = walk_learner_notebook(learner_path, reference_path, ROOT)
    learner = nbformat.read(learner_path, as_version=4)
    assert met == [c.metadata["exercise"] for c in learner.cells if c.metadata.get("exercise")]
    assert met, f"{learner_path.name} has no exercise"


SAMPLE = """# %%
import math

# %% tags=["exercise"] exercise="add-one"
def add_one(x):
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION

# %% tags=["nbval-check-output"] check="add-one"
from cbam.checks import run_checks

def _adds_one():
    assert add_one(1) == 2

run_checks("add-one", [("adds one", _adds_one)])
"""


def _sample_lesson(tmp_path: Path, text: str) -> tuple[Path, Path]:
    (tmp_path / "solutions").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir(parents=True)
    (tmp_path / "solutions" / "01_sample.py").write_text(text, encoding="utf-8")
    lesson = Lesson("01", "sample", tmp_path)
    # The walk reads only the reference's sources, so its unexecuted skeleton will do.
    reference = reference_notebook(read_source(lesson))
    lesson.reference.write_text(to_text(reference), encoding="utf-8")
    lesson.learner.write_text(to_text(learner_notebook(reference)), encoding="utf-8")
    return lesson.learner, lesson.reference


@pytest.mark.notebooks
def test_the_walk_finds_a_check_cell_that_raises_on_a_stub(tmp_path):
    """The walk can fail: it passes a good sample and rejects a check that lets the error out."""
    learner, reference = _sample_lesson(tmp_path / "good", SAMPLE)
    assert walk_learner_notebook(learner, reference, tmp_path / "good") == ["add-one"]
    raising = SAMPLE.replace('run_checks("add-one", [("adds one", _adds_one)])', "_adds_one()")
    learner, reference = _sample_lesson(tmp_path / "bad", raising)
    with pytest.raises(
        AssertionError,
        match="raised NotImplementedError: exercise add-one: "
        ".* while exercise 'add-one' is a stub; check cells print",
    ):
        walk_learner_notebook(learner, reference, tmp_path / "bad")


def leaked_lines(source_cells, learner_text: str) -> list[str]:
    """Solution lines that occur in the learner notebook's text but nowhere a learner sees anyway.

    Visible anyway: the source outside the solution blocks, the stub texts and the cells the
    build adds (a solution line such as ``return x`` or ``import torch`` may stand there too).
    """
    solutions: set[str] = set()
    visible = [colab.setup_source(), "# YOUR CODE HERE"]
    for cell in source_cells:
        lines = cell.source.splitlines()
        blocks = find_blocks(cell.source) if cell.metadata.get("exercise") else []
        hidden = {i for block in blocks for i in range(block.begin, block.end + 1)}
        visible += [line for i, line in enumerate(lines) if i not in hidden]
        visible += [block.stub_text for block in blocks if block.stub_text]
        solutions |= {line.strip() for block in blocks for line in block.solution_lines(lines)}
    seen = "\n".join(visible)
    return sorted(line for line in solutions if line and line in learner_text and line not in seen)


def _learner_text(notebook: nbformat.NotebookNode) -> str:
    """Everything a learner notebook holds that a person could read: sources and outputs."""
    parts = [cell.source for cell in notebook.cells]
    parts += [str(output) for cell in notebook.cells for output in cell.get("outputs", [])]
    return "\n".join(parts)


@pytest.mark.parametrize("lesson", _lessons(), ids=lambda lesson: lesson.stem)
def test_no_solution_reaches_the_learner_notebook(lesson):
    if not lesson.learner.exists():
        pytest.fail(f"{lesson.relative(lesson.learner)} is missing: run `cbam-course build`")
    source = read_source(lesson)
    learner = nbformat.read(lesson.learner, as_version=4)
    leaked = leaked_lines(source.cells, _learner_text(learner))
    assert not leaked, f"{lesson.relative(lesson.learner)} shows solution lines: {leaked}"
    stored = [
        cell.id
        for cell in learner.cells
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not stored, f"{lesson.relative(lesson.learner)} stores outputs in cells {stored}"
    with_markers = [cell.id for cell in learner.cells if has_markers(cell.source)]
    assert not with_markers, f"solution markers left in cells {with_markers}"


def test_the_leak_check_finds_a_leaked_line():
    """The check above can fail: a solution line anywhere in the learner's text is found."""
    exercise = nbformat.v4.new_code_cell(
        "import math\n\n\ndef f(x):\n    ### BEGIN SOLUTION\n    ### STUB: use amax\n"
        "    return x.amax(dim=(2, 3), keepdim=True)\n    import torch\n    return x\n"
        "    ### END SOLUTION\n",
        metadata={"tags": ["exercise"], "exercise": "f"},
    )
    other = nbformat.v4.new_code_cell("y = f(x)\nreturn x")
    learner = (
        "import math\n\n\ndef f(x):\n    # YOUR CODE HERE\n"
        '    raise NotImplementedError("exercise f: use amax")\n'
    )
    # return x and import torch are visible elsewhere (a cell, the setup cell): not leaks.
    assert leaked_lines([exercise, other], learner + "return x\nimport torch\n") == []
    hint = "Hint: `return x.amax(dim=(2, 3), keepdim=True)` does it\n"
    assert leaked_lines([exercise, other], learner + hint) == [
        "return x.amax(dim=(2, 3), keepdim=True)"
    ]
