# %% [markdown]
# # 08 · CBAM among its successors
#
# The question a practitioner brings to this course is not only "how does CBAM work" but
# "should I use it, or something newer?". Attention modules kept coming after CBAM, each paper
# reporting a gain over the ones before, each on ImageNet with its own training recipe and its
# own baseline. This lesson builds four of them from their equations, counts and times what they
# cost, and compares them with SE and CBAM the way lesson 05 taught: one task, one budget, ten
# paired seeds, intervals, and verdicts corrected for the number of comparisons.
#
# | module | paper | its idea |
# |---|---|---|
# | ECA | Wang et al., *ECA-Net*, CVPR 2020 | SE without its bottleneck: a 1-D convolution |
# | coordinate attention | Hou, Zhou & Feng, CVPR 2021 | pool along H and W apart, keep position |
# | SimAM | Yang et al., ICML 2021 | a parameter-free 3-D map from each neuron's "energy" |
# | GC block | Cao et al., *GCNet*, ICCV Workshops 2019 | one pooled context, *added* everywhere |
#
# All four are in the library, `cbam.successors`, one small file each, with the paper's
# equations in its docstring and tests that hold it to them.

# %%
import torch

from cbam import experiments, record_attention
from cbam.experiments.runner import datasets
from cbam.resnet import resnet50, resnet_cifar
from cbam.successors import (
    CoordinateAttention,
    EfficientChannelAttention,
    GlobalContext,
    SimAM,
    eca_kernel_size,
)
from cbam.successors.cost import PAPER_SETTINGS, costs, format_costs

_ = torch.manual_seed(0)  # the one seed of this lesson
torch.set_num_threads(1)  # every timing below runs on one thread, as lesson 07's do
x = torch.randn(2, 64, 8, 8)

# %% [markdown]
# ## ECA: channel attention without a bottleneck
#
# SE (lesson 01's `se`) squeezes the C channel descriptors through an MLP $C \to C/r \to C$.
# ECA-Net argues that the bottleneck hurts: it mixes every channel with every other through a
# narrow layer, so no channel keeps a direct say over its own weight. ECA replaces the MLP by a
# single 1-D convolution that slides along the channel axis (Eq. 12 of its paper):
#
# $$
# w = \sigma\big(\mathrm{conv1d}_k(\mathrm{GAP}(F))\big), \qquad
# k = \left|\frac{\log_2 C}{\gamma} + \frac{b}{\gamma}\right|_{\text{odd}},\ \gamma = 2,\ b = 1,
# $$
#
# so each channel's weight depends on its $k$ neighbours, with $k$ parameters in all and no
# reduction ratio to choose. The kernel grows slowly with the width:

# %%
for channels in (16, 64, 256, 512, 2048):
    print(f"C = {channels:>4}: k = {eca_kernel_size(channels)}")
eca = EfficientChannelAttention(64)
print(eca)
print("map:", tuple(eca.attention(x).shape),
      " parameters:", sum(p.numel() for p in eca.parameters()))

# %% [markdown]
# Lesson 05 found that on this course's task the gain of CBAM's channel module over SE comes
# from **max pooling**. So the library also has ECA with CBAM's two descriptors,
# `EfficientChannelAttention(C, pool_types=("avg", "max"))`: the same convolution applied to the
# average and to the maximum, summed before the sigmoid, as CBAM's Eq. 2 does with its MLP. The
# stored comparison below includes it as `eca-max`, to ask whether max pooling helps ECA too.
#
# ## Coordinate attention: keep the position
#
# SE and CBAM's channel module pool each channel to a single number and forget *where* it was
# large. Coordinate attention pools each channel along one axis at a time: averaging over W
# gives a profile along H, averaging over H a profile along W (its Eq. 4-5). One shared
# $1 \times 1$ convolution with BatchNorm and a hard-swish mixes both profiles (Eq. 6), then each
# is mapped back to C channels and squashed (Eq. 7-8), and the output is
#
# $$
# y_c(i, j) = x_c(i, j)\; g^h_c(i)\; g^w_c(j) \qquad \text{(Eq. 9)}:
# $$
#
# per channel, the outer product of a column and a row of weights.

# %%
coordinate = CoordinateAttention(64)
g_h, g_w = coordinate.attention(x)
print("along H:", tuple(g_h.shape), " along W:", tuple(g_w.shape),
      " shared width:", coordinate.mid_channels)
print("parameters:", sum(p.numel() for p in coordinate.parameters()))

