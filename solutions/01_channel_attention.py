# %% [markdown]
# # 01 · Channel attention
#
# A convolutional layer hands the next layer $C$ channels, each the response of one learned
# detector: an edge at some angle, a patch of fur, a wheel rim. For a given image most of them
# have little to say. **Channel attention** lets the network decide, image by image, which
# channels to trust: it summarises each channel in a few numbers, turns the summaries into one
# weight per channel between 0 and 1, and multiplies every channel by its weight.
#
# The idea comes from the squeeze-and-excitation (SE) block of Hu et al. (CVPR 2018). The
# channel module of CBAM (Woo et al., ECCV 2018) keeps SE's design and changes one thing, the
# summary: SE describes a channel by its average only, CBAM by its average **and** its maximum.
# This lesson builds CBAM's channel module in three steps, each an exercise with a check:
#
# 1. `channel-descriptors`: the two summaries of every channel;
# 2. `shared-mlp`: the small network that turns a summary into channel scores;
# 3. `channel-attention`: the module that puts them together.
#
# Along the way it settles questions that come up again and again: why the maximum too, why one
# MLP for both summaries, why a sigmoid and not a softmax, how wide the MLP should be when $C$ is
# small, and whether `nn.Linear` or a $1 \times 1$ convolution is the right layer.

# %%
import warnings

import torch
from torch import nn

import cbam

torch.manual_seed(0)  # the one seed of this lesson: every random tensor below follows from it

x = torch.randn(2, 64, 8, 8)  # a batch of 2 feature maps, 64 channels of 8 x 8
print("x:", tuple(x.shape))

# %% [markdown]
# ## The equation
#
# Write $F \in \mathbb{R}^{C \times H \times W}$ for one feature map. The channel attention map
# is
#
# $$
# M_c(F) = \sigma\big(\mathrm{MLP}(\mathrm{AvgPool}(F)) + \mathrm{MLP}(\mathrm{MaxPool}(F))\big)
#        = \sigma\big(W_1\,\delta(W_0 F^c_{avg}) + W_1\,\delta(W_0 F^c_{max})\big)
# $$
#
# (Eq. 2 of the paper), and the module's output is the input rescaled by it,
# $F' = M_c(F) \otimes F$. Reading it from the inside out:
#
# - $F^c_{avg}, F^c_{max} \in \mathbb{R}^{C}$ are the **descriptors**: the average and the maximum
#   of each channel over all $H \times W$ positions;
# - $W_0 \in \mathbb{R}^{C/r \times C}$ and $W_1 \in \mathbb{R}^{C \times C/r}$ are the two layers
#   of a small MLP with a ReLU $\delta$ between them; the **reduction ratio** $r$ (16 in the paper)
#   makes the hidden layer narrow. The paper's equation leaves out the biases, its code and its
#   parameter counts include them;
# - the same $W_0, W_1$ appear in both terms: the MLP is **shared** by the two descriptors;
# - $\sigma$, the logistic sigmoid, is applied **once**, to the sum, and gives each channel a
#   weight in $(0, 1)$;
# - $\otimes$ multiplies element by element: $M_c(F)$ has shape $C \times 1 \times 1$ and
#   broadcasting copies channel $c$'s weight to all $H \times W$ positions of channel $c$.
#
# ## Shapes
#
# With a batch dimension $N$ in front, as PyTorch has it:
#
# | step | tensor | shape |
# | --- | --- | --- |
# | input | $F$ | $(N, C, H, W)$ |
# | pool over $H, W$ | $F^c_{avg}$, $F^c_{max}$ | $(N, C)$ each |
# | first layer + ReLU | $\delta(W_0 \cdot)$ | $(N, C/r)$ |
# | second layer | $W_1 \cdot$ | $(N, C)$ |
# | add, sigmoid, reshape | $M_c(F)$ | $(N, C, 1, 1)$ |
# | rescale | $F' = M_c(F) \otimes F$ | $(N, C, H, W)$ |
#
# Only the pooling touches $H$ and $W$; everything after it works on $C$ numbers per image,
# which is why the module is cheap.

