"""Headless state tests of the explorers: set a control's value as a learner's click would, then
check what the explorer shows (its text, its error message, the data in its figure).

Written against the API that ipywidgets 7.7 and 8 share; tests/test_widgets_ipywidgets7.py runs
this same file under ipywidgets 7.7.
"""

from __future__ import annotations

import html

import ipywidgets
import numpy as np
import pytest
import torch

from cbam import CBAM, ChannelAttention, SpatialAttention
from cbam.widgets import (
    AttentionExplorer,
    ShapeExplorer,
    TensorViewer,
    attention_maps,
    build_module,
    parameter_table,
    sample_features,
    sample_image,
    shape_flow,
)
from cbam.widgets.shape_explorer import ARRANGEMENTS


def descendants(widget: ipywidgets.Widget) -> list[ipywidgets.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found += descendants(child)
    return found


def error_of(make) -> str:
    with pytest.raises((ValueError, TypeError)) as caught:
        make()
    return str(caught.value)


@pytest.fixture
def rng_state():
    """Fails a test whose explorer changed the global random state (a lesson's seeded outputs
    after a widget cell would then change)."""
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    yield
    assert torch.equal(torch.random.get_rng_state(), before), "an explorer drew random numbers"


# --- shape_flow and the shape explorer ---------------------------------------------------------


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_shape_flow_matches_the_real_module(arrangement):
    n, c, h, w, r, k = 3, 48, 10, 12, 16, 5
    steps = dict(shape_flow(n, c, h, w, r, k, arrangement))
    block = CBAM(c, r, k, arrangement=arrangement)
    x = torch.randn(n, c, h, w)
    assert steps["input x"] == (n, c, h, w)
    assert steps["output"] == tuple(block(x).shape)
    assert steps["channel: map M_c = sigmoid(sum)"] == tuple(block.channel.attention(x).shape)
    assert steps["spatial: map M_s = sigmoid(conv)"] == tuple(block.spatial.attention(x).shape)
    assert steps["channel: Linear C → C // r = 3, ReLU"] == (2, n, 3)
    assert steps["spatial: [mean; max] over C"] == (n, 2, h, w)
    assert steps[f"spatial: {k}×{k} conv, padding {k // 2}"] == (n, 1, h, w)


def test_shape_flow_lists_every_step_of_eq_1():
    n, c, h, w = 2, 32, 6, 5
    assert shape_flow(n, c, h, w, reduction=8, kernel_size=3) == [
        ("input x", (n, c, h, w)),
        ("channel: [avg; max] pooled over H, W, stacked (P, N, C)", (2, n, c)),
        ("channel: Linear C → C // r = 4, ReLU", (2, n, 4)),
        ("channel: Linear back to C", (2, n, c)),
        ("channel: sum over the P descriptors", (n, c, 1, 1)),
        ("channel: map M_c = sigmoid(sum)", (n, c, 1, 1)),
        ("channel: M_c ⊗ input, broadcast over H, W", (n, c, h, w)),
        ("spatial: [mean; max] over C", (n, 2, h, w)),
        ("spatial: 3×3 conv, padding 1", (n, 1, h, w)),
        ("spatial: map M_s = sigmoid(conv)", (n, 1, h, w)),
        ("spatial: M_s ⊗ input, broadcast over C", (n, c, h, w)),
        ("output", (n, c, h, w)),
    ]


def test_shape_flow_follows_the_arrangement():
    def order(arrangement):
        return [step.split(":")[0] for step, _ in shape_flow(1, 8, 4, 4, 2, 3, arrangement)]

    channel_first = order("channel-first")
    assert channel_first.index("spatial") > max(
        i for i, part in enumerate(channel_first) if part == "channel"
    )
    spatial_first = order("spatial-first")
    assert spatial_first.index("channel") > max(
        i for i, part in enumerate(spatial_first) if part == "spatial"
    )
    parallel = [step for step, _ in shape_flow(1, 8, 4, 4, 2, 3, "parallel")]
    # Both maps come from x: neither module applies its own map.
    assert not any("⊗ input" in step for step in parallel)
    assert "x ⊗ M_c ⊗ M_s, both maps from x" in parallel


def test_shape_flow_of_one_module_alone():
    channel_steps = [step for step, _ in shape_flow(2, 16, 8, 8, module="channel")]
    spatial_steps = [step for step, _ in shape_flow(2, 16, 8, 8, module="spatial")]
    assert all(not step.startswith("spatial") for step in channel_steps)
    assert all(not step.startswith("channel") for step in spatial_steps)


def test_parameter_table_counts_what_the_module_has():
    c, r, k = 64, 16, 7
    table = parameter_table(build_module("cbam", c, r, k))
    real = CBAM(c, r, k)
    assert sum(count for *_, count in table) == sum(p.numel() for p in real.parameters())
    hidden = c // r
    assert sum(count for *_, count in table) == 2 * c * hidden + hidden + c + 2 * k * k
    assert ("spatial.conv.weight", (1, 2, k, k), 2 * k * k) in table


def test_shape_flow_errors_are_the_modules_own():
    assert error_of(lambda: shape_flow(2, 8, 4, 4, kernel_size=4)) == error_of(
        lambda: SpatialAttention(4)
    )
    assert error_of(lambda: shape_flow(2, 0, 4, 4)) == error_of(lambda: ChannelAttention(0))
    assert "height" in error_of(lambda: shape_flow(2, 8, 0, 4))


def test_shape_explorer_shows_new_shapes_when_a_control_moves(rng_state):
    explorer = ShapeExplorer()
    shown = set(descendants(explorer.widget))
    assert all(control in shown for control in explorer.controls.values())
    before = explorer.output.value

    controls = explorer.controls
    controls["batch"].value = 3
    controls["channels"].value = 48
    controls["height"].value = 10
    controls["width"].value = 12
    assert explorer.error is None
    assert "(3, 48, 1, 1)" in explorer.shape_text  # M_c
    assert "(3, 1, 10, 12)" in explorer.shape_text  # M_s
    assert "C // r = 3" in explorer.shape_text  # 48 // 16
    assert "(3, 48, 10, 12)" in explorer.output.value
    assert explorer.output.value != before
    assert explorer.steps == shape_flow(3, 48, 10, 12, 16, 7, "channel-first")

    controls["arrangement"].value = "parallel"
    assert explorer.steps[-2][0] == "x ⊗ M_c ⊗ M_s, both maps from x"
    assert "parallel" in explorer.shape_text


def test_shape_explorer_parameter_count_follows_r_and_k():
    explorer = ShapeExplorer(channels=64)
    explorer.controls["reduction"].value = 8
    explorer.controls["kernel_size"].value = 3
    total = sum(p.numel() for p in CBAM(64, 8, 3).parameters())
    assert f"total: {total:,}" in explorer.shape_text
    assert f"{total:,}" in explorer.output.value


def test_shape_explorer_shows_the_modules_error_and_recovers():
    explorer = ShapeExplorer()
    explorer.controls["kernel_size"].value = 6
    message = error_of(lambda: SpatialAttention(6))
    assert explorer.error == f"ValueError: {message}"
    assert message in explorer.shape_text
    assert html.escape(message) in explorer.output.value
    assert explorer.steps == []

    explorer.controls["kernel_size"].value = 7
    explorer.controls["channels"].value = 0
    assert error_of(lambda: ChannelAttention(0)) in explorer.error

    explorer.controls["channels"].value = 8
    assert explorer.error is None
    assert "(2, 8, 32, 32)" in explorer.shape_text


def test_shape_explorer_reduction_larger_than_channels_keeps_one_hidden_unit():
    explorer = ShapeExplorer(channels=8)
    explorer.controls["reduction"].value = 64
    assert explorer.error is None
    # 8 // 64 = 0: the label says so, and the width the module really has.
    assert ("Linear C → max(C // r, 1) = 1, ReLU (C // r = 0, so the hidden width is 1)"
            in explorer.shape_text)
    assert "C // r = 1" not in explorer.shape_text


def test_shape_explorer_enables_only_the_controls_of_the_module():
    explorer = ShapeExplorer()
    assert not explorer.controls["arrangement"].disabled
    explorer.controls["module"].value = "spatial"
    assert explorer.controls["arrangement"].disabled and explorer.controls["reduction"].disabled
    assert not explorer.controls["kernel_size"].disabled
    assert "SpatialAttention(kernel_size=7)" in explorer.shape_text
    assert "channel:" not in explorer.shape_text
    explorer.controls["module"].value = "channel"
    assert explorer.controls["kernel_size"].disabled
    assert "spatial:" not in explorer.shape_text


# --- the tensor viewer ------------------------------------------------------------------------


def test_tensor_viewer_draws_the_picked_slice(rng_state):
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    viewer = TensorViewer(x)
    first_png = bytes(viewer.image.value)
    assert first_png.startswith(b"\x89PNG")
    np.testing.assert_array_equal(viewer.axes[0].images[0].get_array(), x[0, 0].numpy())

    viewer.controls["item"].value = 1
    viewer.controls["channel"].value = 2
    picked = x[1, 2].numpy()
    np.testing.assert_array_equal(viewer.axes[0].images[0].get_array(), picked)
    assert viewer.stats == [{"min": picked.min(), "max": picked.max(), "mean": picked.mean()}]
    assert f"min {picked.min():.4g}, max {picked.max():.4g}" in viewer.stats_text
    assert "shape (2, 3, 4, 5)" in viewer.stats_text
    assert bytes(viewer.image.value) != first_png
    assert viewer.controls["item"].max == 1 and viewer.controls["channel"].max == 2


def test_tensor_viewer_compares_before_and_after_attention_on_one_scale():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    block = CBAM(8, reduction=2, kernel_size=3)
    with torch.no_grad():
        y = block(x)
    viewer = TensorViewer(x, y, names=("before", "after"))
    viewer.controls["channel"].value = 5
    left, right = (ax.images[0] for ax in viewer.axes)
    np.testing.assert_array_equal(left.get_array(), x[0, 5].numpy())
    np.testing.assert_allclose(right.get_array(), y[0, 5].numpy(), rtol=1e-6)
    assert left.get_clim() == right.get_clim()
    low = min(x[0, 5].min(), y[0, 5].min()).item()
    assert left.get_clim()[0] == pytest.approx(low)
    assert "before shape (2, 8, 6, 6)" in viewer.stats_text
    assert "after[0, 5]" in viewer.stats_text


def test_tensor_viewer_shows_attention_maps_by_their_shape():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7)
    block = CBAM(6, reduction=2, kernel_size=3)
    with torch.no_grad():
        channel_map, spatial_map = block.channel.attention(x), block.spatial.attention(x)
    viewer = TensorViewer(channel_map, spatial_map, names=("M_c", "M_s"))
    assert viewer.controls["channel"].disabled  # nothing to pick: one map per item each
    viewer.controls["item"].value = 1
    heights = [bar.get_height() for bar in viewer.axes[0].patches]
    np.testing.assert_allclose(heights, channel_map[1, :, 0, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        viewer.axes[1].images[0].get_array(), spatial_map[1, 0].numpy(), rtol=1e-6
    )
    # A one-channel map stays itself whatever channel its neighbour shows.
    paired = TensorViewer(x, spatial_map)
    paired.controls["channel"].value = 4
    np.testing.assert_allclose(paired.shown[1], spatial_map[0, 0].numpy(), rtol=1e-6)


def test_tensor_viewer_picks_what_to_show_beside_it_from_a_dict():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16)
    maps = {
        "layer1 M_s": torch.rand(2, 1, 8, 8),
        "layer2 M_s": torch.rand(2, 1, 4, 4),
        "layer2 M_c": torch.rand(2, 3, 1, 1),
    }
    viewer = TensorViewer(images, maps, names=("image",))
    assert list(viewer.controls["other"].options) == list(maps)
    assert viewer.controls["other"] in descendants(viewer.widget)
    np.testing.assert_allclose(viewer.axes[1].images[0].get_array(), maps["layer1 M_s"][0, 0])

    viewer.controls["item"].value = 1
    viewer.controls["other"].value = "layer2 M_s"
    assert viewer.axes[1].get_title() == "layer2 M_s[1, 0]"
    np.testing.assert_allclose(viewer.axes[1].images[0].get_array(), maps["layer2 M_s"][1, 0])
    np.testing.assert_allclose(viewer.axes[0].images[0].get_array(), images[1, 0])
    assert "layer2 M_s shape (2, 1, 4, 4)" in viewer.stats_text

    viewer.controls["other"].value = "layer2 M_c"  # a channel map: bars instead of a heatmap
    heights = [bar.get_height() for bar in viewer.axes[1].patches]
    np.testing.assert_allclose(heights, maps["layer2 M_c"][1, :, 0, 0], rtol=1e-6)
    assert "names must give 1 name(s)" in error_of(
        lambda: TensorViewer(images, maps, names=("image", "maps"))
    )


