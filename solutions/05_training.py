# %% [markdown]
# # 05 · Training: does attention help?
#
# Lessons 01 to 04 built CBAM and placed it in a ResNet. Whether it *helps* is an empirical
# question, and an honest answer takes more than one training of each network and two numbers
# side by side. Two runs of the *same* network from two seeds can differ by more than the
# effect one hopes to see. This lesson is about the method that makes a comparison mean
# something, and you write its pieces:
#
# 1. **the same budget** for every variant: data, network, epochs, schedule, all fixed before
#    the comparison is run, and a check that the ranking survives a larger budget;
# 2. **paired seeds**: for a given seed every variant starts from the same backbone weights and
#    sees the same batches, so that what the seed does to both can cancel in their difference
#    (whether it does is measured, not assumed);
# 3. **an interval, and one rule for reading it**: a difference counts only when it stays
#    significant at 5 % after correcting for the other comparisons read beside it;
# 4. **controls** that rule out the explanations other than the one claimed;
# 5. **planning**: how many seeds a difference of a given size needs, and what "no difference
#    shown" rules out.
#
# You write the training step; a short live run uses it; then the lesson reads the course's
# stored runs, trained with the same code on a CPU, and states what they show.

# %%
import dataclasses
import math
import statistics
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator

from cbam import experiments, record_attention
from cbam.data import SHAPES, make_loaders
from cbam.device import QUICK, pick_device
from cbam.experiments.figures import plot_differences
from cbam.experiments.runner import datasets
from cbam.experiments.stats import final_accuracies
from cbam.experiments.student_t import t_quantile
from cbam.train import epoch_learning_rates

_ = torch.manual_seed(0)  # the one seed for the cells below; each training run has its own
DEVICE = pick_device()
if DEVICE.type == "cpu":
    # The networks are tiny: one thread is about as fast, and on a shared CPU much steadier.
    torch.set_num_threads(1)

# %% [markdown]
# The settings of the experiment are fixed in the library (`cbam.experiments.QUICK`), and every
# stored run used them. The live run below uses the same code with a shorter budget in the
# quick version; on a GPU it trains the full version (CIFAR-10, when its files are in `data/`
# or torchvision can fetch them). `CBAM_MODE=full` (or `quick`) in the environment overrides the
# choice.

# %%
STORED = experiments.QUICK
LIVE = dataclasses.replace(STORED, epochs=6) if QUICK else experiments.FULL
LIVE_SEED = 0
print("stored runs:", {k: v for k, v in STORED.as_dict().items() if k in ("task", "n_train",
      "n_val", "size", "depth", "width", "reduction", "epochs")})
print("live run:   ", {"task": LIVE.task, "epochs": LIVE.epochs, "seed": LIVE_SEED})

# %% [markdown]
# ## A task where *where* matters
#
# CBAM's spatial module decides where to look, so a fair test needs images in which the
# place of the evidence varies and the rest of the picture misleads. The library generates such
# a task from a seed, with no download: each 16 × 16 image holds one small object whose
# **shape** is the class (disc, square, cross or triangle), anywhere, among bars and dots
# painted in the **same colours**, on a noisy background. Colour carries no information; only
# the shape of the one object does. Every image comes with the object's **mask**, which
# lesson 06 uses to ask whether the networks look at the object.
#
# The task was made hard on purpose: the course's earlier, larger version of it was solved by
# every network, and a task every variant solves cannot tell variants apart.
# `docs/experiments.md` lists what was tried before these settings were fixed.

# %%
train_set, val_set, _, num_classes = datasets(STORED)
print("training images:", len(train_set), " validation images:", len(val_set))
print("one image:", tuple(train_set.images.shape[1:]), " classes:", SHAPES)
print("images per class (training):", torch.bincount(train_set.labels).tolist())
object_share = 100 * val_set.masks.float().mean().item()
print(f"the object covers {object_share:.1f} % of an image's pixels on average")

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(2, 8, figsize=(12, 3.3))
for i in range(8):
    axes[0, i].imshow(train_set.unnormalized(train_set.images[i]).permute(1, 2, 0))
    axes[0, i].set_title(SHAPES[train_set.labels[i]], fontsize=9)
    axes[1, i].imshow(train_set.masks[i], cmap="gray")
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("the experiments' task: images (top) and object masks (bottom)")
plt.show()

# %% [markdown]
# The classes come in equal numbers, so chance accuracy is exactly 25 %. The validation images
# are drawn from another seed: no image appears in both sets. Note the object's share of the
# image, printed above: it will matter when the results come in.

