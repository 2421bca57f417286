# %% [markdown]
# # 03 · The CBAM block
#
# Lessons 01 and 02 built two gates. Channel attention decides **what** to keep: it scores every
# channel of a feature map and scales each one by its score. Spatial attention decides **where**
# to look: it scores every position and scales the whole column of channels at that position.
#
# CBAM is nothing more than the two gates in a row. This lesson puts them together, asks whether
# the order matters, and looks at what the block costs and what it can and cannot do to a feature
# map. From here on the two gates come from the library: `cbam.ChannelAttention` and
# `cbam.SpatialAttention` are the modules you wrote, tested and kept.

# %%
import torch
from torch import nn

import cbam
from cbam import ChannelAttention, SpatialAttention

_ = torch.manual_seed(0)  # the one seed of this lesson

# %% [markdown]
# ## The idea: refine twice, in sequence
#
# Take a feature map $F \in \mathbb{R}^{C \times H \times W}$. CBAM first asks the channel gate
# for a vector of $C$ weights and multiplies it in; then it asks the spatial gate for an
# $H \times W$ map **of the result** and multiplies that in:
#
# $$
# F' = M_c(F) \otimes F, \qquad F'' = M_s(F') \otimes F'
# $$
#
# (Eq. 1 of Woo et al., ECCV 2018). Here $\otimes$ is element-wise multiplication with
# broadcasting: $M_c(F) \in \mathbb{R}^{C \times 1 \times 1}$ is copied across all positions and
# $M_s(F') \in \mathbb{R}^{1 \times H \times W}$ across all channels, exactly the broadcasting
# rules from lesson 00.
#
# Two details of the equation carry the whole design. The spatial map is computed from $F'$,
# not from $F$: the spatial gate sees features that the channel gate has already re-weighted.
# And each gate returns its input multiplied by a map, so the output has the input's shape and
# the block can be dropped between any two layers.

# %% [markdown]
# ## Shapes through the block
#
# Follow one batch through both gates and print every intermediate shape. The two maps are
# the only tensors that are not $N \times C \times H \times W$.

# %%
channels = 64
channel_gate = ChannelAttention(channels)      # r = 16: an MLP 64 -> 4 -> 64
spatial_gate = SpatialAttention(kernel_size=7)

x = torch.randn(2, channels, 14, 14)
channel_map = channel_gate.attention(x)         # M_c(F)
refined = channel_map * x                       # F'
spatial_map = spatial_gate.attention(refined)   # M_s(F')
out = spatial_map * refined                     # F''

for name, tensor in [("F", x), ("M_c(F)", channel_map), ("F'", refined),
                     ("M_s(F')", spatial_map), ("F''", out)]:
    print(f"{name:>8}: {tuple(tensor.shape)}")

# %% [markdown]
# The channel map is $(N, C, 1, 1)$ and the spatial map $(N, 1, H, W)$: one number per channel,
# one number per position, both broadcast back to the full map when multiplied in. Each gate's
# `forward` does the multiplication for you, so `spatial_gate(channel_gate(x))` is the same
# computation in one line:

# %%
print(torch.allclose(spatial_gate(channel_gate(x)), out))

# %% [markdown]
# ## Exercise `cbam-block`: the block as a module
#
# Write a class `CBAM(nn.Module)` with the interface
#
# ```python
# CBAM(channels, reduction=16, kernel_size=7)
# ```
#
# - in `__init__`, keep a `ChannelAttention(channels, reduction)` as `self.channel` and a
#   `SpatialAttention(kernel_size)` as `self.spatial` (both imported from `cbam` above);
# - `forward(x)` takes an $(N, C, H, W)$ tensor and returns $F''$ of Eq. 1, with the same shape:
#   channel attention first, spatial attention on its result.
#
# **How it is checked.** `check_cbam_block` builds your block for two settings (the paper's
# $r = 16$, $k = 7$ on 32 channels, and $r = 4$, $k = 3$ on 24), copies your weights into the
# library's `cbam.CBAM` and compares the outputs. If they differ, the hint says which common
# mistake your output matches (spatial first, both maps from $x$, a map returned instead of
# features, ...). It also checks that gradients reach both gates, and that each weight is
# registered once. Keep the two gates as `self.channel` and `self.spatial` and no other module
# holding them: the cell after the check loads `cbam.CBAM`'s weights into your block by these
# names, and a second name for the same gate (an extra `nn.Sequential` of both) would be a key
# the library's block does not have.

