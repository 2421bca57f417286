"""The explorers in a real JupyterLab, in headless Chromium, as a learner meets them.

For a small notebook showing all three explorers, and for every reference lesson
(solutions/NN_*.ipynb) that shows one: open it, Run All Cells, then check that no cell failed,
that every widget rendered, and that moving one control changes what the widget shows.

Without Chromium, Playwright or JupyterLab the tests skip and say why; CBAM_REQUIRE_BROWSER=1
(set by CI) turns that skip into a failure.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from browser import notebook_page as nb
from browser.demo_notebook import NAME as DEMO
from browser.demo_notebook import write_demo_notebook

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(
    path.name for path in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb") if nb.has_widgets(path)
)
RUN_TIMEOUT_S = 180  # a lesson runs in well under a minute on 2 cores; this bounds a hang


def _missing() -> str | None:
    if not Path(nb.CHROMIUM).exists():
        return f"no Chromium at {nb.CHROMIUM} (apt-get install chromium)"
    for module in ("playwright", "jupyterlab"):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module} is not installed"
    # ipywidgets 7 has no JupyterLab 4 extension (it is Colab's version, and Colab draws widgets
    # with its own front end): tests/test_widgets_ipywidgets7.py covers it, headless.
    widgets_version = importlib.metadata.version("ipywidgets")
    if int(widgets_version.split(".")[0]) < 8:
        return f"ipywidgets {widgets_version} does not render in JupyterLab 4 (8 or newer does)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("CBAM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CBAM_REQUIRE_BROWSER=1 but the browser test cannot run: {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=nb.CHROMIUM, args=nb.CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def lab(browser):
    """One JupyterLab for the module, serving copies of the notebooks (runs never touch the
    originals) and the demo notebook."""
    from browser.lab_server import running_lab

    folder = Path(tempfile.mkdtemp(prefix="cbam-notebooks-"))
    for name in LESSONS:
        shutil.copy(ROOT / "solutions" / name, folder / name)
    write_demo_notebook(folder)
    try:
        with running_lab(folder) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("name", [DEMO, *LESSONS])
def test_widgets_render_and_respond_in_jupyterlab(name, lab, browser, figures):
    cells = nb.read_cells(lab.root / name)
    assert cells.widgets, f"{name} shows no widget"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        nb.open_notebook(page, lab.page_url(name))
        seconds = nb.run_all_cells(page, RUN_TIMEOUT_S)
        figures(f"browser: Run All Cells of {name}", f"{seconds:.1f} s")

        failed = {
            index: errors
            for index in cells.code
            if index not in cells.may_raise and (errors := nb.tracebacks(page, index))
        }
        assert not failed, f"{name}: cells raised:\n" + "\n".join(
            f"cell {index}: {errors[0][-1500:]}" for index, errors in failed.items()
        )
        not_run = [i for i in cells.code if not any(c.isdigit() for c in nb.prompt(page, i))]
        assert not not_run, f"{name}: cells {not_run} did not run"

        for index in cells.widgets:
            nb.wait_for_widget(page, index)
            text = nb.cell_text(page, index)
            problems = [p for p in nb.WIDGET_PROBLEMS if p in text]
            assert not problems, f"{name} cell {index}: {problems}: {text[:500]}"
        for index in cells.widgets:
            try:
                nb.move_a_control(page, index)
            except TimeoutError as error:  # Playwright's is a subclass
                raise AssertionError(
                    f"{name} cell {index}: moving a control changed nothing shown: {error}"
                ) from error
    except Exception:
        shot = Path(tempfile.gettempdir()) / f"failed-{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"page at the failure: {shot}")
        raise
    finally:
        context.close()
        lab.shutdown_kernels()  # a lesson's kernel holds torch; free it before the next one
