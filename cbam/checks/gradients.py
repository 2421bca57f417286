"""What the checks expect of gradients: that they reach a learner's input and parameters."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cbam.checks.report import CheckFailed, feature_map

Tensor = torch.Tensor


def expect_gradients(module: nn.Module, x: Tensor, call: Callable[[Tensor], Tensor]) -> None:
    with torch.enable_grad():
        out = call(x)
        if not isinstance(out, Tensor) or not out.requires_grad:
            raise CheckFailed(
                "the output is cut off from autograd (.detach(), .item(), NumPy or "
                "torch.no_grad()?), so nothing before it would ever learn"
            )
        weights = feature_map(out.shape, seed=99)
        (out * weights).sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all() or not x.grad.abs().sum() > 0:
        raise CheckFailed("no gradient reaches the input")
    stuck = [name for name, p in module.named_parameters() if p.numel() and p.grad is None]
    if stuck:
        raise CheckFailed(f"no gradient reaches {', '.join(stuck)}: is it used in forward?")


def expect_input_gradient(pooling: Callable[[Tensor], object]) -> None:
    """A gradient reaches the input of ``pooling`` through every tensor it returns."""
    x = feature_map((2, 3, 4, 4), seed=2, requires_grad=True)
    with torch.enable_grad():
        out = pooling(x)
        outputs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if not all(output.requires_grad for output in outputs):
            raise CheckFailed("cut off from autograd (.detach(), .item() or NumPy?)")
        sum(output.sum() for output in outputs).backward()
    if x.grad is None or not x.grad.abs().sum() > 0:
        raise CheckFailed("no gradient reaches the input")
