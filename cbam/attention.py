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
import torch.nn.functional as F
from torch import nn

from cbam.validation import check_feature_map, check_positive_int

POOL_TYPES = ("avg", "max", "lp", "lse")
ARRANGEMENTS = ("channel-first", "spatial-first", "parallel")


def _global_pool(x: torch.Tensor, pool_type: str) -> torch.Tensor:
    """One descriptor per channel: (N, C, H, W) -> (N, C)."""
    if pool_type == "avg":
        return x.mean(dim=(2, 3))
    if pool_type == "max":
        # amax returns no indices, unlike max(dim=...) and AdaptiveMaxPool2d: less work, same value.
        return x.amax(dim=(2, 3))
    if pool_type == "lp":
        # The authors' code uses the power-2 average, F.lp_pool2d(x, 2, (H, W)).
        return x.square().sum(dim=(2, 3)).sqrt()
    return torch.logsumexp(x.flatten(2), dim=2)  # "lse", a soft maximum


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
            average) and "lse" (log-sum-exp). The paper uses ("avg", "max").
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
        check_positive_int("min_hidden", min_hidden)
        if isinstance(reduction, bool) or not isinstance(reduction, (int, float)) or not reduction > 0:
            raise ValueError(f"reduction must be a number > 0, got {reduction!r}")
        if isinstance(pool_types, str) or not isinstance(pool_types, Sequence):
            raise TypeError(
                f"pool_types must be a sequence such as ('avg', 'max'), got {pool_types!r}"
            )
        if not pool_types:
            raise ValueError(f"pool_types must name at least one of {POOL_TYPES}, got none")
        unknown = [p for p in pool_types if p not in POOL_TYPES]
        if unknown:
            raise ValueError(f"pool_types must be among {POOL_TYPES}, got {unknown!r}")
        if len(set(pool_types)) != len(pool_types):
            raise ValueError(f"pool_types must not repeat a pooling, got {tuple(pool_types)!r}")

        self.channels = channels
        self.pool_types = tuple(pool_types)
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
        return f"channels={self.channels}, hidden={self.hidden_channels}, pool_types={self.pool_types}"


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
    """

    def __init__(self, kernel_size: int = 7, *, batch_norm: bool = False, bias: bool = False) -> None:
        super().__init__()
        check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so that padding kernel_size // 2 keeps H and W, got {kernel_size}"
            )
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=bias)
        self.bn = nn.BatchNorm2d(1) if batch_norm else nn.Identity()
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial map M_s(x), shape (N, 1, H, W), values in (0, 1)."""
        check_feature_map(x, None, type(self).__name__)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return self.gate(self.bn(self.conv(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


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
            (a single 3-D map, the outer product of the two, applied once).
        spatial: False drops the spatial module, leaving channel attention alone.
        min_hidden, bias, pool_types: passed to ``ChannelAttention``.
        batch_norm: passed to ``SpatialAttention``.
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
    ) -> None:
        super().__init__()
        if arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement must be one of {ARRANGEMENTS}, got {arrangement!r}")
        self.arrangement = arrangement
        self.channel = ChannelAttention(
            channels, reduction, min_hidden=min_hidden, bias=bias, pool_types=pool_types
        )
        self.spatial = SpatialAttention(kernel_size, batch_norm=batch_norm) if spatial else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial is None:
            return self.channel(x)
        if self.arrangement == "channel-first":
            return self.spatial(self.channel(x))
        if self.arrangement == "spatial-first":
            return self.channel(self.spatial(x))
        return x * self.channel.attention(x) * self.spatial.attention(x)
