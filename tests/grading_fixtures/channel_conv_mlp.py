"""Lesson 01, right in another way: adaptive pooling and a 1x1-convolution MLP, other names."""
from torch import nn


class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        width = max(channels // reduction, 1)
        self.squeeze_avg = nn.AdaptiveAvgPool2d(1)
        self.squeeze_max = nn.AdaptiveMaxPool2d(1)
        self.excite = nn.Sequential(
            nn.Conv2d(channels, width, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, channels, kernel_size=1),
        )

    def attention(self, x):
        logits = self.excite(self.squeeze_avg(x)) + self.excite(self.squeeze_max(x))
        return logits.sigmoid()

    def forward(self, x):
        return self.attention(x) * x
