# %% [markdown]
# # A small lesson for testing the grader
#
# Four exercises in the style of lessons 01-04, with checks that live beside the notebook
# (`fixture_checks.py`), so the grader's tests do not depend on the real lessons.

# %%
import torch
from fixture_checks import (
    ReferenceBlock,
    check_attention_in_block,
    check_cbam_block,
    check_channel_attention,
    check_spatial_attention,
)
from torch import nn

import cbam

_ = torch.manual_seed(0)

# %% [markdown]
# Channel attention: `x * sigmoid(mlp(avg) + mlp(max))` with one shared MLP.

# %% tags=["exercise"] exercise="channel-attention"
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        ### BEGIN SOLUTION
        hidden = max(channels // reduction, 1)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
        )
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        avg = self.mlp(self.avg_pool(x).flatten(1))
        mx = self.mlp(self.max_pool(x).flatten(1))
        return x * torch.sigmoid(avg + mx)[:, :, None, None]
        ### END SOLUTION


# %% tags=["nbval-check-output"] check="channel-attention"
check_channel_attention(ChannelAttention)

# %%
print(tuple(ChannelAttention(32, 8)(torch.ones(1, 32, 4, 4)).shape))

# %% [markdown]
# Spatial attention: `x * sigmoid(conv([mean_c(x); max_c(x)]))`, padding `k // 2`.

# %% tags=["exercise"] exercise="spatial-attention"
class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))
        ### END SOLUTION


# %% tags=["nbval-check-output"] check="spatial-attention"
check_spatial_attention(SpatialAttention)

# %% [markdown]
# The block: `cbam.ChannelAttention` first, then `cbam.SpatialAttention`.

# %% tags=["exercise"] exercise="cbam-block"
class CBAM(nn.Module):
    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.channel = cbam.ChannelAttention(channels, reduction)
        self.spatial = cbam.SpatialAttention(kernel_size)

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.spatial(self.channel(x))
        ### END SOLUTION


# %% tags=["nbval-check-output"] check="cbam-block"
check_cbam_block(CBAM)

# %% [markdown]
# The attention goes after the block's last BatchNorm, before the residual add.

# %% tags=["exercise"] exercise="attention-in-block"
def block_forward(block, x):
    ### BEGIN SOLUTION
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.attention(block.bn2(block.conv2(out)))
    return block.relu(out + x)
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="attention-in-block"
check_attention_in_block(block_forward)

# %% tags=["nbval-ignore-output"]
print(block_forward(ReferenceBlock(8).eval(), torch.randn(1, 8, 4, 4)).sum())
