"""The graded copy of a reference notebook, and the nbval run over it.

nbval compares a run with the outputs stored in the notebook it runs. So the grader runs a
*copy of the executed reference*, with only the exercise cells' sources replaced by the
learner's: every check cell, and the output it must reproduce, comes from the reference. The
copy also gets a prologue that snapshots what the checks rely on, a guard cell after each
check cell (see ``kernel_guard``) and a probe cell after each exercise's checks (``probes``).

nbval runs in its own process (``python -m pytest --nbval``), in the submission's scratch folder
(with copies of the reference folder's other files) and, unless the grader was told otherwise,
in a sandbox (``sandbox``), with a per-cell timeout and an overall one. Its JUnit XML gives each
cell's verdict, the ``nbval_capture`` plugin each cell's printed lines, the probe cells what the
learner's code computed: all read back as untrusted input (``scratch``).
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
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import cbam
from cbam.course.grading import scratch
from cbam.course.grading.probes import PREFIX as PROBE_PREFIX
from cbam.course.grading.references import Reference
from cbam.course.grading.sandbox import Cgroup, Limits, Sandbox, cleanup
from cbam.fast import cpu_kernel

COPY_NAME = "graded.ipynb"
PLUGIN = "cbam_nbval_capture"  # cbam/course/nbval_capture.py, copied beside the graded copy
# The prologue imports torch and every check module: slow on a busy machine, and not the
# learner's code, so it gets more time than --timeout gives a cell.
PROLOGUE_TIMEOUT = 300.0
PROBES = "cbam.course.grading.probes"
MESSAGE_LIMIT = 2_000  # characters of one cell's error message kept
OUTPUT_LIMIT = 20_000  # characters of one cell's outputs kept: a flood is cut, not stored
# What the kernel may keep of the grader's environment: locale, the course's own switches, and
# the BLAS settings some processors need to compute right.
_PASSED_ON = ("LANG", "LC_ALL", "CBAM_MODE", "CBAM_CPU_KERNEL", "CUDA_VISIBLE_DEVICES",
              "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class CellRole:
    """What a code cell of the graded copy is: ``kind`` is prologue, exercise, check, guard,
    probe, added (a cell the learner added) or other; ``exercise`` the exercise it belongs to (or
    follows); ``number`` its cell number in the reference."""

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
    probes: dict[str, bytes] = field(default_factory=dict)  # exercise -> what its probe wrote
    out_of_memory: bool = False
    memory_peak: int | None = None  # bytes, the most the sandbox's cgroup held at once
    cpu_seconds: float | None = None  # CPU time of all its processes, where a cgroup counted it
    sandbox: str | None = None  # how the run was confined; None when it was not


def build_graded_copy(
    reference: Reference, sources: dict[str, str | None], probed: frozenset[str] = frozenset(),
    added: dict[str | None, list[str]] | None = None,
) -> tuple[dict, list[CellRole]]:
    """The reference notebook with the learner's exercise sources; the role of each code cell.

    ``sources[name]`` is None for an exercise that is not to be run (missing from the
    submission, or suspicious): its cell then defines nothing, as if the learner had deleted it.
    After the last check cell of each exercise in ``probed`` comes a probe cell: it hands the
    learner's objects inputs drawn from the grader's fresh seed and writes what they compute to
    the scratch folder, for the grader to judge in its own process (``probes``). ``added`` holds
    the sources of the cells the learner added, by the exercise they follow (None: before the
    first): each runs right after that exercise's cell, as it ran for the learner.
    """
    added = added or {}
    before_first = True
    content = copy.deepcopy(reference.notebook.content)
    last_check = {}
    for cell in reference.notebook.cells:
        if cell.is_code and cell.check:
            last_check[cell.check] = cell.number
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
            if before_first:  # the learner's cells from before the first exercise
                before_first = False
                exercise_cell = cells.pop()
                _add_learner_cells(cells, roles, added.get(None, []), None)
                cells.append(exercise_cell)
            source = sources.get(cell.exercise)
            raw["source"] = source if source is not None else (
                f"# exercise {cell.exercise!r}: not run (missing or suspicious)\n")
            # The learner's own prints are not graded: their check cells are.
            tags = [t for t in cell.tags if t not in ("nbval-check-output", "nbval-skip")]
            raw.setdefault("metadata", {})["tags"] = [*tags, "nbval-ignore-output"]
            roles.append(CellRole("exercise", cell.exercise, cell.number))
            _add_learner_cells(cells, roles, added.get(cell.exercise, []), cell.exercise)
        elif cell.check:
            roles.append(CellRole("check", cell.check, cell.number, cell.first_line()))
            cells.append(_quiet_cell(f"{guard}.report()\n"))
            roles.append(CellRole("guard", cell.check, cell.number, "grader guard"))
            if cell.check in probed and last_check.get(cell.check) == cell.number:
                probe = _quiet_cell(f"__import__({PROBES!r}, fromlist=['observe'])"
                                    f".observe({reference.lesson!r}, {cell.check!r}, "
                                    "globals())\n")
                # What it writes is judged, not what it prints.
                probe["metadata"]["tags"] = ["nbval-ignore-output"]
                cells.append(probe)
                roles.append(CellRole("probe", cell.check, cell.number, "grader probe"))
        else:
            roles.append(CellRole("other", None, cell.number, cell.first_line()))
    content["cells"] = cells
    return content, roles


def _add_learner_cells(cells: list[dict], roles: list[CellRole], sources: list[str],
                       after: str | None) -> None:
    for source in sources:
        cell = _quiet_cell(source)
        cell["metadata"]["tags"] = ["nbval-ignore-output"]  # run for what it defines only
        cells.append(cell)
        first = next((line for line in source.splitlines() if line.strip()), "")[:60]
        roles.append(CellRole("added", after, None, first))


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
        # Copied, not linked: a sandbox sees nothing of the reference folder, and a copy is
        # all a submission can spoil.
        target = workdir / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.is_dir():
            shutil.copytree(entry, target, symlinks=False, ignore_dangling_symlinks=True)
        elif entry.is_file():
            shutil.copyfile(entry, target)


def _junit_outcomes(text: str | None) -> dict[int, tuple[str, str]]:
    """Cell number -> (outcome, message) from pytest's JUnit XML."""
    if not text:
        return {}
    try:
        root = ElementTree.fromstring(text)
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
        found[number] = (outcome, message[:MESSAGE_LIMIT])
    return found


