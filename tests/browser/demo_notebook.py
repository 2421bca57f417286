"""A small notebook that shows every explorer, so the browser test checks all three even where no
lesson uses them yet, and the screenshots come from the same cells."""

from __future__ import annotations

from pathlib import Path

import nbformat

NAME = "widgets_demo.ipynb"

# Cell source -> the screenshot its widget gives.
WIDGET_CELLS = {
    "ShapeExplorer()": "shape_explorer.png",
    (
        "features = sample_features(16)\n"
        "block = cbam.CBAM(16, reduction=4)\n"
        "with torch.no_grad():\n"
        "    refined = block(features)\n"
        'TensorViewer(features, refined, names=("features", "CBAM(features)"))'
    ): "tensor_viewer.png",
    "AttentionExplorer()": "attention_explorer.png",
}
SETUP = (
    "import torch\n"
    "import cbam\n"
    "from cbam.widgets import AttentionExplorer, ShapeExplorer, TensorViewer, sample_features\n"
    "_ = torch.manual_seed(0)"
)


def write_demo_notebook(folder: Path) -> Path:
    cells = [nbformat.v4.new_markdown_cell("# The course's interactive explorers")]
    cells.append(nbformat.v4.new_code_cell(SETUP))
    cells += [nbformat.v4.new_code_cell(source) for source in WIDGET_CELLS]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    path = folder / NAME
    nbformat.write(notebook, path)
    return path
