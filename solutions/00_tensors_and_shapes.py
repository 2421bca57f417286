# %% [markdown]
# # 00 · Tensors and shapes
#
# An attention module such as CBAM is short: a few averages, a few maxima, a small network and
# two multiplications. What makes it easy to get wrong is not the arithmetic but the **axes**.
# Averaging over the wrong dimension, or multiplying by a tensor that lines up with the wrong
# dimension, rarely crashes. It quietly computes something else.
#
# This lesson is about exactly those two operations on batches of feature maps:
#
# 1. **reducing** a tensor over chosen dimensions (mean, max, `keepdim`), and
# 2. **broadcasting** a small tensor, a *gate*, against a big one.
#
# **How the exercises work.** An exercise cell contains `# YOUR CODE HERE` followed by
# `raise NotImplementedError(...)`. Replace those two lines with your code and run the cell. The
# cell after it is a *check*: it calls your code on test inputs and prints one line per check,
# ✓ when it passed and ✗ with a hint when it did not. Run it again after every fix. Later lessons
# build what the `cbam` library already contains; handing in the library's own version (its
# class, a subclass of it, or code that calls it) is not doing the exercise, and the check says
# so.

# %%
import torch
from torch import nn

_ = torch.manual_seed(0)  # the one seed of this lesson

# %% [markdown]
# ## The idea: a batch of feature maps
#
# A convolutional layer turns an image into a stack of *feature maps*: one $H \times W$ grid per
# channel, each grid answering one question about every position ("is there a vertical edge
# here?", "is this fur?"). A batch holds $N$ such stacks. PyTorch stores it as a 4-D tensor in
# **NCHW** order:
#
# | dim | name | meaning |
# | --- | --- | --- |
# | 0 | N | which image of the batch |
# | 1 | C | which channel (which question) |
# | 2 | H | which row |
# | 3 | W | which column |
#
# CBAM asks two things of such a stack. *Which channels matter?* The answer is one number per
# channel, a tensor of shape $(N, C, 1, 1)$. *Where should the network look?* The answer is one
# number per position, shape $(N, 1, H, W)$. Both answers are computed with reductions and applied
# with broadcasting.

# %% [markdown]
# ## Shapes: give every dimension its own size
#
# When you experiment with shapes, pick a different size for every dimension. Then any shape
# that comes out tells you which dimensions survived; with a $(2, 4, 4, 4)$ tensor, a result of
# shape $(2, 4)$ could be any of three things.

# %%
x = torch.randn(2, 3, 4, 5)  # N = 2 images, C = 3 channels, H = 4 rows, W = 5 columns

print("the batch       x               ", tuple(x.shape))
print("one image       x[0]            ", tuple(x[0].shape))
print("one feature map x[0, 1]         ", tuple(x[0, 1].shape))
print("one position    x[0, :, 2, 3]   ", tuple(x[0, :, 2, 3].shape))

# %% [markdown]
# The last line is worth a second look: fixing a row and a column but keeping all channels gives
# a vector of $C$ numbers, one per channel, all describing the same spot of the image. Spatial
# attention summarises exactly these vectors.

# %% [markdown]
# ## Reductions over dims
#
# A reduction such as `mean`, `sum` or `amax` collapses the dimensions you name with `dim=`.
# A tuple reduces several at once. By default the reduced dimensions disappear from the shape;
# with `keepdim=True` they stay, with size 1.

# %%
for dims in [1, (2, 3), (1, 2, 3)]:
    dropped = tuple(x.mean(dim=dims).shape)
    kept = tuple(x.mean(dim=dims, keepdim=True).shape)
    call = f"x.mean(dim={dims})"
    print(f"{call:<21} -> {dropped!s:<10} with keepdim=True -> {kept}")

