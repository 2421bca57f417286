"""The full mode of lessons 05-07 (what a learner on a Colab GPU runs), run on the CPU.

``CBAM_MODE=full`` with ``CBAM_SMOKE=1`` (cbam.device): every cell takes the path it takes on a
GPU (CIFAR-10 read from its python-pickle files, the full-size ResNet-20, the cells that branch
on the mode, the live run set beside the stored runs), at toy sizes: one epoch over a few
batches, and a CIFAR-10 folder this test writes, a few hundred random images in the real file
format. What the lessons print measures nothing here. Checked: every cell runs, the cells nbval
compares write nothing to stderr, and the cells that differ between the modes say what the full
mode should.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from cbam.course.building.execute import kernel_environment, strip_ansi
from cbam.data import CIFAR10_CLASSES, has_cifar10, load_cifar10

pytestmark = pytest.mark.full_mode

PER_BATCH, TEST_IMAGES = 70, 100  # 350 training images: the smoke settings take 256 + 64
CELL_TIMEOUT_S = 300


def write_cifar10(root, seed: int = 0):
    """A CIFAR-10 "python version" folder: pickled dicts with bytes keys, as the real files."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)

    def write(name: str, content: dict) -> None:
        with (folder / name).open("wb") as file:
            pickle.dump(content, file, protocol=2)

    def batch(name: str, label: str, n: int) -> None:
        write(
            name,
            {
                b"batch_label": label.encode(),
                b"labels": rng.integers(0, 10, n).tolist(),
                b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
                b"filenames": [f"image_{i:05d}.png".encode() for i in range(n)],
            },
        )

    for i in range(1, 6):
        batch(f"data_batch_{i}", f"training batch {i} of 5", PER_BATCH)
    batch("test_batch", "testing batch 1 of 1", TEST_IMAGES)
    write(
        "batches.meta",
        {
            b"num_cases_per_batch": PER_BATCH,
            b"label_names": [name.encode() for name in CIFAR10_CLASSES],
            b"num_vis": 3 * 32 * 32,
        },
    )
    return folder


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root)
    return root


def test_the_written_folder_reads_as_cifar10(cifar_root):
    assert has_cifar10(cifar_root)
    train, test = load_cifar10(cifar_root, train=True), load_cifar10(cifar_root, train=False)
    assert (len(train), len(test)) == (5 * PER_BATCH, TEST_IMAGES)
    image, label = test[0]
    assert image.shape == (3, 32, 32) and 0 <= int(label) < 10


def run_full_mode(root, lesson: str, cifar_root) -> tuple[list, float]:
    """Execute ``lesson``'s reference notebook in the smoke-sized full mode; returns its code
    cells, executed, and the wall time."""
    path = next((root / "solutions").glob(f"{lesson}_*.ipynb"))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    env = {
        **kernel_environment(),
        "CBAM_MODE": "full",
        "CBAM_SMOKE": "1",
        "CBAM_DATA": str(cifar_root),
        "MPLBACKEND": "agg",
    }
    cells = [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    start = time.perf_counter()
    with client.setup_kernel(env=env):
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                pytest.fail(
                    f"{path.name}, cell {index}, in full mode: {error.ename}: "
                    f"{strip_ansi(error.evalue)}\n{cell.source}"
                )
    return cells, time.perf_counter() - start


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _stderr_of_compared_cells(cells) -> list[str]:
    return [
        f"{cell.source.splitlines()[0]!r}: {strip_ansi(output.text)[:300]}"
        for cell in cells
        if "nbval-ignore-output" not in cell.metadata.get("tags", [])
        for output in cell.outputs
        if output.output_type == "stream" and output.name == "stderr"
    ]


@pytest.mark.parametrize("lesson", ["05", "06", "07"])
def test_full_mode_runs_every_cell(root, cifar_root, lesson, figures):
    cells, seconds = run_full_mode(root, lesson, cifar_root)
    figures(f"lesson {lesson} in full mode at toy sizes", f"{seconds:.0f} s")
    assert _stderr_of_compared_cells(cells) == []
    printed = "\n".join(_text(cell) for cell in cells)
    if lesson == "05":
        # The live run trains on CIFAR-10 from the written files, with its test split held out,
        # and is set beside the stored runs as another task's.
        assert "'task': 'cifar10'" in printed
        assert "test accuracy" in printed
        assert "The live run trained on cifar10, the stored runs on shapes" in printed


def test_smoke_shrinks_the_full_settings_but_keeps_their_task_and_network():
    code = "import json; from cbam.experiments import FULL; print(json.dumps(FULL.as_dict()))"

    def full(smoke: str) -> dict:
        env = {**os.environ, "CBAM_SMOKE": smoke}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        return json.loads(out)

    real, smoke = full("0"), full("1")
    assert {k for k in real if real[k] != smoke[k]} == {"n_train", "n_val", "epochs", "batch_size"}
    assert (smoke["task"], smoke["depth"], smoke["width"]) == ("cifar10", 20, 32)
    assert smoke["n_train"] + smoke["n_val"] <= 5 * PER_BATCH
