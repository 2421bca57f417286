# %% [markdown]
# # 07 · Making it fast
#
# Lesson 04 counted what CBAM costs a ResNet-50: less than 0.2 % more multiply-accumulates
# (MACs). A clock tells another story, as the first measurement below shows. Both are right.
# They measure different things: a MAC count measures *arithmetic*, a clock measures *time*,
# and CBAM spends its time not on arithmetic but on moving memory, and on a few operations
# that do their small share of work slowly.
#
# This lesson measures the gap, finds where the time goes with the profiler, works out the
# least time a CBAM forward can take, and measures how much of the distance to that floor a
# leaner forward, `torch.compile`, a kernel written for the job and another memory layout
# recover.
#
# Every speed in this lesson is a **ratio of two times measured side by side in one run**. An
# absolute time says more about the machine (and who else is using it) than about the code. On
# a CPU the times are the process's CPU time rather than the wall clock's, for the same reason:
# a program elsewhere on the machine that holds a core makes the wall clock wait, and disturbs
# the CPU time far less.

# %%
import copy
import time

import torch
import torch.nn.functional as F

import cbam
from cbam.counting import count_macs, macs_by_module
from cbam.device import QUICK, SMOKE, pick_device
from cbam.resnet import resnet50

_ = torch.manual_seed(0)  # the one seed of this lesson
DEVICE = pick_device()

# Quick (CPU) and full (GPU) sizes: the input of the ResNet timings, the feature map of the
# CBAM timings, and how long each version is timed in each round (seconds).
if QUICK or SMOKE:  # CBAM_SMOKE=1: the full mode's code at these sizes, to test it on a CPU
    IMAGES, FEATURES, ROUND_TIME = (2, 3, 128, 128), (16, 64, 56, 56), 0.15
else:
    IMAGES, FEATURES, ROUND_TIME = (32, 3, 224, 224), (64, 256, 56, 56), 0.5