# %% [markdown]
# ## SimAM: attention with no parameters
#
# SimAM gives each neuron, every channel *and* position, a weight of its own, and learns
# nothing to do it. It borrows an idea from neuroscience: a neuron that stands out from the
# other neurons of its channel matters more. Its paper writes an energy for neuron $t$ of a
# channel and solves for its minimum in closed form (Eq. 5):
#
# $$
# e_t = \frac{4(\hat\sigma^2 + \lambda)}{(t - \hat\mu)^2 + 2\hat\sigma^2 + 2\lambda},
# $$
#
# with $\hat\mu$ the channel's mean over its $H \times W$ positions, $\hat\sigma^2$ its variance
# over the other $M - 1 = HW - 1$ neurons ($\sum (x - \hat\mu)^2 / (HW - 1)$), and
# $\lambda = 10^{-4}$. A low energy means a distinctive neuron, so the weight is
# $\sigma(1/e_t)$ (Eq. 6), and $1/e_t$ simplifies to
#
# $$
# \frac{1}{e_t} = \frac{(t - \hat\mu)^2}{4(\hat\sigma^2 + \lambda)} + \frac{1}{2}.
# $$
#
# ## Exercise `simam`
#
# Write `simam(x, e_lambda=1e-4)`: for an (N, C, H, W) tensor, return
# $x \cdot \sigma(1/e)$, with the mean and variance taken per image and channel over H and W
# (keep the dims, so they broadcast). Return a new tensor; leave `x` as it came.
#
# **How it is checked.** Against the equation on three shapes (one of width 1) and two
# $\lambda$; a wrong answer is compared with the usual slips: the variance divided by $HW$, the
# $+\frac12$ left out, no sigmoid, statistics over the channels instead of the positions, the
# map returned instead of the features.

# %% tags=["exercise"] exercise="simam"
def simam(x, e_lambda=1e-4):
    """SimAM's output x * sigmoid(1 / e), computed per image and channel over H and W."""
    ### BEGIN SOLUTION
    positions = x.shape[2] * x.shape[3]
    squared = (x - x.mean(dim=(2, 3), keepdim=True)) ** 2
    variance = squared.sum(dim=(2, 3), keepdim=True) / (positions - 1)
    return x * torch.sigmoid(squared / (4 * (variance + e_lambda)) + 0.5)
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="simam"
from cbam.checks.successors import check_simam

check_simam(simam)

# %% [markdown]
# Its weights lie between $\sigma(1/2) \approx 0.62$ and 1, so SimAM never suppresses a neuron
# below 62 % of itself; it amplifies the distinctive ones relative to the rest:

# %%
weights = SimAM().attention(x)
print(f"weights from {weights.min().item():.3f} to {weights.max().item():.3f}; "
      f"sigmoid(1/2) = {torch.sigmoid(torch.tensor(0.5)).item():.3f}")

# %% [markdown]
# ## The GC block: add a context, do not multiply
#
# A non-local block computes, for every position, its own weighted sum over all positions.
# GCNet observed that these weights come out nearly the same whatever the query position, and
# computed one context for the whole image instead: a softmax over the $HW$ positions of a
# $1 \times 1$ convolution, the context as the weighted sum of the features, then an SE-like
# bottleneck with a LayerNorm, whose output is **added** at every position:
#
# $$
# \alpha_j = \operatorname{softmax}_j(W_k x_j), \qquad
# y_i = x_i + W_{v2}\,\mathrm{ReLU}\big(\mathrm{LN}(W_{v1} \textstyle\sum_j \alpha_j x_j)\big).
# $$
#
# Its last convolution starts at zero, so a new GC block is the identity:

# %%
gc = GlobalContext(64)
alpha = gc.attention(x)
print("pooling weights:", tuple(alpha.shape),
      " summing to", round(alpha.sum(dim=(2, 3)).mean().item(), 6))
print("a new block changes its input by", (gc(x) - x).abs().max().item())

# %% [markdown]
# `cbam.record_attention` reads every one of these maps out of a network, as it reads CBAM's
# (lesson 06): one entry per block, two for coordinate attention.

# %%
for module in (EfficientChannelAttention, CoordinateAttention, SimAM, GlobalContext):
    network = resnet_cifar(8, 4, attention=module, width=16).eval()
    with torch.no_grad(), record_attention(network) as maps:
        network(torch.randn(2, 3, 16, 16))
    first = next(iter(maps))
    print(f"{module.__name__:<26} {len(maps)} maps; {first}: {tuple(maps[first][0].shape)}")

# %% [markdown]
# ## What they cost
#
# Parameters and multiply-accumulates (MACs) are counted as the CBAM paper's Table 4 counts
# them (lesson 04): convolutions, linear layers and matrix products; pooling, sigmoids and
# elementwise products count nothing, which is why SimAM counts zero. First a ResNet-50 on one
# 224 × 224 image, each module with **its own paper's settings** (r = 16 for SE, CBAM and GC,
# 32 for coordinate attention):

