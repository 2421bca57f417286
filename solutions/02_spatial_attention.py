# %% [markdown]
# # 02 · Spatial attention
#
# Channel attention (lesson 01) decides **which** channels of a feature map matter. It says
# nothing about **where**: a channel's weight is the same at every position of the map. Spatial
# attention is the other half of CBAM. It computes one weight per position, between 0 and 1,
# and multiplies the whole stack of channels at that position by it, so that the network can
# turn up the object and turn down the background.
#
# The construction mirrors the channel module with the roles of the axes swapped. Channel
# attention pools over the positions and keeps the channels; spatial attention pools over the
# channels and keeps the positions. This lesson builds it in three exercises:
#
# 1. `channel-pool`: the mean and the maximum across channels, at every position;
# 2. `same-padding`: the padding that keeps a $k \times k$ convolution's output the size of its
#    input;
# 3. `spatial-attention`: the module.
#
# On the way: which pooled map goes first, why $7 \times 7$, what goes wrong with a padding that
# does not follow $k$, and the BatchNorm that the authors' code has and the paper's equation
# has not.

# %%
import math

import matplotlib.cbook as cbook
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import cbam

torch.manual_seed(0)  # the one seed of this lesson: every random tensor below follows from it

x = torch.randn(2, 64, 14, 14)  # a batch of 2 feature maps, 64 channels of 14 x 14
print("x:", tuple(x.shape))

# %% [markdown]
# ## The equation
#
# For a feature map $F \in \mathbb{R}^{C \times H \times W}$ the spatial attention map is
#
# $$
# M_s(F) = \sigma\big(f^{7 \times 7}([\mathrm{AvgPool}(F);\ \mathrm{MaxPool}(F)])\big)
#        = \sigma\big(f^{7 \times 7}([F^s_{avg};\ F^s_{max}])\big)
# $$
#
# (Eq. 3 of Woo et al., ECCV 2018). Reading it from the inside out:
#
# - $F^s_{avg}, F^s_{max} \in \mathbb{R}^{1 \times H \times W}$ are the mean and the maximum
#   **across the channels** at each position: two single-channel maps;
# - $[\,\cdot\,;\,\cdot\,]$ stacks them into one map with two channels;
# - $f^{7 \times 7}$ is a convolution with a $7 \times 7$ kernel, two input channels and one
#   output channel. It is the module's only parameter: $2 \cdot 7 \cdot 7 = 98$ numbers;
# - $\sigma$ turns each position's score into a weight in $(0, 1)$.
#
# In CBAM the spatial module works on the output $F'$ of the channel module, and its output is
# $F'' = M_s(F') \otimes F'$: the map has one channel, and broadcasting copies each position's
# weight to all $C$ channels there.
#
# ## Shapes
#
# | step | tensor | shape |
# | --- | --- | --- |
# | input | $F$ | $(N, C, H, W)$ |
# | pool across channels, stack | $[F^s_{avg}; F^s_{max}]$ | $(N, 2, H, W)$ |
# | $k \times k$ convolution, padding $k // 2$ | $f^{k \times k}(\cdot)$ | $(N, 1, H, W)$ |
# | sigmoid | $M_s(F)$ | $(N, 1, H, W)$ |
# | rescale | $M_s(F) \otimes F$ | $(N, C, H, W)$ |
#
# The map must keep $H$ and $W$, or it cannot be multiplied back into $F$; the padding of the
# convolution is what guarantees it (step 2).

# %% [markdown]
# ## Step 1 · Pooling across channels
#
# ### Exercise `channel-pool`
#
# Write a function `channel_pool(x)` that takes `x` of shape $(N, C, H, W)$ and returns one
# tensor of shape $(N, 2, H, W)$: channel 0 is the mean of `x` over its $C$ channels, channel 1
# the maximum over its $C$ channels, in that order, **[mean, max]**. Reduce over dim 1 with
# `keepdim=True` and concatenate along dim 1.
#
# **How it is checked.** `check_channel_pool` calls your function on random maps of shapes
# $(2, 5, 6, 7)$, $(1, 1, 4, 4)$ and $(3, 16, 2, 9)$ and compares with the true mean and max. A
# wrong shape gets a hint that names the likely cause (a lost `keepdim`, pooling over $H, W$,
# concatenating along the batch), a swapped order is recognised as such, and gradients must flow
# back to `x`.