def side_by_side(versions, *args, rounds=3):
    """Seconds per call of each ``fn(*args)`` in ``versions`` (a dict), without gradients.

    The versions take turns, round after round, and each gets the median of its rounds: a
    machine that slows down for a while slows them all alike. ``Timer`` warms up, repeats,
    synchronises a GPU, and runs on one CPU thread, which keeps CPU timings steady. On a CPU
    the clock is the process's CPU time: on a shared machine, time spent waiting for a core
    that another program holds is not the code's, and the wall clock would count it.
    """
    # Imported here, once cbam.device is: on a CUDA build of torch without a GPU, importing it
    # logs a notice about building CUDA extensions, which cbam.device keeps out of the lesson.
    from torch.utils.benchmark import Timer

    clock = time.perf_counter if DEVICE.type == "cuda" else time.process_time
    seconds = {name: [] for name in versions}
    for _ in range(rounds):
        for name, fn in versions.items():
            timer = Timer("with torch.no_grad(): fn(*args)", timer=clock,
                          globals={"fn": fn, "args": args, "torch": torch})
            seconds[name].append(timer.blocked_autorange(min_run_time=ROUND_TIME).median)
    return {name: sorted(times)[len(times) // 2] for name, times in seconds.items()}


# %% [markdown]
# ## FLOPs are not latency
#
# First the arithmetic, counted by `cbam.counting` on one 224 × 224 image (the setting of the
# paper's Table 4). These numbers do not depend on the machine.

# %%
def cbam_as_pytorch_ops(channels):
    """CBAM blocks that run PyTorch operations only (fused=False); the last section says why."""
    return cbam.CBAM(channels, fused=False)


plain, with_cbam = resnet50().eval(), resnet50(attention=cbam_as_pytorch_ops).eval()
macs_plain, macs_cbam = count_macs(plain), count_macs(with_cbam)
attention_macs = sum(macs for name, macs in macs_by_module(with_cbam).items()
                     if name.endswith(".attention"))
print(f"ResNet-50:        {macs_plain / 1e9:.3f} GMACs")
print(f"ResNet-50 + CBAM: {macs_cbam / 1e9:.3f} GMACs")
print(f"CBAM's share of the MACs: {100 * attention_macs / macs_cbam:.2f} %")

# %% [markdown]
# Now the clock: the same two networks, forward passes only, timed one after the other. On a
# CPU the clock runs on smaller images than the paper's (`IMAGES`, set at the top), to keep the
# lesson quick. CBAM's share of the MACs depends on the image size (the spatial gate's
# convolution grows with the map, the channel MLP does not), so the cell counts it again on
# exactly the input it times, and compares like with like.

# %% tags=["nbval-ignore-output"]
plain, with_cbam = plain.to(DEVICE), with_cbam.to(DEVICE)
images = torch.randn(IMAGES, device=DEVICE)
timed_macs = macs_by_module(with_cbam, IMAGES)
timed_share = sum(macs for name, macs in timed_macs.items() if name.endswith(".attention"))
timed_share /= timed_macs[""]
times = side_by_side({"plain": plain, "CBAM": with_cbam}, images)
t_plain, t_cbam = times["plain"], times["CBAM"]
print(f"input {tuple(IMAGES)}")
print(f"CBAM's share of the MACs: {100 * timed_share:5.2f} %")
print(f"CBAM's share of the time: {100 * (t_cbam - t_plain) / t_cbam:5.2f} %")

# %% [markdown]
# The share of time is many times the share of MACs. The MAC count is not wrong: it is the
# convention of the paper, and it counts only the products of convolutions and linear layers.
# Pooling, sigmoids and the two element-wise multiplications by the gates count as free, and
# on a real machine they are not.

# %% [markdown]
# ## Where the time goes: the profiler
#
# `torch.profiler` records every operation a forward pass runs and how long it took. Sorted by
# the time spent in each operation itself:

# %% tags=["nbval-ignore-output"]
import os

from torch.profiler import ProfilerActivity, profile

# Kineto, the profiler's C++ library, logs every start and stop to stderr; level 6 silences
# its log (errors included) so that the table is all the cell shows. It is read on first use.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")
activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE.type == "cuda" else [])
with torch.no_grad():
    with_cbam(images)  # warm-up: first calls pay for one-off allocations
    with profile(activities=activities) as prof:
        with_cbam(images)
sort_by = "self_cuda_time_total" if DEVICE.type == "cuda" else "self_cpu_time_total"
rows = prof.key_averages()
print(rows.table(sort_by=sort_by, row_limit=10))

# The operations that do (almost) no arithmetic, wherever they rank in the table above.
device_time = "self_device_time_total" if DEVICE.type == "cuda" else "self_cpu_time_total"
total = sum(getattr(row, device_time) for row in rows)
light = ("aten::mean", "aten::amax", "aten::sum", "aten::mul", "aten::sigmoid", "aten::cat")
print(f"{'operation':<14} {'calls':>5} {'share of the time':>18}")
for row in rows:
    if row.key in light:
        print(f"{row.key:<14} {row.count:>5} {100 * getattr(row, device_time) / total:>17.1f}%")

# %% [markdown]
# Convolutions lead the table, as they should: `aten::mkldnn_convolution` on a CPU, cuDNN's
# kernels on a GPU. Under the table are the operations that do almost no arithmetic, wherever
# they rank: the reductions of the poolings (`aten::mean`, `aten::amax`, `aten::sum`; a mean's
# own time shows under `aten::sum`, which it calls), the gates being applied (`aten::mul`),
# `aten::sigmoid` and `aten::cat`. The poolings each read a whole feature map and the products
# read one and write one back, so their shares of the time, small as each is, are what make
# CBAM's share of the time so much larger than its share of the MACs.
#
# The spatial gate's $7 \times 7$ convolution deserves a look too: 2 input channels, 1 output
# channel, a negligible share of the MACs, yet it runs at every position of every block, and
# such shapes are not what convolution libraries optimise for. In the table it hides among the
# convolutions (on a CPU inside `_SameConv`, the library's wrapper for it); the measurements
# below time it alone. Only a profile or a clock tells what an operation costs on the machine
# at hand; a MAC count cannot.

# %% [markdown]
# ## The memory-traffic floor
#
# For a feature map $F$ of $N \cdot C \cdot H \cdot W$ numbers, count the passes over memory
# that any CBAM forward needs:
#
# 1. The channel gate $M_c$ needs the average and the maximum of *every* channel over *all*
#    positions: one full **read** of $F$ before any output can be written.
# 2. The spatial gate $M_s$ needs the mean and maximum over channels of $F' = M_c \otimes F$ at
#    every position: a second **read** of $F$ (scaled by $M_c$ on the fly).
# 3. The output $M_s \otimes M_c \otimes F$ at a position depends, through the $7 \times 7$
#    convolution, on $M_s$'s inputs at its neighbours: a third **read** of $F$ and one **write**.
#
# Three reads and one write. Copying the tensor (`x.clone()`) is one read and one write, so a
# CBAM forward cannot take less than about **twice the time of `x.clone()`** once the tensor is
# larger than the caches. That ratio is the yardstick for everything below.
#
# The seed notebook this course grew from computes it the obvious way. Here it is, using the
# weights of a `cbam.CBAM` so that all versions compute the same function:

# %%
block = cbam.CBAM(FEATURES[1], fused=False).eval()  # PyTorch operations only, as above


def seed_style_cbam(block, x):
    """The seed's order of work: pooling modules, one MLP call per descriptor, max with indices."""
    mlp = block.channel.mlp
    avg = F.adaptive_avg_pool2d(x, 1).squeeze(-1).squeeze(-1)
    mx = F.adaptive_max_pool2d(x, 1).squeeze(-1).squeeze(-1)  # also computes argmax indices
    channel = torch.sigmoid(mlp(avg) + mlp(mx)).unsqueeze(-1).unsqueeze(-1)
    y = x * channel
    mean = torch.mean(y, dim=1, keepdim=True)
    mx, _ = torch.max(y, dim=1, keepdim=True)  # the indices again, thrown away
    spatial = torch.sigmoid(block.spatial.conv(torch.cat([mean, mx], dim=1)))
    return y * spatial


x = torch.randn(2, FEATURES[1], 12, 12)
with torch.no_grad():
    print("seed-style forward == cbam.CBAM:", torch.allclose(seed_style_cbam(block, x), block(x),
                                                               atol=1e-6))

# %% [markdown]
# Count its passes over memory: `adaptive_avg_pool2d` reads $F$; `adaptive_max_pool2d` reads
# it again (and writes indices); `x * channel` reads it and writes $F'$; the mean and the max
# over channels read $F'$ twice; `y * spatial` reads it and writes the output. Six full reads
# and two full writes: about four `clone()`s' worth, twice the floor. That is a prediction;
# the exercise below writes a leaner version, and then the clock tests both.

# %% [markdown]
# ## Exercise `fast-cbam`: a leaner forward
#
# Write `fast_cbam(block, x)`, an inference forward (it runs under `torch.no_grad()`) of a
# `cbam.CBAM` block `block` that gives the same output as `block(x)` with less work than the
# seed's version. Use the block's own layers: `block.channel.mlp` (a `Sequential` that maps
# `(..., C)` to `(..., C)`) and `block.spatial.conv` (the $7 \times 7$ convolution, 2 → 1
# channels). Three changes make the difference:
#
# 1. Take the maxima with `amax`, which returns values only, instead of `max`/
#    `adaptive_max_pool2d`, which also compute the index of every maximum.
# 2. Call the MLP once on the two descriptors stacked into one tensor of shape `(2, N, C)`, then
#    sum over the first dimension: one pass through the layers instead of two.
# 3. Apply the spatial gate **in place** into the intermediate `y = x * channel_gate`, which your
#    function created (`y.mul_(...)`), so the output needs no new allocation. Never modify `x`.
#
# **How it is checked.** `check_fast_cbam` builds `cbam.CBAM` blocks with random weights,
# compares your output with `block(x)` on several shapes (odd sizes, one image, a 1 × 1 map, a
# `channels_last` input), checks that `x` is unchanged, and makes sure your function does not
# simply call `block(x)`. Speed is not checked: it is measured below, as a ratio. The work is
# *counted* instead, by a `TorchDispatchMode` that sees every PyTorch operation your function
# runs, and held to what the three changes give: at most six operations that read the whole
# feature map (a mean, an `amax` and the gate's product, for each gate), one buffer the size
# of the feature map (`y`), no maximum that also computes indices, and one call of the MLP.
# Calling `block.spatial(block.channel(x))` gives the right output but allocates a second
# buffer, and the check says so.

# %% tags=["exercise"] exercise="fast-cbam"
def fast_cbam(block, x):
    """CBAM's forward with fewer passes over memory (inference only)."""
    ### BEGIN SOLUTION
    descriptors = torch.stack([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])  # (2, N, C)
    channel_gate = torch.sigmoid(block.channel.mlp(descriptors).sum(dim=0))
    y = x * channel_gate[:, :, None, None]
    pooled = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
    return y.mul_(torch.sigmoid(block.spatial.conv(pooled)))
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="fast-cbam"
from cbam.checks.speed import check_fast_cbam

check_fast_cbam(fast_cbam)

# %% [markdown]
# ## Measured against the floor
#
# Each version on one feature map of the size a ResNet-50 meets in its first stage, in units
# of `x.clone()` on the same tensor:

# %% tags=["nbval-ignore-output"]
block = block.to(DEVICE)
features = torch.randn(FEATURES, device=DEVICE)
versions = {"seed-style": lambda x: seed_style_cbam(block, x), "cbam.CBAM (PyTorch ops)": block}
try:
    with torch.no_grad():
        fast_cbam(block, features[:1])
    versions["fast_cbam (yours)"] = lambda x: fast_cbam(block, x)
except NotImplementedError:
    print("fast_cbam is not written yet, so it is left out of the timings")
times = side_by_side({"x.clone()": torch.clone} | versions, features)
t_clone = times.pop("x.clone()")
print(f"feature map {tuple(FEATURES)}: {features.nbytes / 1e6:.1f} MB")
print(f"{'x.clone()':>23}: 1.00  (the floor for CBAM is about 2)")
for name, seconds in times.items():
    print(f"{name:>23}: {seconds / t_clone:.2f}")

# %% [markdown]
# `cbam.CBAM`'s PyTorch code is written along the same lines as the exercise, so your version
# should land close to it, and both well below the seed's. But the seed-style forward lands far
# above the four `clone()`s the memory model predicts for it. Launching a dozen operations and
# allocating their outputs is a fixed cost per call, small beside passes over a feature map of
# this size (the cell prints it), so it is an unlikely culprit. Rather than guess, measure.
#
# ## Operation by operation
#
# Time each operation of the seed-style forward alone, on the same tensor, in units of
# `x.clone()`, beside what the memory model predicts for it: half a `clone()` for each full
# read or write of the feature map, nothing for the small tensors of the gates. The last two
# rows are the exercise's replacements for the two maxima, which read exactly the same memory.

# %% tags=["nbval-ignore-output"]
with torch.no_grad():  # the intermediate tensors, computed once, so each operation runs alone
    mlp, conv = block.channel.mlp, block.spatial.conv
    avg = F.adaptive_avg_pool2d(features, 1).flatten(1)
    channel_gate = torch.sigmoid(mlp(avg) + mlp(avg))[:, :, None, None]
    y = features * channel_gate
    mean_max = [y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)]
    pooled = torch.cat(mean_max, dim=1)
    spatial_gate = torch.sigmoid(conv(pooled))

