"""Checks for lesson 07, making CBAM fast.

* ``check_fast_cbam(fast_cbam)``: an inference forward ``fast_cbam(block, x)`` for a
  ``cbam.CBAM`` block (channel first, avg and max pooling, no BatchNorm in the spatial gate)
  must give ``block(x)``'s output, leave ``x`` as it was, compute the result itself rather
  than call ``block(x)``, and do no more work than the exercise allows.

Nothing is timed: a timing on a shared machine is no verdict (the lesson measures speed, as a
ratio). The work is *counted* instead, under a ``TorchDispatchMode`` that sees every ATen
operation: the operations that read a feature-map-sized tensor, the feature-map-sized buffers
allocated, the reductions that also compute indices, and how often the MLP's first layer is
applied. The exercise's budget is what its three changes give: the two reductions and the
gate's product for each gate (six reads), one buffer (``y``, with the spatial gate multiplied
into it in place), ``amax`` rather than an index-computing ``max``, one MLP call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cbam.attention import CBAM
from cbam.checks.memory_traffic import Traffic, count_traffic
from cbam.checks.report import CheckFailed, expect_shape, run_checks, tensors_close
from cbam.fast import cpu_kernel

# (N, C, H, W) of the inputs: odd sizes, a single image, a 1x1 map, a wide map.
CASES = ((2, 32, 9, 7), (1, 16, 5, 5), (3, 48, 1, 1), (2, 64, 6, 20))
# Operations that may read the whole feature map: a mean, an amax and the gate's product for
# the channel gate, the same three for the spatial gate.
READS = 6


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


def _counted(names: list[str]) -> str:
    """['mul', 'mean.dim', 'mul'] -> 'mul ×2, mean.dim': what was counted, in the hint."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name + (f" ×{n}" if n > 1 else "") for name, n in counts.items())


def _reference(block: CBAM, x: torch.Tensor, *, sigmoid_first: bool = False) -> torch.Tensor:
    """The block's output from its layers; ``sigmoid_first``: the gate as
    sigmoid(mlp(avg)) + sigmoid(mlp(max)), a common misreading of Eq. 2, to recognise it."""
    descriptors = torch.stack([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])
    mlp = block.channel.mlp(descriptors)
    gate = torch.sigmoid(mlp).sum(dim=0) if sigmoid_first else torch.sigmoid(mlp.sum(dim=0))
    y = x * gate[:, :, None, None]
    pooled = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
    return y * torch.sigmoid(block.spatial.conv(pooled))


def _what_is_wrong(block: CBAM, x: torch.Tensor, out: torch.Tensor) -> str:
    """The hint for an output that differs from the block's: the misreading, where it is one."""
    with torch.no_grad():
        sigmoid_first = _reference(block, x, sigmoid_first=True)
    if tensors_close(out, sigmoid_first):
        return ("the channel gate is the sigmoid of the sum of the two MLP outputs (Eq. 2), "
                "sigmoid(mlp(avg) + mlp(max)); yours applies the sigmoid before the sum")
    return ("channel gate: the sigmoid of the sum of the two MLP outputs (Eq. 2), "
            "sigmoid(mlp(avg) + mlp(max)); spatial gate: the sigmoid of the conv of "
            "[mean over C, max over C] of the channel-refined map (Eq. 3)")


def _expect_right(block: CBAM, x: torch.Tensor, out: torch.Tensor, expected: torch.Tensor,
                  what: str) -> None:
    expect_shape(out, tuple(expected.shape), what)
    if not tensors_close(out, expected):
        raise CheckFailed(f"{what} is wrong: {_what_is_wrong(block, x, out)}")


def explain_budget(work: Traffic) -> None:
    """CheckFailed naming every part of the budget the counted work went over."""
    over = []
    if work.indices:
        over.append(f"{len(work.indices)} reduction(s) that also compute the index of every "
                    f"maximum ({_counted(work.indices)}): use amax, which returns values only")
    if work.uses > 1:
        over.append(f"the MLP's first layer was applied {work.uses} times: stack the two "
                    "descriptors into one (2, N, C) tensor and call the MLP once")
    if len(work.buffers) > 1:
        over.append(f"{len(work.buffers)} feature-map-sized buffers allocated "
                    f"({_counted(work.buffers)}); the budget is one, y = x * channel gate: "
                    "multiply the spatial gate into y in place (y.mul_(...))")
    if len(work.reads) > READS:
        over.append(f"{len(work.reads)} operations read the whole feature map "
                    f"({_counted(work.reads)}); the budget is {READS}: a mean and an amax, then "
                    "the gate's product, for each of the two gates")
    if over:
        raise CheckFailed("; ".join(over))


def check_fast_cbam(fast_cbam: Callable) -> bool:
    """``fast_cbam(block, x)`` must equal ``block(x)`` under ``torch.no_grad()``."""

    def matches_the_block() -> None:
        for i, shape in enumerate(CASES):
            block, x = _block(shape[1], seed=i), _input(shape, seed=10 + i)
            out, expected = _run(fast_cbam, block, x)
            _expect_right(block, x, out, expected, f"the output for an input of shape {shape}")

    def leaves_the_input_alone() -> None:
        block, x = _block(32, seed=5), _input((2, 32, 8, 8), seed=15)
        before = x.clone()
        _run(fast_cbam, block, x)
        if not torch.equal(x, before):
            raise CheckFailed(
                "x was changed in place; multiply in place only into a tensor "
                "your function created (e.g. y.mul_(...), not x.mul_(...))"
            )

    def within_the_budget() -> None:
        block, x = _block(32, seed=7), _input((2, 32, 9, 7), seed=17)
        with torch.no_grad():
            expected = block(x)  # the block's own work, before the counting starts
        _forbid_block_call(block)
        with torch.no_grad(), count_traffic(x.numel(), block.channel.mlp[0].weight) as work:
            out = fast_cbam(block, x)
        # A wrong output is the first thing to fix: say so, and leave the work of a wrong
        # forward uncounted, rather than report it under the budget's heading as if it were one.
        _expect_right(block, x, out, expected, "not counted: the output")
        explain_budget(work)

    def works_on_channels_last() -> None:
        block = _block(32, seed=6)
        x = _input((2, 32, 8, 8), seed=16).contiguous(memory_format=torch.channels_last)
        out, expected = _run(fast_cbam, block, x)
        _expect_right(block, x, out, expected, "the output for a channels_last input")

    with torch.random.fork_rng(devices=[]):
        return run_checks(
            "fast-cbam",
            [
                ("same output as cbam.CBAM, computed without calling it", matches_the_block),
                ("the input tensor is left unchanged", leaves_the_input_alone),
                (f"within the exercise's budget: at most {READS} operations reading the feature "
                 "map, one feature-map-sized buffer, no max indices, one MLP call",
                 within_the_budget),
                ("a channels_last input gives the same result", works_on_channels_last),
            ],
        )
