# %% [markdown]
# # 05 · Training: does attention help?
#
# Lessons 01 to 04 built CBAM and placed it in a ResNet. Whether it *helps* is an empirical
# question, and an honest answer takes more than one training of each network and two numbers
# side by side. Two runs of the *same* network from two seeds can differ by more than the
# effect one hopes to see. This lesson is about the method that makes a comparison mean
# something:
#
# 1. **the same budget** for every variant: data, network, epochs, schedule, all fixed before
#    the comparison is run;
# 2. **training to a plateau**, so that the comparison is of what the networks reach, not of
#    how fast they start;
# 3. **paired seeds**: for a given seed every variant starts from the same backbone weights and
#    sees the same batches, so that what the seed does to both can cancel in their difference
#    (how much it cancels is measured below);
# 4. **an interval, and one rule for reading it**: a difference counts only when the 95 %
#    confidence interval of the paired difference excludes 0.
#
# You write the training step; a short live run uses it; then the lesson reads the course's
# stored runs: four variants, ten seeds each, trained with the same code on a CPU.

# %%
import dataclasses
import statistics

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator

from cbam import experiments
from cbam.data import SHAPES
from cbam.device import QUICK, pick_device
from cbam.experiments.figures import plot_differences
from cbam.experiments.runner import datasets
from cbam.experiments.stats import final_accuracies

_ = torch.manual_seed(0)  # the one seed for the cells below; each training run has its own
DEVICE = pick_device()
if DEVICE.type == "cpu":
    # The networks are tiny: one thread is about as fast, and on a shared CPU much steadier.
    torch.set_num_threads(1)

# %% [markdown]
# The settings of the experiment are fixed in the library (`cbam.experiments.QUICK`), and every
# stored run used them. The live run below is the same code with fewer epochs in the quick
# version, so that it fits in a minute; on a GPU it trains the full version (CIFAR-10, when its
# files are in `data/` or torchvision can fetch them). `CBAM_MODE=full` (or `quick`) in the
# environment overrides the choice.

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
# are drawn from another seed: no image appears in both sets.

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
# what a real loop needs around it: a learning-rate schedule (one-cycle: a short warm-up to the
# peak, then a long decay almost to zero, which is what makes the curves flatten at the end),
# a history of loss and accuracy per epoch, and a progress bar. Its built-in step computes the
# same thing as yours (on a GPU, in mixed precision), so on a CPU the two give the same weights.
#
# `experiments.run_one(name, variant, seed, settings, step=...)` builds the variant's network
# for the seed and fits it. Seeding fixes the initial weights and the order of the batches, so
# (variant, seed) names one reproducible run. Two variants are trained here: the plain network
# and CBAM.

# %% tags=["nbval-ignore-output"]
live = {}
for variant in ("baseline", "cbam"):
    live[variant] = experiments.run_one("attention", variant, LIVE_SEED, LIVE, device=DEVICE,
                                        step=train_step, progress=True)
    print(f"{variant:>8}: final validation accuracy {100 * live[variant]['final_val_acc']:.1f} %"
          f" after {LIVE.epochs} epochs")
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
# First, did they train to a plateau? For each variant, how far the mean validation accuracy
# over the ten seeds moves during the last three epochs:

# %%
variants = list(experiments.get_experiment("attention").variants)
for variant in variants:
    change = experiments.plateau_change(stored, variant)
    print(f"{variant:>8}: moves {change:.2f} points over the last 3 epochs "
          f"({'a plateau' if change <= 1 else 'still moving'})")

# %% tags=["nbval-ignore-output"]
colours = dict(zip(variants, ("tab:gray", "tab:blue", "tab:purple", "tab:red"), strict=True))
fig, ax = plt.subplots(figsize=(7, 3.8))
for variant in variants:
    curves = torch.tensor([r["val_acc"] for r in stored["runs"] if r["variant"] == variant])
    epochs = range(1, curves.shape[1] + 1)
    for curve in curves:
        ax.plot(epochs, 100 * curve, color=colours[variant], alpha=0.15, linewidth=0.8)
    ax.plot(epochs, 100 * curves.mean(0), color=colours[variant], label=f"{variant} (stored)")
for variant, run in live.items():
    ax.plot(range(1, len(run["val_acc"]) + 1), [100 * a for a in run["val_acc"]], "--",
            color=colours[variant], linewidth=2, label=f"{variant} (live, {LIVE.epochs} epochs)")
