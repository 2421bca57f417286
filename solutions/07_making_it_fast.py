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
# absolute time says more about the machine (and who else is using it) than about the code. The
# versions take turns over several rounds, and each ratio is printed as the median of its
# rounds with the smallest and largest beside it, *median (min–max)*: the spread says how far a
# single measurement can be trusted on this machine today. On a CPU everything runs on one
# thread and the times are the process's CPU time rather than the wall clock's: a program
# elsewhere on the machine that holds a core makes the wall clock wait, and disturbs the CPU
# time far less. The text quotes no measured number; it refers to what the cells print, which
# differs from machine to machine.

# %%
import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F

import cbam
from cbam.bench import cache_sizes, keep_freed_memory
from cbam.counting import count_macs, macs_by_module
from cbam.device import QUICK, SMOKE, pick_device
from cbam.resnet import resnet50

_ = torch.manual_seed(0)  # the one seed of this lesson
DEVICE = pick_device()

# Quick (CPU) and full (GPU) sizes: the input of the ResNet timings, the feature map of the
# CBAM timings (ResNet-50's first stage: 256 channels of 56 x 56), how long each version is
# timed in each round (seconds), and how many rounds.
if QUICK or SMOKE:  # CBAM_SMOKE=1: the full mode's code at these sizes, to test it on a CPU
    IMAGES, FEATURES, ROUND_TIME, ROUNDS = (2, 3, 128, 128), (16, 256, 56, 56), 0.04, 9
else:
    IMAGES, FEATURES, ROUND_TIME, ROUNDS = (32, 3, 224, 224), (64, 256, 56, 56), 0.2, 9
THREADS = 1  # every timing and the profile: one thread's ratios are the steadiest
torch.set_num_threads(THREADS)
# Freed memory stays in the process: otherwise each new large tensor arrives as fresh pages
# that the operating system zeroes first, and x.clone() would time that, not memory traffic.
_ = keep_freed_memory()


def side_by_side(versions, *args, rounds=ROUNDS):
    """Seconds per call of each ``fn(*args)`` in ``versions`` (a dict), one value per round.

    Each version is called once to warm up, then the versions take turns, round after round,
    each for about ``ROUND_TIME`` seconds of calls; the order rotates from round to round. A
    machine that slows down for a while slows them all alike, so a ratio of two versions is
    taken round by round. On a CPU the clock is the process's CPU time: on a shared machine,
    time spent waiting for a core that another program holds is not the code's.
    """
    cuda = DEVICE.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time

    def per_call(fn, calls):
        if cuda:
            torch.cuda.synchronize()
        start = clock()
        for _ in range(calls):
            fn(*args)
        if cuda:
            torch.cuda.synchronize()  # a GPU runs behind Python: wait for it
        return (clock() - start) / calls

    names, seconds = list(versions), {name: [] for name in versions}
    with torch.no_grad():
        calls = {name: max(1, round(ROUND_TIME / max(per_call(versions[name], 1), 1e-6)))
                 for name in names}  # the warm-up call says how many calls fill a round
        for round_ in range(rounds):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                seconds[name].append(per_call(versions[name], calls[name]))
    return seconds


def ratios(times, name, unit):
    """``times[name] / times[unit]``, round by round."""
    return [a / b for a, b in zip(times[name], times[unit], strict=True)]


def spread(values, digits=2):
    """'median (min–max)' of the values of the rounds."""
    values = sorted(values)
    low, mid, high = values[0], statistics.median(values), values[-1]
    return f"{mid:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


# %% [markdown]
# ## FLOPs are not latency
#
# First the arithmetic, counted by `cbam.counting` on one 224 × 224 image (the setting of the
# paper's Table 4). These numbers do not depend on the machine.

# %%
def cbam_as_pytorch_ops(channels):
    """CBAM blocks that run PyTorch operations only (fused=False); a later section says why."""
    return cbam.CBAM(channels, fused=False)


plain, with_cbam = resnet50().eval(), resnet50(attention=cbam_as_pytorch_ops).eval()
macs_plain, macs_cbam = count_macs(plain), count_macs(with_cbam)
attention_macs = sum(macs for name, macs in macs_by_module(with_cbam).items()
                     if name.endswith(".attention"))