# name: (predicted, in clones; the operation). Each lambda repeats one line of seed_style_cbam.
seed_ops = {
    "adaptive_avg_pool2d(x)": (0.5, lambda: F.adaptive_avg_pool2d(features, 1)),
    "adaptive_max_pool2d(x)": (0.5, lambda: F.adaptive_max_pool2d(features, 1)),
    "MLP twice, sigmoid": (0.0, lambda: torch.sigmoid(mlp(avg) + mlp(avg))),
    "x * channel": (1.0, lambda: features * channel_gate),
    "mean(y, dim=1)": (0.5, lambda: torch.mean(y, dim=1, keepdim=True)),
    "max(y, dim=1)": (0.5, lambda: torch.max(y, dim=1, keepdim=True)),
    "cat([mean, max])": (0.0, lambda: torch.cat(mean_max, dim=1)),
    "7x7 conv": (0.0, lambda: conv(pooled)),
    "sigmoid": (0.0, lambda: torch.sigmoid(spatial_gate)),
    "y * spatial": (1.0, lambda: y * spatial_gate),
}
lean_ops = {
    "x.amax(dim=(2, 3))": (0.5, lambda: features.amax(dim=(2, 3))),
    "y.amax(dim=1)": (0.5, lambda: y.amax(dim=1, keepdim=True)),
}
op_times = side_by_side(
    {"x.clone()": lambda: features.clone(), "whole seed-style forward":
     lambda: seed_style_cbam(block, features)}
    | {name: fn for name, (_, fn) in (seed_ops | lean_ops).items()}
)
unit = op_times["x.clone()"]
print(f"{'operation':<24} {'predicted':>9} {'measured':>9} {'excess':>7}")
excess = {}
for name, (predicted, _) in seed_ops.items():
    measured = op_times[name] / unit
    excess[name] = measured - predicted
    print(f"{name:<24} {predicted:>9.1f} {measured:>9.2f} {excess[name]:>7.2f}")