# %% [markdown]
# ## Step 1 · Two descriptors per channel
#
# ### Exercise `channel-descriptors`
#
# Write a function `channel_descriptors(x)` that takes a tensor `x` of shape $(N, C, H, W)$ and
# returns a tuple `(avg, max)` of two tensors, each of shape $(N, C)$:
#
# - `avg[n, c]` is the mean of `x[n, c]` over all $H \times W$ positions;
# - `max[n, c]` is the largest value of `x[n, c]` over all $H \times W$ positions.
#
# Reductions over several dimensions at once (`dim=(2, 3)`) do it in one call each.
#
# The shape is not lesson 00's $(N, C, 1, 1)$, and on purpose: there the descriptors were gates
# to broadcast against `x`, so they kept their dimensions; here they are the input of an MLP,
# whose `nn.Linear` layers take vectors, one row of $C$ numbers per image. So pool without
# `keepdim` (or flatten the $1 \times 1$ away); the map is brought back to $(N, C, 1, 1)$ only at
# the end, to rescale `x`. As in lesson 00, a tuple or a list both do for the pair.
#
# **How it is checked.** `check_channel_descriptors` calls your function on random maps of
# shapes $(2, 5, 3, 4)$, $(1, 3, 1, 1)$ and $(4, 7, 6, 2)$ and compares both results with the
# true mean and maximum. It checks the shapes first and says what went wrong if they differ
# (pooled over the channels? kept the $1 \times 1$?), notices when the two come back swapped,
# and checks that gradients flow back to `x`.

# %% tags=["exercise"] exercise="channel-descriptors"
def channel_descriptors(x):
    """(N, C, H, W) -> (avg, max), each (N, C): every channel summarised over H and W."""
    ### BEGIN SOLUTION
    return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="channel-descriptors"
from cbam.checks.channel import check_channel_descriptors

check_channel_descriptors(channel_descriptors)

# %% [markdown]
# Each image in the batch now has two vectors of 64 numbers, one entry per channel:

# %%
avg, mx = channel_descriptors(x)
print("avg:", tuple(avg.shape), " max:", tuple(mx.shape))

# %% [markdown]
# ### Why the maximum too?
#
# The average says how much a channel responds *overall*; it cannot say whether the response is
# spread thinly over the whole image or concentrated in one spot. A channel that detects a small
# but telling part (an eye, a wheel) fires strongly in a few positions and stays silent
# elsewhere, and averaging dilutes that peak into the background.
#
# Two channels make the point. Channel 0 responds with 9.8 at a single position of a
# $7 \times 7$ map; channel 1 responds with 0.2 everywhere:

# %%
two_channels = torch.zeros(1, 2, 7, 7)
two_channels[0, 0, 3, 3] = 9.8  # one strong, local response
two_channels[0, 1] = 0.2  # a faint response everywhere

spot_avg, spot_max = channel_descriptors(two_channels)
print("average:", [round(v, 3) for v in spot_avg[0].tolist()])
print("maximum:", [round(v, 3) for v in spot_max[0].tolist()])

# %% [markdown]
# Their averages are equal ($9.8 / 49 = 0.2$): an SE block, which sees only the average, has no
# way to tell them apart. The maximum separates them by a factor of 49. That the two descriptors
# *can* carry different information does not show that using both *helps*; that takes training.

# %% [markdown]
# ### What training says: the paper's numbers and a miniature
#
# The paper's ablation (Table 1, a ResNet-50 with channel attention in every block, trained
# once per setting on ImageNet-1K) reports top-1 errors of 23.14 % with average pooling, 23.20 %
# with max pooling and 22.80 % with both, against 24.56 % for the plain network. The three
# differ by tenths of a point, from one run each: the paper reports no spread between runs.
#
# The course ran the same three choices in miniature (`cbam.experiments`, experiment
# `pooling`; lesson 05 explains the method): channel attention alone in every block of a small
# ResNet on a synthetic task, ten seeds per choice, paired (for a seed, all three start from the
# same backbone and see the same batches), trained to a plateau. Below, both side by side:
# accuracy here (higher is better), error there (lower is better); each "gain" is measured
# against average pooling.