# %% tags=["exercise"] exercise="cbam-block"
class CBAM(nn.Module):
    """Channel attention, then spatial attention (Eq. 1)."""

    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        ### BEGIN SOLUTION
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.spatial(self.channel(x))
        ### END SOLUTION


# %% tags=["nbval-check-output"] check="cbam-block"
from cbam.checks.block import check_cbam_block

check_cbam_block(CBAM)

# %% [markdown]
# Because your block names its parts `channel` and `spatial`, exactly as the library's does, its
# `state_dict` has the same keys. Weights can move from one to the other, and the two blocks then
# compute the same function:

# %%
mine = CBAM(channels)
library = cbam.CBAM(channels)
library.load_state_dict(mine.state_dict())
print(sorted(mine.state_dict()))
print("same output:", torch.allclose(mine(x), library(x), atol=1e-6))

# %% [markdown]
# ## Where the parameters are
#
# The channel gate's MLP has two weight matrices, $C \times C/r$ and $C/r \times C$, plus their
# biases: about $2C^2/r$ parameters, quadratic in the width. The spatial gate has one
# $2 \to 1$ convolution of size $k \times k$: $2k^2 = 98$ parameters for $k = 7$, whatever the
# width. Count both, in the library's block, for the widths a ResNet-50 uses:

# %%
def count(module):
    return sum(p.numel() for p in module.parameters())


print(f"{'C':>5} {'channel MLP':>12} {'spatial conv':>13} {'spatial share':>14}")
for width in (64, 256, 512, 1024, 2048):
    block = cbam.CBAM(width)
    mlp, conv = count(block.channel), count(block.spatial)
    print(f"{width:>5} {mlp:>12,} {conv:>13,} {conv / (mlp + conv):>13.2%}")

# %% [markdown]
# Nearly every parameter of CBAM sits in the channel MLP; spatial attention is almost free in
# parameters. (In computation the picture is different: the $7 \times 7$ convolution runs at
# every position, the MLP only on two pooled vectors. Lesson 04 counts both inside a ResNet.)

# %% [markdown]
# ## A gate can only close
#
# Both maps come out of a sigmoid, so every entry lies strictly between 0 and 1, and so does
# their product. Multiplying by such a number can only shrink a feature toward zero: CBAM never
# makes an activation larger in magnitude than it was, and never flips its sign.
#
# $$
# 0 < M_c(F)_c \, M_s(F')_{h,w} < 1 \quad\Longrightarrow\quad |F''_{c,h,w}| < |F_{c,h,w}|
# \text{ wherever } F_{c,h,w} \neq 0
# $$

# %%
block = cbam.CBAM(channels)
out = block(x)
maps = block.channel.attention(x) * block.spatial.attention(block.channel(x))
print("all map values in (0, 1):", bool(((maps > 0) & (maps < 1)).all()))
print("|F''| <= |F| everywhere: ", bool((out.abs() <= x.abs()).all()))
print("signs unchanged:         ", bool((out.sign() == x.sign()).all()))

# %% [markdown]
# See it on the batch itself: $F$ and $F''$ side by side, on one colour scale. Pick any image and
# channel: the pattern stays, only fainter, and the min and max printed below move toward 0.

# %% tags=["nbval-ignore-output"]
from cbam.widgets import TensorViewer

TensorViewer(x, out, names=("F", "F''"))

# %% [markdown]
# "Attention" here means *suppression*: the block emphasises a feature only by dimming the others.
# How much does a fresh, untrained block dim? Measure it on the batch: the mean of each gate,
# the mean of their product, and the share of the input's magnitude that comes out.

# %%
with torch.no_grad():
    gates = {
        "M_c(F)": block.channel.attention(x),
        "M_s(F')": block.spatial.attention(block.channel(x)),
        "M_c(F) * M_s(F')": maps,
    }
    for name, gate in gates.items():
        print(f"mean of {name:<17} {gate.mean():.2f}")
    print(f"mean |F''| / mean |F|:    {out.abs().mean() / x.abs().mean():.2f}")