# %% [markdown]
# ## Exercise `training-step`: one step of gradient descent
#
# Everything a training loop does, it does one batch at a time. Write `train_step` so that it
#
# 1. clears the gradients left by the previous step (`optimizer.zero_grad()`);
# 2. computes the logits `model(images)` and their cross-entropy with `labels`
#    (`F.cross_entropy`);
# 3. backpropagates (`loss.backward()`) and updates the weights (`optimizer.step()`);
# 4. returns the loss as a plain number (`loss.item()`), so the autograd graph can be freed.
#
# **How it is checked.** `check_training_step` runs your function and a reference step on two
# identical copies of a small network, each with its own SGD optimizer with momentum. It
# compares the returned loss, the weights after one step and after two steps in a row: the
# second step differs when the gradients of the first were not cleared. It also records the
# order of `zero_grad`, `backward` and `step`, and names it when the step comes before the
# gradients; a tensor (`loss.detach()`) is refused, since step 4 asks for a plain number.

# %% tags=["exercise"] exercise="training-step"
def train_step(model, images, labels, optimizer):
    """One SGD step on one batch; returns the batch's loss before the update."""
    ### BEGIN SOLUTION
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="training-step"
from cbam.checks.training import check_training_step

check_training_step(train_step)

# %% [markdown]
# ## A live run, driven by your step
#
# `cbam.train.fit(model, ..., step=train_step)` runs *your* function on every batch and adds
# what a real loop needs around it: a learning-rate schedule (one-cycle: a warm-up over the
# first quarter of the steps to the peak, then a long decay almost to zero), a history of loss
# and accuracy per epoch, and a progress bar. Its built-in step computes the same thing as
# yours (on a GPU, in mixed precision), so on a CPU the two give the same weights.
#
# `experiments.run_one(name, variant, seed, settings, step=...)` builds the variant's network
# for the seed and fits it. Seeding fixes the initial weights and the order of the batches, so
# (variant, seed) names one reproducible run. Two variants are trained here, the plain network
# and CBAM, each on a **complete** one-cycle schedule of its own: in the quick version 6 epochs
# whose learning rate also ends near zero, not the first 6 epochs of the stored runs' 16. The
# cell prints how long each took on this machine.

# %% tags=["nbval-ignore-output"]
live = {}
for variant in ("baseline", "cbam"):
    started = time.perf_counter()
    live[variant] = experiments.run_one("attention", variant, LIVE_SEED, LIVE, device=DEVICE,
                                        step=train_step, progress=True)
    print(f"{variant:>8}: final validation accuracy {100 * live[variant]['final_val_acc']:.1f} %"
          f" after {LIVE.epochs} epochs, in {time.perf_counter() - started:.0f} s")
    if "test_acc" in live[variant]:  # CIFAR-10: validation is held out of the training split
        print(f"{'':>8}  test accuracy {100 * live[variant]['test_acc']:.1f} % (the test split)")

# %% [markdown]
# ## The stored runs
#
# The course ran the whole grid once: four variants, seeds 0 to 9, the full quick settings
# (16 epochs), with this same code. The variants change one thing at a time:
#
# | variant | module in every block | what it adds to the one above |
# |---|---|---|
# | `baseline` | none | |
# | `se` | SE: channel attention from average pooling | channel attention |
# | `channel` | CBAM's channel module (average & max pooling) | max pooling |
# | `cbam` | CBAM: channel, then spatial attention | the spatial module |
#
# The results ship with the library, with the commit, the command, the versions and the machine
# that made them (`cbam-course experiment attention` re-makes them; a test re-runs one of them
# and compares).

# %%
stored = experiments.load("attention")
provenance = stored["provenance"]
print("runs:", len(stored["runs"]), " made with torch", provenance["torch"], "on",
      provenance["device"], f"({provenance['threads']} thread per run)")
print("command:", provenance["command"])

# %% [markdown]
# Lessons 01 to 03 read three more stored experiments (pooling, the spatial module's design,
# the arrangement). Some of their variants are *the same network under the same settings* as
# one here, so the same seed gives the same run, trained again: those experiments hold ten
# distinct configurations, not the fourteen their variant lists suggest, and their intervals
# are not independent evidence. Which ones, checked run by run:

# %%
def curves(result, variant):
    return {r["seed"]: r["val_acc"] for r in result["runs"] if r["variant"] == variant}


for name, variant, same_as in (("pooling", "avg", "se"), ("pooling", "avg+max", "channel"),
                               ("spatial", "pool-k7", "cbam"),
                               ("arrangement", "channel-first", "cbam")):
    identical = curves(experiments.load(name), variant) == curves(stored, same_as)
    print(f"{name}'s {variant} = attention's {same_as}: "
          f"{'identical in every seed' if identical else 'DIFFERENT'}")

# %% [markdown]
# ## Did they converge, or did the schedule stop them?
#
# A comparison of "what the networks reach" needs the networks to have reached something. For
# each variant, how far the mean validation accuracy over the ten seeds moves during the last
# three epochs, and how much it rose from epoch 13 to 16:

# %%
variants = list(experiments.get_experiment("attention").variants)
for variant in variants:
    change = experiments.plateau_change(stored, variant)
    mean_curve = torch.tensor(list(curves(stored, variant).values())).mean(0)
    rise = 100 * (mean_curve[-1] - mean_curve[-4]).item()
    print(f"{variant:>8}: moves {change:.2f} points over the last 3 epochs; "
          f"epoch 13 -> 16: {rise:+.2f} points")