# %%
resnet_costs = costs(lambda factory: resnet50(attention=factory), PAPER_SETTINGS, (1, 3, 224, 224))
print(format_costs(resnet_costs))

# %% [markdown]
# Counted MACs are not time (lesson 07). The next cell times the same ResNet-50s, forward and
# forward + backward, interleaved in rounds beside the plain network on this machine, and
# prints each as a ratio to the plain network: the median over the rounds with its interquartile
# range. To keep it short it times a batch of one 128 × 128 image: the channel widths are
# ResNet-50's, the feature maps smaller than at 224 × 224.

# %% tags=["nbval-ignore-output"]
timed = costs(lambda factory: resnet50(attention=factory), PAPER_SETTINGS, (1, 3, 128, 128),
              rounds=5)
print(format_costs(timed))

# %% [markdown]
# And the course's network (lesson 05's task: depth 8, width 16, 16 × 16 images, a batch of 64),
# each module with the experiment's reduction ratio r = 4, as the stored runs below trained it:

# %%
STORED = experiments.QUICK
successors = experiments.get_experiment("successors")
factories = {v: successors.factory(v, STORED.reduction) for v in successors.variants}
_, _, _, num_classes = datasets(STORED)


def course_network(factory):
    return resnet_cifar(STORED.depth, num_classes, attention=factory, width=STORED.width)


print(format_costs(costs(course_network, factories, (1, 3, STORED.size, STORED.size))))

# %% tags=["nbval-ignore-output"]
course_costs = costs(course_network, factories, (STORED.batch_size, 3, STORED.size, STORED.size),
                     rounds=9)
print(format_costs(course_costs))

# %% [markdown]
# Read the counted and the timed columns side by side. A module that counts almost nothing (ECA,
# SimAM) need not be free in time: what it does is read and write whole feature maps, which
# counting ignores and the clock does not. The printed ratios say how much that costs here.
#
# ## The stored comparison
#
# The stored `successors` experiment trained the plain network, SE, CBAM and the five newer
# variants on lesson 05's task, with lesson 05's settings, fixed before it ran: ten paired
# seeds, 16 epochs, every module in every residual block. `cbam-course experiment successors`
# re-makes it; a test re-runs one of its runs.

# %%
result = experiments.load("successors")
provenance = result["provenance"]
print("runs:", len(result["runs"]), " made with torch", provenance["torch"], "on",
      provenance["cpu"], f"({provenance['threads']} thread per run)")
print("command:", provenance["command"])
for variant in successors.variants:
    change = experiments.plateau_change(result, variant)
    print(f"{variant:>10}: the mean accuracy moves {change:.2f} points over the last 3 epochs")

# %% [markdown]
# Three questions are asked of these runs, and all their comparisons are read as one family,
# corrected together by Holm's procedure (lesson 05): each module against the plain network
# (seven), each newer module against CBAM (five), and ECA with max pooling against ECA (one).

# %%
against_baseline = experiments.summarize(result)
against_cbam = [row for row in experiments.summarize(result, reference="cbam")
                if row.variant not in ("baseline", "se", "cbam")]
eca_step = next(row for row in experiments.summarize(result, reference="eca")
                if row.variant == "eca-max")
family = ([(f"{row.variant} - baseline", row) for row in against_baseline[1:]]
          + [(f"{row.variant} - cbam", row) for row in against_cbam]
          + [("eca-max - eca", eca_step)])
adjusted = experiments.holm([row.difference.p_value for _, row in family])
verdicts = {}
print(f"{'comparison':<22}{'accuracy':>16}{'paired difference [95% CI]':>30}{'Holm p':>9}  verdict")
for (label, row), p in zip(family, adjusted, strict=True):
    verdict = row.difference.verdict("better", "worse") if p < 0.05 else "no difference shown"
    verdicts[label] = verdict
    print(f"{label:<22}{row.mean:>10.1f} ± {row.sd:.1f}{str(row.difference):>30}{p:>9.3f}  "
          f"{verdict}")

# %% [markdown]
# Where a newer module shows no difference from CBAM, the interval says how large a difference
# ten seeds rule out: the equivalence margin of lesson 05, for each such module.

# %%
cbam_accuracy = experiments.final_accuracies(result, "cbam")
for variant in [row.variant for row in against_cbam
                if verdicts[f"{row.variant} - cbam"] == "no difference shown"]:
    accuracy = experiments.final_accuracies(result, variant)
    seeds = sorted(set(accuracy) & set(cbam_accuracy))
    differences = [accuracy[s] - cbam_accuracy[s] for s in seeds]
    print(f"{variant:>10} - cbam: within ±{experiments.equivalence_margin(differences):.1f} points "
          "(TOST at 5 %)")

