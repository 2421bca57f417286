"""Lesson 01, wrong: only the average-pooled descriptor (the SE block)."""
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
        return torch.sigmoid(self.mlp(x.mean(dim=(2, 3))))[:, :, None, None]

    def forward(self, x):
        return x * self.attention(x)
