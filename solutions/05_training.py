# %% [markdown]
# # 05 · Training: does attention help?
#
# Lessons 01 to 04 built CBAM and placed it in a ResNet. Whether it *helps* is an empirical
# question, and answering it honestly takes more care than running one training of each model
# and comparing two numbers. This lesson trains three networks that differ only in their
# attention module (none, SE, CBAM) on the same data, with the same budget, from several random
# seeds, and reports the mean and the spread of their accuracies.
#
# On a CPU the lesson runs a *quick* version: a small synthetic task, tiny networks, a few
# epochs, about a minute in all. On a GPU it switches by itself to the *full* version: more
# data, more epochs, and CIFAR-10 when torchvision is installed (as on Colab).

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator

from cbam.data import SHAPES, SyntheticShapes, make_loaders, synthetic_splits
from cbam.device import QUICK, pick_device
from cbam.resnet import resnet_cifar
from cbam.train import train_model

_ = torch.manual_seed(0)  # the one seed for the cells below; each training run has its own
SEEDS = (0, 1, 2)  # one training run per seed and model
DEVICE = pick_device()

# %% [markdown]
# The two sets of settings. Everything that differs between the quick and the full version is
# in this one cell; `CBAM_MODE=full` (or `quick`) in the environment overrides the choice.

# %%
QUICK_SETTINGS = dict(task="shapes", n_train=1500, n_val=300, epochs=4, batch_size=32, lr=0.1,
                      depth=8, width=8)
FULL_SETTINGS = dict(task="cifar10", n_train=20_000, n_val=4_000, epochs=15, batch_size=128,
                     lr=0.1, depth=20, width=16)
SETTINGS = QUICK_SETTINGS if QUICK else FULL_SETTINGS
if DEVICE.type == "cpu":
    # The quick networks are tiny: splitting each operation across threads gains little, and on
    # a CPU shared with other programs the threads mostly wait for each other.
    torch.set_num_threads(1)

# %% [markdown]
# ## A task where *where* matters
#
# CBAM's spatial module decides where to look, so a fair test needs images in which the
# location of the evidence varies and the rest of the picture misleads. The library generates
# such a task from a seed, with no download: each image holds one object whose **shape** is the
# class (disc, square, cross or triangle), placed anywhere, at a random size, among thin bars
# and dots painted in the **same colours**, on a noisy background. Colour carries no
# information; only the shape of the one object does. Every image also comes with the object's
# **mask**, which lesson 06 uses to ask whether attention lands on the object.

# %%
demo = SyntheticShapes(8, seed=0)
image, label, mask = demo[0]
print("classes:", SHAPES)
print("image:", tuple(image.shape), image.dtype)
print("label:", int(label), "=", SHAPES[label])
print("mask: ", tuple(mask.shape), mask.dtype)

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(2, 8, figsize=(12, 3.3))
for i in range(8):
    axes[0, i].imshow(demo.unnormalized(demo.images[i]).permute(1, 2, 0))
    axes[0, i].set_title(SHAPES[demo.labels[i]], fontsize=9)
    axes[1, i].imshow(demo.masks[i], cmap="gray")
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("cluttered shapes: images (top) and object masks (bottom)")
plt.show()

# %% [markdown]
# The generator draws the class labels in equal numbers, so chance accuracy is exactly 25 %.
# The validation set comes from another seed: no image appears in both.

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
# second step differs when the gradients of the first were not cleared.

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
# `cbam.train.fit` runs this same step over and over, with three additions a real loop needs:
#
# * a **learning-rate schedule** (one-cycle: a short warm-up, then a slow decay), which lets a
#   short training reach a good optimum;
# * **mixed precision** on a GPU: the forward pass runs in float16 under `torch.autocast`, and a
#   `GradScaler` multiplies the loss before `backward()` so that small gradients do not round
#   to zero in float16, then divides them back before the step;
# * a **history** of loss and accuracy per epoch, on the training and the validation set, and a
#   progress bar.
#
# `cbam.train.train_model(build, ..., seed=s)` seeds every random generator, builds the model,
# and fits it. Seeding *before* building fixes the initial weights as well as the order of the
# batches, so a (model, seed) pair names one reproducible run: on the CPU, running it twice on
# the same machine gives the same numbers.