# %% tags=["exercise"] exercise="channel-pool"
def channel_pool(x):
    """(N, C, H, W) -> (N, 2, H, W): the mean and the max across channels, in that order."""
    ### BEGIN SOLUTION
    return torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="channel-pool"
from cbam.checks.spatial import check_channel_pool

check_channel_pool(channel_pool)

# %% [markdown]
# However many channels come in, two maps come out: the spatial module works the same for 64
# channels as for 2048, with the same 98 parameters.

# %%
for channels in (64, 2048):
    print(f"C = {channels:>4}:", tuple(channel_pool(torch.randn(1, channels, 14, 14)).shape))

# %% [markdown]
# ### Mean first or max first?
#
# Implementations disagree on the order: the authors' code stacks **[max, mean]**, timm and a
# from-scratch implementation on GitHub (CBAM-from-scratch) stack **[mean, max]**, and so do
# this course and `cbam.SpatialAttention`. The choice does not matter to what a network can
# learn: swapping the two input channels of the convolution's kernel gives exactly the same map.

# %%
pooled = channel_pool(x)
mean_first = nn.Conv2d(2, 1, 7, padding=3, bias=False)
max_first = nn.Conv2d(2, 1, 7, padding=3, bias=False)
with torch.no_grad():
    max_first.weight.copy_(mean_first.weight.flip(1))  # kernel channels swapped

swapped = pooled.flip(1)  # [max, mean]
print("same map:", torch.allclose(mean_first(pooled), max_first(swapped), atol=1e-6))

# %% [markdown]
# It matters when weights move between implementations: a kernel trained on [max, mean] must be
# flipped along its input channels (`weight.flip(1)`) before it is loaded into a [mean, max]
# module, or the module loads without an error and computes something else.

# %% [markdown]
# ## Step 2 · A padding that keeps $H$ and $W$
#
# A convolution with kernel size $k$, stride 1 and padding $p$ on each side turns a map of
# height $H$ into one of height
#
# $$
# H_{out} = H + 2p - k + 1 .
# $$
#
# $H_{out} = H$ needs $p = (k - 1)/2$: an integer, $k // 2$, exactly when $k$ is odd. An even
# kernel has no symmetric padding that keeps the size.
#
# ### Pitfall: a padding fixed at 3
#
# The from-scratch implementation takes a `kernel_size` argument but writes `padding=3`, the
# right value for $k = 7$ only. The table shows the map's height on a $14 \times 14$ input:

