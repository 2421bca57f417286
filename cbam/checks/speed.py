"""Checks for lesson 07, making CBAM fast.

* ``check_fast_cbam(fast_cbam)``: an inference forward ``fast_cbam(block, x)`` for a
  ``cbam.CBAM`` block (channel first, avg and max pooling, no BatchNorm in the spatial gate)
  must give ``block(x)``'s output, leave ``x`` as it was, and compute the result itself rather
  than call ``block(x)``. Only correctness is checked here; speed is measured in the lesson,
  as a ratio, because a timing on a shared machine is no verdict.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cbam import cpu_kernel
from cbam.attention import CBAM
from cbam.checks.report import CheckFailed, expect_close, run_checks

# (N, C, H, W) of the inputs: odd sizes, a single image, a 1x1 map, a wide map.
CASES = ((2, 32, 9, 7), (1, 16, 5, 5), (3, 48, 1, 1), (2, 64, 6, 20))


def _block(channels: int, seed: int) -> CBAM:
    """A CBAM with weights large enough that both gates are far from a flat 0.5."""
    generator = torch.Generator().manual_seed(seed)
    block = CBAM(channels, reduction=8).eval()
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return block


def _input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _forbid_block_call(block: CBAM) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise CheckFailed(
            "fast_cbam calls block(x); compute the forward yourself from "
            "block.channel.mlp and block.spatial.conv"
        )

    block.forward = refuse  # an instance attribute wins over the class's forward


def _run(fast_cbam: Callable, block: CBAM, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        expected = block(x)
        _forbid_block_call(block)
        with cpu_kernel.refused(
            "fast_cbam calls cbam's C kernel; compute the forward yourself from "
            "block.channel.mlp and block.spatial.conv"
        ):
            out = fast_cbam(block, x)
    if out is None:
        raise CheckFailed("fast_cbam returned None; return the refined feature map")
    return out, expected


def check_fast_cbam(fast_cbam: Callable) -> bool:
    """``fast_cbam(block, x)`` must equal ``block(x)`` under ``torch.no_grad()``."""

    def matches_the_block() -> None:
        for i, shape in enumerate(CASES):
            block, x = _block(shape[1], seed=i), _input(shape, seed=10 + i)
            out, expected = _run(fast_cbam, block, x)
            expect_close(
                out,
                expected,
                f"the output for an input of shape {shape}",
                "channel gate: sigmoid of mlp(avg) + mlp(max); spatial gate: sigmoid of the "
                "conv of [mean over C, max over C] of the channel-refined map",
            )

    def leaves_the_input_alone() -> None:
        block, x = _block(32, seed=5), _input((2, 32, 8, 8), seed=15)
        before = x.clone()
        _run(fast_cbam, block, x)
        if not torch.equal(x, before):
            raise CheckFailed(
                "x was changed in place; multiply in place only into a tensor "
                "your function created (e.g. y.mul_(...), not x.mul_(...))"
            )

    def works_on_channels_last() -> None:
        block = _block(32, seed=6)
        x = _input((2, 32, 8, 8), seed=16).contiguous(memory_format=torch.channels_last)
        out, expected = _run(fast_cbam, block, x)
        expect_close(out, expected, "the output for a channels_last input")

    with torch.random.fork_rng(devices=[]):
        return run_checks(
            "fast-cbam",
            [
                ("same output as cbam.CBAM, computed without calling it", matches_the_block),
                ("the input tensor is left unchanged", leaves_the_input_alone),
                ("a channels_last input gives the same result", works_on_channels_last),
            ],
        )