ax.set(xlabel="epoch", ylabel="validation accuracy (%)",
       title="ten seeds per variant (thin), their mean (thick), the live run (dashed)")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.legend(fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# ## Mean ± sd, and paired differences with their intervals
#
# `experiments.summarize` gives, per variant, the mean and the sample standard deviation of
# the final accuracy over seeds, and its **paired difference** from the reference (`baseline`):
# for each seed, the variant's accuracy minus the baseline's *of the same seed*, averaged over
# seeds, with a 95 % Student-t interval. The verdict follows the one rule.

# %%
rows = experiments.summarize(stored)
print(experiments.format_table(rows))

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
# ## Why pair?
#
# The same ten seeds, read two ways. *Unpaired*, the difference of two means carries both
# variants' seed-to-seed spread. *Paired*, each seed's backbone and batches are shared, so what
# the seed does to both cancels, and only how it treats them *differently* remains. The widths
# of the two intervals for CBAM against the baseline:

# %%
from cbam.experiments.student_t import t_quantile

base = final_accuracies(stored, "baseline")
other = final_accuracies(stored, "cbam")
seeds = sorted(set(base) & set(other))
a, b = torch.tensor([other[s] for s in seeds]), torch.tensor([base[s] for s in seeds])
n = len(seeds)
# Unpaired: the pooled two-sample t interval. Paired: the interval of the table above.
unpaired = t_quantile(0.975, 2 * n - 2) * (a.var() / n + b.var() / n).sqrt().item()
paired_interval = next(row.difference for row in rows if row.variant == "cbam")
paired = (paired_interval.high - paired_interval.low) / 2
print(f"unpaired: ±{unpaired:.2f} points   paired: ±{paired:.2f} points")
print("correlation of the two variants' accuracies over seeds:",
      f"{torch.corrcoef(torch.stack([a, b]))[0, 1].item():+.2f}")

# %% [markdown]
# The paired interval is narrower exactly when the two variants' accuracies go up and down
# together over the seeds (a positive correlation); when they do not, pairing gains nothing,
# and the printed numbers say which case this is.

# %% [markdown]
# ## What was measured
#
# The next cell states the result in words. It is computed from the stored numbers, not
# written in advance: re-make the runs with other settings and the sentences follow.

# %%
for row in rows[1:]:
    print(f"{row.variant}: {row.difference} points against the baseline (mean [95 % CI] over "
          f"{row.difference.n} paired seeds): {row.verdict}.")
steps = [("se", "baseline", "channel attention"), ("channel", "se", "max pooling"),
         ("cbam", "channel", "the spatial module")]
for variant, before, added in steps:
    step = experiments.summarize(stored, reference=before)
    d = next(r.difference for r in step if r.variant == variant)
    print(f"adding {added} ({before} -> {variant}): {d}, {d.verdict('a gain', 'a loss')}")

# %% [markdown]
# And the live run beside the stored ones. In the quick version it is shorter (6 epochs against
# 16) and has one seed: its accuracies are expected to be lower, and one seed's difference
# can fall anywhere in the spread of the stored differences. In the full version it trains
# on another task (CIFAR-10), which the stored runs cannot speak for.

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
    print(f"The live run stopped after {LIVE.epochs} of {STORED.epochs} epochs, before the "
          "plateau: it measures early learning, and need not agree with the stored runs.")
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
#   24.56 % plain, 23.14 % with SE, 22.66 % with CBAM. Gaps of 1.4 and 0.5 points from single
#   runs: the paper reports no spread. Published CIFAR reproductions find CBAM and SE about
#   0.2–0.6 points above a plain ResNet, within seed noise; timm's documentation warns that
#   CBAM's results are mixed and that it can hurt some tasks.
# * **"No difference shown" is not "equal".** It means ten seeds could not tell; the interval
#   says how large a difference they could have missed.
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
# multiplying.

# %% [markdown]
# ## Pitfalls
#
# * **Comparing one run of each model.** The difference between two seeds of the *same* model
#   is often as large as the difference between models. Report the spread, and pair the seeds.
# * **Reading noise as a result.** A difference counts when its 95 % interval excludes 0, and
#   not otherwise; with an interval that crosses 0, say "no difference shown".
# * **Stopping before the plateau.** Early in training, a network that learns faster looks
#   better, even if it ends no higher. Check the last epochs before comparing.
# * **Unequal budgets.** A model trained for more epochs, with a tuned learning rate, or picked
#   at its best epoch on the validation set wins for that reason alone. Here every variant
#   shares every setting and the last epoch is reported.
# * **Changing two things at once.** SE against CBAM changes the pooling *and* adds the spatial
#   module; the `channel` variant sits between them so that each step changes one thing.
#
# Next, lesson 06 opens the stored networks and asks *where* they look.
