"""Executing a reference notebook with nbclient and keeping only what is the same on every run.

Execution counts follow the code cells (1, 2, 3, ...), streams are merged, and what differs from
run to run by construction is left out: execution timestamps, widget state and the random model
ids of widget views (a notebook without widget state cannot show those views anyway; their
text fallback stays).

The kernel sees no GPU: reference outputs are those of the CPU ("quick") settings on every
machine, which is what nbval and the grader compare against.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm.auto import tqdm

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ExecutionFailed(RuntimeError):
    """A cell raised (without the ``raises-exception`` tag), timed out or killed the kernel."""


def kernel_environment() -> dict[str, str]:
    """This process's environment with every CUDA device hidden."""
    return {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def merge_streams(outputs: list) -> list:
    """Consecutive stream outputs of one name become one: how they were split is timing."""
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output.output_type == "stream"
            and previous is not None
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def clean_outputs(outputs: list) -> list:
    kept = []
    for output in merge_streams(outputs):
        if "data" in output:
            output.data.pop(WIDGET_VIEW, None)
            if not output.data:
                continue
        kept.append(output)
    return kept


def execute_notebook(
    notebook: nbformat.NotebookNode,
    cwd: Path,
    *,
    timeout: int,
    where: Callable[[int], str],
    label: str,
) -> float:
    """Run every code cell of ``notebook`` in place, in a fresh kernel started in ``cwd``.

    ``where(index)`` names a cell in error messages. Returns the wall time in seconds.
    """
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        record_timing=False,
        store_widget_state=False,
    )
    code_cells = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    start = time.perf_counter()
    executed = 0
    with client.setup_kernel(env=kernel_environment()):
        for index in tqdm(code_cells, desc=label, unit="cell", leave=False):
            cell = notebook.cells[index]
            if not cell.source.strip():
                continue
            executed += 1
            try:
                client.execute_cell(cell, index, execution_count=executed)
            except CellExecutionError as error:
                raise ExecutionFailed(
                    f"{where(index)} raised {error.ename}: {strip_ansi(error.evalue)}\n"
                    "(tag the cell raises-exception if the error is what it shows)\n"
                    f"{strip_ansi(str(error))}"
                ) from None
            except TimeoutError:
                raise ExecutionFailed(
                    f"{where(index)} ran longer than {timeout} s (the timeout per cell)"
                ) from None
            except Exception as error:  # a dead kernel, a lost connection
                raise ExecutionFailed(
                    f"{where(index)}: the kernel failed: {type(error).__name__}: {error}"
                ) from None
            cell.outputs = clean_outputs(cell.outputs)
    return time.perf_counter() - start
