"""The channel-first block in training, with its backward written out by hand.

Autograd through the plain code allocates a fresh feature-map-sized tensor for nearly every
backward step (the products, the expanded means, amax's tie-sharing arithmetic) and adds them up
one pass at a time. ``_FusedChannelFirst`` writes the block's gradient out by hand: two
feature-map buffers, about ten passes. The small parts (MLP, convolution, BatchNorm, sigmoids)
keep the autograd graphs recorded in forward, so their parameters get gradients as usual.

A backward that records a graph of its own (``create_graph=True``, as a gradient penalty asks)
gets its gradient through the plain code instead, run again from the saved input, so that the
second derivatives are autograd's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from cbam.fast.layout import laid_out_like
from cbam.fast.spatial_conv import spatial_conv
from cbam.fast.tracing import compiling, transformed

if TYPE_CHECKING:
    from cbam.attention import CBAM

# Below about this many elements the fixed cost of the fused path (two small autograd calls)
# outweighs the passes it saves: measured on a CPU, (8, 64, 14, 14) trained about 10 % slower
# fused than plain, (8, 64, 28, 28) about 7 % faster.
FUSED_MIN_ELEMENTS = 1 << 18


def refusal(block: CBAM, x: torch.Tensor) -> str | None:
    """Why the fused path does not take ``block(x)`` now, or None where it does.

    ``block`` is already known to be the paper's block (see ``cbam.fast.route``). The path pays
    off only when autograd records, and torch.compile fuses on its own.
    """
    if not torch.is_grad_enabled():
        return "autograd records nothing here (no_grad or inference mode)"
    if compiling() or transformed():
        return "torch.compile or a torch.func transform is tracing the call"
    if x.numel() < FUSED_MIN_ELEMENTS:
        return (
            f"the input has {x.numel()} elements, under FUSED_MIN_ELEMENTS ({FUSED_MIN_ELEMENTS})"
        )
    if not (x.requires_grad or any(p.requires_grad for p in block.parameters())):
        return "neither the input nor a parameter requires a gradient"
    return None


def forward(block: CBAM, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` through ``_FusedChannelFirst`` (where ``refusal`` says None)."""
    return _FusedChannelFirst.apply(x, block, *block.parameters())