# %%
print(f"{'k':>3} {'padding 3':>10} {'padding k // 2':>15}")
for k in (3, 5, 7, 9):
    fixed = nn.Conv2d(2, 1, k, padding=3)(pooled).shape[-1]
    right = nn.Conv2d(2, 1, k, padding=k // 2)(pooled).shape[-1]
    print(f"{k:>3} {fixed:>10} {right:>15}")

# %% [markdown]
# For any $k \ne 7$ the map no longer has the input's size, and the multiplication
# $M_s(F) \otimes F$ fails. Here is that module with $k = 3$ on our batch:

# %%
fixed_padding_conv = nn.Conv2d(2, 1, kernel_size=3, padding=3, bias=False)
wrong_map = torch.sigmoid(fixed_padding_conv(channel_pool(x)))
print("map:", tuple(wrong_map.shape), " input:", tuple(x.shape))
try:
    x * wrong_map
except RuntimeError as error:
    print("RuntimeError:", error)

# %% [markdown]
# The error names the sizes that clash, not their cause, the padding one layer earlier. The
# cure is to compute the padding from $k$, which is the next exercise.
#
# ### Exercise `same-padding`
#
# Write a function `same_padding(kernel_size)` that returns, as an `int`, the padding that keeps
# $H$ and $W$ for an odd `kernel_size` ($k // 2$), and raises a `ValueError` whose message
# contains the kernel size it was given when `kernel_size` is even, zero or negative.
#
# **How it is checked.** `check_same_padding` asks for $k = 1, 3, \dots, 11$ and recognises the
# usual wrong answers (a fixed 3, $k - 1$); it passes $k = 2, 4, 8, 0, -3$ and expects a
# `ValueError` naming each.

# %% tags=["exercise"] exercise="same-padding"
def same_padding(kernel_size):
    """The padding that keeps H and W under a stride-1 convolution with an odd kernel."""
    ### BEGIN SOLUTION
    if kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    return kernel_size // 2
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="same-padding"
from cbam.checks.spatial import check_same_padding

check_same_padding(same_padding)

# %% [markdown]
# PyTorch can do this arithmetic for you: `nn.Conv2d(..., padding="same")` keeps $H$ and $W$
# for stride 1. For an even kernel it pads one side more than the other, so the output is
# shifted by half a pixel; an odd $k$ avoids the question altogether.

# %% [markdown]
# ### Why $7 \times 7$?
#
# Each weight of the map is computed from a $k \times k$ window of the two pooled maps: that
# window is all the module sees when it decides about one position. The gradient of one output
# position with respect to the input shows the window directly:

# %%
def window(kernel_size, size=9):
    """The positions of a size x size map that the centre of the output depends on."""
    conv = nn.Conv2d(2, 1, kernel_size, padding=same_padding(kernel_size), bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)  # every tap non-zero, so every dependence shows
    inputs = torch.randn(1, 2, size, size, requires_grad=True)
    conv(inputs)[0, 0, size // 2, size // 2].backward()
    return inputs.grad.abs().sum(dim=(0, 1)) > 0


for k in (3, 7):
    seen = window(k)
    print(f"k = {k}: the centre depends on {int(seen.sum())} positions")

# %% [markdown]
# ### Explore: kernel size and what one position sees
#
# The window drawn on a $9 \times 9$ map (`#` is seen by the centre position, `.` is not).
# Change `kernel_size` (odd) and run the cell again.

# %%
kernel_size = 7
for row in window(kernel_size).tolist():
    print(" ".join("#" if seen else "." for seen in row))

# %% [markdown]
# A ResNet-50 on $224 \times 224$ images has feature maps of $56$, $28$, $14$ and $7$ positions
# a side in its four stages. A $3 \times 3$ window decides about a position from its immediate
# neighbours; a $7 \times 7$ window sees a larger patch, and in the last stage the centre sees
# the whole map. That is all the cells above show: what $k$ changes, not that a larger window
# helps.
#
# Whether it helps is a question for training, and the paper's answer is slight. Its ablation
# (Table 2, ResNet-50 on ImageNet-1K, one training run per setting) reports a top-1 error of
# 22.66 % with $k = 7$ against 22.68 % with $k = 3$: two hundredths of a point, a gap that one
# run each cannot tell apart from the spread between runs. The paper reads its results as a
# sign that deciding where to look needs a broad view; take $k = 7$ as the paper's setting, not
# as a proven improvement. The cost of the larger window is small: $2k^2$ parameters, 98 for
# $k = 7$ against 18 for $k = 3$. A miniature of the same ablation, with ten seeds per
# setting, follows below under "Why pool, rather than learn the reduction?".

# %% [markdown]
# The explorer follows the library's `SpatialAttention` step by step. Move $k$: the padding is
# always $k // 2$, the map keeps $H$ and $W$ for every odd $k$, and only the kernel's
# $2k^2$ weights grow. Then try an even $k$ and read why the module will not build.

# %% tags=["nbval-ignore-output"]
from cbam.widgets import ShapeExplorer

ShapeExplorer(module="spatial", kernel_size=7)

# %% [markdown]
# ## Step 3 · The module
#
# ### Exercise `spatial-attention`
#
# Write a class `SpatialAttention(nn.Module)` with exactly this interface:
#
# - `SpatialAttention(kernel_size=7)` builds one convolution `nn.Conv2d(2, 1, kernel_size,
#   padding=same_padding(kernel_size), bias=False)` and no other parameters (no bias, no
#   BatchNorm: Eq. 3 as written).
# - `attention(x)` takes `x` of shape $(N, C, H, W)$ and returns the map $M_s(x)$ of shape
#   $(N, 1, H, W)$: `channel_pool`, the convolution, one sigmoid.
# - `forward(x)` returns `x * self.attention(x)`, of the same shape as `x`, as a new tensor.
#
# Keep the order [mean, max] of `channel_pool`: the check loads the same kernel into your module
# and into the library's, and the kernel's first input channel is the mean there.
#
# **How it is checked.** `check_spatial_attention` builds your module for $k = 7, 3, 5$, finds
# the convolution's kernel by its shape $(1, 2, k, k)$, loads known values into it and into
# `cbam.SpatialAttention`, and compares maps and outputs on maps of several shapes (including
# $C = 1$ and non-square maps). When they differ it compares your result with the usual
# mistakes (a padding that does not follow $k$, the [max, mean] order, no sigmoid or two, a
# BatchNorm, the map returned instead of the rescaled input, ...) and names the one it matches.
# It also counts parameters ($2k^2$) and checks that gradients reach the input and the kernel.

# %% tags=["exercise"] exercise="spatial-attention"
class SpatialAttention(nn.Module):
    """Eq. 3: one weight in (0, 1) per position, from the mean and the max across channels."""

    def __init__(self, kernel_size=7):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=same_padding(kernel_size), bias=False)
        ### END SOLUTION

    def attention(self, x):
        """The spatial map M_s(x), shape (N, 1, H, W)."""
        ### BEGIN SOLUTION
        return torch.sigmoid(self.conv(channel_pool(x)))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return x * self.attention(x)
        ### END SOLUTION


# %% tags=["nbval-check-output"] check="spatial-attention"
from cbam.checks.spatial import check_spatial_attention

check_spatial_attention(SpatialAttention)

# %% [markdown]
# The batch from the start of the lesson, through your module, for two kernel sizes:

# %%
for k in (7, 3):
    module = SpatialAttention(k)
    spatial_map = module.attention(x)
    print(f"k = {k}:  x {tuple(x.shape)}  M_s(x) {tuple(spatial_map.shape)}  "
          f"M_s(x) * x {tuple(module(x).shape)}")

# %% [markdown]
# ## A BatchNorm in the gate?
#
# Eq. 3 goes straight from the convolution to the sigmoid. The authors' code and timm put a
# BatchNorm between the two, and the authors initialise that BatchNorm's weight $\gamma$ to
# zero. A BatchNorm outputs $\gamma \hat{z} + \beta$; with $\gamma = 0$ and $\beta = 0$ that is
# 0 whatever the input, so the gate starts at exactly $\sigma(0) = 0.5$ everywhere: every new
# CBAM block begins by scaling its input uniformly and only learns to pick out positions as
# $\gamma$ grows. `cbam.SpatialAttention` has the BatchNorm behind `batch_norm=True`:

# %%
with_norm = cbam.SpatialAttention(7, batch_norm=True)
nn.init.zeros_(with_norm.bn.weight)  # the authors' initialisation
print("gate values at initialisation:", with_norm.attention(x).unique().tolist())
print("parameters:", sum(p.numel() for p in with_norm.parameters()),
      "(98 for the kernel, 2 for the BatchNorm)")

# %% [markdown]
# The library leaves it off by default, as the equation has it. Switch it on when you load the
# authors' weights or compare with timm; note that in training mode a BatchNorm normalises over
# the batch, so a position's weight then depends on the other images in the batch too.

# %% [markdown]
# ## Why pool, rather than learn the reduction?
#
# Pooling is not the only way to squeeze $C$ channels into something a small convolution can
# read: a learned $1 \times 1$ convolution from $C$ channels to 1 would do it too, at a cost of
# $C$ parameters per block:

# %%
for channels in (256, 2048):
    learned = nn.Conv2d(channels, 1, kernel_size=1, bias=False)
    print(f"C = {channels:>4}: 1x1 conv {sum(p.numel() for p in learned.parameters()):>5} "
          "parameters, channel pooling 0")

# %% [markdown]
# The paper compares the two (Table 2, one run each) and reports a lower top-1 error for the
# parameter-free mean and max pooling: 22.68 % and 22.66 % for $k = 3$ and $k = 7$, against
# 22.96 % and 22.90 % for the learned $1 \times 1$ convolution. Pooling also makes the module
# independent of $C$.

# %% [markdown]
# ### The paper's Table 2 in miniature
#
# Both questions, $k$ and pooling against a learned $1 \times 1$ convolution, come from the
# same table, and the course ran it in miniature (`cbam.experiments`, experiment `spatial`;
# lesson 05 explains the method): a small ResNet with CBAM in every block on a synthetic task
# where the object's place varies, ten paired seeds per variant, trained to a plateau. The
# library's `SpatialAttention(k, channel_reduction="conv1x1", channels=C)` is the learned
# alternative. The reference is the paper's choice, pooling with $k = 7$; the paper's numbers
# (one ImageNet run each) stand beside, as error rates.

# %%
from cbam import experiments

spatial_runs = experiments.load("spatial")
print(experiments.paper_comparison(spatial_runs))

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(6.5, 2.2))
experiments.plot_differences(experiments.summarize(spatial_runs), ax, "ten paired seeds")
plt.show()