print(f"{'sum of the operations':<24} {sum(p for p, _ in seed_ops.values()):>9.1f} "
      f"{sum(op_times[name] for name in seed_ops) / unit:>9.2f} {sum(excess.values()):>7.2f}")
whole = op_times["whole seed-style forward"] / unit
print(f"{'whole seed-style forward':<24} {'':>9} {whole:>9.2f}")
print("the exercise's replacements:")
for name, (predicted, _) in lean_ops.items():
    print(f"{name:<24} {predicted:>9.1f} {op_times[name] / unit:>9.2f}")
streaming = ("adaptive_avg_pool2d(x)", "x * channel", "mean(y, dim=1)", "y * spatial")
print("the operations that only stream through memory are within "
      f"{max(abs(excess[name]) for name in streaming):.2f} clone of the model")
over = {name: extra for name, extra in excess.items() if extra > 0}  # the rows above the model
largest = sorted(over, key=over.get, reverse=True)[:3]
print("largest shares of the time above the model:", ", ".join(
    f"{name} {100 * over[name] / sum(over.values()):.0f} %" for name in largest))

# %% [markdown]
# Read the table against the model. The operations that only stream through memory, the poolings
# without indices and the two products, come out close to their prediction (the line under the
# table says how close), and the operations on the small gate tensors close to nothing: for them
# the memory model holds. The excess sits in a few rows, and the last line names the largest. In
# the run stored with this notebook (on a CPU, one thread) those were the two maxima that also
# return indices, `max(y, dim=1)` far ahead of `adaptive_max_pool2d`, and then the $7 \times 7$
# convolution. The replacement rows show that the maxima's excess is work, not memory: `amax`
# reads exactly the same tensor, returns only the values, and costs a fraction of what the maxima
# with indices cost. Keeping an index beside every running maximum is what PyTorch's CPU kernels
# for these maxima do slowly, and slowest across channels, whose values lie far apart in memory.
# The convolution reads only two small maps, yet costs as much as a pass or more over the whole
# feature map: a convolution library is built for many channels in and out, not for 2 in and 1
# out.
#
# So the model's prediction was right about the traffic and wrong about the time, because it
# assumed that every operation runs at the speed of memory. The operations timed alone add up
# to most of the whole forward, so it is their excess in the table, not the cost of launching
# operations or allocating their outputs, that separates the measurement from the prediction.
# The leaner forwards remove the indices; what stays between them and the floor of 2 is the
# rest of the model's four `clone()`s (each operation is its own trip to memory) and the
# $7 \times 7$ convolution. Removing the extra trips takes *fusion*: several operations
# computed in one trip.