def _pooling_gradient(
    features: torch.Tensor,
    largest: torch.Tensor,
    grad_mean: torch.Tensor,
    grad_max: torch.Tensor,
    dim: int | tuple[int, ...],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """What ``features.mean(dim)`` and ``features.amax(dim) == largest`` send back to features.

    The mean spreads its gradient evenly; the maximum gives its gradient to where the maximum
    is, shared between equal maxima as ``amax`` does. Counting ties is slow on a CPU, so it is
    done only when there are any. One ``where`` writes both (into ``out`` when given).
    """
    mask = features == largest
    if features.device.type != "cpu" or int(mask.count_nonzero()) != largest.numel():
        grad_max = grad_max / mask.sum(dim=dim, keepdim=True, dtype=grad_max.dtype)
    grad_mean = grad_mean / (features.numel() // largest.numel())
    return torch.where(mask, grad_mean + grad_max, grad_mean, out=out)


def _small_graph_grads(
    output: torch.Tensor, grad: torch.Tensor, leaf: torch.Tensor, params: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Gradients of a recorded small graph for its leaf and the parameters (None if unused).

    The graph is kept (it is small) so that a backward with ``retain_graph=True`` can be repeated.
    """
    leaf_grad, *param_grads = torch.autograd.grad(
        output, [leaf, *params], grad, retain_graph=True, allow_unused=True
    )
    return leaf_grad, param_grads


class _FusedChannelFirst(torch.autograd.Function):
    """``CBAM.forward`` for channel-first, avg & max pooling, with its backward written out.

    Forward (F = x): ``M_c = gate(MLP(avg_hw x) + MLP(max_hw x))``, ``y = M_c * x``,
    ``M_s = gate(bn(conv([mean_c y; max_c y])))``, ``out = M_s * y``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, block: CBAM, *params: torch.Tensor) -> torch.Tensor:
        channel, spatial = block.channel, block.spatial
        largest_hw = x.amax(dim=(2, 3), keepdim=True)
        with torch.enable_grad():  # record the small graphs; their leaves stand in for x and y
            descriptors = torch.stack([x.mean(dim=(2, 3)), largest_hw.flatten(1)])
            descriptors.requires_grad_()
            channel_map = channel.gate(channel.mlp(descriptors).sum(dim=0)[:, :, None, None])
        y = x * channel_map.detach()
        largest_c = y.amax(dim=1, keepdim=True)
        with torch.enable_grad():
            pooled = torch.cat([y.mean(dim=1, keepdim=True), largest_c], dim=1).requires_grad_()
            spatial_map = spatial.gate(spatial.bn(spatial_conv(spatial.conv, pooled)))
        ctx.save_for_backward(x, y, largest_hw, largest_c)
        ctx.graphs = (descriptors, channel_map, pooled, spatial_map)
        ctx.params = params
        ctx.block = block
        return y * spatial_map.detach()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():  # create_graph=True: this gradient will be differentiated
            return _differentiable_backward(ctx, grad)
        with torch.no_grad():
            return _fused_backward(ctx, grad)


def _fused_backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """The block's gradient in few passes, as a first derivative only."""
    x, y, largest_hw, largest_c = ctx.saved_tensors
    descriptors, channel_map, pooled, spatial_map = ctx.graphs
    trainable = [p for p in ctx.params if p.requires_grad]
    scratch = torch.empty_like(x)  # the one feature-map buffer besides grad_y

    # out = y * M_s: the spatial map's gradient sums over channels.
    grad_spatial_map = torch.mul(grad, y, out=scratch).sum(dim=1, keepdim=True)
    grad_pooled, grad_params = _small_graph_grads(spatial_map, grad_spatial_map, pooled, trainable)
    # y feeds both channel poolings and the product.
    grad_y = _pooling_gradient(y, largest_c, grad_pooled[:, :1], grad_pooled[:, 1:], 1)
    grad_y.addcmul_(grad, spatial_map.detach())
    # y = M_c * x: the channel map's gradient sums over pixels.
    grad_channel_map = torch.mul(grad_y, x, out=scratch).sum(dim=(2, 3), keepdim=True)
    grad_descriptors, more = _small_graph_grads(
        channel_map, grad_channel_map, descriptors, trainable
    )
    grad_params = [
        b if a is None else a if b is None else a + b
        for a, b in zip(grad_params, more, strict=True)
    ]

    grad_x = None
    if ctx.needs_input_grad[0]:
        # x feeds both global poolings and the product.
        grad_mean, grad_max = (d[:, :, None, None] for d in grad_descriptors)
        grad_x = _pooling_gradient(x, largest_hw, grad_mean, grad_max, (2, 3), out=scratch)
        grad_x.addcmul_(grad_y, channel_map.detach())
    # Parameters' gradients as their parameters are laid out (see cbam.fast.layout).
    by_param = iter(grad_params)
    grad_params = [
        None if not p.requires_grad or (g := next(by_param)) is None else laid_out_like(g, p)
        for p in ctx.params
    ]
    return (grad_x, None, *grad_params)


def _differentiable_backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """The block's gradient through the plain code, recorded so that it can be differentiated.

    The plain forward runs again on the saved input, which is the caller's own tensor: the
    gradient it gives is a function of x and of the parameters, as double backward needs.
    """
    x = ctx.saved_tensors[0]
    wanted = [x] if ctx.needs_input_grad[0] else []
    params = [p for p, needed in zip(ctx.params, ctx.needs_input_grad[2:], strict=True) if needed]
    with _buffers_kept(ctx.block):
        out = ctx.block.plain_forward(x if wanted else x.detach())
    grads = iter(
        torch.autograd.grad(out, wanted + params, grad, create_graph=True, allow_unused=True)
    )
    grad_x = next(grads) if wanted else None
    grad_params = [next(grads) if needed else None for needed in ctx.needs_input_grad[2:]]
    return (grad_x, None, *grad_params)


@contextmanager
def _buffers_kept(block: nn.Module) -> Iterator[None]:
    """Within the block the modules' buffers are copies, so that running the forward again does
    not count the batch twice in BatchNorm's running statistics. The copies are swapped in, not
    written back: the recorded graph may still read them in the next backward."""
    originals = [(m, dict(m._buffers)) for m in block.modules() if m._buffers]
    for module, buffers in originals:
        for name, buffer in buffers.items():
            if buffer is not None:
                module._buffers[name] = buffer.clone()
    try:
        yield
    finally:
        for module, buffers in originals:
            module._buffers.update(buffers)