moves = [100 * (max(c[-3:]) - min(c[-3:])) for c in (r["val_acc"] for r in stored["runs"])]
print(f"one seed's accuracy moves up to {max(moves):.2f} points over its last 3 epochs")
steps_per_epoch = len(make_loaders(train_set, val_set, STORED.batch_size)[0])
rates = epoch_learning_rates(STORED.epochs, steps_per_epoch, STORED.lr)
print("mean learning rate of epochs 14, 15, 16:", ", ".join(f"{r:.4f}" for r in rates[-3:]),
      f"(peak {STORED.lr})")

# %% [markdown]
# The mean curves are flat at the end, but read the last line: the learning rate of the last
# epochs is a few hundredths of its peak and less. The one-cycle schedule *froze* the weights;
# the flat end says the schedule ended, not that the networks had learned all they could, and
# the accuracy was still rising in the epochs before. So "the comparison is of what the
# networks reach" needs a check of its own: the same comparison with a larger budget, further
# down.

# %% tags=["nbval-ignore-output"]
colours = dict(zip(variants, ("tab:gray", "tab:blue", "tab:purple", "tab:red"), strict=True))
fig, (ax, ax_live) = plt.subplots(1, 2, figsize=(11, 3.8), width_ratios=(16, 7))
for variant in variants:
    runs = torch.tensor(list(curves(stored, variant).values()))
    epochs = range(1, runs.shape[1] + 1)
    for curve in runs:
        ax.plot(epochs, 100 * curve, color=colours[variant], alpha=0.15, linewidth=0.8)
    ax.plot(epochs, 100 * runs.mean(0), color=colours[variant], label=variant)
ax.set(xlabel="epoch (of 16)", ylabel="validation accuracy (%)",
       title="stored: ten seeds per variant (thin), their mean (thick)")
for variant, run in live.items():
    ax_live.plot(range(1, len(run["val_acc"]) + 1), [100 * a for a in run["val_acc"]], "o--",
                 color=colours[variant], label=variant)
ax_live.set(xlabel=f"epoch (of its own {LIVE.epochs})", title="live: one seed, its own schedule")
for a in (ax, ax_live):
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Exercise `paired-interval`: the interval every verdict rests on
#
# For a seed $i$, let $d_i = a_i - b_i$ be the variant's accuracy minus its reference's, both
# trained from that seed. With $n$ seeds, mean $\bar d$ and sample standard deviation $s$
# (dividing by $n - 1$), the 95 % interval of the mean difference is
#
# $$
# \bar d \pm t_{0.975,\,n-1}\,\frac{s}{\sqrt n},
# $$
#
# Student's t with $n - 1$ degrees of freedom (`t_quantile(0.975, n - 1)`, imported above;
# 2.262 for ten seeds, where the normal distribution's 1.96 would claim more certainty than ten
# numbers give). Write `paired_interval(a, b)` returning `(mean, low, high)` for two equally
# long lists of accuracies, paired by position.
#
# **How it is checked.** Against the library's interval on three sets of seeds (7, 10 and 2);
# a wrong answer is compared with the usual slips (1.96 for t, $n$ degrees of freedom, the sd
# dividing by $n$, no $\sqrt n$, a one-sided quantile, the unpaired formula) and the hint names
# the one made.

# %% tags=["exercise"] exercise="paired-interval"
def paired_interval(a, b):
    """Mean of a[i] - b[i] and its 95 % Student-t interval: (mean, low, high)."""
    ### BEGIN SOLUTION
    differences = [x - y for x, y in zip(a, b, strict=True)]
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="paired-interval"
from cbam.checks.statistics import check_paired_interval

check_paired_interval(paired_interval)

# %% [markdown]
# ## Mean ± sd, and paired differences with their intervals
#
# `experiments.summarize` gives, per variant, the mean and the sample standard deviation of
# the final accuracy over seeds, and its paired difference from the reference (`baseline`)
# with the interval you just wrote. Your function gives the same numbers:

# %%
base = final_accuracies(stored, "baseline")
other = final_accuracies(stored, "cbam")
seeds = sorted(set(base) & set(other))
mine = paired_interval([other[s] for s in seeds], [base[s] for s in seeds])
print("cbam - baseline, your paired_interval:", " ".join(f"{v:+.2f}" for v in mine))
rows = experiments.summarize(stored)
print(experiments.format_table(rows))

# %% [markdown]
# The table has one more column than the interval: `p (Holm)`, the difference's p-value
# corrected for the other comparisons in the table. The next section says why the verdicts
# are read from it.