# %% [markdown]
# ## `torch.compile`: fusion
#
# `torch.compile` traces the forward, then its default backend, Inductor, generates fused
# kernels: C++ with OpenMP on a CPU, Triton on a GPU. The first call pays for the compilation
# (cached on disk for later runs); the calls after it run the fused kernels. The shapes stay
# fixed, so it compiles once. The cell reports that first call as a multiple of one eager call,
# then the compiled module's ratio beside eager's: compare both with the floor of 2. How close
# generated code gets depends on the backend and the hardware.

# %% tags=["nbval-ignore-output"]
try:
    compiled = torch.compile(block)
    start = time.perf_counter()
    with torch.no_grad():
        first_output = compiled(features)  # traces, compiles, then runs
    first_call = time.perf_counter() - start  # the wall clock: compiling runs a C++ compiler
    with torch.no_grad():
        same = torch.allclose(first_output, block(features), atol=1e-5)
    pair = side_by_side({"x.clone()": torch.clone, "eager": block, "compiled": compiled}, features)
    print(f"the first compiled call took about as long as {first_call / pair['eager']:,.0f} "
          f"eager calls; same output as eager: {same}")
    print(f"then torch.compile: {pair['compiled'] / pair['x.clone()']:.2f} x clone "
          f"(eager cbam.CBAM: {pair['eager'] / pair['x.clone()']:.2f}, in the same rounds)")
