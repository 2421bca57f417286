"""Tampering the scan sees: a right channel attention that also silences print."""
import builtins

import torch
from torch import nn

builtins.print = lambda *args, **kwargs: None


class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
        )

    def forward(self, x):
        scores = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(scores)[:, :, None, None]
