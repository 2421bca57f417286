# %% [markdown]
# # 06 · Seeing attention
#
# A trained CBAM network computes two kinds of maps in every block: a weight per channel
# ("what") and a weight per position ("where"). This lesson opens the networks of lesson 05's
# stored runs, trained to their plateau, and looks at those maps. Then it asks a sharper
# question than "does it look right": every image of the task comes with a mask of its object,
# so one can *score* how much of a map falls on the object, compare CBAM's own spatial maps
# with Grad-CAM, a standard way to explain any network, and with a map that knows nothing, and
# do it for several seeds, with intervals.

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import cbam
from cbam import experiments
from cbam.data import SHAPES
from cbam.experiments.runner import datasets
from cbam.gradcam import grad_cam
from cbam.localization import (
    energy_share,
    pointing_game,
    rescale_maps,
    resize_maps,
    uniform_maps,
)
from cbam.train import evaluate

_ = torch.manual_seed(0)  # the one seed of this lesson (nothing below draws random numbers)
torch.set_num_threads(1)  # small networks: one thread is about as fast, and steadier
SEEDS = (0, 1, 2, 3, 4)  # the seeds whose trained networks the stored run kept
SHOWN_SEED = 0  # the seed whose maps are drawn

# %% [markdown]
# ## The trained networks
#
# `cbam-course experiment attention` kept the trained weights of seeds 0 to 4 of every variant
# (`experiments.load_model_state`). Rebuilt with `experiments.build_model` and loaded, each
# should score on the validation images what its stored run recorded: a check that these
# are the networks the numbers of lesson 05 came from. Everything below runs in the quick
# version and the full one alike: the maps need the task's object masks, and the stored
# networks were trained on it.

# %%
experiment = experiments.get_experiment("attention")
settings = experiments.QUICK
_, val_set, _, num_classes = datasets(settings)
stored = experiments.load("attention")
models = {}
for variant in experiment.variants:
    for seed in SEEDS:
        model = experiments.build_model(experiment, variant, seed, settings, num_classes)
        model.load_state_dict(experiments.load_model_state("attention", variant, seed))
        models[variant, seed] = model.eval()

val_loader = torch.utils.data.DataLoader(val_set, batch_size=settings.batch_size)
recorded = {(r["variant"], r["seed"]): r["final_val_acc"] for r in stored["runs"]}
accuracy = {key: evaluate(model, val_loader)[1] for key, model in models.items()}
# Within 0.1 points: on another CPU, float rounding may flip an image or two of 2,000.
print("every network scores what its stored run recorded:",
      all(abs(accuracy[key] - recorded[key]) <= 0.001 for key in models))
for variant in experiment.variants:
    values = [100 * accuracy[variant, seed] for seed in SEEDS]
    print(f"{variant:>8}: validation accuracy over seeds {SEEDS[0]}-{SEEDS[-1]}: "
          + ", ".join(f"{v:.1f}" for v in values))

# %% [markdown]
# The maps below are read from the validation images, which no network saw during training.

# %%
images, labels, masks = val_set.images, val_set.labels, val_set.masks
print("validation images:", tuple(images.shape), " masks:", tuple(masks.shape))

# %% [markdown]
# ## Reading the maps out: `cbam.record_attention`
#
# Every attention module in the library applies its map through a `gate` submodule (the
# sigmoid), so a forward hook on the gate sees the map itself. `cbam.record_attention(model)`
# installs such hooks for the length of a `with` block and collects what they see, by module
# name; the network computes exactly what it computes without them.


# %%
def attention_maps(model):
    with torch.no_grad(), cbam.record_attention(model) as found:
        model(images)
    return {name: maps[0] for name, maps in found.items()}


maps = attention_maps(models["cbam", SHOWN_SEED])
channel_names = [name for name in maps if name.endswith(".channel")]
spatial_names = [name for name in maps if name.endswith(".spatial")]
print("blocks with a channel and a spatial map:", len(channel_names), len(spatial_names))
print("spatial map sizes, stage by stage:", [tuple(maps[n].shape[-2:]) for n in spatial_names])

# %% [markdown]
# ## What: channel weights
#
# A channel map is one weight in (0, 1) per channel and image. If channel attention does its
# job, the weights depend on the image: a channel that responds to crosses should be turned up
# for crosses and down for discs. Averaging the last block's weights over the images of each
# class shows whether they do, on the full 0–1 scale of a sigmoid.

