# %% [markdown]
# # 06 · Seeing attention
#
# A trained CBAM network computes two kinds of maps in every block: a weight per channel
# ("what") and a weight per position ("where"). This lesson opens the networks of lesson 05's
# stored runs, trained to their plateau, and looks at those maps. Then it asks a sharper
# question than "does it look right": every image of the task comes with a mask of its object,
# so one can *score* how much of a map falls on the object, compare CBAM's own spatial maps
# with Grad-CAM, a standard way to explain any network, and with maps that know no class, and
# do it for several seeds, with intervals. Last, a sanity check: do the maps change when the
# trained weights are replaced by random ones?

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
    blurred_masks,
    energy_share,
    gaussian_maps,
    painted_maps,
    pointing_game,
    randomized_copy,
    rescale_maps,
    resize_maps,
    top_down,
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
# Within 0.1 points: on another CPU, float rounding may flip an image or two of 2,000, so the
# accuracies printed are the stored ones this check has just matched.
print("every network scores what its stored run recorded:",
      all(abs(accuracy[key] - recorded[key]) <= 0.001 for key in models))
for variant in experiment.variants:
    values = [100 * recorded[variant, seed] for seed in SEEDS]
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

# %% [markdown]
# In numbers: for each channel, its mean weight on the images of each class, and the gap
# between the class where it is highest and the class where it is lowest.

# %%
gap = per_class.amax(0) - per_class.amin(0)  # per channel: highest class mean - lowest
print(f"the channel weights of the last block span {last_channel.min():.2f} to "
      f"{last_channel.max():.2f}")
