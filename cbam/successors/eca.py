"""ECA, efficient channel attention (Wang, Wu, Zhu, Li, Zuo & Hu, "ECA-Net: Efficient Channel
Attention for Deep Convolutional Neural Networks", CVPR 2020).

SE squeezes C descriptors through a bottleneck C -> C/r -> C. ECA argues the bottleneck hurts
(it decouples a channel from its own weight) and replaces the MLP by one 1-D convolution across
the channel axis, so each channel's weight depends on its k neighbours (Eq. 12 and Fig. 2):

    w = sigmoid(conv1d_k(GAP(F)))

with no reduction ratio and k from the number of channels, ``k = |log2(C) / gamma + b / gamma|``
rounded to the nearest odd number, gamma = 2, b = 1 (Eq. 12). Checked against the authors' code
(BangguWu/ECANet, ``models/eca_module.py``) and timm's ``EcaModule`` (``timm/layers/eca.py``).

``pool_types=("avg", "max")`` is not the paper's: it passes CBAM's two descriptors through the one
shared convolution and sums them before the sigmoid, as CBAM's Eq. 2 does with its MLP. It asks
whether max pooling carries a gain in ECA as it does in CBAM's channel module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cbam import validation

POOL_TYPES = ("avg", "max")


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """ECA's kernel size for C channels: ``|log2(C)/gamma + b/gamma|``, made odd (Eq. 12); the
    authors' code truncates to an int and adds one when that is even, as here."""
    channels = validation.check_positive_int("channels", channels)
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class EfficientChannelAttention(nn.Module):
    """``F * sigmoid(conv1d_k(GAP(F)))``: one weight per channel from its k neighbours.

    Args:
        channels: C; it sets the kernel size (``eca_kernel_size``) unless ``kernel_size`` is given.
        kernel_size: k, odd and positive, to override the rule.
        pool_types: "avg" (the paper) or ("avg", "max") (CBAM's descriptors, see above).
    """

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int | None = None,
        pool_types: Sequence[str] = ("avg",),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = validation.check_positive_int("channels", channels)
        if kernel_size is None:
            kernel_size = eca_kernel_size(channels)
        self.kernel_size = validation.check_odd_kernel_size(kernel_size)
        self.pool_types = validation.check_pool_types(pool_types, POOL_TYPES)
        # One input channel: the C descriptors are a sequence of length C, the kernel slides
        # along it. No bias, as in the authors' code.
        self.conv = nn.Conv1d(
            1, 1, self.kernel_size, padding=self.kernel_size // 2, bias=False,
            device=device, dtype=dtype,
        )  # fmt: skip
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The channel map, shape (N, C, 1, 1), values in (0, 1)."""
        validation.check_feature_map(x, self.channels, type(self).__name__)
        n, c = x.shape[:2]
        pooled = [x.mean(dim=(2, 3)) if p == "avg" else x.amax(dim=(2, 3)) for p in self.pool_types]
        descriptors = torch.stack(pooled).reshape(-1, 1, c)  # (P * N, 1, C)
        logits = self.conv(descriptors).reshape(len(pooled), n, c).sum(dim=0)
        return self.gate(logits[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, k={self.kernel_size}, pool_types={self.pool_types}"