print(f"ResNet-50:        {macs_plain / 1e9:.3f} GMACs")
print(f"ResNet-50 + CBAM: {macs_cbam / 1e9:.3f} GMACs")
print(f"CBAM's share of the MACs: {100 * attention_macs / macs_cbam:.2f} %")

# %% [markdown]
# Now the clock: the same networks, forward passes only, timed side by side. On a CPU the
# clock runs on smaller images than the paper's (`IMAGES`, set at the top), to keep the lesson
# quick. CBAM's share of the MACs depends on the image size (the spatial gate's convolution
# grows with the map, the channel MLP does not), so the cell counts it again on exactly the
# input it times, and compares like with like. A third network, whose CBAM blocks run the C
# kernel of a later section, takes its turns in the same rounds; that section reads its row.

# %% tags=["nbval-ignore-output"]
plain, with_cbam = plain.to(DEVICE), with_cbam.to(DEVICE)
images = torch.randn(IMAGES, device=DEVICE)
timed_macs = macs_by_module(with_cbam, IMAGES)
timed_share = sum(macs for name, macs in timed_macs.items() if name.endswith(".attention"))
timed_share /= timed_macs[""]
networks = {"plain": plain, "PyTorch ops": with_cbam}
if DEVICE.type == "cpu" and cbam.fast.cpu_kernel.available():
    networks["C kernel"] = resnet50(attention="cbam").eval()  # the default CBAM: its C kernel
nets = side_by_side(networks, images)


def share_of_time(name):
    """CBAM's share of the network's time, (t_cbam - t_plain) / t_cbam, round by round (%)."""
    return [100 * (1 - r) for r in ratios(nets, "plain", name)]


print(f"input {tuple(IMAGES)}, {THREADS} thread; median (min–max) of {ROUNDS} rounds")
print(f"CBAM's share of the MACs: {100 * timed_share:.2f} %")
print(f"CBAM's share of the time: {spread(share_of_time('PyTorch ops'), 1)} %")

# %% [markdown]
# Compare the two printed shares. Where the share of time is many times the share of MACs, the
# MAC count is not wrong: it is the convention of the paper, and it counts only the products of
# convolutions and linear layers. Pooling, sigmoids and the two element-wise multiplications by
# the gates count as free, and on a real machine they are not.

# %% [markdown]
# ## Where the time goes: the profiler
#
# `torch.profiler` records every operation a forward pass runs and how long it took. It runs
# here on the same network, input and thread count as the timing above. Each CBAM block's
# forward is also labelled (`record_function("CBAM")`, through the block's forward hooks), so
# that the time spent inside the blocks can be told from the rest. The table is sorted by the
# time spent in each operation itself; under it, the time inside the CBAM blocks is split by
# the operations the block calls, each with everything it calls in turn.

# %% tags=["nbval-ignore-output"]
from torch.profiler import ProfilerActivity, profile, record_function

# Kineto, the profiler's C++ library, logs every start and stop to stderr; level 6 silences
# its log (errors included) so that the table is all the cell shows. It is read on first use.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")
cuda = DEVICE.type == "cuda"
activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
self_time = "self_device_time_total" if cuda else "self_cpu_time_total"
open_labels = []


def enter_label(module, args):
    open_labels.append(record_function("CBAM"))
    open_labels[-1].__enter__()


def leave_label(module, args, output):
    open_labels.pop().__exit__(None, None, None)


hooks = [hook for module in with_cbam.modules() if isinstance(module, cbam.CBAM)
         for hook in (module.register_forward_pre_hook(enter_label),
                      module.register_forward_hook(leave_label))]
with torch.no_grad():
    with_cbam(images)  # warm-up: first calls pay for one-off allocations
    with profile(activities=activities) as prof:
        with_cbam(images)
for hook in hooks:
    hook.remove()
print(f"{torch.get_num_threads()} thread")
print(prof.key_averages().table(sort_by=self_time, row_limit=10))


def subtree(event):
    """An event's own time plus that of everything it calls (µs)."""
    return getattr(event, self_time) + sum(subtree(child) for child in event.cpu_children)