def test_tensor_viewer_rejects_what_it_cannot_show():
    assert "4-D (N, C, H, W), got 3-D" in error_of(lambda: TensorViewer(torch.zeros(3, 4, 4)))
    assert "same batch size" in error_of(
        lambda: TensorViewer(torch.zeros(2, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    )
    assert "same number of channels" in error_of(
        lambda: TensorViewer(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 4, 4))
    )
    assert "got list" in error_of(lambda: TensorViewer([[1.0]]))


# --- the attention explorer -------------------------------------------------------------------


@pytest.fixture(scope="module")
def explorer():
    return AttentionExplorer()


def test_attention_explorer_draws_its_maps(explorer):
    photo = sample_image()
    assert explorer.photo.shape == photo.shape and photo.shape[2] == 3
    assert explorer.spatial_map.shape == photo.shape[:2]
    assert explorer.channel_weights.shape == (16,)
    assert ((explorer.channel_weights > 0) & (explorer.channel_weights < 1)).all()
    heights = [bar.get_height() for bar in explorer.axes["bars"].patches]
    np.testing.assert_allclose(heights, explorer.channel_weights)
    overlay = explorer.axes["map"].images[-1].get_array()
    np.testing.assert_array_equal(overlay, explorer.spatial_map)
    assert bytes(explorer.image.value).startswith(b"\x89PNG")


def test_attention_explorer_kernel_size_changes_only_the_spatial_map(explorer, rng_state):
    explorer.controls["kernel_size"].value = 7
    weights, spatial = explorer.channel_weights, explorer.spatial_map
    png = bytes(explorer.image.value)
    explorer.controls["kernel_size"].value = 3
    assert "3×3 conv" in explorer.axes["map"].get_title()
    np.testing.assert_array_equal(explorer.channel_weights, weights)  # channel first: before M_s
    assert not np.allclose(explorer.spatial_map, spatial)
    assert bytes(explorer.image.value) != png
    explorer.controls["kernel_size"].value = 7


def test_attention_explorer_pooling_and_reduction_change_the_channel_weights(explorer):
    weights = explorer.channel_weights
    explorer.controls["pool_types"].value = ("avg",)
    assert not np.allclose(explorer.channel_weights, weights)
    explorer.controls["pool_types"].value = ("avg", "max")
    np.testing.assert_array_equal(explorer.channel_weights, weights)  # seeded: same CBAM again
    explorer.controls["reduction"].value = 2
    assert not np.allclose(explorer.channel_weights, weights)
    explorer.controls["reduction"].value = 4


def test_attention_explorer_box_filter_map_is_the_pooled_features_blurred(explorer):
    """With k = 1 the box filter is one weight per pooled map: M_s = sigmoid((mean + max) / 2)."""
    explorer.controls["spatial_weights"].value = "average"
    explorer.controls["kernel_size"].value = 1
    refined = explorer.features[0] * torch.from_numpy(explorer.channel_weights)[:, None, None]
    expected = torch.sigmoid((refined.mean(0) + refined.amax(0)) / 2)
    np.testing.assert_allclose(explorer.spatial_map, expected.numpy(), rtol=1e-5)
    explorer.controls["kernel_size"].value = 7
    explorer.controls["spatial_weights"].value = "random"


def test_attention_explorer_is_deterministic_and_seeded(explorer):
    again = attention_maps(explorer.features, reduction=4, kernel_size=7)
    np.testing.assert_array_equal(again[0], explorer.channel_weights)
    np.testing.assert_array_equal(again[1], explorer.spatial_map)
    explorer.controls["seed"].value = 1
    assert not np.allclose(explorer.channel_weights, again[0])
    explorer.controls["seed"].value = 0
    np.testing.assert_array_equal(explorer.channel_weights, again[0])


def test_feature_extractor_detects_edges_by_direction(rng_state):
    """Channel i responds to grey levels rising towards the angle 2πi/C (0: rightwards)."""
    step = np.zeros((6, 8, 3), dtype=np.float32)
    step[:, 4:] = 1.0  # dark left half, bright right half: one vertical edge, rising rightwards
    features = sample_features(4, step)[0]  # angles 0, 90, 180, 270 degrees
    assert features.shape == (4, 6, 8)
    assert features[0, :, 3:5].min() > 0 and features[0, :, :2].abs().max() == 0
    assert features[1:].abs().max() == 0  # falling edges and vertical gradients: nothing


def test_attention_explorer_shows_the_modules_error(explorer):
    explorer.controls["kernel_size"].value = 4  # off the slider's steps, as code could set it
    assert explorer.error == f"ValueError: {error_of(lambda: SpatialAttention(4))}"
    assert html.escape(error_of(lambda: SpatialAttention(4))) in explorer.text.value
    assert explorer.image.layout.display == "none"
    explorer.controls["kernel_size"].value = 7
    assert explorer.error is None and explorer.image.layout.display != "none"
    assert "M_c: 16 channel weights" in explorer.summary_text


def test_attention_maps_rejects_an_unknown_spatial_weighting():
    features = torch.rand(1, 4, 6, 6)
    assert "spatial_weights must be one of ('random', 'average'), got 'zeros'" in error_of(
        lambda: attention_maps(features, spatial_weights="zeros")
    )
