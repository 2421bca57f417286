"""The graded copy of a reference notebook, and the nbval run over it.

nbval compares a run with the outputs stored in the notebook it runs. So the grader runs a
*copy of the executed reference*, with only the exercise cells' sources replaced by the
learner's: every check cell, and the output it must reproduce, comes from the reference. The
copy also gets a prologue that snapshots what the checks rely on and a guard cell after each
check cell (see ``kernel_guard``).

nbval runs in its own process (``python -m pytest --nbval``), in a temporary folder that also
offers the reference folder's other files, with a per-cell timeout and an overall one. Its JUnit
XML gives each cell's verdict, the ``nbval_capture`` plugin each cell's printed lines.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import cbam
from cbam.course.grading.references import Reference

COPY_NAME = "graded.ipynb"
PLUGIN = "cbam_nbval_capture"  # cbam/course/nbval_capture.py, copied beside the graded copy
# The prologue imports torch and every check module: slow on a busy machine, and not the
# learner's code, so it gets more time than --timeout gives a cell.
PROLOGUE_TIMEOUT = 300.0


@dataclass(frozen=True)
class CellRole:
    """What a code cell of the graded copy is: ``kind`` is prologue, exercise, check, guard or
    other; ``exercise`` the exercise it belongs to; ``number`` its cell number in the reference."""

    kind: str
    exercise: str | None = None
    number: int | None = None
    summary: str = ""


@dataclass
class CellResult:
    """One cell's fate in the run: ``outcome`` is passed, failed, skipped or not run."""

    outcome: str = "not run"
    message: str = ""
    timed_out: bool = False
    kernel_died: bool = False
    outputs: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def printed(self) -> str:
        return "".join(o.get("text", "") for o in self.outputs if o.get("type") == "stream")

    @property
    def error(self) -> str | None:
        """``Name: message`` of the exception the cell raised, if any."""
        for output in self.outputs:
            if output.get("type") == "error":
                evalue = str(output.get("evalue", "")).strip().splitlines()
                return f"{output.get('ename')}: {evalue[0] if evalue else ''}".rstrip(": ")
        return None


@dataclass
class RunOutcome:
    cells: list[CellResult]
    overall_timeout: float | None = None  # set when the whole run was cut short
    restarts: int = 0
    replay_gaps: int = 0  # earlier cells a restarted kernel could not run again
    seconds: float = 0.0
    log: str = ""


def build_graded_copy(
    reference: Reference, sources: dict[str, str | None]
) -> tuple[dict, list[CellRole]]:
    """The reference notebook with the learner's exercise sources; the role of each code cell.

    ``sources[name]`` is None for an exercise that is not to be run (missing from the
    submission, or suspicious): its cell then defines nothing, as if the learner had deleted it.
    """
    content = copy.deepcopy(reference.notebook.content)
    guard = f"_cbam_grader_guard_{secrets.token_hex(6)}"
    cells: list[dict] = [_quiet_cell(
        f"from cbam.course.grading.kernel_guard import ExecutionGuard\n"
        f"{guard} = ExecutionGuard()\ndel ExecutionGuard\n")]
    roles = [CellRole("prologue", summary="grader prologue")]
    for raw, cell in zip(content["cells"], reference.notebook.cells, strict=True):
        cells.append(raw)
        if not cell.is_code:
            continue
        if cell.exercise:
            source = sources.get(cell.exercise)
            raw["source"] = source if source is not None else (
                f"# exercise {cell.exercise!r}: not run (missing or suspicious)\n")
            # The learner's own prints are not graded: their check cells are.
            tags = [t for t in cell.tags if t not in ("nbval-check-output", "nbval-skip")]
            raw.setdefault("metadata", {})["tags"] = [*tags, "nbval-ignore-output"]
            roles.append(CellRole("exercise", cell.exercise, cell.number))
        elif cell.check:
            roles.append(CellRole("check", cell.check, cell.number, cell.first_line()))
            cells.append(_quiet_cell(f"{guard}.report()\n"))
            roles.append(CellRole("guard", cell.check, cell.number, "grader guard"))
        else:
            roles.append(CellRole("other", None, cell.number, cell.first_line()))
    content["cells"] = cells
    return content, roles


def _quiet_cell(source: str) -> dict:
    """A grader's cell: run, and expected to print nothing."""
    return {"cell_type": "code", "execution_count": 1, "id": secrets.token_hex(4),
            "metadata": {}, "outputs": [], "source": source}


def _offer_reference_files(reference_dir: Path, workdir: Path) -> None:
    """Make the reference folder's other files (data, helper modules) reachable from the copy."""
    for entry in reference_dir.iterdir():
        if entry.suffix in (".ipynb", ".py") and entry.stem[:2].isdigit():
            continue  # other lessons' notebooks and sources are not the lesson's files
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        target = workdir / entry.name
        if not target.exists():
            try:
                target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
            except OSError:  # no symlinks (Windows without developer mode): copy small files
                if entry.is_file():
                    target.write_bytes(entry.read_bytes())