except Exception as error:  # e.g. no C++ compiler on this machine
    print(f"torch.compile is not available here: {type(error).__name__}: {error}")

# %% [markdown]
# ## A kernel written for the job
#
# Inductor fuses, but its loops for the mean and maximum over channels read, for each group of
# positions, one value from every channel: far-apart addresses that the hardware prefetches
# badly. On a CPU, `cbam.CBAM` itself does better: without gradients it hands the whole forward
# to a small C function (`cbam/fast/cpu_kernel.c`, compiled with the system's C compiler on
# first use) that makes the three passes of the floor and nothing else, along contiguous
# memory, and **one image at a time**. An image of a ResNet's first stage (64 × 56 × 56
# floats, 800 kB) fits in a core's L2 cache, so the second and third reads find it there rather
# than in memory: the floor of 2 assumed every read goes to memory, and the kernel can get
# below it.
#
# Where it cannot help (training, hooks such as `record_attention`'s, other dtypes or layouts,
# a GPU) the block runs the PyTorch code timed above; tests hold the two to the same output.

# %% tags=["nbval-ignore-output"]
kernel_block = cbam.CBAM(FEATURES[1]).to(DEVICE).eval()
kernel_block.load_state_dict(block.state_dict())  # the same weights as `block`
if DEVICE.type == "cpu" and cbam.fast.cpu_kernel.available():
    with torch.no_grad():
        same = torch.allclose(kernel_block(features), block(features), atol=1e-5)
    print("same output as the PyTorch operations:", same)
    kernel_times = side_by_side({"x.clone()": torch.clone, "PyTorch ops": block,
                                 "C kernel": kernel_block}, features)
    for name in ("PyTorch ops", "C kernel"):
        ratio = kernel_times[name] / kernel_times["x.clone()"]
        print(f"cbam.CBAM, {name:>11}: {ratio:.2f} x clone")
    # The ResNet-50 of the first section once more, beside the same network on the kernel.
    with_kernel = resnet50(attention="cbam").eval()
    nets = side_by_side({"plain": plain, "PyTorch ops": with_cbam, "C kernel": with_kernel},
                        images)
    for name in ("PyTorch ops", "C kernel"):
        share = 100 * (nets[name] - nets["plain"]) / nets[name]
        print(f"CBAM's share of ResNet-50's time, {name:>11}: {share:5.2f} %")
