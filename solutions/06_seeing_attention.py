# %% [markdown]
# # 06 · Seeing attention
#
# A trained CBAM network computes two kinds of maps in every block: a weight per channel
# ("what") and a weight per position ("where"). This lesson trains the three networks of
# lesson 05 once more, opens them up, and looks at those maps. Then it asks a sharper
# question than "does it look right": on the synthetic task every image comes with a mask of
# the object, so one can *score* how much of a map falls on the object, and compare CBAM's
# own spatial maps with Grad-CAM, a standard way to explain any network, and with a map that
# knows nothing.

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import cbam
from cbam.data import SHAPES, make_loaders, synthetic_splits
from cbam.device import QUICK, pick_device
from cbam.gradcam import grad_cam
from cbam.localization import (
    energy_share,
    pointing_game,
    rescale_maps,
    resize_maps,
    uniform_maps,
)
from cbam.resnet import resnet_cifar
from cbam.train import train_model

_ = torch.manual_seed(0)  # the one seed of this lesson: data, initial weights, batch order
SEED = 0
DEVICE = pick_device()

# The synthetic task in both versions: only it has object masks. The full version (GPU) trains
# a larger network on more data for longer.
if QUICK:
    SETTINGS = dict(n_train=1500, n_val=400, epochs=5, batch_size=32, lr=0.1, depth=8, width=8)
else:
    SETTINGS = dict(n_train=20_000, n_val=2_000, epochs=20, batch_size=128, lr=0.1, depth=20,
                    width=16)
if DEVICE.type == "cpu":
    torch.set_num_threads(1)  # tiny networks: one thread is about as fast, and steadier (lesson 05)

# %% [markdown]
# ## Three trained networks
#
# The same comparison as in lesson 05, one seed each: a plain CIFAR ResNet, one with SE in every
# block and one with CBAM.

# %% tags=["nbval-ignore-output"]
train_set, val_set = synthetic_splits(SETTINGS["n_train"], SETTINGS["n_val"], seed=SEED)
train_loader, val_loader = make_loaders(train_set, val_set, SETTINGS["batch_size"])
MODELS = {"baseline": None, "SE": "se", "CBAM": "cbam"}
models, histories = {}, {}
for name, attention in MODELS.items():
    models[name], histories[name] = train_model(
        lambda attention=attention: resnet_cifar(SETTINGS["depth"], len(SHAPES),
                                                 attention=attention, width=SETTINGS["width"]),
        train_loader, val_loader, seed=SEED, device=DEVICE,
        epochs=SETTINGS["epochs"], lr=SETTINGS["lr"],
    )
    models[name].eval()
    print(f"{name:>8}: validation accuracy {100 * histories[name].val_acc[-1]:.1f} %")

# %% [markdown]
# The maps below are read from the validation images, which no network saw during training.

# %%
images = val_set.images.to(DEVICE)
labels, masks = val_set.labels, val_set.masks
print("validation images:", tuple(images.shape[1:]), "masks:", tuple(masks.shape[1:]))

# %% [markdown]
# ## Reading the maps out: `cbam.record_attention`
#
# Every attention module in the library applies its map through a `gate` submodule (the
# sigmoid), so a forward hook on the gate sees the map itself. `cbam.record_attention(model)`
# installs such hooks for the length of a `with` block and collects what they see, by module
# name; the network computes exactly what it computes without them.

# %%
cbam_model = models["CBAM"]
with torch.no_grad(), cbam.record_attention(cbam_model) as recorded:
    cbam_model(images)
maps = {name: found[0].cpu() for name, found in recorded.items()}
channel_names = [name for name in maps if name.endswith(".channel")]
spatial_names = [name for name in maps if name.endswith(".spatial")]
print("one channel map and one spatial map per block:", len(channel_names) == len(spatial_names))
print("spatial map sizes, first and last block:",
      tuple(maps[spatial_names[0]].shape[-2:]), tuple(maps[spatial_names[-1]].shape[-2:]))

# %% [markdown]
# ## What: channel weights
#
# A channel map is one weight in (0, 1) per channel and image. If channel attention does its
# job, the weights depend on the image: a channel that responds to crosses should be turned up
# for crosses and down for discs. Averaging the last block's weights over the images of each
# class shows whether they do.

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
print(f"spread of a channel's weight across classes: up to {per_class.std(0).max():.2f}")

# %% [markdown]
# ## Where: spatial maps
#
# A spatial map is one weight per position, at the resolution of its block: full size in the
# first stage, halved in the second, quartered in the third. Below, for a few validation
# images, the last block of each stage, with the object's outline drawn in white.

# %% tags=["nbval-ignore-output"]
stage_last = {}
for name in spatial_names:
    stage_last[name.split(".")[0]] = name  # layer1.k..., the last k wins