total = sum(getattr(event, self_time) for event in prof.events())
labels = [event for event in prof.events() if event.name == "CBAM"]
inside = {}  # operation the block calls -> [calls, µs including what it calls]
for label in labels:
    for child in label.cpu_children:
        entry = inside.setdefault(child.name, [0, 0.0])
        entry[0] += 1
        entry[1] += subtree(child)
in_blocks = sum(subtree(label) for label in labels)
print(f"inside the {len(labels)} CBAM blocks: {100 * in_blocks / total:.1f} % of the profiled time")
print(f"  {'operation the block calls':<26} {'calls':>5} {'share of the time':>18}")
for name, (calls, micros) in sorted(inside.items(), key=lambda item: -item[1][1]):
    print(f"  {name:<26} {calls:>5} {100 * micros / total:>17.2f}%")
between = in_blocks - sum(micros for _, micros in inside.values())
print(f"  {'(between operations)':<26} {'':>5} {100 * between / total:>17.2f}%")
light = ("aten::mean", "aten::amax", "aten::sum", "aten::mul", "aten::sigmoid", "aten::cat",
         "aten::stack")
light_share = sum(micros for name, (_, micros) in inside.items() if name in light) / total
largest = max(inside, key=lambda name: inside[name][1])
print(f"the operations that do almost no arithmetic (reductions, products, sigmoids, cat): "
      f"{100 * light_share:.1f} %")
print(f"the largest share inside the blocks: {largest}")

# %% [markdown]
# Read the table and the lines under it together. The table ranks the whole network's
# operations; convolutions lead it, as they should (`aten::mkldnn_convolution` on a CPU,
# cuDNN's kernels on a GPU), and CBAM's operations are scattered through it. The first line
# under it gives CBAM's share of the profiled time, to set beside the clock's share above: the
# profiler adds a cost of its own to every operation it records, which weighs most on short
# ones, so the two shares need not agree. The rows split that share by what the block calls:
# `aten::linear` is the channel MLP (its matrix products show in the table as `aten::addmm`,
# beside the classifier's one), `_SameConv` the spatial gate's $7 \times 7$ convolution (2
# input channels, 1 output channel: a negligible share of the MACs, and not a shape
# convolution libraries optimise for), and the rest the poolings, the gates' products,
# sigmoids and concatenations, which do almost no arithmetic; the cell adds those up and names
# the largest row. *(between operations)* is time inside a block outside any operation: Python
# running the forward, the labelling hooks and the profiler's own bookkeeping. Which row leads
# depends on the machine and its libraries. Only a profile or a clock tells what an operation
# costs on the machine at hand; a MAC count cannot.

# %% [markdown]
# ## The memory-traffic floor
#
# For a feature map $F$ of $N \cdot C \cdot H \cdot W$ numbers, count the passes over memory
# that a CBAM forward makes when each step is computed in a pass of its own:
#
# 1. The channel gate $M_c$ needs the average and the maximum of *every* channel over *all*
#    positions: one full **read** of $F$ before any output can be written.
# 2. The spatial gate $M_s$ needs the mean and maximum over channels of $F' = M_c \otimes F$ at
#    every position: a second **read** of $F$ (scaled by $M_c$ on the fly).
# 3. The output $M_s \otimes M_c \otimes F$ at a position depends, through the $k \times k$
#    convolution ($k = 7$), on $M_s$'s inputs at its neighbours: a third **read** of $F$ and
#    one **write**.
#
# Copying the tensor (`x.clone()`) is one read and one write, so three reads and one write are
# **2 clones**. That is not yet a lower bound, because passes 2 and 3 need not be separate
# trips to memory. Go through an image row by row: row $r$ of the output needs the pooled map
# only on rows $r - 3$ to $r + 3$, so pass 2 can run $(k-1)/2 = 3$ rows ahead of pass 3. Pass 3
# then reads rows that pass 2 read a few rows earlier: if the last $k$ rows of the image,
# $C \cdot k \cdot W$ numbers (about 400 kB at ResNet-50's first stage: $256 \cdot 7 \cdot 56$
# floats), stay in a cache, pass 3's read costs no trip to memory. Two reads and one write:
# **1.5 clones**. If a whole image, $C \cdot H \cdot W$ numbers (3.2 MB at ResNet-50's first
# stage), stays in a cache between pass 1 and pass 3, only pass 1 goes to memory: **1 clone**,
# and no forward can do less, since it must read its input and write its output once.
#
# So the floor depends on what the caches hold, and the comparison with `x.clone()` means what
# it says only when the whole tensor is larger than the caches (otherwise the copy, too, runs
# from a cache). The cell reads this machine's cache sizes (on a GPU, the size of its L2) and
# works out the floor here.