# %% [markdown]
# As in lesson 01, a difference counts only when it stays significant at 5 % after Holm's
# correction over the experiment's comparisons, here pool-k3, conv1x1-k7 and conv1x1-k3, each
# against pool-k7 (lesson 05 explains why and how). The correction never lowers a p-value, so
# it can take a verdict away but never grant one. Each comparison with its interval, its
# p-value raw and after Holm, and its verdict:

# %%
for row in experiments.summarize(spatial_runs)[1:]:
    print(f"{row.variant} against pool-k7: {row.difference}, p = {row.difference.p_value:.4f}, "
          f"Holm p = {row.adjusted_p:.4f}: {row.verdict}")

# %% [markdown]
# The paper's four numbers span 0.30 points of error, from single runs; the miniature's
# verdicts say which of its own differences ten seeds can resolve, on its task and at its
# size (16 × 16 images: a 7 × 7 window spans almost half the width of the first stage's map).
# Neither settles the other: they measure different settings. And the module docstring of
# timm's `timm/layers/cbam.py` (Ross Wightman, 2020) warns that results with these layers "have
# been mixed" and that they "can significantly reduce performance on some tasks".

# %% [markdown]
# ## Explore: the spatial map over an image
#
# What does a spatial map look like on a real picture? A trained network is lesson 06's subject;
# here the module is fed a feature map we can reason about. The first layers of a CNN learn edge
# detectors, so we build eight by hand (a Sobel filter turned to eight orientations, rectified
# like a ReLU layer) and pool them 4x, like a ResNet's first stage. Then:
#
# - the mean across the 8 channels is the overall edge strength at each position, the max the
#   strongest single orientation;
# - the spatial module gets a hand-set kernel, a $7 \times 7$ average of both pooled maps, and a
#   bias that puts half of the positions above 0.5.

