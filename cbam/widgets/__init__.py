"""Interactive explorers for the lessons, built from core ipywidgets and matplotlib only, so they
work in JupyterLab, classic Notebook and Colab (ipywidgets 7.7 or 8) with nothing to install.

>>> from cbam.widgets import ShapeExplorer, TensorViewer, AttentionExplorer
>>> ShapeExplorer()  # last line of a cell: the shapes through CBAM  # doctest: +SKIP
>>> TensorViewer(x, block(x), names=("x", "CBAM(x)"))  # two tensors  # doctest: +SKIP
>>> AttentionExplorer()  # a photo's channel weights and spatial map  # doctest: +SKIP

The computations behind them are plain functions (``shape_flow``, ``parameter_table``,
``attention_maps``, ...) that need no widget.
"""

from cbam.widgets.attention_explorer import (
    AttentionExplorer,
    attention_maps,
    sample_features,
    sample_image,
)
from cbam.widgets.shape_explorer import ShapeExplorer, build_module, parameter_table, shape_flow
from cbam.widgets.tensor_viewer import TensorViewer

__all__ = [
    "AttentionExplorer",
    "ShapeExplorer",
    "TensorViewer",
    "attention_maps",
    "build_module",
    "parameter_table",
    "sample_features",
    "sample_image",
    "shape_flow",
]
