"""Gradients laid out like the parameters they belong to."""

import torch


def laid_out_like(grad: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """``grad`` with ``param``'s strides, copied only when they differ.

    Autograd accepts a gradient whose strides differ from its parameter's in dimensions of size
    1, but DistributedDataParallel compares every stride with its bucket's: it warns, and copies
    the gradient on every step.
    """
    if grad.stride() == param.stride():
        return grad
    return torch.empty_strided(
        param.shape, param.stride(), dtype=grad.dtype, device=grad.device
    ).copy_(grad)
