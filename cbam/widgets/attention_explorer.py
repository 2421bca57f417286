"""The attention explorer: a photo through a CBAM, its channel weights and its spatial map.

The photo (Grace Hopper, shipped with matplotlib) goes through a fixed bank of edge detectors,
the kind of filters a CNN's first layer learns, then through a freshly initialised CBAM. Nothing
is trained: the explorer shows how the maps are *made* (what r, k and the pooling change), not
what a trained network attends to (lesson 06 does that).

In a lesson: ``AttentionExplorer()`` as a cell's last line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.cbook
import matplotlib.image
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cbam.attention import CBAM
from cbam.maps import record_attention
from cbam.validation import check_positive_int
from cbam.widgets.base import Explorer, error_html, figure_png, new_figure

POOLINGS = {
    "avg & max (CBAM)": ("avg", "max"),
    "avg (SE)": ("avg",),
    "max": ("max",),
    "power-2 average (lp)": ("lp",),
    "log-sum-exp (lse)": ("lse",),
}
SPATIAL_WEIGHTS = {"random init": "random", "average (box filter)": "average"}
# One size for every control, so that the two rows line up.
STYLE = {"description_width": "110px"}
LAYOUT = {"width": "330px"}


def sample_image(downsample: int = 4) -> np.ndarray:
    """matplotlib's sample photo as floats in [0, 1], shape (H, W, 3), ``downsample`` times
    smaller by averaging (600 x 512 -> 150 x 128 by default: big enough to see, quick to run)."""
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        photo = matplotlib.image.imread(file, format="jpg")
    pixels = torch.from_numpy(photo.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    return F.avg_pool2d(pixels, downsample)[0].permute(1, 2, 0).numpy()


def feature_extractor(channels: int = 16) -> nn.Module:
    """``channels`` edge detectors on an RGB image, then ReLU: a Sobel filter on the grey levels,
    turned to ``channels`` directions around the circle (channel i to the angle 2πi/channels).

    A fixed stand-in for the first layers of a CNN, which learn filters much like these; each
    channel fires on edges of one direction and polarity, so the maps have something to find.
    """
    check_positive_int("channels", channels)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    angles = torch.arange(channels) * (2 * math.pi / channels)
    kernels = angles.cos()[:, None, None] * sobel + angles.sin()[:, None, None] * sobel.T
    # Grey level = mean of R, G and B, so each colour carries a third of every kernel.
    with torch.random.fork_rng(devices=[]):  # the layer's own random init is overwritten anyway
        conv = nn.Conv2d(3, channels, 3, padding=1, padding_mode="replicate", bias=False)
    with torch.no_grad():
        conv.weight.copy_(kernels[:, None].expand(-1, 3, -1, -1) / 3)
    return nn.Sequential(conv, nn.ReLU())


def sample_features(channels: int = 16, image: np.ndarray | None = None) -> torch.Tensor:
    """Feature maps of a photo, shape (1, channels, H, W): ``image`` (default: ``sample_image()``)
    through ``feature_extractor(channels)``. Something real-looking to feed a CBAM or a viewer."""
    photo = sample_image() if image is None else np.asarray(image, dtype=np.float32)
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"image must be an RGB array of shape (H, W, 3), got shape {photo.shape}")
    pixels = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return feature_extractor(channels)(pixels)


def attention_maps(
    features: torch.Tensor,
    *,
    reduction: float = 16,
    kernel_size: int = 7,
    pool_types: Sequence[str] = ("avg", "max"),
    spatial_weights: str = "random",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a CBAM built with these settings on ``features`` (1, C, H, W) and return its channel
    weights M_c, shape (C,), and spatial map M_s, shape (H, W).

    The CBAM's weights are its own initialisation under ``torch.manual_seed(seed)``, drawn without
    touching the caller's random state. ``spatial_weights="average"`` replaces the spatial conv by a
    k x k box filter, so the map is a blurred pooled feature map and k is its blur radius.
    """
    if spatial_weights not in SPATIAL_WEIGHTS.values():
        raise ValueError(
            f"spatial_weights must be one of {tuple(SPATIAL_WEIGHTS.values())}, "
            f"got {spatial_weights!r}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = CBAM(features.shape[1], reduction, kernel_size, pool_types=pool_types)
    with torch.no_grad():
        if spatial_weights == "average":
            block.spatial.conv.weight.fill_(1.0 / block.spatial.conv.weight.numel())
        with record_attention(block) as maps:
            block(features)
    return maps["channel"][0][0, :, 0, 0].numpy(), maps["spatial"][0][0, 0].numpy()


class AttentionExplorer(Explorer):
    """A photo through a CBAM: its channel weights as bars, its spatial map over the photo, with
    controls for the reduction r, the kernel size k, the channel pooling, the spatial conv's
    weights and the CBAM's random seed.

    Use in a lesson: ``AttentionExplorer()`` as a cell's last line, or
    ``display(AttentionExplorer())``.

    Attributes for code (and tests): ``controls`` (name -> control widget), ``channel_weights``
    (C,) and ``spatial_map`` (H, W) last drawn, ``figure`` (the matplotlib figure), ``axes`` (its
    panels "photo", "map" and "bars"), ``error`` (the message shown instead of the maps, or
    None), ``summary_text``, ``image`` (the PNG widget).
    """

    def __init__(
        self,
        *,
        channels: int = 16,
        reduction: int = 4,
        kernel_size: int = 7,
        pool_types: Sequence[str] = ("avg", "max"),
        spatial_weights: str = "random",
        seed: int = 0,
        image: np.ndarray | None = None,
    ) -> None:
        self.photo = sample_image() if image is None else np.asarray(image, dtype=np.float32)
        self.features = sample_features(channels, self.photo)

        self.controls = {
            "reduction": widgets.Dropdown(
                options=sorted({r for r in (1, 2, 4, 8, 16, 32) if r <= channels} | {reduction}),
                value=reduction,
                description="reduction r",
                style=STYLE,
                layout=LAYOUT,
            ),
            # Odd sizes only: even ones have no centred padding (the shape explorer shows why).
            "kernel_size": widgets.IntSlider(
                value=kernel_size,
                min=1,
                max=15,
                step=2,
                description="kernel size k",
                continuous_update=False,
                style=STYLE,
                layout=LAYOUT,
            ),
            "pool_types": widgets.Dropdown(
                options=list(POOLINGS.items()),
                value=tuple(pool_types),
                description="channel pooling",
                style=STYLE,
                layout=LAYOUT,
            ),
            "spatial_weights": widgets.Dropdown(
                options=list(SPATIAL_WEIGHTS.items()),
                value=spatial_weights,
                description="spatial conv",
                style=STYLE,
                layout=LAYOUT,
            ),
            "seed": widgets.IntSlider(
                value=seed,
                min=0,
                max=9,
                description="CBAM seed",
                continuous_update=False,
                style=STYLE,
                layout=LAYOUT,
            ),
        }
        c = self.controls
        self.image = widgets.Image(format="png")
        self.text = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox([c["reduction"], c["kernel_size"], c["seed"]]),
                widgets.HBox([c["pool_types"], c["spatial_weights"]]),
                self.image,
                self.text,
            ]
        )
        self.figure = new_figure(11.0, 3.6)
        self._new_panels()
        self.channel_weights = np.zeros(0)
        self.spatial_map = np.zeros((0, 0))
        self.error: str | None = None
        self.summary_text = ""
        self._watch_controls()
        self.update()

    def update(self) -> None:
        settings = {name: control.value for name, control in self.controls.items()}
        try:
            self.channel_weights, self.spatial_map = attention_maps(self.features, **settings)
        except (ValueError, TypeError, RuntimeError) as error:
            self.error = f"{type(error).__name__}: {error}"
            self.summary_text = self.error
            self.text.value = error_html(error)
            self.image.layout.display = "none"  # the last picture no longer matches the controls
            return
        self.error = None
        self.image.layout.display = None
        self._draw(settings["kernel_size"])
        m_c, m_s = self.channel_weights, self.spatial_map
        self.summary_text = (
            f"M_c: {m_c.size} channel weights in [{m_c.min():.3f}, {m_c.max():.3f}]; "
            f"M_s: {m_s.shape[0]}×{m_s.shape[1]} map in [{m_s.min():.3f}, {m_s.max():.3f}]"
        )
        self.text.value = self.summary_text
        self.image.value = figure_png(self.figure)

    def _new_panels(self) -> None:
        photo_ax, map_ax, bar_ax = self.figure.subplots(
            1, 3, gridspec_kw={"width_ratios": [1, 1, 1.6]}
        )
        self.axes = {"photo": photo_ax, "map": map_ax, "bars": bar_ax}
        height, width = self.photo.shape[:2]
        photo_ax.imshow(self.photo)
        photo_ax.set_title("input")
        map_ax.imshow(self.photo)
        self._overlay = map_ax.imshow(
            np.zeros((height, width)), cmap="jet", alpha=0.5, extent=(0, width, height, 0)
        )
        self.figure.colorbar(self._overlay, ax=map_ax, shrink=0.8)
        for ax in (photo_ax, map_ax):
            ax.set_xticks([])
            ax.set_yticks([])
        channels = self.features.shape[1]
        self._bars = bar_ax.bar(np.arange(channels), np.zeros(channels), color="tab:blue")
        bar_ax.set_ylim(0, 1)
        bar_ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        bar_ax.set_xlabel(f"channel i: edges at 360°·i/{channels}")
        bar_ax.set_title("channel weights M_c")

    def _draw(self, kernel_size: int) -> None:
        """New data into the panels made once by ``_new_panels``."""
        self._overlay.set_data(self.spatial_map)
        self._overlay.set_clim(self.spatial_map.min(), self.spatial_map.max())
        self.axes["map"].set_title(f"spatial map M_s ({kernel_size}×{kernel_size} conv)")
        for bar, weight in zip(self._bars, self.channel_weights, strict=True):
            bar.set_height(weight)