# %% [markdown]
# Why keep dimensions of size 1? Because a kept dimension stays **in its place**. A shape of
# $(2, 3, 1, 1)$ still reads N, C, H, W, so it lines up with `x` when the two are multiplied
# (next section). A shape of $(2, 3)$ has forgotten which axes it came from.
#
# A small tensor with known numbers shows what the mean over H and W computes: one average per
# image and channel.

# %%
tiny = torch.arange(8.0).reshape(1, 2, 2, 2)  # N = 1, C = 2, H = W = 2
print("channel 0:", tiny[0, 0].flatten().tolist(), "  channel 1:", tiny[0, 1].flatten().tolist())
print("mean over H, W:", tiny.mean(dim=(2, 3), keepdim=True).flatten().tolist())
print("max over H, W: ", tiny.amax(dim=(2, 3), keepdim=True).flatten().tolist())

# %% [markdown]
# ### `max` has two answers, `amax` has one
#
# `x.max(dim=d)` returns a pair: the largest **values** and the **indices** where they were found.
# It accepts a single dimension only. `x.amax(dim=...)` returns just the values and takes a tuple
# of dimensions, which is usually what you want. Library layers do the same work under other names:
# `nn.AdaptiveAvgPool2d(1)` is the mean over H and W with the dimensions kept.

# %%
result = x.max(dim=1, keepdim=True)
print(type(result))
print("values", tuple(result.values.shape), " indices", tuple(result.indices.shape))
print("same as amax:", torch.equal(result.values, x.amax(dim=1, keepdim=True)))
print("AdaptiveAvgPool2d(1) is the mean over H, W:",
      torch.allclose(nn.AdaptiveAvgPool2d(1)(x), x.mean(dim=(2, 3), keepdim=True)))

# %% [markdown]
# ## Exercise `global-descriptors`: one number per channel
#
# Channel attention (lesson 01) starts by summarising every feature map twice: by its **average**
# over all positions and by its **largest value**.
#
# Write `global_descriptors(x)`. For a batch `x` of shape $(N, C, H, W)$ it returns the pair
# `(mean, max)`, each of shape $(N, C, 1, 1)$: the mean and the maximum of each channel of each
# image over its $H \times W$ positions. Return them as a tuple or a list: a pair is a pair, in
# this lesson and the next ones.
#
# The check calls your function on a $(2, 3, 4, 5)$ tensor and compares both results, shape first
# and then values, with PyTorch's own computation. A wrong shape gets a hint that names the
# mistake (keepdim forgotten, the wrong dims reduced, a `(values, indices)` pair).

# %% tags=["exercise"] exercise="global-descriptors"
def global_descriptors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and max of every channel over its H x W positions, each of shape (N, C, 1, 1)."""
    ### BEGIN SOLUTION
    ### STUB: return (mean, max) of each channel over its H x W positions, kept as (N, C, 1, 1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    maximum = x.amax(dim=(2, 3), keepdim=True)
    return mean, maximum
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="global-descriptors"
from cbam.checks.shapes import check_global_descriptors

check_global_descriptors(global_descriptors)

# %%
mean, maximum = global_descriptors(x)
print("mean", tuple(mean.shape), " max", tuple(maximum.shape))

# %% [markdown]
# ## Exercise `pool-over-channels`: one number per position
#
# Spatial attention (lesson 02) summarises the other way round: at every position it takes the
# vector of $C$ channel values (the `x[n, :, i, j]` from above) and keeps its average and its
# maximum.
#
# Write `pool_over_channels(x)`. For `x` of shape $(N, C, H, W)$ it returns the pair `(mean, max)`,
# each of shape $(N, 1, H, W)$: the mean and the maximum over the channels at every position.
#
# The check works as the previous one: a $(2, 3, 4, 5)$ input, shapes first, then values.

# %% tags=["exercise"] exercise="pool-over-channels"
def pool_over_channels(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and max over the channels at every position, each of shape (N, 1, H, W)."""
    ### BEGIN SOLUTION
    ### STUB: return (mean, max) over the channels at each position, kept as (N, 1, H, W)
    mean = x.mean(dim=1, keepdim=True)
    maximum = x.amax(dim=1, keepdim=True)
    return mean, maximum
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="pool-over-channels"
from cbam.checks.shapes import check_pool_over_channels

