"""The global context block (Cao, Xu, Lin, Wei & Hu, "GCNet: Non-local Networks Meet
Squeeze-Excitation Networks and Beyond", ICCV Workshops 2019).

A non-local block computes, for every position, its own weighted sum over all positions; GCNet
observed that the weights come out nearly the same for every query, and computes one context
for the whole image instead (Sec. 3-4, Fig. 4d):

    alpha = softmax_j(W_k x_j)                       a map over the H W positions, (N, 1, H, W)
    context = sum_j alpha_j x_j                      (N, C, 1, 1)
    y = x + W_v2 ReLU(LN(W_v1 context))              added at every position

Unlike SE and CBAM, nothing is multiplied: the transformed context is *added* (the paper's
"add" fusion, its best). The bottleneck ``W_v1: C -> C/r`` has a LayerNorm, as the paper found
it needs to train, and the last 1x1 convolution starts at zero, so a new block starts as the
identity. Checked against the authors' code (xvjcao/GCNet, ``mmdet/ops/gcb/context_block.py``,
the same ``ContextBlock`` as mmcv's) with ``pooling_type="att"`` and
``fusion_types=("channel_add",)``.
"""

from __future__ import annotations

import torch
from torch import nn

from cbam import validation


class SpatialSoftmax(nn.Module):
    """A softmax over all H x W positions of a (N, 1, H, W) map: the weights sum to 1 per image."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.flatten(2).softmax(dim=2).view_as(logits)


class GlobalContext(nn.Module):
    """``x + transform(softmax-pooled context)``: one context vector, added at every position.

    Args:
        channels: C.
        reduction: r, the transform's bottleneck C -> C // r -> C (16 in the paper); at least 1.
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = validation.check_positive_int("channels", channels)
        reduction = validation.check_reduction(reduction)
        self.hidden_channels = max(int(channels // reduction), 1)
        factory = {"device": device, "dtype": dtype}
        self.key = nn.Conv2d(channels, 1, 1, **factory)  # W_k: one logit per position
        self.gate = SpatialSoftmax()
        hidden = self.hidden_channels
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, **factory),
            nn.LayerNorm([hidden, 1, 1], **factory),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, **factory),
        )
        # As the authors' code: Kaiming (fan_in) for the key, zeros for the last convolution.
        nn.init.kaiming_normal_(self.key.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.key.bias)
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The pooling weights alpha, shape (N, 1, H, W), summing to 1 over each image."""
        validation.check_feature_map(x, self.channels, type(self).__name__)
        return self.gate(self.key(x))

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The attention-pooled context, shape (N, C, 1, 1)."""
        weights = self.attention(x)
        return torch.einsum("nchw,nhw->nc", x, weights[:, 0])[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.transform(self.context(x))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden_channels}"
