"""A learner's MLP (lesson 01), found by the shapes of its parameters.

The checks do not ask for attribute names: any two layers C -> h and h -> C, as ``nn.Linear`` or
1x1 ``nn.Conv2d``, registered in either order, are the MLP. Found, it is given known weights
(``mlp_weights``) so that its output can be compared with ``mlp_function``'s, and its width and
parameter count are held to the paper's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from cbam.checks.report import CheckFailed

Tensor = torch.Tensor
Weights = dict[str, Tensor]


def hidden_width(channels: int, reduction: float) -> int:
    """The MLP's width the lesson asks for, as ``cbam.ChannelAttention`` has it by default."""
    return max(int(channels // reduction), 1)


def mlp_weights(channels: int, hidden: int, seed: int) -> Weights:
    """MLP weights scaled so that the logits are of order 1: the sigmoid is far from flat."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int, scale: float) -> Tensor:
        return scale * torch.randn(shape, generator=generator)

    return {
        "w0": draw(hidden, channels, scale=channels**-0.5),
        "b0": draw(hidden, scale=0.5),
        "w1": draw(channels, hidden, scale=max(hidden, 1) ** -0.5),
        "b1": draw(channels, scale=0.5),
    }


def mlp_function(weights: Weights, activation: Callable[[Tensor], Tensor] = torch.relu):
    def mlp(v: Tensor) -> Tensor:
        return activation(v @ weights["w0"].T + weights["b0"]) @ weights["w1"].T + weights["b1"]

    return mlp


def _matrix_shape(p: Tensor) -> tuple[int, int] | None:
    """(out, in) of a Linear weight or of a 1x1 Conv2d weight; None for anything else."""
    if p.dim() == 2:
        return tuple(p.shape)
    if p.dim() == 4 and tuple(p.shape[2:]) == (1, 1):
        return tuple(p.shape[:2])
    return None


@dataclass
class FoundMLP:
    """The parameters of a learner's MLP, one entry per MLP found (a shared MLP has one)."""

    hidden: int
    w0: list[Tensor] = field(default_factory=list)
    w1: list[Tensor] = field(default_factory=list)
    b0: list[Tensor] = field(default_factory=list)
    b1: list[Tensor] = field(default_factory=list)

    def load(self, weights: Weights) -> Weights:
        """Copy ``weights`` into every MLP found; returns them with absent biases set to zero."""
        weights = dict(weights)
        with torch.no_grad():
            for key in ("w0", "w1", "b0", "b1"):
                targets = getattr(self, key)
                if not targets:
                    weights[key] = torch.zeros_like(weights[key])
                for p in targets:
                    p.copy_(weights[key].reshape(p.shape))
        return weights


def find_mlp(module: nn.Module, channels: int) -> FoundMLP:
    """Pair each C -> h weight with an h -> C weight; biases are the vectors of length h and C."""
    params = list(module.parameters())
    shapes = [tuple(p.shape) for p in params]
    matrices = [p for p in params if _matrix_shape(p) is not None]
    if not matrices or len(matrices) % 2:
        raise CheckFailed(
            f"expected the weights of two layers, C -> h and h -> C (nn.Linear or 1x1 nn.Conv2d), "
            f"for C = {channels}; found parameters of shapes {shapes}"
        )
    found: FoundMLP | None = None
    for first, second in zip(matrices[0::2], matrices[1::2], strict=True):
        (out0, in0), (out1, in1) = _matrix_shape(first), _matrix_shape(second)
        if in0 == channels and out1 == channels and out0 == in1:
            w0, w1, hidden = first, second, out0
        elif in1 == channels and out0 == channels and out1 == in0:  # registered back to front
            w0, w1, hidden = second, first, out1
        else:
            raise CheckFailed(
                f"expected a C -> h layer and an h -> C layer for C = {channels}; "
                f"found weights of shapes {[tuple(m.shape) for m in matrices]}"
            )
        if found is None:
            found = FoundMLP(hidden)
        elif hidden != found.hidden:
            raise CheckFailed(f"found MLPs of different widths {found.hidden} and {hidden}")
        found.w0.append(w0)
        found.w1.append(w1)
    vectors = [p for p in params if p.dim() == 1]
    if found.hidden == channels:  # lengths alike: biases follow their layers' order
        found.b0, found.b1 = vectors[0::2], vectors[1::2]
    else:
        found.b0 = [v for v in vectors if len(v) == found.hidden]
        found.b1 = [v for v in vectors if len(v) == channels]
    return found


def expect_width(module: nn.Module, channels: int, reduction: float) -> None:
    mlp = find_mlp(module, channels)
    expected = hidden_width(channels, reduction)
    if len(mlp.w0) > 1:
        raise CheckFailed(
            f"found {len(mlp.w0)} MLPs, one per descriptor: Eq. 2 sends both descriptors "
            "through one shared MLP (one W0, one W1)"
        )
    if mlp.hidden == 0:
        raise CheckFailed(
            f"hidden width 0 for C = {channels}, r = {reduction}: C // r is 0, and a width-0 "
            "MLP outputs a constant, so the gate ignores its input; use max(C // r, 1)"
        )
    if mlp.hidden != expected:
        fixed = " (is reduction ignored?)" if mlp.hidden == hidden_width(channels, 8) else ""
        raise CheckFailed(
            f"hidden width {mlp.hidden} for C = {channels}, r = {reduction}; expected "
            f"max(C // r, 1) = {expected}{fixed}"
        )


def expect_parameter_count(module: nn.Module, channels: int, reduction: float) -> None:
    hidden = hidden_width(channels, reduction)
    expected = 2 * channels * hidden + hidden + channels
    count = sum(p.numel() for p in module.parameters())
    if count == expected:
        return
    try:
        found = find_mlp(module, channels)
    except CheckFailed:
        found = None
    if found is None:
        reason = "see the lines above"
    elif len(found.w0) > 1:
        reason = f"{len(found.w0)} MLPs instead of one shared MLP"
    elif found.hidden != hidden:
        reason = f"a hidden width of {found.hidden}, see the width line"
    elif not (found.b0 or found.b1):
        reason = (
            "no biases (bias=False?): the paper's MLP has them and its parameter counts "
            "include them"
        )
    else:
        reason = "parameters besides the MLP's two layers and their biases"
    raise CheckFailed(
        f"{count} parameters for C = {channels}, r = {reduction}; expected 2·C·h + h + C = "
        f"{expected} with h = {hidden} ({reason})"
    )
