"""cbam.device keeps torch's notice about a CUDA toolkit without a GPU out of the lessons."""

from __future__ import annotations

import json
import subprocess
import sys

import jupytext

NOTICE = "No CUDA runtime is found, using CUDA_HOME='%s'"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )


def test_the_notice_is_dropped_and_other_messages_pass():
    # A CPU build of torch never logs the notice itself, so it is logged here the way
    # torch.utils.cpp_extension logs it on a CUDA build that finds no GPU.
    result = _run(
        "import logging, cbam.device\n"
        "log = logging.getLogger('torch.utils.cpp_extension')\n"
        f"log.warning({NOTICE!r}, '/usr/local/cuda')\n"
        "log.warning('another warning')\n"
    )
    assert "No CUDA runtime" not in result.stderr
    assert "another warning" in result.stderr


def test_without_cbam_device_the_notice_shows():
    result = _run(
        "import logging\n"
        f"logging.getLogger('torch.utils.cpp_extension').warning({NOTICE!r}, '/usr/local/cuda')\n"
    )
    assert "No CUDA runtime is found" in result.stderr


def test_lesson_07_first_cell_does_not_import_cpp_extension(root):
    # torch.utils.benchmark imports torch.utils.cpp_extension; the lesson imports it only once
    # cbam.device has installed its filter.
    lesson = jupytext.read(root / "solutions" / "07_making_it_fast.py")
    first = next(cell.source for cell in lesson.cells if cell.cell_type == "code")
    result = _run(
        first + "\nimport json, sys\n"
        "print(json.dumps('torch.utils.cpp_extension' in sys.modules))\n"
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) is False
