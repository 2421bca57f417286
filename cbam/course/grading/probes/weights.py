"""Weights drawn from the grader's seed into whatever a module registers, by name.

A learner's block that registers the same weights under the same names as cbam's (the lessons
ask for it: cbam's weights load into it) gets exactly the weights cbam's block gets here, so the
two compute the same numbers when, and only when, they compute the same function.
"""

from __future__ import annotations

import torch
from torch import nn


def fill(module: nn.Module, seed: int) -> list[str]:
    """Draw every floating-point weight and buffer of ``module``, in the order of their sorted
    names; return the names (with shapes), which a probe reports too."""
    generator = torch.Generator().manual_seed(seed)
    state = module.state_dict()
    described = []
    with torch.no_grad():
        for name in sorted(state):
            tensor = state[name]
            described.append(f"{name} {tuple(tensor.shape)}")
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):  # a variance: positive
                value = 0.5 + torch.rand(tensor.shape, generator=generator)
            elif tensor.dim() >= 2:
                fan_in = tensor[0].numel()
                value = torch.randn(tensor.shape, generator=generator) * 1.5 / fan_in**0.5
            else:
                value = torch.randn(tensor.shape, generator=generator) * 0.3
            tensor.copy_(value)
    return described
