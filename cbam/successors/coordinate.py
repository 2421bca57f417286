"""Coordinate attention (Hou, Zhou & Feng, "Coordinate Attention for Efficient Mobile Network
Design", CVPR 2021).

SE and CBAM's channel module pool each channel to one number and lose where things are. Coordinate
attention pools along each axis apart: an average over W gives, per channel, a profile along H
(Eq. 4), an average over H a profile along W (Eq. 5). The two profiles are concatenated, mixed by
one shared 1x1 convolution to ``mid`` channels, BatchNorm and a hard-swish (Eq. 6), split again,
and each mapped back to C channels and squashed (Eq. 7-8):

    g_h = sigmoid(F_h(f_h))    (N, C, H, 1)
    g_w = sigmoid(F_w(f_w))    (N, C, 1, W)
    y = x * g_h * g_w          (Eq. 9)

so the block's map is the outer product of a column and a row weight per channel. ``mid`` is
``max(min_mid, C // reduction)``, with the paper's reduction 32 and minimum 8. Checked against the
authors' code (houqb/CoordAttention, ``coordatt.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from cbam import validation


class CoordinateAttention(nn.Module):
    """Two direction-aware maps per channel, along H and along W, applied as a product.

    Args:
        channels: C.
        reduction: the shared convolution's width is ``max(min_mid, C // reduction)``.
        min_mid: the smallest width it may have (8 in the paper).
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 32,
        *,
        min_mid: int = 8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = validation.check_positive_int("channels", channels)
        reduction = validation.check_reduction(reduction)
        min_mid = validation.check_positive_int("min_mid", min_mid)
        self.mid_channels = max(min_mid, int(channels // reduction))
        factory = {"device": device, "dtype": dtype}
        self.shared = nn.Sequential(
            nn.Conv2d(channels, self.mid_channels, 1, **factory),
            nn.BatchNorm2d(self.mid_channels, **factory),
            nn.Hardswish(),
        )
        self.conv_h = nn.Conv2d(self.mid_channels, channels, 1, **factory)
        self.conv_w = nn.Conv2d(self.mid_channels, channels, 1, **factory)
        self.gate_h = nn.Sigmoid()
        self.gate_w = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two maps: along H, shape (N, C, H, 1), and along W, shape (N, C, 1, W)."""
        validation.check_feature_map(x, self.channels, type(self).__name__)
        height = x.shape[2]
        along_h = x.mean(dim=3, keepdim=True)  # (N, C, H, 1): Eq. 4
        along_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (N, C, W, 1): Eq. 5
        # One convolution sees both profiles, laid end to end along the third axis (Eq. 6).
        mixed = self.shared(torch.cat([along_h, along_w], dim=2))
        mixed_h, mixed_w = mixed[:, :, :height], mixed[:, :, height:]
        g_h = self.gate_h(self.conv_h(mixed_h))
        g_w = self.gate_w(self.conv_w(mixed_w).transpose(2, 3))
        return g_h, g_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g_h, g_w = self.attention(x)
        return x * g_h * g_w

    def extra_repr(self) -> str:
        return f"channels={self.channels}, mid={self.mid_channels}"
