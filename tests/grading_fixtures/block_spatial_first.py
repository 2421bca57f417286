"""Lesson 03, wrong: channel and spatial attention swapped (spatial first)."""
from torch import nn

from cbam import ChannelAttention, SpatialAttention


class CBAM(nn.Module):
    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x):
        return self.channel(self.spatial(x))