check_pool_over_channels(pool_over_channels)

# %%
mean, maximum = pool_over_channels(x)
print("mean", tuple(mean.shape), " max", tuple(maximum.shape))

# %% [markdown]
# ## Broadcasting a gate
#
# To apply attention, CBAM multiplies the feature maps by a *gate*: a tensor of weights between 0
# and 1 that is much smaller than `x`. PyTorch makes the shapes fit by **broadcasting**:
#
# 1. line the two shapes up **from the right**;
# 2. in every position the two sizes must be equal, or one of them must be 1 (a missing
#    dimension on the left counts as 1);
# 3. a size-1 dimension is repeated to match the other.
#
# | | N | C | H | W | the gate is repeated over |
# | --- | --- | --- | --- | --- | --- |
# | feature maps `x` | 2 | 3 | 4 | 5 | |
# | channel gate | 2 | 3 | 1 | 1 | every position |
# | spatial gate | 2 | 1 | 4 | 5 | every channel |
#
# This is why the reductions above keep their dimensions: their results are already gates of
# the right shape.

# %%
channel_gate = torch.rand(2, 3, 1, 1)  # one weight per image and channel
spatial_gate = torch.rand(2, 1, 4, 5)  # one weight per image and position

for name, gate in [("channel gate", channel_gate), ("spatial gate", spatial_gate)]:
    print(f"x {tuple(x.shape)} * {name} {tuple(gate.shape)} -> {tuple((x * gate).shape)}")

# Each weight scales exactly the part of x it belongs to:
gated = x * channel_gate
print("channel 2 of image 1 is scaled by one weight:",
      torch.equal(gated[1, 2], x[1, 2] * channel_gate[1, 2, 0, 0]))
gated = x * spatial_gate
print("position (3, 4) of image 0 is scaled by one weight:",
      torch.equal(gated[0, :, 3, 4], x[0, :, 3, 4] * spatial_gate[0, 0, 3, 4]))

# %% [markdown]
# ## Exercise `apply-gate`: weights from a network
#
# The small network inside channel attention (lesson 01) works on vectors, so its output has
# shape $(N, C)$: one weight per image and channel, with no H and W dimensions at all.
#
# Write `apply_gate(x, weights)`. It takes the feature maps `x` of shape $(N, C, H, W)$ and
# `weights` of shape $(N, C)$, and returns a **new** tensor of the shape of `x` in which channel
# `c` of image `n` is multiplied by `weights[n, c]`. Do not change `x` itself.
#
# The check tries three things: the values and shape for a $(2, 3, 4, 5)$ input; a $(2, 3, 2, 3)$
# input, whose sizes are chosen so that a wrong broadcast does not crash; and that `x` is left
# unchanged.