# %% [markdown]
# ## The data for the comparison
#
# The full version downloads CIFAR-10 (about 170 MB, once, into `data/`) when torchvision is
# installed, and falls back to a larger synthetic task when it is not.

# %% tags=["nbval-ignore-output"]
if SETTINGS["task"] == "cifar10":
    from cbam.data import download_cifar10, has_torchvision, load_cifar10

    if not has_torchvision():
        print("torchvision is not installed: the synthetic task at full size instead")
        SETTINGS["task"] = "shapes"
if SETTINGS["task"] == "cifar10":
    folder = download_cifar10("data")  # ~170 MB, once; the full version asks for it
    train_set, val_set = load_cifar10(folder, train=True), load_cifar10(folder, train=False)
    NUM_CLASSES = 10
else:
    train_set, val_set = synthetic_splits(SETTINGS["n_train"], SETTINGS["n_val"], seed=0)
    NUM_CLASSES = len(SHAPES)
on_gpu = DEVICE.type == "cuda"  # worker processes keep a GPU fed; on a CPU they compete with it
train_loader, val_loader = make_loaders(
    train_set, val_set, SETTINGS["batch_size"], num_workers=2 if on_gpu else 0, pin_memory=on_gpu
)

print(f"device: {DEVICE}, version: {'quick' if QUICK else 'full'}, task: {SETTINGS['task']}")
print(f"training images: {len(train_set)}, validation images: {len(val_set)}")

# %% [markdown]
# ## Three models, three seeds
#
# The three networks are the same CIFAR ResNet (`cbam.resnet.resnet_cifar`) with a different
# module in every residual block: nothing, SE, or CBAM, each with the paper's defaults
# ($r = 16$, $k = 7$). Each is trained once per seed, with the same settings. The curves grow by
# one line after every run; the progress bar shows the run in progress.

# %%
MODELS = {"baseline": None, "SE": "se", "CBAM": "cbam"}


def build(attention):
    return lambda: resnet_cifar(SETTINGS["depth"], NUM_CLASSES, attention=attention,
                                width=SETTINGS["width"])


# %%
from IPython.display import display

histories = {name: [] for name in MODELS}
colours = dict(zip(MODELS, ("tab:gray", "tab:blue", "tab:red"), strict=True))
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
plt.close(fig)  # shown by train_all below, not by the inline backend


def draw():
    """Draw every finished run (after each run: drawing costs about as much as a training step)."""
    ax_loss.clear()
    ax_acc.clear()
    for name, runs in histories.items():
        for h in runs:
            epochs = range(1, h.epochs + 1)
            ax_loss.plot(epochs, h.train_loss, color=colours[name], alpha=0.6)
            ax_acc.plot(epochs, h.val_acc, color=colours[name], alpha=0.6)
    for name in MODELS:
        ax_acc.plot([], [], color=colours[name], label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.legend(loc="lower right")


def train_all(name):
    """Train model ``name`` once per seed; the figure in the cell grows by a line per run."""
    live = display(fig, display_id=True)
    for seed in SEEDS:
        _, history = train_model(
            build(MODELS[name]), train_loader, val_loader, seed=seed, device=DEVICE,
            epochs=SETTINGS["epochs"], lr=SETTINGS["lr"],
        )
        histories[name].append(history)
        draw()
        live.update(fig)


# %% [markdown]
# One cell per model, each a few tens of seconds in the quick version. The plain network first:

# %% tags=["nbval-ignore-output"]
train_all("baseline")

# %% [markdown]
# Then SE, whose gates reweight channels from their averages alone:

# %% tags=["nbval-ignore-output"]
train_all("SE")

# %% [markdown]
# And CBAM, with both gates in every block:

# %% tags=["nbval-ignore-output"]
train_all("CBAM")

# %%
print("runs per model:", {name: len(runs) for name, runs in histories.items()})

# %% [markdown]
# ## Mean ± standard deviation
#
# A single run's accuracy depends on its seed: the initial weights and the order of the batches.
# The spread between seeds is the yardstick for any difference between models. A gap smaller
# than that spread is not evidence of anything.

# %% tags=["nbval-ignore-output"]
final = {name: torch.tensor([h.val_acc[-1] for h in runs]) for name, runs in histories.items()}
for name, accuracies in final.items():
    runs = ", ".join(f"{100 * a:.1f}" for a in accuracies.tolist())
    print(f"{name:>8}: {100 * accuracies.mean():5.1f} ± {100 * accuracies.std():.1f} %"
          f"   (runs: {runs})")

# %% [markdown]
# The standard deviation here is the sample one (`torch.std` divides by $n - 1$), computed from
# only three runs: a rough estimate, itself uncertain by a large factor.

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(6, 3.8))
for name, runs in histories.items():
    curves = torch.tensor([h.val_acc for h in runs])
    epochs = range(1, curves.shape[1] + 1)
    mean, std = curves.mean(0), curves.std(0)
    ax.plot(epochs, mean, color=colours[name], label=name)
    ax.fill_between(epochs, mean - std, mean + std, color=colours[name], alpha=0.2)
