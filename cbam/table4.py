"""The paper's Table 4 (ResNet-50 on ImageNet-1K), params and GFLOPs reproduced by counting.

The paper's "GFLOPs" are multiply-accumulates of convolutions and linear layers for one 224x224
image, counted on the original ResNet-50 (stride 2 in the first 1x1 convolution of a
downsampling bottleneck), with biases in the attention MLPs. Building those three networks and
counting gives the paper's params and GFLOPs exactly, no training needed. The error rates need
ImageNet; they are cited from the paper, not measured here.

``cbam-course table4`` (or ``python -m cbam.table4``) prints the comparison.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import torch

from cbam.counting import count_macs, count_params
from cbam.resnet import STRIDE_PLACES, resnet50

IMAGE_SIZE = 224


@dataclass(frozen=True)
class PaperRow:
    """One row of Table 4 as the paper prints it; ``attention`` is the spec that builds it."""

    model: str
    attention: str | None
    params_m: float  # millions of parameters
    gflops: float  # billions of multiply-accumulates
    top1_err: float  # ImageNet-1K validation, %
    top5_err: float


PAPER_TABLE4 = (
    PaperRow("ResNet-50", None, 25.56, 3.858, 24.56, 7.50),
    PaperRow("ResNet-50 + SE", "se", 28.09, 3.860, 23.14, 6.70),
    PaperRow("ResNet-50 + CBAM", "cbam", 28.09, 3.864, 22.66, 6.31),
)


@dataclass(frozen=True)
class Table4Row:
    """Counted numbers beside the paper's row, rounded as the paper prints them."""

    paper: PaperRow
    params: int
    macs: int

    @property
    def params_m(self) -> float:
        return round(self.params / 1e6, 2)

    @property
    def gflops(self) -> float:
        return round(self.macs / 1e9, 3)

    @property
    def matches_paper(self) -> bool:
        return self.params_m == self.paper.params_m and self.gflops == self.paper.gflops


def table4_rows(*, stride_in: str = "1x1") -> list[Table4Row]:
    """Count each of Table 4's networks (``resnet50`` with no attention, SE, CBAM) at 224x224."""
    rows = []
    for paper in PAPER_TABLE4:
        # On the meta device a network has shapes but no storage: building and counting take
        # about a second instead of allocating and initialising 25 M weights.
        with torch.device("meta"):
            model = resnet50(attention=paper.attention, stride_in=stride_in)
        macs = count_macs(model, (1, 3, IMAGE_SIZE, IMAGE_SIZE))
        rows.append(Table4Row(paper, count_params(model), macs))
    return rows


def format_table(rows: list[Table4Row], stride_in: str) -> str:
    layout = {
        "1x1": "stride 2 in the first 1x1 conv of a downsampling bottleneck (ResNet v1, as the "
        "paper counted)",
        "3x3": "stride 2 in the 3x3 conv of a downsampling bottleneck (torchvision's v1.5; the "
        "paper counted v1, --stride-in 1x1)",
    }[stride_in]
    lines = [
        f"Table 4 of Woo et al. (ECCV 2018): ResNet-50, ImageNet-1K, one {IMAGE_SIZE}x{IMAGE_SIZE} "
        "image",
        layout,
        "",
        f"{'model':<18}  {'params (M)':^16}  {'GFLOPs':^16}  {'top-1 err':>9}  {'top-5 err':>9}",
        f"{'':<18}  {'counted':>7}  {'paper':>7}  {'counted':>7}  {'paper':>7}  "
        f"{'(paper)':>9}  {'(paper)':>9}",
    ]
    for row in rows:
        p = row.paper
        lines.append(
            f"{p.model:<18}  {row.params_m:>7.2f}  {p.params_m:>7.2f}  {row.gflops:>7.3f}  "
            f"{p.gflops:>7.3f}  {p.top1_err:>9.2f}  {p.top5_err:>9.2f}"
        )
    lines += [
        "",
        "GFLOPs here are multiply-accumulates of convolutions and linear layers, the paper's "
        "convention.",
        _verdict(rows, stride_in),
        "Error rates are the paper's own: measuring them needs ImageNet training,",
        "so they are cited here, not reproduced.",
    ]
    return "\n".join(lines)


def _verdict(rows: list[Table4Row], stride_in: str) -> str:
    differing = [row.paper.model for row in rows if not row.matches_paper]
    if not differing:
        return "Counted params and GFLOPs equal the paper's in every row."
    if stride_in == "3x3":
        extra = rows[0].gflops - rows[0].paper.gflops
        return (
            f"GFLOPs differ from the paper's by {extra:+.3f}, as expected: v1.5 runs the stride-2 "
            "3x3 convs\non the larger input of their block; the parameters are the same."
        )
    return f"Counted numbers differ from the paper's for: {', '.join(differing)}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cbam-course table4",
        description="Reproduce the params and GFLOPs of the CBAM paper's Table 4 by counting.",
    )
    parser.add_argument(
        "--stride-in",
        choices=STRIDE_PLACES,
        default="1x1",
        help="where a downsampling bottleneck puts its stride: 1x1 (ResNet v1, the paper's, "
        "default) or 3x3 (torchvision's v1.5, ~4.09 GFLOPs)",
    )
    args = parser.parse_args(argv)
    print(format_table(table4_rows(stride_in=args.stride_in), args.stride_in))
    return 0


if __name__ == "__main__":
    sys.exit(main())
