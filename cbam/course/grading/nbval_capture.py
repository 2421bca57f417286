"""A pytest plugin for the nbval run the grader starts: each cell's outputs, and going on after
a cell that hangs.

nbval reports whether each cell's output matched; the grader also needs what a check cell
printed (its ✗ lines are the learner's hints), so this plugin writes one JSON line per cell to
the file given by ``--cbam-capture``, as soon as the cell is done (a run cut short by the
overall timeout still leaves the cells it finished).

After a cell times out, nbval interrupts the kernel and marks every later cell "expected to
fail" (xfail), which would leave the later exercises ungraded. This plugin clears that mark
when the interrupt worked. When it did not (code that ignores the interrupt, a crashed kernel),
nbval has stopped the kernel; the plugin starts a new one and runs the cells before again,
except the ones that hung, so that the later cells find the names they need.

It uses nothing but pytest and the standard library: the grader copies this file beside the
graded notebook and loads it by that copy's name, so that the pytest process does not import
cbam (and torch with it).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from queue import Empty

import pytest

# nbval imports nbformat, whose jsonschema compiles a grammar for IRIs (rfc3987_syntax) as it is
# imported: seconds for every graded notebook, for a string format no notebook uses. Loaded
# before nbval (see graded_run), this plugin makes that optional import find nothing.
sys.modules.setdefault("rfc3987_syntax", None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cbam-capture", default=None,
                     help="write each notebook cell's result and outputs to this JSON-lines file")
    parser.addoption("--cbam-first-cell-timeout", type=float, default=None,
                     help="seconds the first cell may run (the grader's prologue, which imports "
                          "torch and the checks), instead of --nbval-cell-timeout")


class _Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.ran: list[object] = []  # items whose cells ran, in order, to replay after a restart
        self.hung: set[int] = set()  # cell numbers that timed out or took the kernel down
        self.pids: set[int] = set()
        self.cell_timeout: float | None = None
        self.died = False  # the kernel died by itself during the current cell

    def write(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    def kernel_pid(self, notebook: object) -> None:
        """Record a new kernel's pid: the grader kills it if the whole run is cut short."""
        try:
            pid = notebook.kernel.km.provisioner.pid
        except AttributeError:
            return
        if pid and pid not in self.pids:
            self.pids.add(pid)
            self.write({"kernel_pid": pid})


_recorder: _Recorder | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _recorder
    path = config.getoption("--cbam-capture")
    _recorder = _Recorder(Path(path)) if path else None


def _is_cell(item: pytest.Item) -> bool:
    return hasattr(item, "cell_num") and hasattr(item.parent, "timed_out")


def _kernel_alive(notebook: object) -> bool:
    kernel = getattr(notebook, "kernel", None)
    return kernel is not None and kernel.is_alive()


def _timeout(item: pytest.Item) -> float:
    first = item.config.getoption("--cbam-first-cell-timeout")
    if first and item.cell_num == 0:
        return max(first, _recorder.cell_timeout)
    return _recorder.cell_timeout


def _watch_for_death(kernel: object) -> None:
    """Make nbval's wait for a cell's reply notice a kernel that died.

    nbval waits for the reply until --nbval-cell-timeout runs out, so a kernel that exited
    (``os._exit`` in an exercise, a crash in C) looked like a hang and cost the whole timeout.
    The wait is cut into half-second slices; between them the kernel's process is looked at.
    """
    if getattr(kernel, "_cbam_watched", False):
        return
    wait = kernel.await_reply

    def await_reply(msg_id: str, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                return wait(msg_id, timeout=left)
            except Empty:
                if not kernel.is_alive():
                    _recorder.died = True
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    kernel.await_reply = await_reply
    kernel._cbam_watched = True


def _replay(notebook: object, items: list[object]) -> int:
    """Run ``items``' cells in the (new) kernel, outputs unread; the number that ran."""
    kernel = notebook.kernel
    done = 0
    for item in items:
        msg_id = kernel.execute_cell_input(item.cell.source, allow_stdin=False)
        try:
            kernel.await_reply(msg_id, timeout=_timeout(item))
        except Empty:
            kernel.interrupt()
            break
        done += 1
    return done


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _recorder is None or not _is_cell(item):
        return
    notebook = item.parent
    if _recorder.cell_timeout is None:
        _recorder.cell_timeout = item.config.option.nbval_cell_timeout
    # nbval reads the option for every cell, so it can be set cell by cell.
    item.config.option.nbval_cell_timeout = _timeout(item)
    notebook.timed_out = False  # after a timeout nbval would xfail this cell and all later ones
    _recorder.died = False
    if _kernel_alive(notebook):
        _watch_for_death(notebook.kernel)
    if not _recorder.ran or _kernel_alive(notebook):
        return  # before the first cell, nbval has not started the kernel yet
    notebook.setup()  # a new kernel, started as nbval starts one
    _watch_for_death(notebook.kernel)
    replay = [i for i in _recorder.ran if i.cell_num not in _recorder.hung]
    done = _replay(notebook, replay)
    _recorder.write({"restarted_before": item.cell_num, "replayed": done,
                     "of": len(replay)})


# Characters of one output kept: a cell that prints a flood is recorded cut, with a note.
OUTPUT_LIMIT = 100_000


def _cut(text: object) -> str:
    text = "".join(text) if isinstance(text, list) else str(text)
    if len(text) <= OUTPUT_LIMIT:
        return text
    return text[:OUTPUT_LIMIT] + f"\n… {len(text) - OUTPUT_LIMIT} more characters cut\n"


def _outputs(item: object) -> list[dict]:
    """The outputs the cell produced in this run, as plain text."""
    found = []
    for output in getattr(item, "test_outputs", None) or []:
        kind = output.get("output_type")
        if kind == "stream":
            found.append({"type": "stream", "name": output.get("name"),
                          "text": _cut(output.get("text", ""))})
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            found.append({"type": kind, "text": _cut(data.get("text/plain", ""))})
        elif kind == "error":
            found.append({"type": "error", "ename": output.get("ename", ""),
                          "evalue": output.get("evalue", "")})
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if _recorder is None or not _is_cell(item):
        return
    if call.when == "setup":
        _recorder.kernel_pid(item.parent)
    if call.when != "call":
        return
    report = outcome.get_result()
    notebook = item.parent
    # A kernel that died by itself is no timeout, though nbval counts it as one; a kernel that
    # is gone after a timeout was stopped by nbval (the code ignored the interrupt).
    kernel_died = _recorder.died
    timed_out = bool(notebook.timed_out) and not kernel_died
    _recorder.ran.append(item)
    if timed_out or kernel_died or not _kernel_alive(notebook):
        _recorder.hung.add(item.cell_num)
    message = ""
    if call.excinfo is not None:
        message = str(call.excinfo.value).strip()
    _recorder.write({
        "cell": item.cell_num,
        "outcome": report.outcome,
        "timed_out": timed_out,
        "kernel_died": kernel_died,
        "message": message,
        "seconds": round(report.duration, 3),
        "outputs": _outputs(item),
    })