def _bounded(outputs: object) -> list[dict]:
    """A cell's recorded outputs, as plain strings, cut to what a report can hold."""
    kept, left = [], OUTPUT_LIMIT
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, dict) or left <= 0:
            continue
        entry = {key: str(output.get(key, ""))[:left] for key in ("type", "name", "text",
                                                                    "ename", "evalue")}
        left -= len(entry["text"]) + len(entry["evalue"])
        kept.append(entry)
    return kept


def _read_capture(text: str | None, count: int) -> tuple[list[CellResult], set[int], list[dict]]:
    """Each cell's result, the kernels' pids, and one record per kernel restart."""
    cells = [CellResult() for _ in range(count)]
    pids: set[int] = set()
    restarts: list[dict] = []
    for line in (text or "").splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue  # a line cut off by the overall timeout
        if not isinstance(record, dict):
            continue
        try:
            if "kernel_pid" in record:
                pids.add(int(record["kernel_pid"]))
            elif "restarted_before" in record:
                restarts.append({"of": int(record.get("of", 0)),
                                 "replayed": int(record.get("replayed", 0))})
            elif isinstance(record.get("cell"), int) and 0 <= record["cell"] < count:
                cells[record["cell"]] = CellResult(
                    outcome=str(record.get("outcome", "failed")),
                    message=str(record.get("message", ""))[:MESSAGE_LIMIT],
                    timed_out=bool(record.get("timed_out")),
                    kernel_died=bool(record.get("kernel_died")),
                    outputs=_bounded(record.get("outputs")),
                    seconds=float(record.get("seconds") or 0.0),
                )
        except (TypeError, ValueError, OverflowError):
            continue
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


def _package_root() -> Path:
    return Path(cbam.__file__).resolve().parent.parent


def _environment(workdir: Path, threads: int | None) -> dict[str, str]:
    """The environment of an unsandboxed run: the grader's, less what would change pytest."""
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.update(_course_environment(workdir, threads))
    # pytest and the kernel import the same cbam as the grader, wherever it runs from.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_package_root()),
                                                      os.environ.get("PYTHONPATH")]))
    return env