# %% tags=["nbval-ignore-output"]
fig, (ax_mean, ax_diff) = plt.subplots(1, 2, figsize=(11, 3.4))
for y, row in enumerate(rows):
    accuracies = list(final_accuracies(stored, row.variant).values())
    interval = experiments.mean_interval(accuracies)
    ax_mean.errorbar(interval.mean, y, xerr=[[interval.mean - interval.low],
                     [interval.high - interval.mean]], fmt="o", color=colours[row.variant],
                     capsize=4)
ax_mean.set_yticks(range(len(rows)), [row.variant for row in rows])
ax_mean.invert_yaxis()
ax_mean.set(xlabel="final validation accuracy (%), mean and 95 % CI",
            title="each variant on its own")
plot_differences(rows, ax_diff, "each variant against the baseline")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Many comparisons at once
#
# A 95 % interval excludes 0 by chance one time in twenty when there is no difference at all.
# Read twenty such intervals and one "difference" is expected from noise alone. Lessons 01 to 05
# print more than a dozen; this lesson reads five: the three variants against the baseline, and
# the two steps that add one thing each on top of SE (`channel` adds max pooling, `cbam` adds the
# spatial module; the first step, SE against the baseline, is already among the three).
#
# **Holm's correction** (Holm, *Scandinavian Journal of Statistics*, 1979) keeps the chance of
# even one false "difference" in the family at 5 %. Sort the $m$ p-values, smallest first;
# multiply the smallest by $m$, the next by $m - 1$, ..., the largest by 1; then walk up the
# sorted list taking the running maximum (an adjusted value is never below the one before it),
# and cap each at 1. A comparison counts when its adjusted value is below 0.05. Dividing 0.05 by
# $m$ for every comparison (Bonferroni) also controls the family, but rejects less.
#
# ## Exercise `holm`
#
# Write `holm(p_values)` returning the adjusted p-values **in the order given**.
#
# **How it is checked.** On three families (of 4, 6 and 1); a wrong answer is compared with
# Bonferroni, a sorted result, a value above 1 and a missing running maximum.

# %% tags=["exercise"] exercise="holm"
def holm(p_values):
    """Holm's adjusted p-values, each at the place of its raw p-value."""
    ### BEGIN SOLUTION
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="holm"
from cbam.checks.statistics import check_holm

check_holm(holm)

# %% [markdown]
# The five comparisons of this lesson, each with its raw p-value (the t-test behind its
# interval) and its Holm-adjusted one. The library's `summarize` corrects over the comparisons
# of its own table; a reading that adds comparisons, as this one does, corrects over all of
# them. The sentences are computed from the numbers:

# %%
steps = [("channel", "se", "max pooling"), ("cbam", "channel", "the spatial module")]
family = [(f"{row.variant} - baseline", row.difference) for row in rows[1:]]
for variant, before, added in steps:
    step = next(r.difference for r in experiments.summarize(stored, reference=before)
                if r.variant == variant)
    family.append((f"{variant} - {before} (adds {added})", step))
adjusted = holm([d.p_value for _, d in family])
for (label, d), p in zip(family, adjusted, strict=True):
    verdict = d.verdict("a gain", "a loss") if p < 0.05 else "no difference shown"
    print(f"{label:<40} {str(d):>20}  p = {d.p_value:.3f}, Holm {p:.3f}: {verdict}")

# %% [markdown]
# Compare SE's p-value before and after the correction: a verdict that one interval alone
# supports may not survive being read beside four others, and then the honest statement is "no
# difference shown".

# %% [markdown]
# ## Why pair?
#
# Pairing is meant to cancel what a seed does to both variants. It does so only as far as the
# two variants' accuracies go up and down together over the seeds, their correlation $\rho$.
# And it costs something: the paired interval is computed from $n$ differences ($n - 1$
# degrees of freedom), the unpaired one from $2n$ accuracies ($2n - 2$). With equal spreads
# $\sigma$, the sd of a difference is $\sqrt{2(1-\rho)}\,\sigma$, and
#
# $$
# \frac{\text{paired half-width}}{\text{unpaired half-width}}
#   = \frac{t_{0.975,\,n-1}}{t_{0.975,\,2n-2}}\,\sqrt{1-\rho}.
# $$
#
# ## Exercise `width-ratio`
#
# Write `width_ratio(rho, n)`: the ratio above, for $n$ seeds per variant.
#
# **How it is checked.** At four (ρ, n); a wrong answer is compared with the ratio without the
# t quantiles, without the square root, upside down, and with the degrees of freedom swapped.

# %% tags=["exercise"] exercise="width-ratio"
def width_ratio(rho, n):
    """Paired over unpaired 95 % half-width, n seeds per variant, correlation rho."""
    ### BEGIN SOLUTION
    return t_quantile(0.975, n - 1) / t_quantile(0.975, 2 * n - 2) * math.sqrt(1 - rho)
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="width-ratio"
from cbam.checks.statistics import check_width_ratio

check_width_ratio(width_ratio)