# %% [markdown]
# The channel gate of a fresh block sits near 0.5, because its MLP's outputs are small and
# $\sigma(0) = 0.5$. The spatial gate has no reason to: it has no BatchNorm to centre its input
# and no bias, and its $7 \times 7$ kernel starts from PyTorch's default random initialisation,
# whose 98 weights sum to some random number. The maximum over channels is positive at every
# position, so that sum shifts the whole map up or down, and the spatial gate's mean lands
# wherever this block's random kernel puts it (the cell prints it). The product of the two
# gates, and the share of the input that comes out, is what a fresh block passes on; in the
# authors' code the zero-initialised BatchNorm of lesson 02 pins the spatial gate at exactly
# 0.5 instead. A network whose main path ran through many such blocks would shrink its signal
# block after block; lesson 04 shows how ResNet avoids this by placing the block on the
# residual branch, never on the identity path.

# %% [markdown]
# ## Three ways to combine two gates
#
# Eq. 1 is one choice among several. The paper compares three arrangements of the same two
# modules, all starting from the same input $x$: channel-first, spatial-first, and the two
# modules side by side ("parallel"). For the sequential two, Eq. 1 and its mirror image say
# exactly what to compute. For the parallel one the paper does not spell out how the two
# branches are combined, so this course, and `cbam.CBAM(..., arrangement="parallel")`, define
# it as the product of the two maps, both computed from $x$:
#
# | arrangement | recipe |
# | --- | --- |
# | channel-first (CBAM, Eq. 1) | $F' = M_c(x) \otimes x$, then $F'' = M_s(F') \otimes F'$ |
# | spatial-first | $F' = M_s(x) \otimes x$, then $F'' = M_c(F') \otimes F'$ |
# | parallel (this course's) | both maps from $x$: $F'' = M_c(x) \otimes M_s(x) \otimes x$ |
#
# In this parallel arrangement the product $M_c(x) \otimes M_s(x)$ is a full
# $C \times H \times W$ map built as an outer product of a channel vector and a spatial map.
# It is not the only reasonable reading. BAM, the same authors' other attention module (Park et
# al., BMVC 2018), also runs a channel and a spatial branch in parallel, but adds their two
# outputs *before* a single sigmoid, $\sigma(\text{channel scores} + \text{spatial scores})$,
# instead of multiplying two sigmoids. In the two sequential arrangements, the second gate looks
# at what the first has already changed.

# %% [markdown]
# Pick each arrangement in the explorer and follow the two maps: where each is computed, from
# which tensor, and when it is multiplied in. In the parallel one both come from $x$ and meet
# only at the end.

# %% tags=["nbval-ignore-output"]
from cbam.widgets import ShapeExplorer

ShapeExplorer(channels=64, height=14, width=14)

# %% [markdown]
# ## Exercise `arrangements`
#
# Write a function
#
# ```python
# combine(x, channel, spatial, arrangement="channel-first")
# ```
#
# where `channel` is a `ChannelAttention`, `spatial` a `SpatialAttention` and `x` an
# $(N, C, H, W)$ tensor. It returns $F''$ for `arrangement` equal to `"channel-first"`,
# `"spatial-first"` or `"parallel"` (the table above), and raises a `ValueError` naming the three
# choices for anything else. Each gate's `.attention(t)` gives its map without applying it, and
# calling the gate, `channel(t)`, gives `t` times the map.
#
# **How it is checked.** `check_arrangements` compares your output for each arrangement with
# `cbam.CBAM(..., arrangement=...)` using the same two gates, checks the default, and checks that
# a misspelt arrangement raises `ValueError`.

# %% tags=["exercise"] exercise="arrangements"
def combine(x, channel, spatial, arrangement="channel-first"):
    ### BEGIN SOLUTION
    if arrangement == "channel-first":
        return spatial(channel(x))
    if arrangement == "spatial-first":
        return channel(spatial(x))
    if arrangement == "parallel":
        return x * channel.attention(x) * spatial.attention(x)
    raise ValueError(
        f"arrangement must be 'channel-first', 'spatial-first' or 'parallel', got {arrangement!r}"
    )
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="arrangements"
from cbam.checks.block import check_arrangements

check_arrangements(combine)

# %% [markdown]
# ## Order matters
#
# Multiplication commutes, so one might expect the three arrangements to agree. They do not,
# because each gate's map depends on its input. Apply all three to the same input with the same
# two gates and compare:

# %%
outputs = {name: combine(x, channel_gate, spatial_gate, name)
           for name in ("channel-first", "spatial-first", "parallel")}