# %% tags=["nbval-ignore-output"]
K = 7  # the spatial gate's kernel size
n, c, h, w = FEATURES
itemsize = torch.finfo(torch.float32).bits // 8
working_sets = {"the whole tensor": n * c * h * w * itemsize,
                "one image (C·H·W)": c * h * w * itemsize,
                f"{K} rows of an image (C·{K}·W)": c * K * w * itemsize}
if DEVICE.type == "cuda":  # the timings run on the GPU: its L2 is the cache that counts
    l2 = getattr(torch.cuda.get_device_properties(DEVICE), "L2_cache_size", 0)
    caches = {"the GPU's L2": l2} if l2 else {}
else:
    caches = cache_sizes()  # {} where the system does not say (the floor is then left open)
if caches:
    print("data caches:", ", ".join(f"{name} {size / 2**10:,.0f} KiB"
                                    for name, size in caches.items()))
else:
    print("this system does not report its cache sizes")
for what, size in working_sets.items():
    fits = [name for name, cache in caches.items() if size <= cache]
    where = f"fits in {fits[0]}" if fits else "larger than every cache" if caches else "?"
    print(f"  {what:<24} {size / 1e6:8.2f} MB  {where}")
largest_cache = max(caches.values(), default=0)
if not caches:
    FLOOR = None
elif working_sets["one image (C·H·W)"] <= largest_cache:
    FLOOR = 1.0
elif working_sets[f"{K} rows of an image (C·{K}·W)"] <= largest_cache:
    FLOOR = 1.5
else:
    FLOOR = 2.0
if caches and working_sets["the whole tensor"] <= largest_cache:
    print("the whole tensor fits in a cache: x.clone() runs from it, not from memory")
print("the floor here, in units of x.clone():",
      f"{FLOOR}" if FLOOR else "between 1 and 2, depending on the caches")

# %% [markdown]
# The smallest cache level that holds a working set is the one the cell names; the floor counts
# a working set as held if it fits the largest one. A cache shared by several cores (often the
# last level) is shared with whatever else runs on them, so on a busy machine it may hold less
# than its size says. The ratio to compare every version with below is this floor.
#
# The seed notebook this course grew from computes CBAM the obvious way. Here it is, using the
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
# and two full writes: four `clone()`s' worth, twice the unfused 2 and more than the floor.
# That is a prediction; the clock tests it below.

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
# None of the three changes the memory model's count: your forward still reads the feature map
# six times (two poolings and a product per gate) and writes it twice (`y`, then the output
# into `y`), the seed's four `clone()`s. They remove *work*: the indices, a second pass through
# the MLP, an allocation. Whether that work costs time is for the clock to say; getting below
# four `clone()`s of traffic takes fusion, later in the lesson.
#
# **How it is checked.** `check_fast_cbam` builds `cbam.CBAM` blocks with random weights,
# compares your output with `block(x)` on several shapes (odd sizes, one image, a 1 × 1 map, a
# `channels_last` input), checks that `x` is unchanged, and makes sure your function does not
# simply call `block(x)`. Speed is not checked: it is measured below, as a ratio. The work is
# *counted* instead, by a `TorchDispatchMode` that sees every PyTorch operation your function
# runs, and held to what the three changes give: at most six operations that read the whole
# feature map (a mean, an `amax` and the gate's product, for each gate), one buffer the size
# of the feature map (`y`), no maximum that also computes indices, and one call of the MLP.
# The work is counted only once the output is right. Calling `block.spatial(block.channel(x))`
# gives the right output but allocates a second buffer, and the check says so.