picked = list(range(6))
fig, axes = plt.subplots(len(picked), 1 + len(stage_last), figsize=(8, 1.6 * len(picked)))
for row, i in enumerate(picked):
    axes[row, 0].imshow(val_set.unnormalized(val_set.images[i]).permute(1, 2, 0))
    axes[row, 0].set_ylabel(SHAPES[labels[i]])
    for col, (stage, name) in enumerate(stage_last.items(), start=1):
        full = resize_maps(maps[name][i : i + 1], masks.shape[-2:])[0]
        axes[row, col].imshow(full, cmap="magma")
        axes[row, col].contour(masks[i], levels=[0.5], colors="white", linewidths=0.8)
        if row == 0:
            axes[row, col].set_title(stage, fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()
plt.show()

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
# the layer is each network's last stage (`layer3`, 8 × 8 positions) and $c$ the predicted
# class.

# %%
cams = {name: grad_cam(model, images, "layer3").cpu() for name, model in models.items()}
print("Grad-CAM maps:", {name: tuple(cam.shape[1:]) for name, cam in cams.items()})
print("values in [0, 1]:", all(cam.min() >= 0 and cam.max() <= 1 for cam in cams.values()))
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
# (`rescale_maps`), which scores its contrast. Grad-CAM maps already start at 0.
#
# And the baseline that keeps everyone honest: a **uniform** map, which scores the object's
# share of the image on both counts. The objects cover a few percent of each image, so a map
# that beats the uniform one by a wide margin really does point at the object.

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
# `pointing_game` beside it.

# %%
candidates = {f"CBAM spatial, {stage}": resize_maps(maps[name], masks.shape[-2:])
              for stage, name in stage_last.items()}
candidates |= {f"Grad-CAM, {name}": cam for name, cam in cams.items()}
candidates["uniform"] = uniform_maps(masks)
scores = {
    name: (pointing_game(m, masks).mean().item(),
           energy_share(rescale_maps(m), masks).mean().item())
    for name, m in candidates.items()
}
area = masks.flatten(1).float().mean(1).mean().item()
print("uniform map scores the mean object area:",
      all(abs(value - area) < 1e-6 for value in scores["uniform"]))

# %% tags=["nbval-ignore-output"]
print(f"{'map':>24}  pointing  energy")
for name, (pointing, energy) in scores.items():
    print(f"{name:>24}  {100 * pointing:6.1f} %  {100 * energy:5.1f} %")

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(9, 3.5))
names = list(scores)
xs = torch.arange(len(names), dtype=torch.float32)
ax.bar(xs - 0.2, [100 * scores[n][0] for n in names], width=0.4, label="pointing game")
ax.bar(xs + 0.2, [100 * scores[n][1] for n in names], width=0.4, label="energy share")
ax.axhline(100 * area, color="black", linestyle=":", linewidth=1, label="object area")
ax.set_xticks(xs.tolist(), names, rotation=25, ha="right")
ax.set(ylabel="%", title="how much of each map lands on the object")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# How to read the table (whatever this run's numbers turned out to be):
#
# * **Above uniform** means the map carries information about the object's location. Grad-CAM
#   of any network that solved the task should clear it easily: the class score depends on the
#   object, so its gradient points there.
# * **CBAM's spatial maps were never trained to localise.** Nothing in the loss asks for it;
#   they are whatever reweighting helped classification. A map can suppress clutter (scoring
#   well) or highlight the background (scoring badly) and help either way. The early, high-
#   resolution stages often respond to every edge, object or clutter alike.
# * **Coarse maps lose points for resolution alone.** An 8 × 8 map upsampled to 32 × 32 blurs
#   over the object's border, which costs energy share even when it is centred perfectly.

# %% [markdown]
# ## Explore
#
# Pick a validation image and a CBAM block: the image with the object's outline, the block's
# spatial map, and Grad-CAM of each of the three networks.

# %% tags=["nbval-ignore-output"]
from cbam.widgets.base import figure_png, new_figure

index_slider = widgets.IntSlider(0, 0, len(val_set) - 1, description="image")
block_menu = widgets.Dropdown(options=spatial_names, value=spatial_names[-1], description="block")
picture = widgets.Image(format="png")


def show(_change=None):
    i, block = index_slider.value, block_menu.value
    fig = new_figure(11, 2.6)
    axes = fig.subplots(1, 2 + len(cams))
    axes[0].imshow(val_set.unnormalized(val_set.images[i]).permute(1, 2, 0))
    axes[0].set_title(SHAPES[labels[i]])
    panels = [(f"CBAM {block}", resize_maps(maps[block][i : i + 1], masks.shape[-2:])[0])]
    panels += [(f"Grad-CAM {name}", cam[i]) for name, cam in cams.items()]
    for ax, (title, panel) in zip(axes[1:], panels, strict=True):
        ax.imshow(panel, cmap="magma")
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
# * **Judging maps by eye.** A handful of hand-picked images can show anything. Score every
#   image against ground truth, and always next to a baseline that knows nothing.
# * **Forgetting the floor.** Sigmoid maps live in (0, 1), often far from 0; raw energy shares
#   of such maps hover near the object's area even when the map has a sharp peak on it.
# * **Grad-CAM's layer.** The last stage gives class-specific but coarse maps; earlier layers
#   give sharper but less class-specific ones. Name the layer with every Grad-CAM you show.
# * **Leaving hooks behind.** A forgotten forward hook keeps running (and holding tensors) in
#   every later call; `record_attention` and `grad_cam` remove theirs, even after an error.