ax.set(xlabel="epoch", ylabel="validation accuracy", title="mean ± std over seeds")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.legend()
plt.show()

# %% [markdown]
# ## What was measured
#
# The next cell states the result of *this* run in words. It is computed, not written in
# advance: on another machine, with more epochs, or on CIFAR-10 the order of the models may
# change, and the sentence will follow the numbers.

# %% tags=["nbval-ignore-output"]
baseline = final["baseline"]
for name in ("SE", "CBAM"):
    gap = 100 * (final[name].mean() - baseline.mean()).item()
    spread = 100 * max(final[name].std().item(), baseline.std().item())
    verdict = "larger" if abs(gap) > spread else "not larger"
    print(f"{name} vs baseline: {gap:+.1f} points of validation accuracy, {verdict} than the "
          f"spread between seeds ({spread:.1f} points).")
seconds = {name: sum(sum(h.seconds) for h in runs) for name, runs in histories.items()}
print("training time relative to the baseline:",
      ", ".join(f"{n} {seconds[n] / seconds['baseline']:.2f}x" for n in MODELS))

# %% [markdown]
# How to read it:
#
# * **A few short runs decide little.** The paper's gains (Table 4: top-1 error 24.56 % for
#   ResNet-50, 23.14 % with SE, 22.66 % with CBAM) come from full ImageNet trainings of 90
#   epochs; a quick run on a toy task at a few thousand images can land either way. What the
#   quick version shows reliably is the *method*: equal budgets, several seeds, spread next to
#   the mean.
# * **Short budgets can favour the plain network.** Every sigmoid gate starts near 0.5, so an
#   attention network begins by damping each residual branch, and must learn to open its gates
#   before they pay off. If the attention models trail in the quick version, that is one
#   likely reason, and a longer training (the full version) is the way to find out.
# * **Attention is not free in time.** The parameters and multiply-accumulates CBAM adds are
#   tiny (lesson 04), yet the training-time ratio above is well above what those counts
#   suggest. Lesson 07 explains why.
# * **Tiny networks starve the channel MLP.** At width 8 the first stage's MLP with $r = 16$ has
#   a hidden layer of `max(8 // 16, 1) = 1` unit. The full version's width 16 to 64 gives it 1
#   to 4. The paper's ResNet-50 has 16 to 128.

# %% [markdown]
# ## Pitfalls
#
# * **Comparing one run of each model.** The difference between two seeds of the *same* model
#   is often as large as the difference between models. Report mean and spread.
# * **Unequal budgets.** A model trained for more epochs, with a tuned learning rate, or for
#   longer wall-clock time wins for that reason alone. Here all three share every setting.
# * **Choosing the epoch by validation accuracy.** Taking each model's best epoch on the
#   validation set flatters all of them, the noisiest most. This lesson reports the last epoch.
# * **Reading noise as a result.** With three seeds, a gap of less than about two standard
#   deviations is what chance alone produces quite often.
#
# Next, lesson 06 opens up the trained networks and asks *where* they look.