# %% tags=["exercise"] exercise="fast-cbam"
def fast_cbam(block, x):
    """CBAM's forward with less work than the seed's (inference only)."""
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
# One cell times every version of this lesson on one feature map of ResNet-50's first stage
# (`FEATURES`: 256 channels of 56 × 56, as lesson 04's bottleneck hands to its CBAM), side by
# side in the same rounds: `x.clone()`, the seed-style forward, `cbam.CBAM`'s PyTorch
# operations, yours; the versions of the sections below (`torch.compile`, cbam's C kernel, the
# `channels_last` layout); and each operation of the seed-style forward alone. The sections
# below print their rows from this one table, `table`, rather than time the same things again.
# Here, the first rows, in units of `x.clone()` on the same tensor:

# %% tags=["nbval-ignore-output"]
block = block.to(DEVICE)
features = torch.randn(FEATURES, device=DEVICE)
versions = {"x.clone()": lambda: features.clone(),
            "seed-style": lambda: seed_style_cbam(block, features),
            "cbam.CBAM (PyTorch ops)": lambda: block(features)}
try:
    with torch.no_grad():
        fast_cbam(block, features[:1])
    versions["fast_cbam (yours)"] = lambda: fast_cbam(block, features)
except NotImplementedError:
    print("fast_cbam is not written yet, so it is left out of the timings")

# torch.compile (its section is below): the first call compiles.
try:
    compiled = torch.compile(block)
    start = time.perf_counter()
    with torch.no_grad():
        first_output = compiled(features)  # traces, compiles, then runs
    first_call = time.perf_counter() - start  # the wall clock: compiling runs a C++ compiler
    with torch.no_grad():
        compiled_same = torch.allclose(first_output, block(features), atol=1e-5)
    versions["torch.compile"] = lambda: compiled(features)
except Exception as error:  # e.g. no C++ compiler on this machine
    compiled, compile_error = None, f"{type(error).__name__}: {error}"

# cbam's C kernel (its section is below): the default CBAM, with the same weights as `block`.
kernel_block = cbam.CBAM(FEATURES[1]).to(DEVICE).eval()
kernel_block.load_state_dict(block.state_dict())
if DEVICE.type == "cpu" and cbam.fast.cpu_kernel.available():
    versions["C kernel"] = lambda: kernel_block(features)

# channels_last (its section is below): the copy and the block on an NHWC tensor.
features_nhwc = features.contiguous(memory_format=torch.channels_last)
block_nhwc = copy.deepcopy(block).to(memory_format=torch.channels_last)  # .to() is in place
versions["x.clone(), NHWC"] = lambda: features_nhwc.clone()
versions["cbam.CBAM (PyTorch ops), NHWC"] = lambda: block_nhwc(features_nhwc)

# The seed-style forward's operations, one by one (the section after next), on intermediate
# tensors computed once, so that each operation runs alone.
with torch.no_grad():
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

table = side_by_side(versions | {name: fn for name, (_, fn) in (seed_ops | lean_ops).items()})


def in_clones(name, unit="x.clone()"):
    """The version's time in units of x.clone(), round by round."""
    return ratios(table, name, unit)


print(f"feature map {tuple(FEATURES)}: {features.nbytes / 1e6:.1f} MB; {THREADS} thread; "
      f"median (min–max) of {ROUNDS} rounds, in units of x.clone()")
print(f"{'x.clone()':>24}: 1.00   the floor here: {FLOOR or 'between 1 and 2'}")
for name in ("seed-style", "cbam.CBAM (PyTorch ops)", "fast_cbam (yours)"):
    if name in table:
        print(f"{name:>24}: {spread(in_clones(name))}")

# %% [markdown]
# `cbam.CBAM`'s PyTorch code is written along the same lines as the exercise, so your version
# should land close to it. The memory model predicts four `clone()`s for the seed-style
# forward and for yours alike; compare each row with that prediction and with the floor. Where
# a row lands far above four, something other than the traffic of the model is spending the
# time. Rather than guess, measure.
#
# ## Operation by operation
#
# Each operation of the seed-style forward alone, on the same tensor, in units of `x.clone()`,
# beside what the memory model predicts for it: half a `clone()` for each full read or write of
# the feature map, nothing for the small tensors of the gates. The last two rows are the
# exercise's replacements for the two maxima, which read exactly the same memory. The
# operations were timed in the rounds of `table`; the cell only prints them.