# %%
photo = plt.imread(cbook.get_sample_data("grace_hopper.jpg"))  # (600, 512, 3), uint8
image = torch.tensor(photo, dtype=torch.float32).permute(2, 0, 1)[None] / 255
gray = F.pad(image.mean(dim=1, keepdim=True), (1, 1, 1, 1), mode="replicate")

sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
angles = [i * math.pi / 8 for i in range(8)]
edge_kernels = torch.stack([math.cos(a) * sobel + math.sin(a) * sobel.T for a in angles])
features = F.avg_pool2d(F.relu(F.conv2d(gray, edge_kernels[:, None])), 4)

gate = cbam.SpatialAttention(7, bias=True)
with torch.no_grad():
    gate.conv.weight.fill_(20 / 49)  # 7x7 averages of both pooled maps, scaled up
    gate.conv.bias.zero_()
    gate.conv.bias.fill_(-gate.conv(channel_pool(features)).median())
    edge_map = gate.attention(features)
print("features:", tuple(features.shape), " map:", tuple(edge_map.shape))

# %% tags=["nbval-ignore-output"]
from matplotlib_inline.backend_inline import set_matplotlib_formats

set_matplotlib_formats("jpeg")  # a photo stored as JPEG takes a fraction of a PNG's bytes

pooled_edges = channel_pool(features)
small_photo = F.avg_pool2d(image, 2)  # half size is plenty on screen
upsampled = F.interpolate(edge_map, size=small_photo.shape[-2:], mode="bilinear")
panels = [
    ("the photo", small_photo[0].permute(1, 2, 0)),
    ("mean across channels", pooled_edges[0, 0]),
    ("max across channels", pooled_edges[0, 1]),
    ("$M_s$", edge_map[0, 0]),
    ("photo $\\times M_s$", (small_photo * upsampled)[0].permute(1, 2, 0).clamp(0, 1)),
]
fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.3))
for ax, (title, picture) in zip(axes, panels, strict=True):
    ax.imshow(picture, cmap="magma", vmin=0 if title == "$M_s$" else None,
              vmax=1 if title == "$M_s$" else None)
    ax.set_title(title)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Flat regions (the sky, the dark cloth of the uniform, a patch of smooth skin on one cheek) get
