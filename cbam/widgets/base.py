"""What every explorer shares: a displayable widget, its named controls, a redraw on change."""

from __future__ import annotations

import html
import io

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Descriptions such as "reduction r" need more room than ipywidgets' narrow default.
DESCRIPTION_STYLE = {"description_width": "initial"}


class Explorer:
    """A widget with named ``controls``; any change of a control's value calls ``update``.

    ``display(explorer)`` and a bare ``explorer`` at the end of a cell both show ``.widget``.
    """

    widget: widgets.Widget
    controls: dict[str, widgets.Widget]

    def _watch_controls(self) -> None:
        for control in self.controls.values():
            control.observe(self._on_change, names="value")

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        # IPython honours this hook in both ipywidgets 7 and 8 (their own display hooks differ).
        from IPython.display import display

        display(self.widget)


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot: no global state, and the inline backend never shows it twice."""
    figure = Figure(figsize=(width, height), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes, for a ``widgets.Image``: it renders the same in JupyterLab,
    Colab and classic Notebook, without an Output widget or a matplotlib backend in the browser."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def error_html(error: BaseException) -> str:
    """An error as the explorer shows it: its type and the module's own message."""
    return (
        '<div style="color:#b00020; font-family:monospace; white-space:pre-wrap">'
        f"{type(error).__name__}: {html.escape(str(error))}</div>"
    )