# %% tags=["nbval-ignore-output"]
print(f"{'operation':<24} {'predicted':>9} {'measured, median (min–max)':>27} {'excess':>7}")
excess = {}
for name, (predicted, _) in seed_ops.items():
    measured = in_clones(name)
    excess[name] = statistics.median(measured) - predicted
    print(f"{name:<24} {predicted:>9.1f} {spread(measured):>27} {excess[name]:>7.2f}")
# Sums and the remainder round by round, so that their spread is the rounds' own.
summed = [sum(column) for column in zip(*(in_clones(name) for name in seed_ops), strict=True)]
whole = in_clones("seed-style")
print(f"{'sum of the operations':<24} {sum(p for p, _ in seed_ops.values()):>9.1f} "
      f"{spread(summed):>27}")
print(f"{'whole seed-style forward':<24} {'':>9} {spread(whole):>27}")
remainder = [w - s for w, s in zip(whole, summed, strict=True)]
print(f"{'whole minus the sum':<24} {'':>9} {spread(remainder):>27}   (unexplained)")
print("the exercise's replacements:")
for name, (predicted, _) in lean_ops.items():
    print(f"{name:<24} {predicted:>9.1f} {spread(in_clones(name)):>27}")
streaming = ("adaptive_avg_pool2d(x)", "x * channel", "mean(y, dim=1)", "y * spatial")
print("the operations that only stream through memory are within "
      f"{max(abs(excess[name]) for name in streaming):.2f} clone of the model (medians)")
over = {name: extra for name, extra in excess.items() if extra > 0}  # the rows above the model
largest = sorted(over, key=over.get, reverse=True)[:3]
print("largest shares of the median time above the model:", ", ".join(
    f"{name} {100 * over[name] / sum(over.values()):.0f} %" for name in largest))

# %% [markdown]
# Read the table against the model. The line under it says how close the operations that only
# stream through memory (the average pooling and the two products, and the mean over
# channels) come to their prediction, and the rows of the small gate tensors show what they
# cost beside a pass over the feature map. The excess over the model sits in a few rows, and
# the last line names the largest on this machine. The replacement rows test one explanation
# for the maxima: `amax` reads exactly the same tensor as `max(y, dim=1)` and
# `adaptive_max_pool2d`, and returns only the values. Where a maximum that also keeps an index
# costs several times its `amax`, the difference is work, not memory traffic. A convolution
# row well above zero says the same of the $7 \times 7$ convolution: it reads only two small
# maps, and a convolution library is built for many channels in and out, not for 2 in and 1
# out.
#
# The operations timed alone need not add up to the whole forward. The row *whole minus the
# sum* is what the table leaves unexplained: launching each operation and allocating its
# output, and the caches, which an operation timed alone finds as its own previous call left
# them and which inside the forward hold what the previous operation left, all fall there,
# and this table does not tell them apart. Whatever its size, the rows above it show where
# most of the time goes.
#
# So the model is right about the traffic and, where the excess column is large, wrong about
# the time, because it assumes that every operation runs at the speed of memory. The leaner
# forwards remove the work of the indices; what stays between them and the floor is the rest of
# the model's four `clone()`s (each operation is its own trip to memory) and the $7 \times 7$
# convolution. Removing the extra trips takes *fusion*: several operations computed in one
# trip.

# %% [markdown]
# ## `torch.compile`: fusion
#
# `torch.compile` traces the forward, then its default backend, Inductor, generates fused
# kernels: C++ with OpenMP on a CPU, Triton on a GPU. The first call pays for the compilation
# (cached on disk for later runs); the calls after it run the fused kernels. The shapes stay
# fixed, so it compiles once. The module was compiled and timed with the others above; the
# cell reports that first call as a multiple of one eager call, then the compiled module's
# ratio beside eager's, to compare with the floor. How close generated code gets depends on the
# backend and the hardware.

# %% tags=["nbval-ignore-output"]
if compiled is None:
    print(f"torch.compile is not available here: {compile_error}")
