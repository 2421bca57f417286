"""A notebook open in JupyterLab, driven as a learner would: through the menus, the keyboard and
the widgets on the page (Playwright's sync API).

Cells are addressed by their index in the notebook file; JupyterLab runs with windowingMode "none"
(see lab_server), so every cell is in the page and the n-th ``.jp-Cell`` is cell n.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps trying to reach Google's hosts, which this machine
# and CI refuse; no sandbox because the tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_CALL = re.compile(r"\b(ShapeExplorer|TensorViewer|AttentionExplorer)\s*\(")
WIDGET_PROBLEMS = ("Error displaying widget", "Loading widget", "Could not find model")

_CELLS = "document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')"

# The indicator reads "idle" before any kernel exists too, so the kernel's name must be there.
_KERNEL_READY = """() => {
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const name = document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName');
  return indicator !== null && indicator.getAttribute('data-status') === 'idle'
    && name !== null && name.innerText.trim() !== '' && name.innerText.trim() !== 'No Kernel';
}"""

# True while the kernel is busy or a cell is still queued ([*]).
_BUSY = """() => {
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const status = indicator ? indicator.getAttribute('data-status') : 'missing';
  const queued = Array.from(document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt'))
    .some(p => p.innerText.includes('*'));
  return status !== 'idle' || queued;
}"""

# A cell's widget state, as a learner sees it: the explorers' text and pictures (the controls'
# own readouts are left out, since they change in the browser before the kernel answers).
_SHOWN = (
    """(index) => {
  const cell = """
    + _CELLS
    + """[index];
  const texts = Array.from(cell.querySelectorAll('.jp-OutputArea .widget-html'))
    .map(e => e.innerText);
  const images = Array.from(cell.querySelectorAll('.jp-OutputArea img')).map(e => e.src);
  return JSON.stringify([texts, images]);
}"""
)


@dataclass
class NotebookCells:
    """What the test needs to know of a notebook file before it runs it."""

    code: list[int]  # indices of the non-empty code cells (JupyterLab skips empty ones)
    widgets: list[int]  # indices of the cells that display a widget
    may_raise: list[int]  # cells tagged raises-exception: a traceback there is expected


def read_cells(path: Path) -> NotebookCells:
    notebook = nbformat.read(path, as_version=4)
    code, shown, may_raise = [], [], []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        code.append(index)
        stored = any(WIDGET_MIME in output.get("data", {}) for output in cell.get("outputs", []))
        if stored or WIDGET_CALL.search(cell.source):
            shown.append(index)
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            may_raise.append(index)
    return NotebookCells(code, shown, may_raise)


def has_widgets(path: Path) -> bool:
    return bool(read_cells(path).widgets)


def open_notebook(page, url: str, timeout_s: float = 90.0) -> None:
    """Open the notebook and wait for an idle kernel, choosing the default kernel if JupyterLab
    asks (it does for a notebook without a kernelspec)."""
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and "kernel" in dialog.first.inner_text().lower():
            dialog.locator(".jp-mod-accept").first.click()
        if page.evaluate(_KERNEL_READY):
            return
        time.sleep(0.25)
    raise TimeoutError(f"the notebook's kernel was not idle within {timeout_s:.0f} s")


def run_all_cells(page, timeout_s: float) -> float:
    """Edit > Clear Outputs of All Cells, then Run > Run All Cells, and wait until the kernel is
    idle with no cell queued. Returns the seconds the run took."""
    _menu(page, "Edit", "editmenu:clear-all")
    page.wait_for_function(
        "() => !Array.from(document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt'))"
        ".some(p => /\\d/.test(p.innerText))",
        timeout=30_000,
    )
    started = time.monotonic()
    _menu(page, "Run", "runmenu:run-all")
    # The run has begun once a prompt shows [*] or a number; it ends when nothing is busy.
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt'))"
        ".some(p => /[*\\d]/.test(p.innerText))",
        timeout=30_000,
    )
    deadline = started + timeout_s
    quiet_since = None
    while True:
        busy = page.evaluate(_BUSY)
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since > 1.0:  # idle for a second: not a gap between two cells
            return quiet_since - started
        if now > deadline:
            raise TimeoutError(f"Run All Cells still running after {timeout_s:.0f} s")
        time.sleep(0.2)


def _menu(page, menu: str, command: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).click()
    page.locator(f'li.lm-Menu-item[data-command="{command}"]').click()


def cell(page, index: int):
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)


def prompt(page, index: int) -> str:
    return cell(page, index).locator(".jp-InputArea-prompt").inner_text().strip()


def tracebacks(page, index: int) -> list[str]:
    """The error outputs of a cell (stderr that holds a traceback; warnings are not errors)."""
    errors = cell(page, index).locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )
    texts = [errors.nth(i).inner_text() for i in range(errors.count())]
    return [text for text in texts if "Traceback" in text or "Error" in text]


def wait_for_widget(page, index: int, timeout_s: float = 30.0):
    """The cell's rendered widget output, once the widget manager has drawn it."""
    output = cell(page, index).locator(
        ".jp-OutputArea-output", has=page.locator(".jupyter-widgets")
    )
    output.first.wait_for(state="visible", timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while any(problem in cell_text(page, index) for problem in WIDGET_PROBLEMS):
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return output.first


def cell_text(page, index: int) -> str:
    return cell(page, index).locator(".jp-OutputArea").inner_text()


def shown_state(page, index: int) -> str:
    return page.evaluate(_SHOWN, index)


def move_a_control(page, index: int, timeout_s: float = 30.0) -> str:
    """Press ArrowRight on the first slider that can move (else pick another dropdown option) and
    wait until the widget's text or picture changes. Returns what was moved."""
    before = shown_state(page, index)
    handles = cell(page, index).locator(".jp-OutputArea .noUi-handle")
    moved = None
    for i in range(handles.count()):
        handle = handles.nth(i)
        disabled = handle.evaluate("h => h.closest('[disabled]') !== null")
        now = float(handle.get_attribute("aria-valuenow"))
        if not disabled and now < float(handle.get_attribute("aria-valuemax")):
            handle.focus()
            page.keyboard.press("ArrowRight")
            moved = f"slider {i} from {now:g} (ArrowRight)"
            break
    if moved is None:
        selects = cell(page, index).locator(".jp-OutputArea select:not([disabled])")
        if not selects.count():
            raise AssertionError(f"cell {index}: its widget has no slider or dropdown to move")
        select = selects.first
        options = select.locator("option").all_inner_texts()
        current = select.evaluate("s => s.selectedIndex")
        select.select_option(index=(current + 1) % len(options))
        moved = f"dropdown to {options[(current + 1) % len(options)]!r}"
    page.wait_for_function(
        "([index, before]) => (" + _SHOWN + ")(index) !== before",
        arg=[index, before],
        timeout=timeout_s * 1000,
    )
    return moved