def _course_environment(workdir: Path, threads: int | None) -> dict[str, str]:
    env = {
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only nbval and the capture plugin
        "IPYTHONDIR": str(workdir / ".ipython"),  # no startup scripts of the grader's profile
        "PYTHONDONTWRITEBYTECODE": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(threads)  # several runs at once share the cores
    return env


def _sandbox_environment(workdir: Path, threads: int | None) -> dict[str, str]:
    """The environment inside a sandbox: chosen, not inherited."""
    env = {key: os.environ[key] for key in _PASSED_ON if key in os.environ}
    env.update(_course_environment(workdir, threads))
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"])
    env["PYTHONPATH"] = str(_package_root())
    env["MPLCONFIGDIR"] = str(workdir / ".matplotlib")
    kernel = cpu_kernel.cache_dir()
    if kernel.is_dir():
        env["CBAM_CACHE_DIR"] = str(kernel)  # the kernel the grader built, shown read-only
    return env


def _sandbox_reads() -> list[Path]:
    """What a sandbox shows besides the system and Python: the package, the built kernel."""
    shown = [Path(cbam.__file__).resolve().parent]
    kernel = cpu_kernel.cache_dir()
    if kernel.is_dir():
        shown.append(kernel)
    return shown


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
    limits: Limits | None = None,
    probe_seed: int | None = None,
) -> RunOutcome:
    """Write ``content`` into ``workdir`` and run nbval on it; each code cell's result.

    With ``limits`` the run is sandboxed (``sandbox``): it sees ``workdir`` and nothing else
    of the grader's files. Everything read back from ``workdir`` is read as untrusted.
    """
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
        shutil.copyfile(sanitize, workdir / "nbval_sanitize.cfg")
        command.append(f"--nbval-sanitize-with={workdir / 'nbval_sanitize.cfg'}")
    cgroup, confined = None, None
    if limits is not None:
        env = _sandbox_environment(workdir, threads)
        if probe_seed is not None:
            env.update({"CBAM_PROBE_SEED": str(probe_seed), "CBAM_PROBE_DIR": str(workdir)})
        cgroup = Cgroup.make(f"cbam-grade-{os.getpid()}-{secrets.token_hex(4)}", limits)
        wrapper = Sandbox(workdir, limits, _sandbox_reads(), env, cgroup)
        argv, confined = wrapper.wrap(command), wrapper.describe()
    else:
        env = _environment(workdir, threads)
        if probe_seed is not None:
            env.update({"CBAM_PROBE_SEED": str(probe_seed), "CBAM_PROBE_DIR": str(workdir)})
        argv = command
    started = time.perf_counter()
    # pytest's output goes to a file, not a pipe: a kernel that outlives pytest cannot hold a
    # pipe open and keep the grader waiting. The file is the grader's, outside the sandbox.
    with tempfile.TemporaryFile() as stream:
        process = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=stream, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=hasattr(os, "killpg"),
        )
        RUNNING.add(process, cgroup)
        overall, out_of_memory, memory_peak, cpu_seconds = None, False, None, None
        try:
            try:
                process.wait(timeout=total_timeout)
            except subprocess.TimeoutExpired:
                overall = total_timeout
            if limits is None:
                _, pids, _ = _read_capture(scratch.read_text(workdir, capture.name), len(roles))
                _kill(process, pids)
            out_of_memory = cgroup is not None and cgroup.out_of_memory()
            memory_peak = cgroup.memory_peak() if cgroup is not None else None
            cpu_seconds = cgroup.cpu_seconds() if cgroup is not None else None
        finally:
            cleanup(process, cgroup)  # the sandbox and every process in it end here
            RUNNING.discard(process)
        stream.seek(0, os.SEEK_END)
        stream.seek(max(0, stream.tell() - 4000))
        log = stream.read().decode("utf-8", "replace")
    seconds = time.perf_counter() - started
    cells, _, restarts = _read_capture(scratch.read_text(workdir, capture.name), len(roles))
    for number, (outcome, message) in _junit_outcomes(
            scratch.read_text(workdir, junit.name, 4 * scratch.MIB)).items():
        if 0 <= number < len(cells):
            cells[number].outcome = outcome
            cells[number].message = cells[number].message or message
    return RunOutcome(cells=cells, overall_timeout=overall, restarts=len(restarts),
                      replay_gaps=sum(r["of"] - r["replayed"] for r in restarts),
                      seconds=seconds, log=log, probes=_read_probes(workdir),
                      out_of_memory=out_of_memory, memory_peak=memory_peak,
                      cpu_seconds=cpu_seconds, sandbox=confined)


def _read_probes(workdir: Path) -> dict[str, bytes]:
    """What each probe cell wrote, by exercise name: raw, for ``probes.judge`` to decode."""
    found = {}
    for name in scratch.names(workdir, PROBE_PREFIX):
        exercise = name[len(PROBE_PREFIX):].removesuffix(".json")
        data = scratch.read(workdir, name, 8 * scratch.MIB)
        if data is not None:
            found[exercise] = data
    return found


class _Running:
    """The sandboxes running now, so that a grader told to stop ends them first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[subprocess.Popen, Cgroup | None] = {}
        self.stopping = False

    def add(self, process: subprocess.Popen, cgroup: Cgroup | None) -> None:
        with self._lock:
            if not self.stopping:
                self._runs[process] = cgroup
                return
        cleanup(process, cgroup)  # started as the grader was told to stop: ended at once

    def discard(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._runs.pop(process, None)

    def end_all(self) -> None:
        with self._lock:
            self.stopping = True
            runs = list(self._runs.items())
        for process, cgroup in runs:
            cleanup(process, cgroup)


RUNNING = _Running()