names = list(outputs)
for i, a in enumerate(names):
    for b in names[i + 1:]:
        print(f"{a:>13} vs {b:<13} equal: {torch.allclose(outputs[a], outputs[b])}")

# %% [markdown]
# The difference comes from the maps, not from the multiplications. The spatial map that
# channel-first uses is computed from the channel-weighted features; the one parallel uses is
# computed from $x$ itself. The mean and the maximum over channels, the spatial gate's two
# inputs, both change when channels are re-weighted (the maximum may even come from a different
# channel), so the map changes:

# %%
map_from_x = spatial_gate.attention(x)
map_from_refined = spatial_gate.attention(channel_gate(x))
print("spatial map shape:", tuple(map_from_x.shape))
print("same spatial map: ", torch.allclose(map_from_x, map_from_refined))

# %% [markdown]
# Which arrangement is better cannot be settled by a forward pass; it takes training. The paper
# trained all three in a ResNet-50 on ImageNet-1K and reports (Table 3 of Woo et al., 2018) a
# lower error for channel-first than for either spatial-first or its parallel arrangement
# (whose combination it does not spell out, so it need not be the product defined above):
# 22.66 % top-1 error for channel-first, 22.78 % for spatial-first and 22.95 % for parallel,
# one run each, against 24.56 % for the plain network. This course cannot rerun that
# experiment on a laptop, but it ran its miniature (`cbam.experiments`, experiment
# `arrangement`; lesson 05 explains the method): the three arrangements of `cbam.CBAM` in every
# block of a small ResNet on a synthetic task, ten paired seeds each, trained to a plateau.
# As in lessons 01 and 02, a difference counts only when it stays significant at 5 % after
# Holm's correction over the experiment's comparisons, here spatial-first and parallel, each
# against channel-first (lesson 05 explains why and how); below, each comparison's p-value raw
# and after Holm stands next to its verdict.

# %%
from cbam import experiments

arrangement_runs = experiments.load("arrangement")
print(experiments.paper_comparison(arrangement_runs))
for row in experiments.summarize(arrangement_runs)[1:]:
    print(f"{row.variant} against channel-first: p = {row.difference.p_value:.4f}, "
          f"Holm p = {row.adjusted_p:.4f}: {row.verdict}")

# %% [markdown]
# The paper's gaps are tenths of a point from single runs; the miniature's say what ten seeds
# resolve on one small task. Neither is a verdict on the other's setting, and the module
# docstring of timm's `timm/layers/cbam.py` (Ross Wightman, 2020) warns that results with these
# layers "have been mixed" and that they "can significantly reduce performance on some tasks".
# The library keeps all three arrangements (`cbam.CBAM(C, arrangement="parallel")`) so that you
# can test the claim on your own task.
#
# The library's block, with its defaults, is the paper's: channel-first, $r = 16$, $k = 7$.

# %%
library = cbam.CBAM(channels)
print("arrangement:", library.arrangement)
print("channel MLP:", channels, "->", library.channel.hidden_channels, "->", channels)
print("spatial conv:", library.spatial.conv)

# %% [markdown]
# ## Pitfalls
#
# - **Returning a map instead of features.** `channel.attention(x)` is $(N, C, 1, 1)$ and
#   `spatial.attention(...)` is $(N, 1, H, W)$. A block that returns either, or their product, has
#   computed the attention but not applied it. The output of CBAM always has the input's shape.
# - **Computing the second map from the wrong tensor.** In channel-first CBAM the spatial map is
#   $M_s(F')$, computed from the channel-refined features. `spatial.attention(x)` looks harmless
#   but silently turns the block into the parallel arrangement.
# - **Swapping the order.** `self.channel(self.spatial(x))` runs, keeps the shape and trains; it is
#   just not the module the paper evaluated. Nothing crashes, which is exactly why the check
#   compares values, not shapes.
# - **Expecting amplification.** Gates lie in $(0, 1)$: CBAM can only attenuate. If a feature
#   must grow, something else in the network (the next convolution, a BatchNorm) has to do it.
# - **Different codebases pool in different orders.** The spatial gate stacks
#   $[\text{mean}; \text{max}]$ here and in timm, but $[\text{max}; \text{mean}]$ in the authors'
#   code; the two input channels of the $7 \times 7$ convolution are swapped. Both are correct,
#   but pretrained weights from one need their convolution's input channels flipped to work in
#   the other.