# %% tags=["nbval-ignore-output"]
last_channel = maps[channel_names[-1]][:, :, 0, 0]  # (N, C)
per_class = torch.stack([last_channel[labels == k].mean(0) for k in range(len(SHAPES))])
order = per_class.std(0).argsort(descending=True)  # the most class-dependent channels first
fig, ax = plt.subplots(figsize=(10, 2.4))
shown = ax.imshow(per_class[:, order], aspect="auto", cmap="viridis", vmin=0, vmax=1)
ax.set(yticks=range(len(SHAPES)), yticklabels=SHAPES, xlabel="channel (sorted by spread)",
       title=f"mean channel weight per class: {channel_names[-1]}")
fig.colorbar(shown, ax=ax)
plt.show()

# %%
spread = per_class.std(0)
print(f"the channel weights of the last block span {last_channel.min():.2f}..."
      f"{last_channel.max():.2f}; across classes a channel's mean weight differs by up to "
      f"{spread.max():.2f} (sd), by {spread.median():.2f} for the median channel")

# %% [markdown]
# ## Where: spatial maps
#
# A spatial map is one weight per position, at the resolution of its block: 16 × 16 in the first
# stage, 8 × 8 in the second, 4 × 4 in the third. Below, for a few validation images, each
# stage's map with the object's outline in white. Every panel uses the same fixed scale, 0 to 1:
# a sigmoid map never reaches 0, and a colour scale stretched to each panel's own range would
# hide how high its floor sits.

# %% tags=["nbval-ignore-output"]
picked = list(range(6))
fig, axes = plt.subplots(len(picked), 1 + len(spatial_names), figsize=(7, 1.6 * len(picked)))
for row, i in enumerate(picked):
    axes[row, 0].imshow(val_set.unnormalized(images[i]).permute(1, 2, 0))
    axes[row, 0].set_ylabel(SHAPES[labels[i]])
    for col, name in enumerate(spatial_names, start=1):
        full = resize_maps(maps[name][i : i + 1], masks.shape[-2:])[0]
        shown = axes[row, col].imshow(full, cmap="magma", vmin=0, vmax=1)
        axes[row, col].contour(masks[i], levels=[0.5], colors="white", linewidths=0.8)
        if row == 0:
            axes[row, col].set_title(name.split(".")[0], fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(shown, ax=axes[:, 1:], shrink=0.6)
plt.show()

# %%
for name in spatial_names:
    m = maps[name]
    print(f"{name.split('.')[0]}: spatial weights from {m.min():.2f} to {m.max():.2f}, "
          f"mean {m.mean():.2f}")

# %% [markdown]
# ## Grad-CAM: explaining any network
#
# The baseline and SE have no spatial maps of their own. Grad-CAM (Selvaraju et al., 2017)
# gives any convolutional classifier one. Take a layer's activations $A \in \mathbb{R}^{K
# \times h \times w}$ and the score $y^c$ of a class $c$. Each channel's importance is the
# average gradient of the score over positions, and the map is the weighted sum of the
# channels, keeping only positive evidence:
#
# $$
# \alpha_k^c = \frac{1}{hw} \sum_{i,j} \frac{\partial y^c}{\partial A_{k,ij}}, \qquad
# L^c = \operatorname{ReLU}\Big(\sum_k \alpha_k^c A_k\Big).
# $$
#
# `cbam.gradcam.grad_cam` catches $A$ with a forward hook on the layer and its gradient with a
# hook on that tensor, removes both before returning, and upsamples $L^c$ to the image. Here
# the layer is each network's last stage (`layer3`, 4 × 4 positions) and $c$ is the **true**
# class of each image: the question is where the evidence *for the object's class* lies. (With
# the predicted class, the maps of the images a network gets wrong would explain a wrong
# class.)

# %%
cams = {key: grad_cam(model, images, "layer3", target=labels) for key, model in models.items()}
print("Grad-CAM maps:", tuple(cams["cbam", SHOWN_SEED].shape), " values in [0, 1]:",
      all(cam.min() >= 0 and cam.max() <= 1 for cam in cams.values()))
print("hooks left behind:", sum(len(m._forward_hooks) for model in models.values()
                                for m in model.modules()))

# %% [markdown]
# ## Scoring maps against the masks
#
# Two scores per image, averaged over the validation set (`cbam.localization`):
#
# * **pointing game**: does the map's highest point lie on the object? (1 or 0; ties are shared)
# * **energy share**: which fraction of the map's total mass lies on the object?
#
# A sigmoid gate never reaches zero, so a raw spatial map has a floor spread over the whole
# image; each map is shifted and scaled to span [0, 1] before its energy is measured
# (`rescale_maps`), which scores its contrast rather than its floor. Grad-CAM maps already
# start at 0.
#
# And the baseline that keeps everyone honest: a **uniform** map, which scores the object's
# share of the image on both counts.

# %% [markdown]
# ### Exercise `energy-share`
#
# Write `my_energy_share(maps, masks)`: `maps` is an (N, H, W) float tensor of non-negative
# values, `masks` an (N, H, W) boolean tensor, True on the object. Return an (N,) tensor with,
# for each image, the map's mass on the object divided by its total mass,
# $\sum_{ij} m_{ij} [\text{mask}_{ij}] / \sum_{ij} m_{ij}$. A map of zeros has no mass to
# share; score it like a uniform map, i.e. the object's share of the image. The check compares
# your function with `cbam.localization.energy_share` on random maps and on maps whose answer
# is known (1 on the object, 0 off it, uniform).

# %% tags=["exercise"] exercise="energy-share"
def my_energy_share(maps, masks):
    ### BEGIN SOLUTION
    total = maps.flatten(1).sum(1)
    inside = (maps * masks).flatten(1).sum(1)
    area = masks.flatten(1).float().mean(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-30), area)
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="energy-share"
from cbam.checks.localization import check_energy_share

