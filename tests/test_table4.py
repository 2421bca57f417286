"""Table 4 of the paper (ResNet-50 params and GFLOPs) reproduced by counting."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from cbam.table4 import PAPER_TABLE4, main, table4_rows

BLOCKS_PER_STAGE = (3, 4, 6, 3)
STAGE_WIDTHS = (256, 512, 1024, 2048)  # planes * expansion, where the attention sits


@pytest.fixture(scope="module")
def rows():
    return {row.paper.attention: row for row in table4_rows()}


def test_rows_follow_the_paper(rows):
    assert [row.paper for row in rows.values()] == list(PAPER_TABLE4)
    assert list(rows) == [None, "se", "cbam"]


@pytest.mark.parametrize("attention", [None, "se", "cbam"])
def test_counted_numbers_equal_the_papers(rows, attention, figures):
    row = rows[attention]
    figures(
        f"Table 4 {row.paper.model}",
        f"{row.params:,} params ({row.params_m:.2f} M), {row.macs:,} MACs ({row.gflops:.3f} G)",
    )
    assert row.params_m == row.paper.params_m
    assert row.gflops == row.paper.gflops
    assert row.matches_paper


def test_se_adds_its_mlps(rows):
    # Per block: Linear(C, C/16) and Linear(C/16, C), both with bias.
    per_stage = [c * (c // 16) + c // 16 + (c // 16) * c + c for c in STAGE_WIDTHS]
    added = sum(n * p for n, p in zip(BLOCKS_PER_STAGE, per_stage, strict=True))
    assert rows["se"].params - rows[None].params == added


def test_cbam_differs_from_se_only_by_the_spatial_convs(rows):
    assert rows["cbam"].params - rows["se"].params == sum(BLOCKS_PER_STAGE) * 2 * 7 * 7


def test_cbam_costs_more_than_se_because_its_mlp_sees_two_descriptors(rows):
    se_mlp = rows["se"].macs - rows[None].macs
    sizes = (56, 28, 14, 7)  # the feature-map side in each stage at 224x224
    spatial = sum(n * s * s * 2 * 7 * 7 for n, s in zip(BLOCKS_PER_STAGE, sizes, strict=True))
    assert rows["cbam"].macs - rows[None].macs == 2 * se_mlp + spatial


def test_torchvision_stride_placement_gives_about_4_09(capsys):
    assert main(["--stride-in", "3x3"]) == 0
    out = capsys.readouterr().out
    assert "4.089" in out and "3.858" in out  # counted v1.5 beside the paper's v1
    assert "differ from the paper's by +0.231" in out


def test_bad_stride_in_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--stride-in", "2x2"])
    assert exit_info.value.code == 2
    assert "invalid choice: '2x2'" in capsys.readouterr().err


def test_cli_prints_the_table(rows):
    script = shutil.which("cbam-course", path=str(sys.prefix) + "/bin")
    command = [script] if script else [sys.executable, "-m", "cbam.course.cli"]
    result = subprocess.run(
        [*command, "table4"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for row in rows.values():
        pattern = re.compile(rf"{re.escape(row.paper.model)}\s+\d")
        line = next(line for line in lines if pattern.match(line))
        counted = [f"{row.params_m:.2f}", f"{row.gflops:.3f}"]
        paper = [f"{row.paper.top1_err:.2f}", f"{row.paper.top5_err:.2f}"]
        assert line.split()[-6:] == [
            counted[0],
            f"{row.paper.params_m:.2f}",
            counted[1],
            f"{row.paper.gflops:.3f}",
            *paper,
        ]
    assert "equal the paper's in every row" in result.stdout
    assert "cited here, not reproduced" in result.stdout