# %%
from cbam import experiments

pooling = experiments.load("pooling")
print(experiments.paper_comparison(pooling))

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6.5, 1.8))
experiments.plot_differences(experiments.summarize(pooling), ax, "pooling, ten paired seeds")
plt.show()

# %% [markdown]
# The course's one rule: a difference counts only when it stays significant at 5 % after Holm's
# correction over the experiment's comparisons, here max and avg+max, each against avg. For a
# single comparison that is "its 95 % interval excludes 0"; with several, the chance that one
# of them looks significant by luck alone grows, and the correction raises the p-values to keep
# that chance at 5 % (lesson 05 explains why and how). Each comparison with its interval, its
# p-value raw and after Holm, and its verdict, computed from the stored runs:

# %%
for row in experiments.summarize(pooling)[1:]:
    print(f"{row.variant} against avg: {row.difference}, p = {row.difference.p_value:.4f}, "
          f"Holm p = {row.adjusted_p:.4f}: {row.verdict}")

# %% [markdown]
# What the miniature can and cannot show: it measures these choices on one small task, with one
# small network (r = 4, so that every MLP has at least 4 hidden units), over ten seeds; it
# cannot confirm or refute a gap of a few tenths of a point on ImageNet. Both are evidence about
# their own setting. timm's implementation carries a warning worth keeping in mind, in the
# module docstring of `timm/layers/cbam.py` (Ross Wightman, 2020): results with these layers
# "have been mixed", and they "can significantly reduce performance on some tasks".

# %% [markdown]
# ## Step 2 · The shared MLP
#
# The MLP maps $C$ numbers to $C$ numbers through a bottleneck of width $h$. The paper sets
# $h = C/r$; as an integer, and never zero (the pitfall below shows why),
#
# $$
# h = \max\!\left(\left\lfloor C / r \right\rfloor,\ 1\right).
# $$
#
# ### Exercise `shared-mlp`
#
# Write a function `shared_mlp(channels, reduction=16)` that returns an `nn.Module` taking
# $(N, C)$ to $(N, C)$: `nn.Linear(C, h)`, `nn.ReLU()`, `nn.Linear(h, C)` in an
# `nn.Sequential`, with $h$ as above and the layers' biases left on (PyTorch's default).
#
# **How it is checked.** `check_shared_mlp` builds your MLP for $C = 64$ with the default
# $r = 16$ and with $r = 4$, and for the small widths $C = 6$ and $C = 15$, and finds the two
# weight matrices by their shapes, so it can tell you the hidden width it found. It loads known
# weights into them and compares your output with $W_1\,\mathrm{ReLU}(W_0 v + b_0) + b_1$,
# naming a missing or extra activation if that is the difference; then it counts parameters and
# checks that gradients reach both layers.