# %% [markdown]
# Pairing pays when the ratio is below 1, that is when $\rho$ exceeds a break-even value that
# depends on $n$ alone. The stored runs say where each pair of variants falls: their
# correlation over seeds, and the paired and unpaired half-widths actually measured.

# %%
n = len(seeds)
break_even = 1 - (t_quantile(0.975, 2 * n - 2) / t_quantile(0.975, n - 1)) ** 2
print(f"{n} seeds: pairing narrows the interval when rho > {break_even:.2f} "
      f"(width_ratio(0, {n}) = {width_ratio(0.0, n):.3f})")
pairs = [("attention", "channel", "baseline"), ("attention", "cbam", "baseline"),
         ("attention", "se", "baseline"), ("attention", "cbam", "se"),
         ("attention", "cbam", "channel"), ("arrangement", "parallel", "channel-first")]
for name, a_name, b_name in pairs:
    result = experiments.load(name)
    a_acc, b_acc = final_accuracies(result, a_name), final_accuracies(result, b_name)
    common = sorted(set(a_acc) & set(b_acc))
    a, b = [a_acc[s] for s in common], [b_acc[s] for s in common]
    rho = statistics.correlation(a, b)
    low, high = paired_interval(a, b)[1:]
    unpaired = t_quantile(0.975, 2 * len(a) - 2) * math.sqrt(
        (statistics.variance(a) + statistics.variance(b)) / len(a))
    paired = (high - low) / 2
    print(f"{a_name + ' - ' + b_name:<26} rho {rho:+.2f}: paired ±{paired:.2f}, "
          f"unpaired ±{unpaired:.2f}: pairing {'helped' if paired < unpaired else 'did not help'}")

# %% [markdown]
# Read the lines above against the break-even value. Against the plain network, the variants'
# accuracies move together little or not at all over the seeds: training amplifies the first
# small difference an attention module makes into a different run, and pairing then buys
# little, nothing, or costs a little. Where two variants are close relatives (CBAM and its own
# channel module, two arrangements of the same modules) they do move together, and pairing
# narrows the interval a lot. Paired seeds still guarantee that no difference comes from a
# luckier initialisation or a kinder order of batches; what they buy in precision is measured
# case by case, as here.

# %% [markdown]
# ## What the intervals do not cover
#
# Every interval above describes how the result moves from **seed to seed**. All runs were
# scored on the same 2,000 validation images, one draw of the task. A different draw would move
# every accuracy by sampling noise as well, of about $\sqrt{p(1-p)/N}$ for an accuracy $p$ on
# $N$ images:

# %%
p = statistics.fmean(r["final_val_acc"] for r in stored["runs"])
print(f"binomial standard error of one accuracy: {100 * math.sqrt(p * (1 - p) / len(val_set)):.2f}"
      f" points (p = {100 * p:.1f} %, N = {len(val_set)})")
print(f"seed-to-seed sd of the baseline: {rows[0].sd:.2f} points")

# %% [markdown]
# The validation draw's noise is of the same order as the seed noise. Since every variant is
# scored on the same images, much of it is shared and cancels in a paired difference, but not
# all of it: the intervals here are about what another *seed* would give on *these* images,
# and claim nothing about another draw of the task.

# %% [markdown]
# ## What "no difference shown" rules out
#
# "No difference shown" is not "equal": it may be that ten seeds could not see a real
# difference. Where the interval is narrow, the result can be stated the other way round, as a
# bound. Two one-sided tests at 5 % each (TOST; Schuirmann, *J. Pharmacokinetics and
# Biopharmaceutics*, 1987) show the true difference to lie within $[-\delta, +\delta]$ when the
# **90 %** interval does, so the smallest such margin is the farther bound of that interval,
# $\delta = \max(|\text{low}|, |\text{high}|)$ with $t_{0.95,\,n-1}$ in place of $t_{0.975}$.
#
# ## Exercise `equivalence-margin`
#
# Write `equivalence_margin(differences)`: for a list of paired differences, the farther bound
# of their 90 % Student-t interval.
#
# **How it is checked.** On 7 differences of one sign and 10 around 0; a wrong answer is
# compared with the 95 % interval's bound, the nearer bound and |mean|.

# %% tags=["exercise"] exercise="equivalence-margin"
def equivalence_margin(differences):
    """The smallest d for which TOST at 5 % shows the mean difference within [-d, +d]."""
    ### BEGIN SOLUTION
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half = t_quantile(0.95, n - 1) * sd / math.sqrt(n)
    return max(abs(mean - half), abs(mean + half))
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="equivalence-margin"
from cbam.checks.statistics import check_equivalence_margin

check_equivalence_margin(equivalence_margin)

