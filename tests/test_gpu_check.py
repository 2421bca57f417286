"""``make gpu-check``'s parts that run without a GPU: the refusal, the lesson runner, the bench.

The check itself needs CUDA (see cbam/gpu_check.py); here it must stop at once and say why.
"""

from __future__ import annotations

import os
import subprocess
import sys

from cbam import gpu_check


def test_without_cuda_it_stops_and_says_why(tmp_path):
    report = tmp_path / "report.md"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine with one
    run = subprocess.run(
        [sys.executable, "-m", "cbam.gpu_check", "--report", str(report)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "make gpu-check needs a CUDA GPU" in run.stderr
    assert "torch.cuda.is_available() is False" in run.stderr
    assert "CUDA_VISIBLE_DEVICES=''" in run.stderr
    assert not report.exists(), "a report from a check that did not run"


def test_the_bench_gives_every_ratio_on_the_cpu():
    times = gpu_check.bench((2, 16, 8, 8), device="cpu", min_run_time=0.01)
    assert set(times) == {
        "clone", "forward", "forward plain", "forward naive", "train", "train plain", "train naive"
    }  # fmt: skip
    assert all(t > 0 for t in times.values())
    table = gpu_check.bench_table([("2×16×8×8", times)]).splitlines()
    assert len(table) == 3 and table[2].startswith("| 2×16×8×8 | ")
    assert table[2].count("|") == table[0].count("|")


def test_a_lesson_runs_to_the_end_or_stops_at_its_cap():
    verdict, detail = gpu_check.run_lesson("00", cap=300, mode="quick")
    assert verdict == "passed", detail
    verdict, detail = gpu_check.run_lesson("05", cap=2, mode="quick")
    assert verdict == "capped", detail
    assert "(cap 2 s)" in detail