# %% tags=["exercise"] exercise="shared-mlp"
def shared_mlp(channels, reduction=16):
    """C -> max(C // r, 1) -> C, with a ReLU between: the MLP of Eq. 2."""
    ### BEGIN SOLUTION
    hidden = max(channels // reduction, 1)
    return nn.Sequential(
        nn.Linear(channels, hidden),
        nn.ReLU(),
        nn.Linear(hidden, channels),
    )
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="shared-mlp"
from cbam.checks.channel import check_shared_mlp

check_shared_mlp(shared_mlp)

# %% [markdown]
# Both descriptors go through **the same** MLP. The paper states the sharing ("the MLP weights
# are shared for both inputs") without arguing for it; its one remark about parameter overhead
# is the reason for the reduction ratio $r$, not for the sharing. What sharing does is visible
# in its numbers: Table 4 lists 28.09 M parameters for ResNet-50 with SE and the same 28.09 M
# with CBAM: with one MLP for both descriptors, CBAM's channel module costs what SE's costs
# (the end of this lesson counts both).
#
# The rest is this course's own reading, not the paper's: the two descriptors describe the
# same channels in the same order, so whatever the MLP learns about how channels go together
# ("fur and whiskers tend to matter together") applies to both, and one MLP learns it from
# both. Each branch gives a score per channel, and the scores are added before the sigmoid:

# %%
mlp = shared_mlp(64)
scores = mlp(avg) + mlp(mx)
print("MLP(avg) + MLP(max):", tuple(scores.shape))

# %% [markdown]
# ### `nn.Linear` or a $1 \times 1$ convolution?
#
# Implementations differ here: the authors' code squeezes the descriptors to $(N, C)$ and uses
# `nn.Linear`; timm keeps them as $(N, C, 1, 1)$ and uses $1 \times 1$ `nn.Conv2d` layers. A
# $1 \times 1$ convolution on a $1 \times 1$ map is a matrix product and nothing else, so the
# two are the same layer: same parameters, same output. Copy one's weights into the other and
# compare:

# %%
linear = nn.Linear(64, 4)
conv = nn.Conv2d(64, 4, kernel_size=1)
with torch.no_grad():
    conv.weight.copy_(linear.weight[:, :, None, None])  # (4, 64) -> (4, 64, 1, 1)
    conv.bias.copy_(linear.bias)

print("parameters:", sum(p.numel() for p in linear.parameters()),
      "vs", sum(p.numel() for p in conv.parameters()))
print("Linear on (N, C):        ", tuple(linear(avg).shape))
print("1x1 conv on (N, C, 1, 1):", tuple(conv(avg[:, :, None, None]).shape))
print("same numbers:", torch.allclose(linear(avg), conv(avg[:, :, None, None]).flatten(1),
                                      atol=1e-6))

# %% [markdown]
# Choose by convenience: `nn.Linear` when the descriptors are vectors, a $1 \times 1$ convolution
# when you would rather not reshape. Weights move between the two with a reshape.

# %% [markdown]
# ### How wide is the hidden layer?
#
# "$C/r$" is not an integer for every $C$, and the implementations round it differently:
#
# - a from-scratch implementation on GitHub (CBAM-from-scratch) uses $\lfloor C/8 \rfloor$;
# - the authors' code uses $\lfloor C/16 \rfloor$, which is 0 for $C < 16$;
# - timm rounds $C/16$ to the nearest integer and keeps at least 1;
# - this course and `cbam.ChannelAttention` use $\max(\lfloor C/16 \rfloor, 1)$.

# %%
print(f"{'C':>5} {'C//8':>6} {'C//16':>6} {'timm':>6} {'max(C//16, 1)':>14}")
for c in (4, 8, 24, 40, 64, 256, 2048):
    timm_width = max(int(c / 16 + 0.5), 1)  # timm: make_divisible(C / 16, 1), at least 1
    print(f"{c:>5} {c // 8:>6} {c // 16:>6} {timm_width:>6} {max(c // 16, 1):>14}")

# %% [markdown]
# The rules do not agree, even at the widths of a ResNet. $\lfloor C/8 \rfloor$ is twice
# $\lfloor C/16 \rfloor$ at every multiple of 16, so at every ResNet width the $C/8$ MLP has
# twice the hidden units and about twice the parameters of the paper's. Between multiples of 16
# it is not always twice: where $C$ leaves a remainder of 8 or more on division by 16, it is one
# more than twice.

# %%
for c in (64, 70, 72, 80):
    print(f"C = {c}: C // 8 = {c // 8}, C // 16 = {c // 16}, twice: {c // 8 == 2 * (c // 16)}")
print("C // 8 == 2 * (C // 16) + (1 if C % 16 >= 8 else 0) for C = 1 ... 4096:",
      all(c // 8 == 2 * (c // 16) + (c % 16 >= 8) for c in range(1, 4097)))

# %% [markdown]
# The other three rules (the authors', timm's and this course's) agree whenever $C$ is a
# multiple of 16, as every ResNet width is; at other widths timm's rounding can differ by one
# (24 and 40 in the table above). Below 16 the two floor rules reach 0 ($\lfloor C/8 \rfloor$
# below 8), and only the rules that keep at least 1 leave the MLP any weights.
#
# ### Pitfall: a hidden width of 0 halves every feature, silently
#
# PyTorch builds `nn.Linear(4, 0)` without an error; at most it warns that initialising an empty
# weight does nothing. Here is the MLP as the $\lfloor C/8 \rfloor$ implementation builds it
# (without biases) for a layer with 4 channels:

# %%
channels = 4
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # PyTorch's only remark: initialising it is a no-op
    floor8_mlp = nn.Sequential(
        nn.Linear(channels, channels // 8, bias=False),  # 4 // 8 == 0
        nn.ReLU(),
        nn.Linear(channels // 8, channels, bias=False),
    )
print("hidden width:", channels // 8)
print("weights:", [tuple(p.shape) for p in floor8_mlp.parameters()])

small = torch.randn(3, channels, 5, 5)
small_avg, small_max = channel_descriptors(small)
gate = torch.sigmoid(floor8_mlp(small_avg) + floor8_mlp(small_max))
print("gate values for 3 different inputs:", gate.unique().tolist())

# %% [markdown]
# A product of matrices through a width-0 layer is an empty sum, i.e. zero, whatever the input.
# The gate is $\sigma(0) = 0.5$ for every channel of every image: the module multiplies the
# features by one half, and training cannot change that, because there is no weight to train.
# Nothing raises an error. With $h = \max(\lfloor C/r \rfloor, 1)$ the MLP has weights again:

# %%
fixed_mlp = shared_mlp(channels, reduction=8)
print("hidden width:", max(channels // 8, 1))
print("trainable numbers, C // 8 MLP:     ", sum(p.numel() for p in floor8_mlp.parameters()))
print("trainable numbers, max(C // 8, 1): ", sum(p.numel() for p in fixed_mlp.parameters()))

# %% [markdown]
# ### Explore: reduction ratio, width and parameters
#
# The MLP has $W_0$ ($h \times C$), $b_0$ ($h$), $W_1$ ($C \times h$) and $b_1$ ($C$):
#
# $$
# \#\text{params} = 2Ch + h + C \approx 2C^2 / r .
# $$
#
# Quadratic in $C$: the widest stage of a ResNet-50 ($C = 2048$) pays about 60 times what the
# first ($C = 256$) pays. The table counts the parameters of your `shared_mlp` beside the
# formula for the widths of a ResNet-50's four stages; change `reduction` and run the cell
# again to see what a wider bottleneck costs.

# %%
reduction = 16
print(f"r = {reduction}")
print(f"{'C':>5} {'h':>4} {'2Ch + h + C':>12} {'counted':>8}")
for c in (256, 512, 1024, 2048):
    h = max(c // reduction, 1)
    counted = sum(p.numel() for p in shared_mlp(c, reduction).parameters())
    print(f"{c:>5} {h:>4} {2 * c * h + h + c:>12,} {counted:>8,}")

# %% [markdown]
# The explorer builds the library's `ChannelAttention` for any $C$ and $r$ and lists the shape of
# every step and of every weight. Move $r$, then $C$, and watch the hidden width
# $\lfloor C/r \rfloor$ and the two weight matrices, $h \times C$ and $C \times h$, follow it.
# Drag $C$ below $r$: the width stops at 1 instead of falling to 0.

# %% tags=["nbval-ignore-output"]
from cbam.widgets import ShapeExplorer

ShapeExplorer(module="channel", channels=256, reduction=16)

# %% [markdown]
# ## Step 3 · A sigmoid, not a softmax
#
# Attention in transformers ends in a softmax, so why does CBAM use a sigmoid? A softmax over
# the channels makes them compete for a single unit of weight: the weights sum to 1, so with 64
# channels the average weight is $1/64$ and raising one channel lowers all others. A sigmoid
# scores each channel on its own: any number of channels can be kept at once, and a channel can
# be passed almost untouched (weight near 1).

# %%
logits = torch.randn(1, 64)
for name, weights in [("sigmoid", torch.sigmoid(logits)), ("softmax", torch.softmax(logits, 1))]:
    print(f"{name}: sum {weights.sum():6.2f}   mean {weights.mean():.3f}   "
          f"largest {weights.max():.3f}")

# %% [markdown]
# Under the softmax the features would shrink about 64-fold on average, and the block could
# never leave two important channels both at full strength. Channel attention asks "how much of
# each channel?", not "which one channel?": a sigmoid answers the first question.

# %% [markdown]
# ## Step 4 · The module
#
# ### Exercise `channel-attention`
#
# Write a class `ChannelAttention(nn.Module)` with exactly this interface:
#
# - `ChannelAttention(channels, reduction=16)` builds the module for inputs with `channels`
#   channels. Keep the MLP from `shared_mlp(channels, reduction)` as an attribute (any name), so
#   that its parameters belong to the module; create no other parameters.
# - `attention(x)` takes `x` of shape $(N, C, H, W)$ and returns the map $M_c(x)$ of Eq. 2 with
#   shape $(N, C, 1, 1)$: both descriptors from `channel_descriptors`, each through the one MLP,
#   the two results added, one sigmoid.
# - `forward(x)` returns `x * self.attention(x)`, of the same shape as `x`, as a new tensor
#   (do not modify `x` in place).
#
# An input with a different number of channels must raise an error; the first `nn.Linear`
# already does that for you.
#
# **How it is checked.** `check_channel_attention` builds your module for several $C$ and $r$
# (including the default $r = 16$ and a small $C = 6$), finds the MLP's weights by their shapes,
# loads known values into it and into the library's `cbam.ChannelAttention`, and compares maps
# and outputs on maps of three shapes. When they differ it compares your result with the usual
# mistakes (one descriptor only, a sigmoid per branch, no sigmoid, a softmax, the map returned
# instead of the rescaled input, ...) and names the one it matches. It also checks the parameter
# count, that gradients reach the input and every parameter, and that a wrong number of channels
# raises.

# %% tags=["exercise"] exercise="channel-attention"
class ChannelAttention(nn.Module):
    """Eq. 2: one weight in (0, 1) per channel, from the average and the max of the channel."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        ### BEGIN SOLUTION
        self.mlp = shared_mlp(channels, reduction)
        ### END SOLUTION

    def attention(self, x):
        """The channel map M_c(x), shape (N, C, 1, 1)."""
        ### BEGIN SOLUTION
        avg, mx = channel_descriptors(x)
        scores = self.mlp(avg) + self.mlp(mx)  # one shared MLP, the branches added
        return torch.sigmoid(scores)[:, :, None, None]  # (N, C) -> (N, C, 1, 1)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return x * self.attention(x)
        ### END SOLUTION


# %% tags=["nbval-check-output"] check="channel-attention"
from cbam.checks.channel import check_channel_attention

check_channel_attention(ChannelAttention)

# %% [markdown]
# Follow the batch from the start of the lesson through your module. The map has one number per
# channel and image; broadcasting stretches it over $H \times W$:

# %%
module = ChannelAttention(64)
channel_map = module.attention(x)
refined = module(x)
print("x:         ", tuple(x.shape))
print("M_c(x):    ", tuple(channel_map.shape))
print("M_c(x) * x:", tuple(refined.shape))
print("weights in (0, 1):", bool(((channel_map > 0) & (channel_map < 1)).all()))

# %% [markdown]
# ### Explore: the channel weights of an image
#
# One bar per channel, for each of the two images of the batch. The module is untrained, so its
# weights scatter on both sides of 0.5. The two images get almost the same bars: both are noise
# drawn from one distribution, so their descriptors are close, and the pattern comes from the
# module's random weights rather than from the images. Training is what makes the weights
# depend on the image, pushing the channels that matter for it up and the rest down.

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 2.6), sharey=True)
for image, ax in enumerate(axes):
    ax.bar(range(64), channel_map[image].flatten().detach(), width=0.8)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set(title=f"image {image}", xlabel="channel", ylim=(0, 1))
axes[0].set_ylabel("weight $M_c$")
plt.tight_layout()
plt.show()

# %% [markdown]
# The viewer puts the map beside its effect. Pick an image and a channel: the bars are that
# image's 64 weights, the picture is the chosen channel of $M_c(x) \otimes x$. Every position of
# that channel was multiplied by the same bar, so channel attention changes how loud a channel
# is, never the pattern within it.

# %% tags=["nbval-ignore-output"]
from cbam.widgets import TensorViewer

TensorViewer(channel_map, refined, names=("M_c(x)", "M_c(x) * x"))

# %% [markdown]
# ## Your module and the library's
#
# `cbam.ChannelAttention` is the module you just wrote, with a few options on top (`min_hidden`
# for the smallest width, `bias`, `pool_types` to choose the descriptors) and input checks. Its
# MLP is an `nn.Sequential` of `Linear`, `ReLU`, `Linear`, so your weights load into it in order,
# and the two then compute the same function:

# %%
library = cbam.ChannelAttention(64)
with torch.no_grad():
    # W0, b0, W1, b1 in the order both modules register them; the reshape also accepts 1x1 convs
    for theirs, mine in zip(library.parameters(), module.parameters(), strict=True):
        theirs.copy_(mine.reshape(theirs.shape))

print(library)
print("same map:   ", torch.allclose(library.attention(x), module.attention(x), atol=1e-6))
print("same output:", torch.allclose(library(x), module(x), atol=1e-6))

# %% [markdown]
# The library's input checks say what they expected and what came, instead of a matrix-shape
# error from deep inside `nn.Linear`:

# %%
try:
    library(torch.randn(2, 32, 8, 8))
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# Two relatives come with the library. `cbam.SqueezeExcitation` is the SE block, the same module
# with the average descriptor only (the baseline of the paper's comparisons). And the parameter
# count of the paper's setting, $C = 256$, $r = 16$, follows the formula above:

# %%
se = cbam.SqueezeExcitation(256)
cbam_channel = cbam.ChannelAttention(256)
print("descriptors:", se.pool_types, "vs", cbam_channel.pool_types)
print("parameters: ", sum(p.numel() for p in se.parameters()),
      "vs", sum(p.numel() for p in cbam_channel.parameters()))

# %% [markdown]
# The counts are equal: the max descriptor reuses the same MLP, so CBAM's channel module costs
# no more parameters than SE, only a second pooling and a second pass through a small MLP.

# %% [markdown]
# ## Pitfalls
#
# - **One sigmoid, after the sum.** $\sigma(a) + \sigma(b)$ is not $\sigma(a + b)$: it ranges
#   over $(0, 2)$ and is no longer a gate.
# - **Shape $(N, C, 1, 1)$, not $(N, C)$.** `x * w` with `w` of shape $(N, C)$ lines $C$ up with
#   $W$ (broadcasting starts from the last dimension): an error at best, a wrong product when
#   $C = W$.
# - **One MLP for both descriptors.** Two MLPs double the parameters and break Eq. 2.
# - **A hidden width of at least 1.** A width of 0 leaves a constant gate of 0.5 and no error.
# - **Both descriptors.** Average pooling alone is the SE block; the maximum is what CBAM adds.
# - **A sigmoid, not a softmax.** Channels should not compete for a fixed budget of weight.
# - **Return the rescaled input.** `forward` returns `x * M_c(x)`; the map alone comes from
#   `attention(x)`.
# - **Linear and $1 \times 1$ convolutions are interchangeable**, and biases count: the paper's
#   parameter counts include them.
#
# Lesson 02 builds the other half of CBAM: spatial attention, which asks *where* in the image to
# look rather than *which* channels to keep.
