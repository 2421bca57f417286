"""The attention modules of CBAM (Woo et al., ECCV 2018) and the SE block it is compared with.

Each module follows one equation of the paper:

* ``ChannelAttention`` - Eq. 2: ``M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))``
* ``SpatialAttention`` - Eq. 3: ``M_s(F) = sigmoid(conv_kxk([mean_c(F); max_c(F)]))``
* ``CBAM`` - Eq. 1: ``F' = M_c(F) * F``, ``F'' = M_s(F') * F'``

Every module has an ``attention(x)`` method that returns its map without applying it, and a
``gate`` submodule whose output *is* the map, so forward hooks (see ``cbam.maps``) can read the
maps of a whole network without changing what it computes.

This file is the reference. ``CBAM.forward`` takes ``cbam.fast``'s faster routes to the same
values where they apply (a C kernel, a hand-written backward); the tests hold them to this code.

Every module can be scripted (``torch.jit.script``) and traced (``torch.jit.trace``,
``torch.fx.symbolic_trace``, ``torch.export``, ``torch.onnx.export``): checks of the input and
the faster routes sit behind ``torch.jit.is_scripting()``, and step aside under a trace, so a
graph holds the plain code's operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cbam import fast, validation
from cbam.fast.spatial_conv import spatial_conv
from cbam.fast.tracing import recording

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
    """``features * gate``, in place when autograd records neither: one feature map fewer to
    allocate, and on a CPU each fresh 4 KiB costs a page fault. A traced graph gets the
    product, which does not depend on what required a gradient while it was traced."""
    if not torch.jit.is_scripting():
        if recording(features) is None and not (features.requires_grad or gate.requires_grad):
            return features.mul_(gate)
    return features * gate


class ChannelAttention(nn.Module):
    """Channel attention (Eq. 2): which channels matter.

    Each pooled descriptor (N, C) goes through the same two-layer MLP (C -> C/r -> C, ReLU
    between); the results are summed and squashed by a sigmoid into one weight per channel.

    Args:
        channels: C, the number of input channels.
        reduction: r, the MLP's reduction ratio; 16 in the paper.
        hidden_channels: the MLP's hidden width, where it is not to come from ``reduction``
            (weights trained elsewhere fix it: timm rounds C/r to the nearest, see
            ``cbam.convert``).
        min_hidden: the hidden width is ``max(channels // reduction, min_hidden)``, so a small C
            never leaves an MLP of width 0 (whose gate would be a constant 0.5).
        bias: biases in the MLP's linear layers (the paper's parameter counts include them).
        pool_types: which global poolings give descriptors: any of "avg", "max", "lp" (power-2
            pooling, as ``F.lp_pool2d(x, 2, (H, W))``) and "lse" (log-sum-exp). The paper uses
            ("avg", "max").
        device, dtype: where and in which dtype the parameters are made (PyTorch's factory
            keywords, as ``nn.Linear`` takes them).
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        *,
        hidden_channels: int | None = None,
        min_hidden: int = 1,
        bias: bool = True,
        pool_types: Sequence[str] = ("avg", "max"),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        channels = validation.check_positive_int("channels", channels)
        reduction = validation.check_reduction(reduction)
        min_hidden = validation.check_positive_int("min_hidden", min_hidden)
        validation.check_flag("bias", bias)
        self.pool_types = validation.check_pool_types(pool_types, POOL_TYPES)
        self.channels = channels
        if hidden_channels is None:
            self.hidden_channels = max(int(channels // reduction), min_hidden)
        else:
            self.hidden_channels = validation.check_positive_int("hidden_channels", hidden_channels)
        factory = {"device": device, "dtype": dtype}
        self.mlp = nn.Sequential(
            nn.Linear(channels, self.hidden_channels, bias=bias, **factory),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden_channels, channels, bias=bias, **factory),
        )
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The channel map M_c(x), shape (N, C, 1, 1), values in (0, 1)."""
        if not torch.jit.is_scripting():
            validation.check_feature_map(x, self.channels, type(self).__name__)
        descriptors = torch.stack([_global_pool(x, p) for p in self.pool_types])  # (P, N, C)
        # One MLP call on all descriptors at once: the MLP is shared, so this is Eq. 2's sum.
        logits = self.mlp(descriptors).sum(dim=0)
        return self.gate(logits[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)

    def extra_repr(self) -> str:
        hidden, pools = self.hidden_channels, self.pool_types
        return f"channels={self.channels}, hidden={hidden}, pool_types={pools}"


class SqueezeExcitation(ChannelAttention):
    """The SE block (Hu et al., CVPR 2018): channel attention from average pooling alone.

    CBAM's channel module with ``pool_types=("avg",)``; kept as its own class because it is the
    baseline the paper compares against (Table 4's "+ SE").
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        *,
        min_hidden: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            channels,
            reduction,
            min_hidden=min_hidden,
            bias=bias,
            pool_types=("avg",),
            device=device,
            dtype=dtype,
        )


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
        device, dtype: where and in which dtype the parameters are made (PyTorch's factory
            keywords).
    """

    def __init__(
        self,
        kernel_size: int = 7,
        *,
        batch_norm: bool = False,
        bias: bool = False,
        channel_reduction: str = "pool",
        channels: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kernel_size = validation.check_odd_kernel_size(kernel_size)
        validation.check_flag("batch_norm", batch_norm)
        validation.check_flag("bias", bias)
        validation.check_choice("channel_reduction", channel_reduction, CHANNEL_REDUCTIONS)
        self.kernel_size = kernel_size
        self.channel_reduction = channel_reduction
        factory = {"device": device, "dtype": dtype}
        # Pooling has no weights; the learned reduction is a 1x1 convolution to two maps.
        self.reduce = None
        if channel_reduction == "conv1x1":
            channels = validation.check_conv1x1_channels(channels)
            self.reduce = nn.Conv2d(channels, 2, 1, bias=False, **factory)
        padding = kernel_size // 2
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=padding, bias=bias, **factory)
        self.bn = nn.BatchNorm2d(1, **factory) if batch_norm else nn.Identity()
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial map M_s(x), shape (N, 1, H, W), values in (0, 1)."""
        if self.reduce is None:
            if not torch.jit.is_scripting():
                validation.check_feature_map(x, None, type(self).__name__)
            pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        else:
            if not torch.jit.is_scripting():
                validation.check_feature_map(x, self.reduce.in_channels, type(self).__name__)
            pooled = self.reduce(x)
        if torch.jit.is_scripting():
            logits = self.conv(pooled)
        else:  # self.conv(pooled), by a faster route on a CPU (see cbam.fast.spatial_conv)
            logits = spatial_conv(self.conv, pooled)
        return self.gate(self.bn(logits))

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
        hidden_channels, min_hidden, bias, pool_types: passed to ``ChannelAttention``.
        batch_norm, channel_reduction: passed to ``SpatialAttention``.
        device, dtype: where and in which dtype the parameters are made (PyTorch's factory
            keywords, which ``torch.nn.utils.skip_init`` and timm's ``attn_layer`` pass).
        fused: take ``cbam.fast``'s routes for the paper's configuration where they apply
            (``cbam.fast.why_not(block, x)`` says why not); False always runs the plain code
            (needed for double backward).
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        kernel_size: int = 7,
        *,
        arrangement: str = "channel-first",
        spatial: bool = True,
        hidden_channels: int | None = None,
        min_hidden: int = 1,
        bias: bool = True,
        pool_types: Sequence[str] = ("avg", "max"),
        batch_norm: bool = False,
        channel_reduction: str = "pool",
        fused: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        validation.check_choice("arrangement", arrangement, ARRANGEMENTS)
        validation.check_flag("spatial", spatial)
        validation.check_flag("fused", fused)
        self.arrangement = arrangement
        self.fused = fused
        factory = {"device": device, "dtype": dtype}
        self.channel = ChannelAttention(
            channels,
            reduction,
            hidden_channels=hidden_channels,
            min_hidden=min_hidden,
            bias=bias,
            pool_types=pool_types,
            **factory,
        )
        self.spatial = None
        if spatial:
            self.spatial = SpatialAttention(
                kernel_size,
                batch_norm=batch_norm,
                channel_reduction=channel_reduction,
                channels=self.channel.channels,
                **factory,
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            validation.check_feature_map(x, self.channel.channels, type(self).__name__)
            faster = fast.route(self, x)
            if faster is not None:  # the same output in fewer passes
                return faster()
        return self.plain_forward(x)

    def plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1 as written, never a faster route (the reference the routes are held to)."""
        # The submodules are called as modules where their output is what the block uses, so
        # that their hooks fire. (They are named through self each time: TorchScript calls a
        # submodule only as an attribute.)
        if self.spatial is None:
            return self.channel(x)
        if self.arrangement == "channel-first":
            return self.spatial(self.channel(x))
        if self.arrangement == "spatial-first":
            return self.channel(self.spatial(x))
        # Parallel: both maps from x; the spatial map is applied to the channel module's output
        # (a fresh tensor, which _scale may reuse when autograd allows it).
        return _scale(self.channel(x), self.spatial.attention(x))

    def extra_repr(self) -> str:
        return f"arrangement={self.arrangement!r}, fused={self.fused}"
