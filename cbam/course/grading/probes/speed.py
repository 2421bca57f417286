"""Probe of lesson 07: the faster forward gives the block's output and leaves x alone.

How much work it does (the exercise's budget) can only be counted inside the process that runs
it; the check cell counts it, and that part of the verdict is the check cell's alone.
"""

from __future__ import annotations

import torch

from cbam.attention import CBAM
from cbam.course.grading.probes import Draw, Probe
from cbam.course.grading.probes.weights import fill
from cbam.fast import cpu_kernel


def _cases(draw: Draw) -> list[dict]:
    cases = []
    for channels_last in (False, False, True):
        n, c, h, w = draw.int(1, 3), draw.int(8, 48), draw.int(1, 12), draw.int(1, 12)
        layout = ", channels_last" if channels_last else ""
        cases.append({"about": f"x of shape {(n, c, h, w)}{layout}", "seed": draw.seed(),
                      "x": draw.tensor(n, c, h, w), "channels_last": channels_last})
    return cases


def _block(case: dict) -> CBAM:
    block = CBAM(case["x"].shape[1], reduction=8)
    fill(block, case["seed"])
    return block.eval()


def _input(case: dict) -> torch.Tensor:
    x = case["x"].clone()
    return x.to(memory_format=torch.channels_last) if case["channels_last"] else x


def _observe(fast_cbam, case: dict) -> dict:
    block, x = _block(case), _input(case)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("fast_cbam calls block(x); compute the forward yourself")

    block.forward = refuse
    with torch.no_grad(), cpu_kernel.refused("fast_cbam calls cbam's C kernel"):
        out = fast_cbam(block, x)
    return {"out": out, "input unchanged": torch.equal(x, case["x"])}


def _expect(case: dict) -> dict:
    with torch.no_grad():
        return {"out": _block(case)(_input(case)), "input unchanged": True}


LESSON = "07"
PROBES = [Probe("fast-cbam", ("fast_cbam",), _cases, _observe, _expect)]