else:
    reason = cbam.fast.cpu_kernel.unavailable_reason() or f"it is for CPUs; this runs on {DEVICE}"
    print(f"cbam.CBAM's C kernel does not run here: {reason}")

# %% [markdown]
# `cbam/attention.py` holds only the paper's equations. The faster routes (this kernel, the
# hand-written backward pass for training) live in `cbam/fast/`. `CBAM.forward` asks
# `cbam.fast.route` for one before it runs Eq. 1 as written, and `cbam.fast.why_not` says,
# route by route, why a call takes the plain code:

# %%
def show_routes(title, block, x):
    print(title)
    for route, reason in cbam.fast.why_not(block, x).items():
        print(f"  {route:>14}: {reason or 'takes this call'}")


with torch.no_grad():
    show_routes("inference, no gradients:", kernel_block, features)
show_routes("training:", kernel_block, features.detach().requires_grad_())
show_routes("fused=False:", cbam.CBAM(FEATURES[1], fused=False), features)

# %% [markdown]
# ## `channels_last`
#
# A `channels_last` tensor stores the C values of each position next to each other (NHWC).
# CBAM's pooling over channels then reads contiguous memory, and its pooling over positions
# reads with a stride: the opposite trade of the default layout. Which one wins is a question
# for the clock, on each machine. Convolutions often prefer NHWC too (on GPUs with tensor cores
# especially), so a whole network may run in it; what matters then is that CBAM keeps the layout
# and forces no conversion back and forth.

# %% tags=["nbval-ignore-output"]
features_nhwc = features.contiguous(memory_format=torch.channels_last)
block_nhwc = copy.deepcopy(block).to(memory_format=torch.channels_last)  # .to() is in place
layouts = side_by_side({"clone NCHW": torch.clone, "CBAM NCHW": block}, features)
layouts |= side_by_side({"clone NHWC": torch.clone, "CBAM NHWC": block_nhwc}, features_nhwc)
with torch.no_grad():
    print("channels_last output is channels_last:",
          block_nhwc(features_nhwc).is_contiguous(memory_format=torch.channels_last))
print(f"cbam.CBAM, NCHW: {layouts['CBAM NCHW'] / layouts['clone NCHW']:.2f} x clone; "
      f"channels_last: {layouts['CBAM NHWC'] / layouts['clone NHWC']:.2f} x clone")

# %% [markdown]
# ## Pitfalls
#
# * **Quoting FLOPs as speed.** MACs predict the time of compute-bound layers (large
#   convolutions); element-wise and pooling operations are bound by memory, and a MAC count
#   leaves them out entirely.
# * **Timing without care.** Time after a warm-up, repeat and take the median
#   (`torch.utils.benchmark.Timer` does both), synchronise a GPU before reading the clock (the
#   Timer does that too), and compare versions in the same run on the same machine.
# * **Counting the first `torch.compile` call.** It includes the compilation. A new input shape
#   can trigger another compilation; with varying shapes, `dynamic=True` avoids most of them.
# * **In-place operations during training.** `y.mul_(...)` in the exercise is safe only without
#   gradients: autograd needs `y` to differentiate the spatial gate, and refuses to run
#   backward through a tensor changed in place.
# * **A fast path with no slow one beside it.** `cbam.CBAM`'s C kernel and its hand-written
#   backward pass each sit next to the plain code they replace, and tests compare the two on
#   many shapes. Speed that nothing checks against a reference is speed at an unknown price.
# * **Optimising what does not matter.** Profile first, then time the operations the profile
#   points at one by one: a prediction from memory traffic (or from MACs) says what an
#   operation must cost at least, not what it costs; `max(dim=...)` and the $7 \times 7$
#   convolution above cost far more than their traffic.
