"""Lesson 01, wrong: a sigmoid on each branch, then the two branches added."""
import torch
from torch import nn


class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
        )

    def attention(self, x):
        avg, mx = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
        weights = torch.sigmoid(self.mlp(avg)) + torch.sigmoid(self.mlp(mx))
        return weights[:, :, None, None]

    def forward(self, x):
        return x * self.attention(x)
