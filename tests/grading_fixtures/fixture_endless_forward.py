"""An endless loop in forward: the check cell hangs until the kernel is interrupted."""
from torch import nn

import cbam


class CBAM(nn.Module):
    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.channel = cbam.ChannelAttention(channels, reduction)
        self.spatial = cbam.SpatialAttention(kernel_size)

    def forward(self, x):
        while True:
            pass
