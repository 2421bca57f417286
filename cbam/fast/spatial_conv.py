"""The spatial gate's convolution, 2 maps in and 1 out, by faster routes on a CPU.

oneDNN, PyTorch's convolution on a CPU, is slow for a single output channel, in backward most
of all. ``spatial_conv`` gives ``conv(pooled)`` either way: through ``_SameConv``, whose backward
is made of forward convolutions; under torch.compile, where autograd records nothing (inference),
as ``conv_as_shifted_sums``, which inductor fuses with the sigmoid after it. A graph recorded for
another runtime (ONNX export, torch.export, a jit trace, FX) and an empty batch get
``conv(pooled)`` itself: one Conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cbam.fast.layout import laid_out_like
from cbam.fast.tracing import compiling, recording, transformed


def spatial_conv(conv: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """``conv(pooled)``, through a faster route when ``conv`` is a plain "same" convolution."""
    if recording(pooled) is not None:
        return conv(pooled)
    if pooled.device.type != "cpu" or not is_same_conv(conv) or transformed():
        return conv(pooled)
    if pooled.shape[0] == 0:  # nothing to speed up, and the weight's gradient sums over nothing
        return conv(pooled)
    if compiling() and not _records(conv, pooled):  # exports were sent to conv above
        return conv_as_shifted_sums(pooled, conv.weight, conv.bias)
    # In a graph autograd records, the shifted sums' backward (2 k^2 slices a block) made
    # inductor's cold compile of a training step several times longer: side by side on a shared
    # 2-core CPU, a ResNet-20 step compiled in 723 s, against 156 s through _SameConv and 123 s
    # with SE.
    return _SameConv.apply(pooled, conv.weight, conv.bias)


def _records(conv: nn.Module, pooled: torch.Tensor) -> bool:
    """Whether autograd records the convolution."""
    return torch.is_grad_enabled() and (
        pooled.requires_grad or any(p.requires_grad for p in conv.parameters())
    )


def is_same_conv(conv: nn.Module) -> bool:
    """An nn.Conv2d with one output channel that keeps H and W, and no hooks to bypass."""
    return (
        type(conv) is nn.Conv2d
        and conv.out_channels == 1
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and conv.kernel_size[0] == conv.kernel_size[1]
        and conv.kernel_size[0] % 2 == 1
        and conv.padding == (conv.kernel_size[0] // 2,) * 2
        and not conv._forward_hooks
        and not conv._forward_pre_hooks
    )


class _SameConv(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, padding=k // 2)`` whose backward is made of forward convs.

    oneDNN's own backward for this convolution is several times slower than its forward, yet
    both gradients are correlations: the input's correlates the output gradient with the
    flipped kernel, the weight's correlates the input with the output gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        # Under autocast the convolution computes in autocast's dtype, and backward (which runs
        # without autocast) must see the tensors it used. The inputs themselves are saved and
        # cast again in backward (two small maps and a kernel): a double backward then reaches
        # them through the casts.
        ctx.save_for_backward(x, weight)
        ctx.dtype = None
        if torch.is_autocast_enabled(x.device.type):
            ctx.dtype = torch.get_autocast_dtype(x.device.type)
            x, weight = x.to(ctx.dtype), weight.to(ctx.dtype)
            bias = None if bias is None else bias.to(ctx.dtype)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        if ctx.dtype is not None:
            x, weight = x.to(ctx.dtype), weight.to(ctx.dtype)
        pad = weight.shape[-1] // 2
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(2, 3).transpose(0, 1), padding=pad)
        if ctx.needs_input_grad[1]:
            # Batch and channels swap places: the sum over the batch becomes the convolution's
            # sum over input channels, and the output gradient its kernel.
            padded = F.pad(x, (pad, pad, pad, pad)).transpose(0, 1)
            grad_weight = F.conv2d(padded, grad.transpose(0, 1)).transpose(0, 1)
            grad_weight = laid_out_like(grad_weight, weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_x, grad_weight, grad_bias


def conv_as_shifted_sums(
    pooled: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``F.conv2d(pooled, weight, bias, padding=k // 2)`` (one output channel) for torch.compile.

    Written as a sum of shifted maps, it becomes one fused loop in inductor's code, which then
    also computes the sigmoid once per pixel. A convolution would be an external call, and the
    sigmoid after it would be evaluated again for every channel of the final product.
    """
    n, c, h, w = pooled.shape
    k = weight.shape[-1]
    pad = k // 2
    # Zero padding by concatenation is written into a buffer, so the reads below need no bounds
    # checks (F.pad would be folded into every read as a masked load).
    rows = pooled.new_zeros(n, c, pad, w)
    padded = torch.cat([rows, pooled, rows], dim=2)
    cols = pooled.new_zeros(n, c, h + 2 * pad, pad)
    padded = torch.cat([cols, padded, cols], dim=3)
    partial_sums = []  # one per kernel row
    for channel in range(c):
        for i in range(k):
            taps = [
                weight[0, channel, i, j] * padded[:, channel : channel + 1, i : i + h, j : j + w]
                for j in range(k)
            ]
            partial_sums.append(sum(taps[1:], taps[0]))
    # Added pairwise: one chain of k * k * c additions would leave each waiting for the last.
    while len(partial_sums) > 1:
        pairs = zip(partial_sums[::2], partial_sums[1::2], strict=False)
        partial_sums = [a + b for a, b in pairs] + partial_sums[len(partial_sums) // 2 * 2 :]
    out = partial_sums[0]
    return out if bias is None else out + bias.view(1, 1, 1, 1)