# %% [markdown]
# ## Controls: what else could explain the gain?
#
# Two explanations compete with "CBAM helps". The network with max pooling in its channel gate
# may gain only because *some* max pooling reaches the classifier; and the spatial module may
# help on its own while adding nothing on top of the channel module. The stored `controls`
# experiment answers both, with the same seeds and rules: `max-head` is the plain network with
# global **max** pooling before its classifier instead of the average, and `spatial` is CBAM's
# spatial module alone in every block. It trains its own plain network and CBAM rather than
# borrowing `attention`'s: those were made on a processor whose kernels round differently (the
# same seed's first-epoch loss differs in the fifth decimal, printed below, and sixteen epochs of
# training amplify that into points), and a paired difference needs both runs from one machine.

# %%
controls = experiments.load("controls")
control_rows = experiments.summarize(controls)
print(experiments.format_table(control_rows))
first_losses = [next(r["train_loss"][0] for r in runs["runs"] if r["variant"] == "baseline")
                for runs in (stored, controls)]  # seed 0 comes first in both files
print("baseline, seed 0, first-epoch loss: attention {:.6f}, controls {:.6f}".format(*first_losses))

# %% [markdown]
# **Where the gain is.** The controls' runs also recorded each class's accuracy. Per class,
# CBAM minus the plain network, over the same ten seeds (95 % intervals, uncorrected: they
# describe where the gain lies rather than add verdicts):

# %%
def class_accuracies(result, variant):
    return {r["seed"]: r["final_class_acc"] for r in result["runs"] if r["variant"] == variant}


plain, with_cbam = class_accuracies(controls, "baseline"), class_accuracies(controls, "cbam")
common = sorted(set(plain) & set(with_cbam))
for k, shape in enumerate(SHAPES):
    a = [100 * with_cbam[s][k] for s in common]
    b = [100 * plain[s][k] for s in common]
    mean, low, high = paired_interval(a, b)
    print(f"{shape:>9}: plain {statistics.fmean(b):5.1f} %, cbam {statistics.fmean(a):5.1f} %, "
          f"difference {mean:+.1f} [{low:+.1f}, {high:+.1f}]")

# %% [markdown]
# And which classes the plain network confuses, summed over the five plain networks the
# course kept (seeds 0 to 4 of `attention`), on the validation images:

# %%
attention_experiment = experiments.get_experiment("attention")
_, val_loader = make_loaders(train_set, val_set, 500)


def predictions(variant, seed):
    model = experiments.build_model(attention_experiment, variant, seed, STORED, num_classes)
    model.load_state_dict(experiments.load_model_state("attention", variant, seed))
    model.eval()
    with torch.no_grad():
        return torch.cat([model(batch[0]).argmax(1) for batch in val_loader])


labels = torch.cat([batch[1] for batch in val_loader])
confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
for seed in range(5):
    confusion += torch.bincount(num_classes * labels + predictions("baseline", seed),
                                minlength=num_classes**2).view(num_classes, num_classes)
mistakes = [(confusion[i, j] + confusion[j, i], SHAPES[i], SHAPES[j])
            for i in range(num_classes) for j in range(i + 1, num_classes)]
total = sum(m for m, _, _ in mistakes)
for count, first, second in sorted(mistakes, reverse=True)[:3]:
    print(f"{first} <-> {second}: {100 * count / total:.0f} % of the plain network's mistakes")

# %% [markdown]
# **How open the spatial gate is.** The spatial module multiplies every position by a number
# between 0 and 1; a gate near 1 everywhere lets everything through and changes little. The
# mean of each CBAM block's spatial map over the validation images, for the five kept CBAM
# networks:

# %%
gate_means = {}
for seed in range(5):
    model = experiments.build_model(attention_experiment, "cbam", seed, STORED, num_classes)
    model.load_state_dict(experiments.load_model_state("attention", "cbam", seed))
    model.eval()
    with torch.no_grad(), record_attention(model) as maps:
        for batch in val_loader:
            model(batch[0])
    for name, batches in maps.items():
        if name.endswith("spatial"):
            gate_means.setdefault(name, []).append(torch.cat(batches).mean().item())
for name, values in gate_means.items():
    print(f"{name}: mean gate {statistics.fmean(values):.2f} "
          f"(seeds: {min(values):.2f} to {max(values):.2f})")

# %% [markdown]
# ## What the evidence shows
#
# Put together, and computed from the numbers above, not written in advance:

# %%
def step_differences(result, variant, before):
    a, b = final_accuracies(result, variant), final_accuracies(result, before)
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


max_pooling = experiments.mean_interval(step_differences(stored, "channel", "se"))
spatial_step = step_differences(stored, "cbam", "channel")
spatial_interval = experiments.mean_interval(spatial_step)
margin = equivalence_margin(spatial_step)
spatial_alone = next(r for r in control_rows if r.variant == "spatial")
max_head = next(r for r in control_rows if r.variant == "max-head")
print(f"1. Max pooling in the channel gate (se -> channel): {max_pooling} points.")
print(f"2. The spatial module on top of it (channel -> cbam): {spatial_interval}; any effect it "
      f"has here is smaller than {margin:.1f} points (TOST at 5 %).")