check_energy_share(my_energy_share)

# %% [markdown]
# The library's `energy_share` is the same function; the scores below use it, with
# `pointing_game` beside it, for every kept seed. A map kind's score is then a mean over five
# seeds with a 95 % interval, and the uniform map's score, which depends on the masks alone, is
# the line to clear.


# %%
def scores_of(maps_by_kind):
    return {kind: (pointing_game(m, masks).mean().item() * 100,
                   energy_share(rescale_maps(m), masks).mean().item() * 100)
            for kind, m in maps_by_kind.items()}


per_seed = {}
for seed in SEEDS:
    own = attention_maps(models["cbam", seed])
    kinds = {f"CBAM spatial, {name.split('.')[0]}": resize_maps(own[name], masks.shape[-2:])
             for name in spatial_names}
    kinds |= {f"Grad-CAM, {variant}": cams[variant, seed] for variant in experiment.variants}
    per_seed[seed] = scores_of(kinds)
uniform = scores_of({"uniform": uniform_maps(masks)})["uniform"]
area = 100 * masks.flatten(1).float().mean(1).mean().item()
print(f"the objects cover {area:.1f} % of an image on average; the uniform map scores "
      f"{uniform[0]:.1f} % (pointing) and {uniform[1]:.1f} % (energy)")

# %%
table = {}
print(f"{'map':>24}  {'pointing game, % [95% CI]':>26}  {'energy share, % [95% CI]':>26}")
for kind in per_seed[SEEDS[0]]:
    pointing = experiments.mean_interval([per_seed[s][kind][0] for s in SEEDS])
    energy = experiments.mean_interval([per_seed[s][kind][1] for s in SEEDS])
    table[kind] = (pointing, energy)
    print(f"{kind:>24}  {pointing.mean:8.1f} [{pointing.low:5.1f}, {pointing.high:5.1f}]"
          f"        {energy.mean:8.1f} [{energy.low:5.1f}, {energy.high:5.1f}]")

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(9, 3.6))
kinds = list(table)
xs = torch.arange(len(kinds), dtype=torch.float32)
for offset, index, label in ((-0.2, 0, "pointing game"), (0.2, 1, "energy share")):
    means = [table[k][index].mean for k in kinds]
    errors = [[table[k][index].mean - table[k][index].low for k in kinds],
              [table[k][index].high - table[k][index].mean for k in kinds]]
    ax.bar(xs + offset, means, width=0.4, yerr=errors, capsize=3, label=label)
ax.axhline(uniform[0], color="black", linestyle=":", linewidth=1, label="uniform map")
ax.set_xticks(xs.tolist(), kinds, rotation=25, ha="right")
ax.set(ylabel="%", title=f"how much of each map lands on the object (seeds {SEEDS[0]}-{SEEDS[-1]})")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# What the numbers say, in words computed from them: a map kind *points at the object* when the
# whole 95 % interval of its pointing score lies above the uniform map's score, the same rule as
# lesson 05's.