# low weights; the cap and its badge, the glasses and the face around them, the ribbons and the
# flag's stars and stripes get high ones, because that is where the edge detectors fire, and the
# $7 \times 7$ average spreads their weight over the gaps between nearby edges. A
# trained module learns its own kernel and bias, and its features are far richer than eight
# edge detectors, but the mechanics are the ones on the screen: two pooled maps, one small
# convolution, a sigmoid, and a product that dims the positions judged unimportant.

# %% [markdown]
# The explorer runs the same kind of edge features, sixteen directions this time, through a
# whole CBAM whose spatial kernel is a plain $k \times k$ average. Move $k$: a larger kernel
# spreads each edge's weight over a wider band, a smaller one keeps it on the line. Switch the
# spatial conv to "random init" to see the map of a module nobody has trained.

# %% tags=["nbval-ignore-output"]
from cbam.widgets import AttentionExplorer

AttentionExplorer(spatial_weights="average")

# %% [markdown]
# ## Your module and the library's
#
# `cbam.SpatialAttention` computes the same map as your module once it holds the same kernel;
# its convolution is named `conv`, in the [mean, max] order you used:

# %%
library = cbam.SpatialAttention(7)
mine = SpatialAttention(7)
with torch.no_grad():
    # the kernel is the only (1, 2, 7, 7) parameter, whatever the attribute is called
    kernel = next(p for p in mine.parameters() if p.shape == (1, 2, 7, 7))
    library.conv.weight.copy_(kernel)

print(library)
print("same map:   ", torch.allclose(library.attention(x), mine.attention(x), atol=1e-6))
print("same output:", torch.allclose(library(x), mine(x), atol=1e-6))

# %% [markdown]
# And it refuses an even kernel with a message, instead of building a map of the wrong size:

# %%
try:
    cbam.SpatialAttention(4)
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# ## Pitfalls
#
# - **Pool across channels (dim 1), with `keepdim=True`.** Pooling over $H, W$ is the channel
#   module's job; without `keepdim` the two maps are concatenated along the wrong axis.
# - **Padding $k // 2$, and an odd $k$.** A padding fixed at 3 only fits $k = 7$; for any other
#   $k$ the map and the input differ in size.
# - **The order of the pooled maps is a convention**, [mean, max] here and in timm,
#   [max, mean] in the authors' code; it decides how weights load, not what can be learned.
# - **BatchNorm or not.** Eq. 3 has none; the authors' code has one, zero-initialised, so its
#   gate starts at 0.5 everywhere. Know which one you are comparing with.
# - **Map shape $(N, 1, H, W)$.** The single channel is what broadcasts over $C$.
# - **Return the rescaled input** from `forward`; the map alone comes from `attention(x)`.
#
# Lesson 03 puts the two modules together into the CBAM block and asks in which order they
# should run.
