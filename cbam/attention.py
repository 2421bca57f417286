"""The attention modules of CBAM (Woo et al., ECCV 2018) and the SE block it is compared with.

Each module follows one equation of the paper:

* ``ChannelAttention`` - Eq. 2: ``M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))``
* ``SpatialAttention`` - Eq. 3: ``M_s(F) = sigmoid(conv_kxk([mean_c(F); max_c(F)]))``
* ``CBAM`` - Eq. 1: ``F' = M_c(F) * F``, ``F'' = M_s(F') * F'``

Every module has an ``attention(x)`` method that returns its map without applying it, and a
``gate`` submodule whose output *is* the map, so forward hooks (see ``cbam.maps``) can read the
maps of a whole network without changing what it computes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cbam.fast import cpu_kernel
from cbam.fast.layout import laid_out_like
from cbam.fast.spatial_conv import is_same_conv, spatial_conv
from cbam.fast.tracing import compiling, transformed
from cbam.validation import (
    check_choice,
    check_feature_map,
    check_flag,
    check_odd_kernel_size,
    check_pool_types,
    check_positive_int,
    check_reduction,
)

POOL_TYPES = ("avg", "max", "lp", "lse")
ARRANGEMENTS = ("channel-first", "spatial-first", "parallel")
CHANNEL_REDUCTIONS = ("pool", "conv1x1")


def _global_pool(x: torch.Tensor, pool_type: str) -> torch.Tensor:
    """One descriptor per channel: (N, C, H, W) -> (N, C)."""
    if pool_type == "avg":
        return x.mean(dim=(2, 3))
    if pool_type == "max":
        # amax returns no indices, unlike max(dim=...) and AdaptiveMaxPool2d: same value, and on a
        # CPU several times faster.
        return x.amax(dim=(2, 3))
    if pool_type == "lp":
        # The authors' power-2 pooling, F.lp_pool2d(x, 2, (H, W)): the root of the sum of squares.
        return x.square().sum(dim=(2, 3)).sqrt()
    return torch.logsumexp(x.flatten(2), dim=2)  # "lse", a soft maximum


def _scale(features: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``features * gate`` for an intermediate result that nothing else will read.

    When autograd records neither (inference, or nothing requires a gradient), ``features`` is
    scaled in place: one large buffer fewer to allocate, and on a CPU a fresh large buffer costs
    a page fault per 4 KiB the first time it is written.
    """
    if features.requires_grad or gate.requires_grad:
        return features * gate
    return features.mul_(gate)