# %% tags=["exercise"] exercise="apply-gate"
def apply_gate(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) with channel c of image n scaled by weights[n, c]; weights is (N, C)."""
    ### BEGIN SOLUTION
    ### STUB: give the (N, C) weights a channel gate's shape, then multiply into a new tensor
    return x * weights[:, :, None, None]
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="apply-gate"
from cbam.checks.shapes import check_apply_gate

check_apply_gate(apply_gate)

# %%
weights = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 2.0]])
out = apply_gate(x, weights)
print("output", tuple(out.shape))
print("channel 1 of image 0 switched off:", bool((out[0, 1] == 0).all()))

# %% [markdown]
# ## Widget: shapes through a whole CBAM block
#
# Everything CBAM does to a tensor's shape is one of the operations of this lesson. Move the
# sliders and follow a batch through the block: the channel branch reduces over H and W, the
# spatial branch over C, and each map is broadcast back onto the features. Lessons 01 to 03 build
# every step you see.
#
# Then set k to an even number. The explorer builds the real module, and the module refuses:
# read its message, which says why only an odd kernel keeps H and W (lesson 02 comes back to it).

# %% tags=["nbval-ignore-output"]
from cbam.widgets import ShapeExplorer

ShapeExplorer(batch=2, channels=64, height=8, width=8)

# %% [markdown]
# ## Pitfalls
#
# ### A vector of C weights lines up with W, not with C
#
# Broadcasting aligns shapes from the right, so a plain vector of $C$ weights meets the **last**
# dimension of an NCHW tensor, the width. When $W \ne C$ the multiplication fails, which is the
# lucky case:

# %%
per_channel = torch.tensor([1.0, 0.0, 2.0])  # meant as one weight per channel, C = 3
try:
    x * per_channel
except RuntimeError:
    print(f"RuntimeError: shapes {tuple(x.shape)} and {tuple(per_channel.shape)} "
          "do not broadcast (W = 5 meets C = 3)")

# %% [markdown]
# When the width happens to equal the number of channels, nothing fails and the weights scale
# **columns**. Here the weight 0 was meant to switch off channel 1; it switches off column 1 of
# every channel instead:

# %%
square = torch.randn(2, 3, 4, 3)  # W = C = 3
wrong = square * per_channel
print("channel 1 switched off:", bool((wrong[:, 1] == 0).all()))
print("column 1 switched off: ", bool((wrong[..., 1] == 0).all()))
right = square * per_channel.view(1, 3, 1, 1)
print("with view(1, C, 1, 1), channel 1 switched off:", bool((right[:, 1] == 0).all()))

# %% [markdown]
# ### Forgetting `keepdim`
#
# `x.mean(dim=(2, 3))` has shape $(N, C)$: the same trap as above, since $(N, C)$ lines up with
# $(H, W)$. Keep the dimensions, or put them back with `[:, :, None, None]` or `.view(N, C, 1, 1)`.
#
# ### `squeeze()` on a batch of one
#
# `squeeze()` removes **every** dimension of size 1, including N when the batch holds one image:

# %%
one_image = torch.randn(1, 3, 1, 1)  # a channel gate for a batch of one
print("squeeze()         ", tuple(one_image.squeeze().shape), "  (N is gone too)")
print("squeeze((2, 3))   ", tuple(one_image.squeeze((2, 3)).shape))
print("flatten(1)        ", tuple(one_image.flatten(1).shape))

# %% [markdown]
# Code that squeezes everything works for batches of 32 and breaks, or worse runs, for a single
# image at inference time. Name the dimensions you remove.
#
# ### `torch.max` with a dimension returns a pair
#
# `x.max(dim=1)` is a `(values, indices)` pair; using it as a tensor fails, and `x.max(dim=(2, 3))`
# is not allowed at all. Take `.values`, or use `amax`, which returns values and accepts a tuple.
#
# ### Changing the input in place
#
# `x *= gate` or `x.mul_(gate)` overwrites the feature maps. In a network the input is often
# needed again, by a residual connection (lesson 04) or by autograd for the backward pass. Gates
# return a new tensor: `x * gate`.

# %% [markdown]
# ## Summary
#
# - NCHW: batch, channels, rows, columns. Give dimensions distinct sizes while you experiment.
# - `x.mean(dim=(2, 3), keepdim=True)` and `x.amax(dim=(2, 3), keepdim=True)` give one number per
#   channel, shape $(N, C, 1, 1)$; the same over `dim=1` gives one number per position,
#   $(N, 1, H, W)$.
# - Multiplying by an $(N, C, 1, 1)$ or $(N, 1, H, W)$ gate broadcasts it over positions or over
#   channels. A bare $(C,)$ or $(N, C)$ tensor lines up with the wrong dimensions.
#
# Next, lesson 01 turns the two channel descriptors into channel attention.