# %%
for kind, (pointing, _energy) in table.items():
    above = pointing.low > uniform[0]
    below = pointing.high < uniform[0]
    verdict = "above the uniform map" if above else ("below it" if below else "not shown to differ")
    print(f"{kind:>24}: pointing {pointing.mean:.1f} % vs uniform {uniform[0]:.1f} %: {verdict}")
best = max(table, key=lambda k: table[k][0].mean)
print(f"highest pointing score: {best}")

# %% [markdown]
# How to read it:
#
# * **Grad-CAM of the true class** asks where the evidence for the object's class lies. Each
#   variant's row says how often its highest point falls on the object, against the uniform
#   map's line; the rows of different variants can be compared the same way, interval against
#   interval.
# * **CBAM's spatial maps were never trained to localise.** Nothing in the loss asks for it;
#   they are whatever reweighting helped classification. A map can suppress clutter, highlight
#   the object, or respond to every edge; which one happened here is what the rows above
#   measure, stage by stage, and the printed ranges of each stage's weights show how much of
#   the (0, 1) scale each stage uses.
# * **Coarse maps lose points for resolution alone.** Layer 3's maps (both CBAM's and
#   Grad-CAM's) have 4 × 4 positions, upsampled to 16 × 16: they blur over the object's border,
#   which costs energy share even when they are centred on it.
# * **Five seeds, one task.** The intervals are over five trained networks per variant; they
#   say how stable a score is across training runs, not how it would look on another task.

# %% [markdown]
# ## Explore
#
# Pick a validation image and a CBAM block: the image with the object's outline, the block's
# spatial map, and Grad-CAM (true class) of each of the four networks of the shown seed, all on
# the same 0–1 scale.

# %% tags=["nbval-ignore-output"]
from cbam.widgets.base import figure_png, new_figure

index_slider = widgets.IntSlider(0, 0, len(val_set) - 1, description="image")
block_menu = widgets.Dropdown(options=spatial_names, value=spatial_names[-1], description="block")
picture = widgets.Image(format="png")


def show(_change=None):
    i, block = index_slider.value, block_menu.value
    fig = new_figure(12, 2.6)
    axes = fig.subplots(1, 2 + len(experiment.variants))
    axes[0].imshow(val_set.unnormalized(images[i]).permute(1, 2, 0))
    axes[0].set_title(SHAPES[labels[i]])
    panels = [(f"CBAM {block}", resize_maps(maps[block][i : i + 1], masks.shape[-2:])[0])]
    panels += [(f"Grad-CAM {v}", cams[v, SHOWN_SEED][i]) for v in experiment.variants]
    for ax, (title, panel) in zip(axes[1:], panels, strict=True):
        ax.imshow(panel, cmap="magma", vmin=0, vmax=1)
        ax.contour(masks[i], levels=[0.5], colors="white", linewidths=0.8)
        ax.set_title(title, fontsize=8)
    for ax in axes:
        ax.axis("off")
    picture.value = figure_png(fig)


index_slider.observe(show, names="value")
block_menu.observe(show, names="value")
show()
widgets.VBox([widgets.HBox([index_slider, block_menu]), picture])

# %% [markdown]
# ## Pitfalls
#
# * **Attention is not explanation.** A spatial gate multiplies features; a position with a
#   low weight can still decide the class through the residual path that bypasses the gate.
#   Treat the maps as one more internal signal, not as the network's reasons.
# * **Explaining networks that never learned the task.** Maps of a network at chance say
#   nothing about attention; check the accuracy first (here, the stored runs' plateau).
# * **Explaining the predicted class.** For every image a network gets wrong, its map explains
#   the wrong class. Ask for the true class when the question is about the object.
# * **Judging maps by eye.** A handful of hand-picked images can show anything. Score every
#   image against ground truth, over several trained networks, next to a baseline that knows
#   nothing; call a score higher only when its interval clears the baseline.
# * **Forgetting the floor.** Sigmoid maps live in (0, 1), often far from 0. A colour scale
#   stretched per panel hides it; raw energy shares of such maps hover near the object's area.
# * **Leaving hooks behind.** A forgotten forward hook keeps running (and holding tensors) in
#   every later call; `record_attention` and `grad_cam` remove theirs, even after an error.