print(f"3. The spatial module alone (controls): {spatial_alone.difference} against the plain "
      f"network, {spatial_alone.verdict}.")
print(f"4. A max-pooled head on the plain network: {max_head.difference}, "
      f"{max_head.verdict}.")

# %% [markdown]
# On this task, at this size and budget, **max pooling in the channel gate is where CBAM's gain
# comes from**, and the spatial module adds nothing that ten seeds can measure: its gate in the last
# stage is almost fully open (the mean printed above). The head control says whether the gain
# is merely "some max pooling before the classifier"; the per-class table says which shapes
# the gain helps tell apart, and the confusion counts which shapes the plain network mixes up.
#
# Why max pooling, here? The object covers only a few percent of each image (printed at the
# start): an average over the whole map dilutes the one place where the evidence is, a maximum
# keeps it. Lesson 01 made exactly this argument. The paper's Table 1 (ResNet-50, ImageNet)
# found max pooling alone slightly *worse* than average pooling (23.20 % against 23.14 % top-1
# error) and the two together best (22.80 %): the sign of max pooling's effect here is the
# task's, a task built so that the evidence is small and anywhere. That is also why the course
# does not claim CBAM's spatial module is useless: it claims that on this task it was not
# needed.

# %% [markdown]
# ## Does the ranking hold with twice the epochs?
#
# The schedule froze learning at 16 epochs. The stored `budget` experiment re-ran the four
# variants with every setting the same but 32 epochs, for five seeds (each run costs two, and
# five seeds are enough to see whether the ranking holds, not to measure small gaps). Its
# table, its plateau, and the ranking of the means at 16 and at 32 epochs:

# %%
budget = experiments.load("budget")
budget_rows = experiments.summarize(budget)
print(experiments.format_table(budget_rows))
print("epochs:", budget["settings"]["epochs"], " plateau (mean moves over the last 3 epochs):",
      ", ".join(f"{v} {experiments.plateau_change(budget, v):.2f}" for v in variants))
at_16 = [row.variant for row in sorted(rows, key=lambda row: -row.mean)]
at_32 = [row.variant for row in sorted(budget_rows, key=lambda row: -row.mean)]
print("ranking at 16 epochs:", " > ".join(at_16))
print("ranking at 32 epochs:", " > ".join(at_32))
for row, longer in zip(rows[1:], budget_rows[1:], strict=True):
    print(f"{row.variant} - baseline: {row.difference.mean:+.1f} points at 16 epochs "
          f"({row.verdict}), {longer.difference.mean:+.1f} at 32 ({longer.verdict})")
print(f"the plain network itself: {rows[0].mean:.1f} % at 16 epochs, "
      f"{budget_rows[0].mean:.1f} % at 32")

# %% [markdown]
# Read the lines above together. A doubled budget that lifts the plain network more than the
# attention variants narrows their gaps, and five seeds then resolve less: a verdict can move to
# "no difference shown" without the ranking changing. Part of a gap measured at 16 epochs is
# how fast a variant learns, not only where it ends, so **a claim about the size of the gain
# must name its budget**; the order of the means is what a larger budget tests. The main finding
# above holds for the budget it was measured at; the lines above say how much of it survives
# twice that.

# %% [markdown]
# ## How many seeds would it take?
#
# Before running a comparison, decide how large a difference matters and how many seeds it
# takes to see one that large. For a paired test at two-sided level $\alpha$ with power
# $1 - \beta$ (the chance of seeing a true difference $\delta$), when the seeds' differences
# have standard deviation $s$, the normal approximation gives
#
# $$
# n = \left\lceil \left(\frac{(z_{1-\alpha/2} + z_{1-\beta})\, s}{\delta}\right)^2 \right\rceil .
# $$
#
# ## Exercise `seeds-needed`
#
# Write `seeds_needed(difference, sd, alpha=0.05, power=0.8)` with the formula above
# (`statistics.NormalDist().inv_cdf` gives $z$). It returns an `int`.
#
# **How it is checked.** At four (difference, sd) pairs; a wrong answer is compared with the
# formula unsquared, one-sided, without the power term, and rounded the wrong way.

# %% tags=["exercise"] exercise="seeds-needed"
def seeds_needed(difference, sd, alpha=0.05, power=0.8):
    """Paired seeds to detect a true difference with the given power (normal approximation)."""
    ### BEGIN SOLUTION
    z = statistics.NormalDist().inv_cdf
    return math.ceil(((z(1 - alpha / 2) + z(power)) * sd / difference) ** 2)
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="seeds-needed"
from cbam.checks.statistics import check_seeds_needed

check_seeds_needed(seeds_needed)

# %% [markdown]
# The stored runs give $s$: the sd of the seed-by-seed differences the course measured.

# %%
for variant, before in (("cbam", "channel"), ("cbam", "baseline")):
    sd = statistics.stdev(step_differences(stored, variant, before))
    needs = ", ".join(f"{d} point{'s' if d != 1 else ''}: {seeds_needed(d, sd)} seeds"
                      for d in (0.5, 1, 2))
    print(f"{variant} - {before}: sd of the differences {sd:.2f}; to detect {needs}")

