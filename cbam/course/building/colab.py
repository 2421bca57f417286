"""The two cells every lesson starts with: an "Open in Colab" badge and the setup cell.

The build stamps them on each notebook so the sources do not repeat them. The setup cell prints
nothing: nbval compares its (empty) output, and Colab is the only place where it installs anything.
"""

from __future__ import annotations

import nbformat

from cbam.course.building import config

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_ID = "colab-badge"
SETUP_ID = "setup"


def badge_cell(learner_path: str) -> nbformat.NotebookNode:
    """A markdown cell with the badge that opens the learner notebook ``learner_path`` in Colab."""
    url = config.colab_url(learner_path)
    cell = nbformat.v4.new_markdown_cell(f"[![Open In Colab]({BADGE_IMAGE})]({url})")
    cell.id = BADGE_ID
    return cell


def setup_source() -> str:
    return "\n".join(
        [
            "# Colab starts without the course's package: install it there (quietly, so this cell",
            "# prints nothing). Everywhere else it is installed already.",
            "import subprocess",
            "import sys",
            "",
            'if "google.colab" in sys.modules:',
            "    subprocess.run(",
            '        [sys.executable, "-m", "pip", "install", "--quiet",',
            f'         "{config.pip_requirement()}"],',
            "        check=True,",
            "    )",
            "",
            "import torch",
            "",
            "# Lessons put models and tensors on DEVICE: a GPU when there is one.",
            'DEVICE = "cuda" if torch.cuda.is_available() else "cpu"',
        ]
    )


def setup_cell() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(setup_source())
    cell.id = SETUP_ID
    return cell
