"""The tensor viewer: one (N, C, H, W) tensor, or two side by side, a channel at a time.

In a lesson: ``TensorViewer(features, block(features), names=("before", "after"))`` as a cell's
last line. A channel map (N, C, 1, 1) is drawn as bars over its channels, a spatial map
(N, 1, H, W) as a heatmap whatever channel the other tensor shows.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch

from cbam.widgets.base import DESCRIPTION_STYLE, Explorer, figure_png, new_figure


def as_nchw(tensor: object, what: str = "tensor") -> np.ndarray:
    """``tensor`` (a torch.Tensor or array of shape (N, C, H, W)) as a float64 NumPy array."""
    if isinstance(tensor, torch.Tensor):
        tensor = tensor.detach().to("cpu", torch.float64).numpy()
    if not isinstance(tensor, np.ndarray):
        raise TypeError(
            f"{what} must be a torch.Tensor or numpy array of shape (N, C, H, W), "
            f"got {type(tensor).__name__}"
        )
    if tensor.ndim != 4:
        raise ValueError(
            f"{what} must be 4-D (N, C, H, W), got {tensor.ndim}-D with shape {tuple(tensor.shape)}"
        )
    if 0 in tensor.shape:
        raise ValueError(f"{what} must not be empty, got shape {tuple(tensor.shape)}")
    return tensor.astype(np.float64)


def is_channel_map(array: np.ndarray) -> bool:
    """(N, C, 1, 1): one number per channel, shown as bars rather than a 1x1 image."""
    return array.shape[2:] == (1, 1)


def pick(array: np.ndarray, item: int, channel: int) -> np.ndarray:
    """What the viewer draws for (item, channel): the (H, W) slice, or the channel vector of a
    channel map. A one-channel tensor (a spatial map) is shown whatever channel is picked."""
    if is_channel_map(array):
        return array[item, :, 0, 0]
    return array[item, 0 if array.shape[1] == 1 else channel]


def stats(values: np.ndarray) -> dict[str, float]:
    return {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean())}


class TensorViewer(Explorer):
    """Pick a batch item and a channel; see the slice as a heatmap with its min, max and mean,
    for one tensor or two side by side (e.g. a feature map before and after attention).

    Use in a lesson: ``TensorViewer(x)`` or ``TensorViewer(x, block(x), names=("x", "CBAM(x)"))``
    as a cell's last line. ``other`` may also be a dict of tensors (say, the spatial maps of
    every layer, from ``cbam.record_attention``): a dropdown then picks the one shown beside
    ``tensor``, and the dict's keys name it. ``same_scale`` gives both heatmaps one colour scale,
    so that a change of values shows as a change of colour.

    Attributes for code (and tests): ``controls`` ("item", "channel", and "other" for a dict),
    ``figure`` (the matplotlib figure last drawn), ``axes`` (its panels, one per tensor),
    ``shown`` (the arrays drawn), ``stats`` (their min/max/mean), ``stats_text`` (the text under
    the figure), ``image`` (the PNG widget).
    """

    def __init__(
        self,
        tensor: object,
        other: object | Mapping[str, object] | None = None,
        *,
        names: Sequence[str] | None = None,
        cmap: str = "viridis",
        same_scale: bool = True,
    ) -> None:
        first = as_nchw(tensor, "tensor")
        if isinstance(other, Mapping):
            if not other:
                raise ValueError("other must hold at least one tensor, got an empty dict")
            self.choices = {str(k): as_nchw(v, f"other[{k!r}]") for k, v in other.items()}
            expected = 1  # the dict's keys name the other panel
        else:
            self.choices = {} if other is None else {"second": as_nchw(other, "other")}
            expected = 1 + len(self.choices)
        for array in self.choices.values():
            _check_comparable(first, array)
        names = list(names) if names is not None else ["tensor", "second"][:expected]
        if len(names) != expected:
            raise ValueError(
                f"names must give {expected} name(s), one per tensor passed "
                f"{'(a dict names its own tensors) ' if isinstance(other, Mapping) else ''}"
                f"got {names!r}"
            )
        if not isinstance(other, Mapping) and self.choices:
            self.choices = {names[1]: self.choices["second"]}
        self.tensor_name = names[0]
        self.cmap, self.same_scale = cmap, same_scale

        all_arrays = [first, *self.choices.values()]
        self.controls = {
            "item": widgets.IntSlider(
                value=0,
                min=0,
                max=first.shape[0] - 1,
                description="batch item",
                continuous_update=False,
                style=DESCRIPTION_STYLE,
            ),
            "channel": widgets.IntSlider(
                value=0,
                min=0,
                max=max(a.shape[1] for a in all_arrays) - 1,
                description="channel",
                continuous_update=False,
                style=DESCRIPTION_STYLE,
                # Nothing to choose when every tensor has one channel or is a channel map.
                disabled=all(a.shape[1] == 1 or is_channel_map(a) for a in all_arrays),
            ),
        }
        if isinstance(other, Mapping):
            self.controls["other"] = widgets.Dropdown(
                options=list(self.choices), description="beside it", style=DESCRIPTION_STYLE
            )
        self.image = widgets.Image(format="png")
        self.text = widgets.HTML()
        self.widget = widgets.VBox(
            [widgets.HBox(list(self.controls.values())), self.image, self.text]
        )
        self.first = first
        self.arrays: list[np.ndarray] = []
        self.names: list[str] = []  # of the panels shown; none yet
        self.figure = new_figure(5.0 * (1 + bool(self.choices)), 4.0)
        self.shown: list[np.ndarray] = []
        self.stats: list[dict[str, float]] = []
        self.stats_text = ""
        self._watch_controls()
        self.update()

    def _choose_panels(self) -> None:
        """Make the panels for the tensors chosen: anew when the choice changed (or at the
        start), otherwise an update only puts new data into the panels there are."""
        if "other" in self.controls:
            chosen = self.controls["other"].value
        else:
            chosen = next(iter(self.choices), None)
        names = [self.tensor_name] + ([chosen] if chosen is not None else [])
        if names == self.names:
            return
        self.names = names
        self.arrays = [self.first] + ([self.choices[chosen]] if chosen is not None else [])
        self.figure.clear()
        self.axes = list(self.figure.subplots(1, len(self.arrays), squeeze=False)[0])
        self._artists = [
            self._new_panel(ax, a) for ax, a in zip(self.axes, self.arrays, strict=True)
        ]

    def _new_panel(self, ax, array: np.ndarray):
        if is_channel_map(array):
            ax.set_xlabel("channel")
            return ax.bar(np.arange(array.shape[1]), pick(array, 0, 0), color="tab:blue")
        picture = ax.imshow(pick(array, 0, 0), cmap=self.cmap)
        self.figure.colorbar(picture, ax=ax, shrink=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        return picture

    def update(self) -> None:
        self._choose_panels()
        item, channel = self.controls["item"].value, self.controls["channel"].value
        self.shown = [pick(a, item, channel) for a in self.arrays]
        self.stats = [stats(values) for values in self.shown]
        heatmaps = [
            v for v, a in zip(self.shown, self.arrays, strict=True) if not is_channel_map(a)
        ]
        shared = None
        if self.same_scale and len(heatmaps) > 1:
            shared = (min(v.min() for v in heatmaps), max(v.max() for v in heatmaps))

        lines = []
        for ax, artist, name, array, values, numbers in zip(
            self.axes, self._artists, self.names, self.arrays, self.shown, self.stats, strict=True
        ):
            if is_channel_map(array):
                where = f"{name}[{item}, :, 0, 0]"
                for bar, height in zip(artist, values, strict=True):
                    bar.set_height(height)
                ax.relim()
                ax.autoscale_view()
            else:
                where = f"{name}[{item}, {0 if array.shape[1] == 1 else channel}]"
                artist.set_data(values)
                artist.set_clim(*(shared or (values.min(), values.max())))
            ax.set_title(where)
            summary = (
                f"min {numbers['min']:.4g}, max {numbers['max']:.4g}, mean {numbers['mean']:.4g}"
            )
            lines.append((name, tuple(array.shape), where, summary))
        self.stats_text = "\n".join(
            f"{name} shape {shape}; {where}: {summary}" for name, shape, where, summary in lines
        )
        self.text.value = "<br>".join(
            f"<b>{html.escape(name)}</b> shape {shape}; <code>{html.escape(where)}</code>: {text}"
            for name, shape, where, text in lines
        )
        self.image.value = figure_png(self.figure)


def _check_comparable(first: np.ndarray, second: np.ndarray) -> None:
    if first.shape[0] != second.shape[0]:
        raise ValueError(
            f"the two tensors must have the same batch size N, got shapes "
            f"{tuple(first.shape)} and {tuple(second.shape)}"
        )
    channels = {first.shape[1], second.shape[1]} - {1}
    if len(channels) > 1:
        raise ValueError(
            f"the two tensors must have the same number of channels (or one of them "
            f"a single channel), got shapes {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )
