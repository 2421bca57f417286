"""Regenerate docs/screenshots/*.png: each explorer as JupyterLab shows it, in headless Chromium.

    .venv/bin/python tests/browser/screenshots.py [OUTPUT_FOLDER]

It runs the browser test's demo notebook with the same machinery (a private JupyterLab, Run All
Cells from the menu) and takes an element screenshot of each widget.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from browser import notebook_page as nb  # noqa: E402
from browser.demo_notebook import NAME, WIDGET_CELLS, write_demo_notebook  # noqa: E402
from browser.lab_server import running_lab  # noqa: E402

DEFAULT_OUTPUT = TESTS.parent / "docs" / "screenshots"


def take_screenshots(output: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    output.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="cbam-screenshots-"))
    notebook = write_demo_notebook(folder)
    cells = nb.read_cells(notebook)
    files = list(WIDGET_CELLS.values())
    assert len(cells.widgets) == len(files), (cells.widgets, files)
    saved = []
    with running_lab(folder) as lab, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=nb.CHROMIUM, args=nb.CHROMIUM_ARGS)
        # device_scale_factor 2: sharp text on high-density screens, where the docs are read.
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, device_scale_factor=2
        )
        page = context.new_page()
        nb.open_notebook(page, lab.page_url(NAME))
        nb.run_all_cells(page, timeout_s=180)
        for index, name in zip(cells.widgets, files, strict=True):
            widget = nb.wait_for_widget(page, index)
            path = output / name
            widget.screenshot(path=str(path))
            saved.append(path)
        browser.close()
    return saved


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    for path in take_screenshots(target):
        print(path)
