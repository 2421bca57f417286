"""Faster routes to the values of ``cbam.attention``, held to it by the tests.

``cbam.attention`` is the paper's Eq. 1-3 as written. ``CBAM.forward`` asks ``route`` here for
a faster way to the same output before it runs them. Each way makes fewer passes over memory,
and each applies to the paper's block only (channel first, avg & max pooling, mean & max over
channels):

* ``cpu_kernel`` (with ``cpu_kernel.c``): inference on a CPU, the whole block as one C function;
* ``fused_backward``: training, with the block's backward written out by hand.

Below them, ``spatial_conv`` gives the spatial gate's one-output convolution on a CPU (a backward
made of forward convolutions, and a form inductor fuses); ``SpatialAttention`` uses it in every
configuration. ``tracing`` and ``hooks`` tell the routes when to step aside, ``layout`` lays
their gradients out as DistributedDataParallel expects.

The routes change nothing but speed: where one could change what a caller sees, it steps
aside for the plain code (see ``_keeps_plain``) - under jit tracing and scripting, FX, ONNX
export and torch.export (which must record standard operations), when a hook watches a module
the route would bypass, for an empty batch, and in a backward that builds a graph of its own
(double backward), which the fused path computes through the plain code.

``why_not(block, x)`` says, route by route, why a call takes the plain code. The tests hold
every route to ``cbam.attention``: tests/test_attention.py, tests/test_cpu_kernel.py and
tests/test_precision.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from cbam.fast import cpu_kernel, fused_backward, hooks
from cbam.fast.tracing import recording

if TYPE_CHECKING:
    from cbam.attention import CBAM


def route(block: CBAM, x: torch.Tensor) -> Callable[[], torch.Tensor] | None:
    """How to compute ``block(x)`` faster than Eq. 1 as written, or None: then the plain code.

    The kernel is asked first: where it applies, autograd records nothing and the fused path
    does not apply either.
    """
    if _not_the_papers_block(block) is not None or _keeps_plain(block, x) is not None:
        return None
    weights = cpu_kernel.weights_or_refusal(block, x)
    if not isinstance(weights, str):
        return lambda: cpu_kernel.forward(x, weights)
    if fused_backward.refusal(block, x) is None:
        return lambda: fused_backward.forward(block, x)
    return None


def why_not(block: CBAM, x: torch.Tensor) -> dict[str, str | None]:
    """For each route, why it does not compute ``block(x)`` now (None where it would)."""
    common = _not_the_papers_block(block) or _keeps_plain(block, x)
    return {
        "cpu_kernel": common or cpu_kernel.refusal(block, x),
        "fused_backward": common or fused_backward.refusal(block, x),
    }


def _not_the_papers_block(block: CBAM) -> str | None:
    """What every route needs of the block, or None where it has it.

    Called on every forward, also under torch.compile: the reasons are constants, so that
    Dynamo has nothing to format.
    """
    if not block.fused:
        return "the block was built with fused=False"
    if block.spatial is None:
        return "the block has no spatial module"
    if block.spatial.reduce is not None:
        return 'the spatial module learns its reduction over channels (channel_reduction="conv1x1")'
    if block.arrangement != "channel-first":
        return "the arrangement is not 'channel-first'"
    if block.channel.pool_types != ("avg", "max"):
        return "the channel pooling is not ('avg', 'max')"
    return None


def _keeps_plain(block: CBAM, x: torch.Tensor) -> str | None:
    """Why this call must run the plain code whatever the block, or None."""
    reason = recording(x)
    if reason is not None:
        return reason
    if x.shape[0] == 0:
        return "the batch is empty"
    if hooks.watched(block):
        return "a hook watches the block or one of its modules"
    return None