def _junit_outcomes(path: Path) -> dict[int, tuple[str, str]]:
    """Cell number -> (outcome, message) from pytest's JUnit XML."""
    if not path.exists():
        return {}
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError:
        return {}
    found = {}
    for case in root.iter("testcase"):
        name = case.get("name", "")
        if not name.startswith("Cell "):
            continue
        try:
            number = int(name.split()[1])
        except (IndexError, ValueError):
            continue
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", child.get("message", "")
            elif child.tag == "skipped":
                outcome, message = "skipped", child.get("message", "")
        found[number] = (outcome, message)
    return found


def _read_capture(path: Path, count: int) -> tuple[list[CellResult], set[int], list[dict]]:
    """Each cell's result, the kernels' pids, and one record per kernel restart."""
    cells = [CellResult() for _ in range(count)]
    pids: set[int] = set()
    restarts: list[dict] = []
    if not path.exists():
        return cells, pids, restarts
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by the overall timeout
        if "kernel_pid" in record:
            pids.add(int(record["kernel_pid"]))
        elif "restarted_before" in record:
            restarts.append(record)
        elif isinstance(record.get("cell"), int) and 0 <= record["cell"] < count:
            cells[record["cell"]] = CellResult(
                outcome=record.get("outcome", "failed"),
                message=record.get("message", ""),
                timed_out=bool(record.get("timed_out")),
                kernel_died=bool(record.get("kernel_died")),
                outputs=record.get("outputs", []),
                seconds=float(record.get("seconds") or 0.0),
            )
    return cells, pids, restarts


def _kill(process: subprocess.Popen, kernel_pids: set[int]) -> None:
    """Stop pytest and the kernels it started (each kernel leads its own process group)."""
    for pid in [process.pid, *kernel_pids]:
        try:
            if hasattr(os, "killpg"):
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGTERM)
        except OSError:  # gone already
            pass
    process.wait()


def _environment(workdir: Path, threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only nbval and the capture plugin
    env["IPYTHONDIR"] = str(workdir / ".ipython")  # no startup scripts of the grader's profile
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    # pytest and the kernel import the same cbam as the grader, wherever it runs from.
    package_root = str(Path(cbam.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(threads)  # several runs at once share the cores
    return env


def run_graded_copy(
    content: dict,
    roles: list[CellRole],
    reference_dir: Path,
    workdir: Path,
    *,
    cell_timeout: float,
    total_timeout: float,
    sanitize: Path | None = None,
    threads: int | None = None,
) -> RunOutcome:
    """Write ``content`` into ``workdir`` and run nbval on it; each code cell's result."""
    notebook = workdir / COPY_NAME
    notebook.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    _offer_reference_files(reference_dir, workdir)
    (workdir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    junit, capture = workdir / "junit.xml", workdir / "cells.jsonl"
    # The plugin needs only pytest; loaded as cbam.course.grading.nbval_capture it would import
    # cbam and with it torch into the pytest process, seconds per notebook for nothing.
    shutil.copyfile(Path(__file__).with_name("nbval_capture.py"), workdir / f"{PLUGIN}.py")
    command = [
        sys.executable, "-m", "pytest", str(notebook),
        "-p", PLUGIN, "-p", "nbval.plugin", "-p", "no:cacheprovider",
        "--nbval", "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout:g}",
        "--nbval-kernel-startup-timeout=120", f"--cbam-first-cell-timeout={PROLOGUE_TIMEOUT:g}",
        f"--junitxml={junit}", f"--cbam-capture={capture}",
        "-c", str(workdir / "pytest.ini"), f"--rootdir={workdir}", "-q", "--no-header",
        "-W", "ignore::DeprecationWarning",
    ]
    if sanitize is not None:
        command.append(f"--nbval-sanitize-with={sanitize}")
    log = workdir / "pytest.log"
    started = time.perf_counter()
    # pytest's output goes to a file, not a pipe: a kernel that outlives pytest cannot hold a
    # pipe open and keep the grader waiting.
    with log.open("wb") as stream:
        process = subprocess.Popen(
            command, cwd=workdir, env=_environment(workdir, threads), stdout=stream,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=hasattr(os, "killpg"),
        )
        overall = None
        try:
            process.wait(timeout=total_timeout)
        except subprocess.TimeoutExpired:
            overall = total_timeout
            _, pids, _ = _read_capture(capture, len(roles))
            _kill(process, pids)
    seconds = time.perf_counter() - started
    cells, _, restarts = _read_capture(capture, len(roles))
    for number, (outcome, message) in _junit_outcomes(junit).items():
        if 0 <= number < len(cells):
            cells[number].outcome = outcome
            cells[number].message = cells[number].message or message
    return RunOutcome(cells=cells, overall_timeout=overall, restarts=len(restarts),
                      replay_gaps=sum(r.get("of", 0) - r.get("replayed", 0) for r in restarts),
                      seconds=seconds,
                      log=log.read_bytes()[-4000:].decode("utf-8", "replace"))