for label, channel in (("most class-dependent", gap.argmax().item()),
                       ("median", gap.argsort()[len(gap) // 2].item())):
    means = per_class[:, channel]
    print(f"the {label} channel ({channel}) has a mean weight of {means.min():.2f} on "
          f"{SHAPES[means.argmin()]}s and {means.max():.2f} on {SHAPES[means.argmax()]}s: a gap "
          f"of {gap[channel]:.2f} of the 0-1 scale")

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
# The baseline and SE have no spatial maps of their own. Grad-CAM (Selvaraju et al., ICCV 2017)
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
# * **pointing game** (Zhang et al., ECCV 2016): does the map's highest point lie on the
#   object? (1 or 0; values tied for the top share the point, and values within 10⁻⁴ of the
#   map's range count as tied, so that float rounding, which differs between processors,
#   never picks the winner.)
# * **energy share**: which fraction of the map's total mass lies on the object?
#
# A sigmoid gate never reaches zero, so a raw spatial map has a floor spread over the whole
# image; each map is shifted and scaled to span [0, 1] before its energy is measured
# (`rescale_maps`), which scores its contrast rather than its floor. Grad-CAM maps already
# start at 0.
#
# One more detail for the pointing game on CBAM's maps: a sigmoid close to 1 has run out of
# float32 digits (every logit above about 17 gives exactly 1.0, and the logits just below
# merge into a few steps), so at the top of a saturated map the order of positions is lost.
# The pointing game therefore reads the gate's input, its logit
# (`record_attention(model, logits=True)`), which orders the positions as the sigmoid would
# with unlimited digits. The cell below finds where float32's sigmoid reaches 1.0 and counts
# how often it matters: the images whose top is shared by several positions (within the tie
# tolerance), in the sigmoid map and in its logit.


# %%
def spatial_maps(model):
    """Each CBAM block's spatial map and its logit, upsampled to the image: {stage: (N, H, W)}."""
    with torch.no_grad(), cbam.record_attention(model) as found:
        with cbam.record_attention(model, logits=True) as found_logits:
            model(images)
    return [{name.split(".")[0]: resize_maps(seen[name][0], masks.shape[-2:])
             for name in seen if name.endswith(".spatial")} for seen in (found, found_logits)]


def shared_top(m):
    """The share of images whose map's top is shared by several positions (pointing's ties)."""
    flat = m.flatten(1)
    peak, low = flat.amax(1, keepdim=True), flat.amin(1, keepdim=True)
    return ((flat >= peak - 1e-4 * (peak - low)).sum(1) > 1).float().mean().item()


steps_of_logit = torch.arange(0, 30, 0.01)
saturated = steps_of_logit[torch.sigmoid(steps_of_logit) == 1.0].min().item()
print(f"float32's sigmoid returns exactly 1.0 from a logit of about {saturated:.0f}")
gates, gate_logits = spatial_maps(models["cbam", SHOWN_SEED])
for stage in gates:
    print(f"{stage}: images whose top is shared, sigmoid map {100 * shared_top(gates[stage]):.0f} %"
          f", its logit {100 * shared_top(gate_logits[stage]):.0f} %")

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
# ## Maps that know no class
#
# A score means little without a baseline that could reach it for free. Three maps that know
# nothing about the object's class, scored like the others:
#
# * **uniform**: the same value everywhere; both scores equal the object's share of the image.
# * **centred Gaussian**: objects never touch the border, so the centre is a better guess than
#   anywhere. Its peak is the centre whatever its width, so its pointing score does not depend
#   on the width; its energy share does (printed for three widths; the table uses σ = 2).
# * **painted pixels**: the task paints its object *and* its clutter in the colours of one
#   palette (`cbam.data.PALETTE`) over a noisy grey background. A map that is 1 on every pixel
#   whose colour is a palette colour (`painted_maps`) knows where paint is, not which paint is
#   the object; among the painted pixels, its pointing game picks one at random.

# %%
painted = painted_maps(val_set.unnormalized())
clutter = painted.bool() & ~masks  # painted pixels off the object: the distractors
print("every object pixel is painted:", bool((painted.bool() | ~masks).all()))
area = 100 * masks.flatten(1).float().mean(1).mean().item()
print(f"pixels: object {area:.1f} %, clutter {100 * clutter.float().mean():.1f} %, "
      f"unpainted background {100 * (1 - painted.mean()):.1f} %")
for sigma in (1, 2, 4):
    gaussian = gaussian_maps(masks, sigma)
    print(f"centred Gaussian, sigma = {sigma} px: pointing "
          f"{100 * pointing_game(gaussian, masks).mean():.1f} %, energy share "
          f"{100 * energy_share(gaussian, masks).mean():.1f} %")

# %% [markdown]
# ## Every map, every seed
#
# The library's `energy_share` is the same function as yours; the scores below use it, with
# `pointing_game` beside it, for every kept seed. A map kind's score is then a mean over five
# seeds with a 95 % interval. The class-blind maps depend on the images alone, the same for
# every seed: one number each. The pointing game has 2,000 images of 0-or-1 scores and five
# seeds whose means spread over several points, so it is printed to the whole point; the energy
# share, which varies less between seeds, to a tenth.


# %%
def scores_of(maps_by_kind, logits_by_kind=None):
    """{kind: (pointing %, energy share %)}; pointing on the logits where they are given."""
    logits_by_kind = logits_by_kind or {}
    return {kind: (pointing_game(logits_by_kind.get(kind, m), masks).mean().item() * 100,
                   energy_share(rescale_maps(m), masks).mean().item() * 100)
            for kind, m in maps_by_kind.items()}


def kinds_of(models_of_seed, cams_of_seed):
    """Every map kind of one seed: CBAM's three spatial maps (and logits), Grad-CAM's four."""
    own, own_logits = spatial_maps(models_of_seed["cbam"])
    kinds = {f"CBAM spatial, {stage}": m for stage, m in own.items()}
    logits = {f"CBAM spatial, {stage}": m for stage, m in own_logits.items()}
    kinds |= {f"Grad-CAM, {variant}": cams_of_seed[variant] for variant in cams_of_seed}
    return kinds, logits


per_seed = {}
for seed in SEEDS:
    kinds, logits = kinds_of({v: models[v, seed] for v in experiment.variants},
                             {v: cams[v, seed] for v in experiment.variants})
    per_seed[seed] = scores_of(kinds, logits)
baselines = scores_of({"uniform": uniform_maps(masks), "centred Gaussian": gaussian_maps(masks, 2),
                       "painted pixels": painted})
strongest = [max(baselines, key=lambda b: baselines[b][i]) for i in (0, 1)]
print(f"{'map':>24}  {'pointing game, % [95% CI]':>26}  {'energy share, % [95% CI]':>26}")
for kind, (pointing, energy) in baselines.items():
    print(f"{kind:>24}  {pointing:8.0f}                  {energy:8.1f}")
table = {}
for kind in per_seed[SEEDS[0]]:
    pointing = experiments.mean_interval([per_seed[s][kind][0] for s in SEEDS])
    energy = experiments.mean_interval([per_seed[s][kind][1] for s in SEEDS])
    table[kind] = (pointing, energy)
    print(f"{kind:>24}  {pointing.mean:8.0f} [{pointing.low:4.0f}, {pointing.high:4.0f}]"
          f"        {energy.mean:8.1f} [{energy.low:5.1f}, {energy.high:5.1f}]")
print(f"the strongest class-blind map: {strongest[0]} (pointing), {strongest[1]} (energy)")

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(9, 3.6))
kinds = list(table)
xs = torch.arange(len(kinds), dtype=torch.float32)
for offset, index, label in ((-0.2, 0, "pointing game"), (0.2, 1, "energy share")):
    means = [table[k][index].mean for k in kinds]
    errors = [[table[k][index].mean - table[k][index].low for k in kinds],
              [table[k][index].high - table[k][index].mean for k in kinds]]
    ax.bar(xs + offset, means, width=0.4, yerr=errors, capsize=3, label=label)
ax.axhline(baselines["uniform"][0], color="black", linestyle=":", linewidth=1,
           label="uniform map")
ax.axhline(baselines[strongest[0]][0], color="black", linestyle="--", linewidth=1,
           label=f"{strongest[0]} (class-blind)")
ax.set_xticks(xs.tolist(), kinds, rotation=25, ha="right")
ax.set(ylabel="%", title=f"how much of each map lands on the object (seeds {SEEDS[0]}-{SEEDS[-1]})")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# What the numbers say, in words computed from them, by lesson 05's rule: a map kind differs
# from a class-blind map when the difference (map minus class-blind map, seed by seed) stays
# significant at 5 % after Holm's correction over every comparison of this table (each map kind,
# each score). The class-blind map is the same for every seed, so the difference's interval is
# the map's own interval moved by a constant. Each score is held against the strongest
# class-blind map for that score.


# %%
from cbam.experiments import holm
from cbam.experiments.stats import Interval


def against(interval, line):
    """The interval of (map minus a constant line), with the map's seeds."""
    return Interval(interval.mean - line, interval.low - line, interval.high - line, interval.n)


lines = (baselines[strongest[0]][0], baselines[strongest[1]][1])
differences = {(kind, score): against(table[kind][score], lines[score])
               for kind in table for score in (0, 1)}
corrected = dict(zip(differences, holm([d.p_value for d in differences.values()]), strict=True))


def verdict(kind, score):
    if corrected[kind, score] >= 0.05:
        return "not shown to differ"
    return "above" if differences[kind, score].mean > 0 else "below"


print(f"{len(differences)} comparisons, corrected together")
for kind, (pointing, energy) in table.items():
    print(f"{kind:>24}: pointing {verdict(kind, 0)} ({pointing.mean:.0f} vs {lines[0]:.0f}"
          f" %), energy share {verdict(kind, 1)} ({energy.mean:.1f} vs {lines[1]:.1f} %)")
best = max(table, key=lambda k: table[k][0].mean)
print(f"highest pointing score: {best}")

# %% [markdown]
# ## Why pointing and energy share disagree
#
# CBAM's first-stage map wins the pointing game by far and yet puts little more of its mass on
# the object than a uniform map does. The two scores ask different questions: the pointing game
# looks at one pixel, the map's highest; the energy share at all of them. Split each image into
# three regions, the object, the clutter (painted pixels off the object) and the unpainted
# background, and ask for every map where its peak falls and where its mass falls, beside the
# region's share of the pixels (means over the five seeds; pointing on the logits for CBAM's
# maps, as above).


# %%
regions = {"object": masks, "clutter": clutter, "background": ~painted.bool()}
pixels = {name: 100 * region.float().mean().item() for name, region in regions.items()}
where = {}
for seed in SEEDS:
    kinds, logits = kinds_of({v: models[v, seed] for v in experiment.variants},
                             {v: cams[v, seed] for v in experiment.variants})
    for kind, m in kinds.items():
        peak = {n: pointing_game(logits.get(kind, m), r).mean().item() for n, r in regions.items()}
        mass = {n: energy_share(rescale_maps(m), r).mean().item() for n, r in regions.items()}
        floor = rescale_maps(m)[~painted.bool()].mean().item()
        where.setdefault(kind, []).append((peak, mass, floor))
print(f"{'':>24}  {'peak on: object clutter backgr.':>31}  {'mass on: object clutter backgr.':>31}"
      f"  background's mean")
print(f"{'(share of the pixels)':>24}  {'':>8}" + "".join(f"{pixels[n]:8.1f}" for n in regions)
      + f"  {'':>8}" + "".join(f"{pixels[n]:8.1f}" for n in regions))
for kind, rows in where.items():
    peak = [100 * sum(r[0][n] for r in rows) / len(rows) for n in regions]
    mass = [100 * sum(r[1][n] for r in rows) / len(rows) for n in regions]
    floor = sum(r[2] for r in rows) / len(rows)
    print(f"{kind:>24}  {'':>8}" + "".join(f"{v:8.0f}" for v in peak)
          + f"  {'':>8}" + "".join(f"{v:8.1f}" for v in mass) + f"  {floor:10.2f}")

# %% [markdown]
# Read the first row: the first stage's map has its highest point on the object in most
# images, but after rescaling to [0, 1] its unpainted background still sits at the mean value
# printed in the last column, far above 0. The background covers most of the image, so it holds
# most of the mass, and the object, a few percent of the pixels, gets a mass share only a little
# above its pixel share. A sharp peak on a high plateau wins the pointing game and loses the
# energy share. Grad-CAM leans the other way: its background sits lower (last column), so a
# larger share of its mass lands on the object, a larger energy share than any CBAM map's,
# while its peak, blurred up from 4 × 4, lands on the object less often than the first-stage
# map's.
#
# Two of the pitfalls below can be computed too. **The floor**: scored raw, without
# `rescale_maps`, the sigmoid maps' energy shares drop towards the object's pixel share.
# **Resolution**: the object's own mask, averaged to a coarse map's grid and upsampled the
# same way (`blurred_masks`), is the sharpest map that grid can draw; its energy share is what
# blur alone leaves.

# %%
raw = {stage: [] for stage in gates}
for seed in SEEDS:
    for stage, m in spatial_maps(models["cbam", seed])[0].items():
        raw[stage].append(100 * energy_share(m, masks).mean().item())
for stage, values in raw.items():
    print(f"CBAM spatial, {stage}: energy share raw {sum(values) / len(values):.1f} %, rescaled "
          f"{table[f'CBAM spatial, {stage}'][1].mean:.1f} %, the object's pixel share {area:.1f} %")
for stage in gates:
    grid = tuple(maps[f"{stage}.0.attention.spatial"].shape[-2:])
    blurred = blurred_masks(masks, grid)
    print(f"the object itself seen on a {grid[0]} x {grid[1]} grid ({stage}): pointing "
          f"{100 * pointing_game(blurred, masks).mean():.0f} %, energy share "
          f"{100 * energy_share(blurred, masks).mean():.1f} %")

# %% [markdown]
# ## A sanity check: maps of random weights
#
# A map that explains the trained network should change when the training is undone.
# Adebayo et al. ("Sanity Checks for Saliency Maps", NeurIPS 2018) replace a network's weights
# by random ones, either all at once or *cascading* from the output back, layer by layer, and
# score the maps again: a method whose maps barely change is reading the image (edges,
# colour), not what the network learned.
#
# Here the random weights are those a run starts from, drawn with `experiments.build_model`
# for seeds the stored runs did not use (100 to 104), batch-norm statistics included;
# `randomized_copy(model, fresh, names)` swaps them in for the named modules, `top_down(model)`
# names the modules from the output back. First every map kind with all weights random, scored
# as before, with the interval of the paired difference (trained minus random, seed by seed).

# %%
RANDOM_SEEDS = {seed: 100 + seed for seed in SEEDS}
fresh = {(variant, seed): experiments.build_model(experiment, variant, RANDOM_SEEDS[seed],
                                                  settings, num_classes).eval()
         for variant in experiment.variants for seed in SEEDS}
cascade = top_down(models["cbam", SEEDS[0]])  # fc, layer3, layer2, layer1, bn1, conv1
stem = ["bn1", "conv1"]  # the first convolution and its batch norm, randomised together
groups = [[name] for name in cascade if name not in stem] + [stem]
steps = [sum(groups[: i + 1], []) for i in range(len(groups))]
stepped = {}  # (step, seed) -> {kind: (pointing, energy)}, the CBAM network randomised top-down
random_scores = {}
for seed in SEEDS:
    for i, names in enumerate(steps):
        last = i == len(steps) - 1
        variants = experiment.variants if last else ("cbam",)
        randomized = {v: randomized_copy(models[v, seed], fresh[v, seed], names) for v in variants}
        random_cams = {v: grad_cam(m, images, "layer3", target=labels)
                       for v, m in randomized.items()}
        kinds, logits = kinds_of(randomized, random_cams)
        scored = scores_of(kinds, logits)
        stepped[i, seed] = {k: v for k, v in scored.items()
                            if k.startswith("CBAM") or k == "Grad-CAM, cbam"}
        if last:
            random_scores[seed] = scored
trained_weights = models["cbam", SEEDS[0]].state_dict()
random_weights = randomized_copy(models["cbam", SEEDS[0]], fresh["cbam", SEEDS[0]],
                                 cascade).state_dict()
floats = [k for k, v in trained_weights.items() if v.is_floating_point()]
differ = sum(not torch.equal(trained_weights[k], random_weights[k]) for k in floats)
print(f"all weights random: {differ} of {len(floats)} weight tensors (batch-norm statistics "
      "included) differ from the trained network's")
print(f"{'map':>24}  {'pointing: random':>16}  {'trained - random':>17}  "
      f"{'energy: random':>14}  {'trained - random':>17}")
sanity = {}
for kind in table:
    rows = []
    for index in (0, 1):
        random_mean = sum(random_scores[s][kind][index] for s in SEEDS) / len(SEEDS)
        drop = experiments.mean_interval([per_seed[s][kind][index] - random_scores[s][kind][index]
                                          for s in SEEDS])
        rows.append((random_mean, drop))
    sanity[kind] = rows
    (p_random, p_drop), (e_random, e_drop) = rows
    print(f"{kind:>24}  {p_random:16.0f}  {p_drop.mean:5.0f} [{p_drop.low:3.0f}, "
          f"{p_drop.high:3.0f}]  {e_random:14.1f}  {e_drop.mean:5.1f} [{e_drop.low:4.1f}, "
          f"{e_drop.high:4.1f}]")

# %% [markdown]
# Then the cascade, on the CBAM network: the weights of the modules named are random, those
# below them still trained (means over the five seeds). A map can only change once the
# randomisation reaches the modules that compute it: CBAM's first-stage map depends on the
# stem and `layer1` alone; Grad-CAM at `layer3` depends on everything, the classifier included.

# %%
kinds = list(stepped[0, SEEDS[0]])
print(f"{'random from the top to':>22}  " + "".join(f"{k.split(', ')[-1]:>10}" for k in kinds)
      + "   (pointing, %)")
print(f"{'(trained)':>22}  " + "".join(f"{table[k][0].mean:10.0f}" for k in kinds))
for i, group in enumerate(groups):
    means = [sum(stepped[i, s][k][0] for s in SEEDS) / len(SEEDS) for k in kinds]
    print(f"{' and '.join(group):>22}  " + "".join(f"{v:10.0f}" for v in means))
print("(columns: CBAM's spatial maps of layer1-3, Grad-CAM of the CBAM network)")

# %% [markdown]
# The verdicts, by the same rule, score by score, corrected together: a score reads the trained
# weights when it falls once they are randomised, i.e. when trained minus random is significantly
# above 0; where it is not shown to change, that score does not show the method reading the
# trained weights.

# %%
drops = {(kind, score): rows[score][1] for kind, rows in sanity.items() for score in (0, 1)}
drop_corrected = dict(zip(drops, holm([d.p_value for d in drops.values()]), strict=True))


def sanity_verdict(kind, score):
    if drop_corrected[kind, score] >= 0.05:
        return "not shown to change (not reading the trained weights)"
    if drops[kind, score].mean > 0:
        return "falls (reads the trained weights)"
    return "rises (not from the training)"


print(f"{len(drops)} comparisons, corrected together")
for kind in sanity:
    print(f"{kind:>24}: pointing {sanity_verdict(kind, 0)}; "
          f"energy share {sanity_verdict(kind, 1)}")

# %% [markdown]
# How to read it:
#
# * **Against the strongest class-blind map.** The painted-pixel map needs no network: it knows
#   where paint is. A map kind whose verdict above is not "above" has not been shown to find
#   the object any better than that; only the kinds marked "above" locate the object itself.
# * **Grad-CAM of the true class** asks where the evidence for the object's class lies. Each
#   variant's row can be compared with the others the same way, interval against interval.
# * **CBAM's spatial maps were never trained to localise.** Nothing in the loss asks for it;
#   they are whatever reweighting helped classification. The peak-and-mass table shows what
#   they became: a peak that lands on the object more often than chance, over a high floor
#   spread across the whole image.
# * **The sanity check** says whether a score comes from the trained weights at all: the
#   verdicts above name each method that passes it and each that does not.
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
#   low weight can still decide the class through the residual path that bypasses the gate
#   (each block adds its gated branch to an ungated shortcut). Jain and Wallace ("Attention is
#   not Explanation", NAACL 2019) make the same point for attention over words. Treat the maps
#   as one more internal signal, not as the network's reasons.
# * **Explaining networks that never learned the task.** Maps of a network at chance say
#   nothing about attention; check the accuracy first (here, the stored runs' plateau).
# * **Explaining the predicted class.** For every image a network gets wrong, its map explains
#   the wrong class. Ask for the true class when the question is about the object.
# * **Judging maps by eye.** A handful of hand-picked images can show anything. Score every
#   image against ground truth, over several trained networks; call a score higher only when
#   its interval clears the baseline.
# * **A baseline too weak.** A uniform map is the easiest line to clear. Here the painted
#   pixels, which a map can find from colour alone, set a far higher one; look for the
#   strongest map that knows no class before calling a map good.
# * **Skipping the sanity check.** A method can draw convincing maps from the image alone
#   (Adebayo et al., NeurIPS 2018); score it again with random weights.
# * **One score.** The pointing game rewards one peak, the energy share the whole mass; a map
#   can win one and lose the other, as CBAM's first-stage map does above.
# * **Forgetting the floor.** Sigmoid maps live in (0, 1), often far from 0. A colour scale
#   stretched per panel hides it; raw energy shares of such maps fall towards the object's
#   pixel share (computed above).
# * **Coarse maps lose points for resolution alone.** A 4 × 4 map upsampled to 16 × 16 blurs
#   over the object's border, which costs energy share even when it is centred on the object:
#   the object's own mask, drawn on a 4 × 4 grid, is computed above.
# * **Trusting the last digit.** The pointing game's mean moves with a single image; float
#   rounding that differs between processors can break a tie in a map. Count near-ties as ties
#   and print no more digits than the seeds support.
# * **Leaving hooks behind.** A forgotten forward hook keeps running (and holding tensors) in
#   every later call; `record_attention` and `grad_cam` remove theirs, even after an error.