class ChannelAttention(nn.Module):
    """Channel attention (Eq. 2): which channels matter.

    Each pooled descriptor (N, C) goes through the same two-layer MLP (C -> C/r -> C, ReLU
    between); the results are summed and squashed by a sigmoid into one weight per channel.

    Args:
        channels: C, the number of input channels.
        reduction: r, the MLP's reduction ratio; 16 in the paper.
        min_hidden: the hidden width is ``max(channels // reduction, min_hidden)``, so a small C
            never leaves an MLP of width 0 (whose gate would be a constant 0.5).
        bias: biases in the MLP's linear layers (the paper's parameter counts include them).
        pool_types: which global poolings give descriptors: any of "avg", "max", "lp" (power-2
            pooling, as ``F.lp_pool2d(x, 2, (H, W))``) and "lse" (log-sum-exp). The paper uses
            ("avg", "max").
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        *,
        min_hidden: int = 1,
        bias: bool = True,
        pool_types: Sequence[str] = ("avg", "max"),
    ) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        check_reduction(reduction)
        check_positive_int("min_hidden", min_hidden)
        check_flag("bias", bias)
        self.pool_types = check_pool_types(pool_types, POOL_TYPES)

        self.channels = channels
        self.hidden_channels = max(int(channels // reduction), min_hidden)
        self.mlp = nn.Sequential(
            nn.Linear(channels, self.hidden_channels, bias=bias),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden_channels, channels, bias=bias),
        )
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The channel map M_c(x), shape (N, C, 1, 1), values in (0, 1)."""
        check_feature_map(x, self.channels, type(self).__name__)
        descriptors = torch.stack([_global_pool(x, p) for p in self.pool_types])  # (P, N, C)
        # One MLP call on all descriptors at once: the MLP is shared, so this is Eq. 2's sum.
        logits = self.mlp(descriptors).sum(dim=0)
        return self.gate(logits[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, hidden={self.hidden_channels}, pool_types={self.pool_types}"
        )


class SqueezeExcitation(ChannelAttention):
    """The SE block (Hu et al., CVPR 2018): channel attention from average pooling alone.

    CBAM's channel module with ``pool_types=("avg",)``; kept as its own class because it is the
    baseline the paper compares against (Table 4's "+ SE").
    """

    def __init__(
        self, channels: int, reduction: float = 16, *, min_hidden: int = 1, bias: bool = True
    ) -> None:
        super().__init__(channels, reduction, min_hidden=min_hidden, bias=bias, pool_types=("avg",))


class SpatialAttention(nn.Module):
    """Spatial attention (Eq. 3): where to look.

    The mean and the maximum over channels give two (N, 1, H, W) maps; a k x k convolution
    (padding k // 2 keeps H and W) turns them into one map, squashed by a sigmoid.

    Args:
        kernel_size: k, odd and positive; 7 in the paper (it beat 3 in the ablation).
        batch_norm: a BatchNorm after the convolution, as the authors' code and timm have it;
            the paper's equation has none, so it is off by default.
        bias: a bias in the convolution (the authors' code has none).
        channel_reduction: how the C channels become the two maps the k x k convolution reads:
            "pool", the mean and the maximum over channels (Eq. 3, the paper's choice), or
            "conv1x1", a learned 1 x 1 convolution from C channels to 2 (the alternative of the
            paper's Table 2; it needs ``channels``).
        channels: C, needed by "conv1x1" only.
    """

    def __init__(
        self,
        kernel_size: int = 7,
        *,
        batch_norm: bool = False,
        bias: bool = False,
        channel_reduction: str = "pool",
        channels: int | None = None,
    ) -> None:
        super().__init__()
        check_odd_kernel_size(kernel_size)
        check_flag("batch_norm", batch_norm)
        check_flag("bias", bias)
        check_choice("channel_reduction", channel_reduction, CHANNEL_REDUCTIONS)
        self.kernel_size = kernel_size
        self.channel_reduction = channel_reduction
        # Pooling has no weights; the learned reduction is a 1x1 convolution to two maps.
        self.reduce = None
        if channel_reduction == "conv1x1":
            if channels is None:
                raise ValueError(
                    'channel_reduction="conv1x1" needs channels (the input\'s C), got None'
                )
            check_positive_int("channels", channels)
            self.reduce = nn.Conv2d(channels, 2, 1, bias=False)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=bias)
        self.bn = nn.BatchNorm2d(1) if batch_norm else nn.Identity()
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial map M_s(x), shape (N, 1, H, W), values in (0, 1)."""
        expected = None if self.reduce is None else self.reduce.in_channels
        check_feature_map(x, expected, type(self).__name__)
        if self.reduce is None:
            pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        else:
            pooled = self.reduce(x)
        # The same as self.conv(pooled), computed faster where PyTorch's own convolution is
        # slow for one output channel (see cbam.fast.spatial_conv).
        return self.gate(self.bn(spatial_conv(self.conv, pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, channel_reduction={self.channel_reduction!r}"


class CBAM(nn.Module):
    """The Convolutional Block Attention Module: channel attention, then spatial attention.

    Args:
        channels: C, the number of input channels.
        reduction: the channel MLP's reduction ratio r (16 in the paper).
        kernel_size: the spatial convolution's size k (7 in the paper).
        arrangement: how the two modules are combined, all on the same input x:
            "channel-first" (the paper's choice): ``y = M_c(x) * x``, ``out = M_s(y) * y``;
            "spatial-first": ``y = M_s(x) * x``, ``out = M_c(y) * y``;
            "parallel": both maps from x itself, ``out = M_c(x) * M_s(x) * x``
            (a single 3-D map, the outer product of the two, applied once). The paper does not
            say how its parallel branches are combined; this product is the library's choice
            (BAM, by the same authors, adds the two branches' scores before one sigmoid).
        spatial: False drops the spatial module, leaving channel attention alone.
        min_hidden, bias, pool_types: passed to ``ChannelAttention``.
        batch_norm, channel_reduction: passed to ``SpatialAttention``.
        fused: take the faster routes where they apply, both for the paper's configuration
            (channel-first, avg & max pooling, mean & max over channels): in inference on a
            CPU, the C kernel of ``cbam.cpu_kernel`` (float32 NCHW, no BatchNorm, no hooks);
            in training, a hand-written backward pass (``_FusedChannelFirst``) for inputs of
            at least ``FUSED_MIN_ELEMENTS`` elements. Same values and gradients as the plain code in
            ``forward`` (up to float rounding), in fewer passes over memory; False always runs
            the plain code (needed for double backward).
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        kernel_size: int = 7,
        *,
        arrangement: str = "channel-first",
        spatial: bool = True,
        min_hidden: int = 1,
        bias: bool = True,
        pool_types: Sequence[str] = ("avg", "max"),
        batch_norm: bool = False,
        channel_reduction: str = "pool",
        fused: bool = True,
    ) -> None:
        super().__init__()
        check_choice("arrangement", arrangement, ARRANGEMENTS)
        check_flag("spatial", spatial)
        check_flag("fused", fused)
        self.arrangement = arrangement
        self.fused = fused
        self.channel = ChannelAttention(
            channels, reduction, min_hidden=min_hidden, bias=bias, pool_types=pool_types
        )
        self.spatial = None
        if spatial:
            self.spatial = SpatialAttention(
                kernel_size,
                batch_norm=batch_norm,
                channel_reduction=channel_reduction,
                channels=channels,
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channel.channels, type(self).__name__)
        # The faster routes compute the paper's pooling over channels, nothing else.
        pooled_over_channels = self.spatial is not None and self.spatial.reduce is None
        if self.fused and pooled_over_channels and x.device.type == "cpu":
            weights = cpu_kernel.kernel_weights(self, x, is_same_conv(self.spatial.conv))
            if weights is not None:
                return cpu_kernel.forward(x, weights)
        if self.fused and _fused_training_applies(self, x):
            return _FusedChannelFirst.apply(x, self, *self.parameters())
        # Eq. 1 as written; _scale reuses the intermediate's memory when autograd allows it.
        channel, spatial = self.channel, self.spatial
        if spatial is None:
            return channel(x)
        if self.arrangement == "channel-first":
            y = x * channel.attention(x)
            return _scale(y, spatial.attention(y))
        if self.arrangement == "spatial-first":
            y = x * spatial.attention(x)
            return _scale(y, channel.attention(y))
        return _scale(x * channel.attention(x), spatial.attention(x))

    def extra_repr(self) -> str:
        return f"arrangement={self.arrangement!r}, fused={self.fused}"


# ---------------------------------------------------------------------------------------------
# Faster routes. Everything above is the reference; what follows computes the same values in
# fewer passes over memory, and the tests hold it to the plain computation.


# The channel-first block in training. Autograd through the plain code allocates a fresh
# feature-map-sized tensor for nearly every backward step (the products, the expanded means,
# amax's tie-sharing arithmetic) and adds them up one pass at a time. _FusedChannelFirst writes
# the block's gradient out by hand: two feature-map buffers, about ten passes. The small parts
# (MLP, convolution, BatchNorm, sigmoids) keep the autograd graphs recorded in forward, so their
# parameters get gradients as usual.


# Below about this many elements the fixed cost of the fused path (two small autograd calls)
# outweighs the passes it saves: measured on a CPU, (8, 64, 14, 14) trained about 10 % slower
# fused than plain, (8, 64, 28, 28) about 7 % faster.
FUSED_MIN_ELEMENTS = 1 << 18


def _fused_training_applies(block: CBAM, x: torch.Tensor) -> bool:
    """The fused path pays off only when autograd records; torch.compile fuses on its own."""
    if not torch.is_grad_enabled() or compiling() or transformed():
        return False
    if x.numel() < FUSED_MIN_ELEMENTS:
        return False
    if block.spatial is None or block.arrangement != "channel-first":
        return False
    if block.spatial.reduce is not None:
        return False
    if block.channel.pool_types != ("avg", "max"):
        return False
    return x.requires_grad or any(p.requires_grad for p in block.parameters())


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
        return y * spatial_map.detach()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, y, largest_hw, largest_c = ctx.saved_tensors
        descriptors, channel_map, pooled, spatial_map = ctx.graphs
        trainable = [p for p in ctx.params if p.requires_grad]
        scratch = torch.empty_like(x)  # the one feature-map buffer besides grad_y

        # out = y * M_s: the spatial map's gradient sums over channels.
        grad_spatial_map = torch.mul(grad, y, out=scratch).sum(dim=1, keepdim=True)
        grad_pooled, grad_params = _small_graph_grads(
            spatial_map, grad_spatial_map, pooled, trainable
        )
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