# %% [markdown]
# Ten seeds see a difference of a couple of points on this task; the half-point gaps of the
# paper's tables would need many times more. A gap that small, seen in one run of each model,
# is not evidence either way.

# %% [markdown]
# ## The live run beside the stored ones
#
# In the quick version the live run has a shorter budget (its own 6-epoch schedule against 16)
# and one seed: its accuracies are expected to be lower, and one seed's difference can fall
# anywhere in the spread of the stored differences. In the full version it trains on another
# task (CIFAR-10), which the stored runs cannot speak for.

# %% tags=["nbval-ignore-output"]
live_gap = 100 * (live["cbam"]["final_val_acc"] - live["baseline"]["final_val_acc"])
stored_gaps = [other[s] - base[s] for s in seeds]
cbam_row = next(r for r in rows if r.variant == "cbam")
print(f"live, seed {LIVE_SEED}, {LIVE.epochs} epochs: cbam - baseline = {live_gap:+.1f} points")
print(f"stored, {STORED.epochs} epochs: {cbam_row.difference.mean:+.1f} on average, from "
      f"{min(stored_gaps):+.1f} to {max(stored_gaps):+.1f} over the seeds")
if LIVE.task != STORED.task:
    print(f"The live run trained on {LIVE.task}, the stored runs on {STORED.task}: the two "
          "differences answer different questions, and neither predicts the other.")
elif LIVE.epochs != STORED.epochs:
    print(f"The live run had a budget of {LIVE.epochs} epochs against {STORED.epochs}: it "
          "measures another budget, and need not agree with the stored runs.")
elif min(stored_gaps) <= live_gap <= max(stored_gaps):
    print("The live difference lies within the stored seeds' range.")
else:
    print("The live difference lies outside the stored seeds' range: another machine or "
          "settings, or a seed unlike the stored ones.")

# %% [markdown]
# ## How to read it
#
# * **On this task, at this size.** The stored runs say how these variants compare on a small
#   synthetic task, with a ResNet of depth 8, in 16 epochs, with r = 4 (the paper's r = 16 would
#   leave the first stage's channel MLP a single hidden unit at width 16). They say nothing
#   directly about ImageNet.
# * **The paper's numbers** (Table 4, ResNet-50 on ImageNet-1K, top-1 error, one run each):
#   24.56 % plain, 23.14 % with SE, 22.66 % with CBAM. Gaps of 1.42 and 0.48 points from single
#   runs: the paper reports no spread, so nothing says how much of them another seed would
#   keep. The module docstring of timm's `timm/layers/cbam.py` (2020) says that results with
#   CBAM have been mixed and that it can significantly reduce performance on some tasks.
# * **"No difference shown" is not "equal".** It means ten seeds could not tell; the
#   equivalence margin says how large a difference they rule out.
# * **Time is a cost too.** The parameters and multiply-accumulates CBAM adds are tiny
#   (lesson 04). The stored runs recorded their time per run (two runs at a time on a shared
#   2-core machine, so read the ratios roughly):

# %%
seconds = {v: [r["seconds"] for r in stored["runs"] if r["variant"] == v] for v in variants}
mean_seconds = {v: statistics.fmean(times) for v, times in seconds.items()}
print("time per run relative to the baseline:",
      ", ".join(f"{v} {mean_seconds[v] / mean_seconds['baseline']:.2f}x" for v in variants))

# %% [markdown]
# Lesson 07 measures where the time of an attention block goes: its maps are read and written
# several times per block, and on networks this small time is spent moving memory more than
# multiplying. Lesson 08 puts CBAM beside the attention modules that came after it, under the
# same rules.

# %% [markdown]
# ## Pitfalls
#
# * **Comparing one run of each model.** The difference between two seeds of the *same* model
#   is often as large as the difference between models. Report the spread, and pair the seeds.
# * **Reading noise as a result.** Correct for every comparison read together, and say "no
#   difference shown" when the corrected verdict does not hold, however suggestive the mean.
# * **Assuming pairing helps.** It narrows the interval only when the variants move together
#   over seeds; check the correlation, and count the degrees of freedom it costs.
# * **Mistaking a frozen schedule for convergence.** A learning rate annealed to zero flattens
#   every curve. Check that the ranking holds with a larger budget.
# * **Unequal budgets.** A model trained for more epochs, with a tuned learning rate, or picked
#   at its best epoch on the validation set wins for that reason alone. Here every variant
#   shares every setting and the last epoch is reported.
# * **Changing two things at once.** SE against CBAM changes the pooling *and* adds the spatial
#   module; the `channel` variant sits between them so that each step changes one thing, and the
#   controls test the explanations the steps leave open.
#
# Next, lesson 06 opens the stored networks and asks *where* they look.