else:
    eager_call = statistics.median(table["cbam.CBAM (PyTorch ops)"])
    print(f"the first compiled call took about as long as {first_call / eager_call:,.0f} "
          f"eager calls; same output as eager: {compiled_same}")
    print(f"torch.compile: {spread(in_clones('torch.compile'))} x clone; eager cbam.CBAM "
          f"{spread(in_clones('cbam.CBAM (PyTorch ops)'))}; the floor here: "
          f"{FLOOR or 'between 1 and 2'}")

# %% [markdown]
# ## A kernel written for the job
#
# On a CPU, `cbam.CBAM` itself has another route: without gradients it hands the whole forward
# to a small C function (`cbam/fast/cpu_kernel.c`, compiled with the system's C compiler on
# first use) that makes the three passes of the model and nothing else, along contiguous
# memory, and **one image at a time**. Where one image fits in a cache (the floor cell said
# whether it does here), its second and third reads can find it there rather than in memory,
# the case whose floor is one `clone()`. Whether the kernel comes near that, or even beats the
# PyTorch operations at this size, is for the clock: the cell prints its ratio beside the floor
# and beside the PyTorch operations', and CBAM's share of the ResNet-50 of the first section
# with the kernel in its CBAM blocks, from the same rounds as the other two networks.
#
# Where it cannot help (training, hooks such as `record_attention`'s, other dtypes or layouts,
# a GPU) the block runs the PyTorch code timed above; tests hold the two to the same output.

# %% tags=["nbval-ignore-output"]
if "C kernel" in table:
    with torch.no_grad():
        same = torch.allclose(kernel_block(features), block(features), atol=1e-5)
    print("same output as the PyTorch operations:", same)
    kernel_ratio = in_clones("C kernel")
    for name in ("cbam.CBAM (PyTorch ops)", "C kernel"):
        print(f"{name:>24}: {spread(in_clones(name))} x clone")
    median = statistics.median(kernel_ratio)
    if FLOOR is None:
        print(f"the floor here is between 1 and 2; the C kernel's median: {median:.2f} x clone")
    else:
        verdict = "reaches it" if median <= FLOOR else "does not reach it"
        print(f"the floor here: {FLOOR:.1f}; the C kernel, at a median of {median:.2f} x clone, "
              f"{verdict} ({median / FLOOR:.1f} x the floor)")
    versus = spread(ratios(table, "C kernel", "cbam.CBAM (PyTorch ops)"))
    print(f"the C kernel's time over the PyTorch operations', round by round: {versus}")
    for name in ("PyTorch ops", "C kernel"):
        print(f"CBAM's share of ResNet-50's time, {name:>11}: {spread(share_of_time(name), 1)} %")
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
# and forces no conversion back and forth. Both layouts were timed in the rounds of `table`,
# each against a copy in its own layout.

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    print("channels_last output is channels_last:",
          block_nhwc(features_nhwc).is_contiguous(memory_format=torch.channels_last))
nchw = spread(in_clones("cbam.CBAM (PyTorch ops)"))
nhwc = spread(in_clones("cbam.CBAM (PyTorch ops), NHWC", "x.clone(), NHWC"))
print(f"cbam.CBAM, NCHW: {nchw} x clone; channels_last: {nhwc} x clone")

# %% [markdown]
# ## Pitfalls
#
# * **Quoting FLOPs as speed.** MACs predict the time of compute-bound layers (large
#   convolutions); element-wise and pooling operations are bound by memory, and a MAC count
#   leaves them out entirely.
# * **Timing without care.** Time after a warm-up, repeat, take the median and look at the
#   spread; synchronise a GPU before reading the clock; compare versions in the same run on the
#   same machine, taking turns; profile at the thread count you time at. On a CPU, keep freed
#   memory in the process, or a benchmark of large tensors times the operating system zeroing
#   fresh pages.
# * **A floor that assumes nothing stays in a cache.** The fewest trips to memory depend on what
#   the caches hold: check the sizes of the caches against the working sets, and a copy's
#   tensor against the caches, before calling a ratio a distance to the floor.
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
#   operation must cost at least, not what it costs; the excess column of the table above says
#   which operations cost more than their traffic on the machine at hand.
