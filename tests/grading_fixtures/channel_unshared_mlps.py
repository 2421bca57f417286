"""Lesson 01, wrong: one MLP per descriptor instead of one shared MLP."""
import torch
from torch import nn


def _mlp(channels, hidden):
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))


class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp_avg = _mlp(channels, hidden)
        self.mlp_max = _mlp(channels, hidden)

    def attention(self, x):
        scores = self.mlp_avg(x.mean(dim=(2, 3))) + self.mlp_max(x.amax(dim=(2, 3)))
        return torch.sigmoid(scores)[:, :, None, None]

    def forward(self, x):
        return x * self.attention(x)
