"""SimAM, a simple parameter-free attention module (Yang, Zhang, Li & Xie, "SimAM: A Simple,
Parameter-Free Attention Module for Convolutional Neural Networks", ICML 2021).

SimAM gives every neuron (every channel *and* position) its own weight, with no parameter to
learn. It borrows spatial suppression from neuroscience: a neuron that stands out from the other
neurons of its channel matters more. The minimal energy of neuron t in a channel with mean mu and
variance sigma^2 over its H x W positions has a closed form (Eq. 5 of the paper):

    e_t = 4 (sigma^2 + lambda) / ((t - mu)^2 + 2 sigma^2 + 2 lambda)

Lower energy means more distinct, so the weight is ``sigmoid(1 / e_t)`` (Eq. 6):

    y = x * sigmoid((x - mu)^2 / (4 (sigma^2 + lambda)) + 1/2)

with sigma^2 the variance over the other M - 1 = H W - 1 positions, and lambda = 1e-4. Checked
against the authors' code (ZjjConan/SimAM, ``networks/attentions/simam_module.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from cbam import validation


class SimAM(nn.Module):
    """``x * sigmoid(1 / e)``: a 3-D map (N, C, H, W) from each neuron's distance to its
    channel's mean, no weights. ``channels`` is accepted (and checked against the input) so that
    the class is a factory ``channels -> module`` like the others.

    Args:
        channels: C, or None to accept any.
        e_lambda: lambda, the regulariser of Eq. 5 (1e-4 in the paper).
    """

    def __init__(self, channels: int | None = None, *, e_lambda: float = 1e-4) -> None:
        super().__init__()
        if channels is not None:
            channels = validation.check_positive_int("channels", channels)
        if isinstance(e_lambda, bool) or not isinstance(e_lambda, (int, float)) or e_lambda <= 0:
            raise ValueError(f"e_lambda must be a positive number, got {e_lambda!r}")
        self.channels = channels
        self.e_lambda = float(e_lambda)
        self.gate = nn.Sigmoid()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The map sigmoid(1 / e), shape (N, C, H, W), values in (0.5, 1)."""
        validation.check_feature_map(x, self.channels, type(self).__name__)
        positions = x.shape[2] * x.shape[3]
        if positions < 2:
            raise ValueError(
                f"SimAM compares each position with the others of its channel, so it needs "
                f"H * W >= 2; got a feature map of shape {tuple(x.shape)}"
            )
        squared = (x - x.mean(dim=(2, 3), keepdim=True)).square()
        variance = squared.sum(dim=(2, 3), keepdim=True) / (positions - 1)
        inverse_energy = squared / (4 * (variance + self.e_lambda)) + 0.5
        return self.gate(inverse_energy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, e_lambda={self.e_lambda}"