# %% [markdown]
# ## The papers' own numbers
#
# Each paper measured its module on ResNet-50 and ImageNet-1K, one run each, with its own
# training recipe and its own plain baseline, so their gains are not comparable with each other
# nor with the runs above:
#
# | source | plain ResNet-50 | with the module | top-1 gain |
# |---|---|---|---|
# | CBAM, Table 4 (Woo et al., 2018) | 24.56 % error | SE 23.14 %, CBAM 22.66 % | 1.42, 1.90 |
# | ECA-Net (Wang et al., 2020) | 75.20 % accuracy | ECA 77.48 % | 2.28 |
# | SimAM (Yang et al., 2021) | its own baseline | SimAM 77.45 % | |
#
# The coordinate attention and GCNet papers report mainly other settings (mobile networks for
# the first; detection and segmentation on COCO for the second), and are left out of the table
# rather than set beside numbers they were not measured with.
#
# Two reproducibility studies put these gains in proportion. With a modern training recipe
# (longer training, stronger augmentation and regularisation), a **plain** ResNet-50 reaches
# 80.4 % top-1 (Wightman, Touvron & Jégou, "ResNet strikes back", 2021), more than any of the
# module papers above report with their modules and their recipes. And Bello et al. ("Revisiting
# ResNets: improved training and scaling strategies", NeurIPS 2021) found that training and
# scaling choices matter more than such architectural changes. A module's reported gain is a
# gain under one recipe; the next recipe may take it away.

# %% [markdown]
# ## What this course can and cannot say
#
# It can say, with intervals, how these modules compare on one small task in one training
# budget, where the evidence is small and anywhere in the image; what they cost, counted and
# timed; and which comparisons ten seeds can resolve. It cannot say how they rank on ImageNet,
# on detection, on a large network, or under another recipe. The computed summary:

# %%
gains = [row for row in against_baseline[1:] if verdicts[f"{row.variant} - baseline"] == "better"]
print("better than the plain network here:",
      ", ".join(f"{row.variant} ({row.difference.mean:+.1f} points)" for row in gains) or "none")
beats_cbam = [row.variant for row in against_cbam if verdicts[f"{row.variant} - cbam"] == "better"]
print("better than CBAM here:", ", ".join(beats_cbam) or "none shown")

# %% [markdown]
# And what those cost to train on this machine (the timing above; it varies from machine to
# machine, so read it here rather than from the text):

# %% tags=["nbval-ignore-output"]
time_ratio = {row.name: row.training[0] for row in course_costs if row.training is not None}
for row in gains:
    print(f"{row.variant}: training time {time_ratio[row.variant]:.2f}x the plain network's")
if gains:
    cheapest = min(gains, key=lambda row: time_ratio[row.variant])
    print(f"the cheapest in training time among those with a gain: {cheapest.variant}")

# %% [markdown]
# On this task the table and the summary above say three things. ECA as its paper defines it
# (average pooling only) did not beat the plain network, while the same ECA given CBAM's
# max-pooled descriptor did, by the largest margin of all, against ECA itself too: the finding
# of lesson 05 (max pooling is where the gain comes from, on a task whose evidence is small and
# anywhere) holds for a module of nine parameters as it did for CBAM's MLP. No newer module was
# shown better than CBAM, and coordinate attention was shown worse; the modules that gained
# over the plain network differ in what they cost to train, as the last cell prints.
#
# **A recommendation you can act on.** Fix the training recipe first: it moves accuracy more
# than any of these modules (the studies above). Then treat an attention module as a
# hyper-parameter of your own task, not a property of the module: run the plain network and
# the candidates with paired seeds, enough of them for the difference you care about (lesson
# 05's `seeds_needed`), and read the verdicts with a correction. Ask first what the task's
# evidence looks like: where it is small and anywhere in the image, give the channel gate a
# max-pooled descriptor (CBAM's channel module, or ECA with max pooling, which costs nine
# parameters here; its training time on this machine is printed above); where several
# candidates are not shown to differ in accuracy, take the one that costs least to run on your
# hardware, timed, not counted.

# %% [markdown]
# ## Pitfalls
#
# * **Comparing papers' numbers.** Each module paper has its own baseline and recipe: a
#   2-point gain over a weak baseline can be less than no gain over a strong one.
# * **Counting instead of timing.** A module with no parameters and no counted MACs still reads
#   and writes its feature maps; time it on the hardware that will run it.
# * **One run each.** The modules' differences on the course's task are of the size that seed
#   noise makes; one run of each would rank them at random.
