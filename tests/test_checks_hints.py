"""Cases where a check was lenient or its hint misleading: each case, and the hint it now gets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cbam
from cbam.checks.block import check_arrangements, check_cbam_block
from cbam.checks.channel import check_channel_attention, check_channel_descriptors
from cbam.checks.resnet import check_table4
from cbam.checks.shapes import check_apply_gate, check_global_descriptors, check_pool_over_channels
from cbam.checks.spatial import check_channel_pool, check_spatial_attention
from cbam.checks.speed import check_fast_cbam


def failures(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("✗")]


def passes(capsys) -> bool:
    lines = capsys.readouterr().out.splitlines()
    return bool(lines) and all(line.startswith("✓") for line in lines)


# --- lesson 00 ---------------------------------------------------------------------------------


def test_a_list_is_a_pair_in_lesson_00_as_in_lesson_01(capsys):
    assert check_global_descriptors(
        lambda x: [x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)])
    assert check_pool_over_channels(
        lambda x: [x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)])
    assert check_channel_descriptors(lambda x: [x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])
    assert passes(capsys)


def test_a_swapped_pool_over_channels_is_named_a_swap(capsys):
    assert not check_pool_over_channels(
        lambda x: (x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)))
    lines = failures(capsys)
    assert lines and all("mean and max are swapped: return (mean, max)" in line for line in lines)


def test_weights_reshaped_with_c_last_are_told_where_c_belongs(capsys):
    assert not check_apply_gate(lambda x, w: x * w[:, None, None, :])
    lines = failures(capsys)
    assert "the weights reshaped to (2, 1, 1, 3)" in lines[0]
    assert "the C weights belong at dim 1: (N, C, 1, 1)" in lines[0]
    assert "scaled column c (dim 3, W) of every channel, not channel c" in lines[1]
    assert not any("reshape the weights to (N, C, 1, 1) first" in line for line in lines)


@pytest.mark.parametrize("pool, named", [
    (lambda x: x.sum(dim=1, keepdim=True) / x.shape[0],
     "mean is the sum over C divided by N = 2 (the batch size); a mean over C divides by C = 3 "
     "(the channel count)"),
    (lambda x: x.sum(dim=1, keepdim=True) / x.shape[-1],
     "mean is the sum over C divided by W = 5; a mean over C divides by C = 3 (the channel "
     "count)"),
])
def test_pool_over_channels_dividing_by_the_wrong_size_names_both_sizes(pool, named, capsys):
    assert not check_pool_over_channels(lambda x: (pool(x), x.amax(dim=1, keepdim=True)))
    (line,) = failures(capsys)
    assert named in line


def test_global_descriptors_dividing_by_one_side_names_h_times_w(capsys):
    assert not check_global_descriptors(
        lambda x: (x.sum(dim=(2, 3), keepdim=True) / x.shape[2], x.amax(dim=(2, 3), keepdim=True)))
    (line,) = failures(capsys)
    assert "mean is the sum over H and W divided by H = 4; a mean over H and W divides by " \
           "H·W = 20" in line


# --- lesson 01 ---------------------------------------------------------------------------------


def test_channel_descriptors_dividing_by_the_batch_size_names_it(capsys):
    assert not check_channel_descriptors(
        lambda x: (x.sum(dim=(2, 3)) / len(x), x.amax(dim=(2, 3))))
    lines = failures(capsys)
    assert "avg is the sum over H and W divided by N = 2 (the batch size); a mean over H and W " \
           "divides by H·W = 12" in lines[0]
    # The other shapes have N = 1 (where it is right) and N = 4.
    assert "divided by N = 4 (the batch size); a mean over H and W divides by H·W = 12" \
           in lines[1]


class ChannelMeanByBatch(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(),
                                 nn.Linear(hidden, channels))

    def attention(self, x):
        avg = x.sum(dim=(2, 3)) / x.shape[0]
        return torch.sigmoid(self.mlp(avg) + self.mlp(x.amax(dim=(2, 3))))[:, :, None, None]

    def forward(self, x):
        return x * self.attention(x)


def test_a_channel_module_dividing_by_the_batch_size_names_it(capsys):
    assert not check_channel_attention(ChannelMeanByBatch)
    lines = failures(capsys)
    assert len(lines) == 2 and all(
        "the average descriptor is the sum over H and W divided by N = 2 (the batch size)" in line
        for line in lines)




def test_squeeze_dropping_n_1_is_not_called_pooling_over_the_batch(capsys):
    assert not check_channel_descriptors(
        lambda x: (x.mean(dim=(2, 3), keepdim=True).squeeze(),
                   x.amax(dim=(2, 3), keepdim=True).squeeze()))
    text = "\n".join(failures(capsys))
    assert "with N = 1, .squeeze() also drops the batch dim" in text
    assert "pooled over the batch" not in text


# --- lesson 02 ---------------------------------------------------------------------------------


def test_channel_pool_dividing_by_the_batch_size_names_it(capsys):
    assert not check_channel_pool(lambda x: torch.cat(
        [x.sum(dim=1, keepdim=True) / x.size(0), x.amax(dim=1, keepdim=True)], dim=1))
    lines = failures(capsys)
    assert "channel 0 is the sum over C divided by N = 2 (the batch size); a mean over C " \
           "divides by C = 5 (the channel count)" in lines[0]


class SpatialMeanByWidth(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention(self, x):
        mean = x.sum(dim=1, keepdim=True) / x.shape[-1]
        return torch.sigmoid(self.conv(torch.cat([mean, x.amax(dim=1, keepdim=True)], dim=1)))

    def forward(self, x):
        return x * self.attention(x)


def test_a_spatial_module_dividing_by_the_width_names_it(capsys):
    assert not check_spatial_attention(SpatialMeanByWidth)
    lines = failures(capsys)
    assert len(lines) == 2 and all(
        "the first channel is the sum over C divided by W = 11; a mean over C divides by C = 8 "
        "(the channel count)" in line for line in lines)



class AcceptsUnbatched(nn.Module):
    """Correct, and takes a (C, H, W) input too, as nn.Conv2d does: the exercise allows it."""

    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention(self, x):
        pooled = torch.cat([x.mean(dim=-3, keepdim=True), x.amax(dim=-3, keepdim=True)], dim=-3)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x):
        return x * self.attention(x)


def test_a_spatial_module_that_takes_unbatched_input_passes(capsys):
    assert check_spatial_attention(AcceptsUnbatched)
    assert passes(capsys)


# --- lesson 03 ---------------------------------------------------------------------------------


def combine_with(error: str):
    def combine(x, channel, spatial, arrangement="channel-first"):
        if arrangement == "channel-first":
            return spatial(channel(x))
        if arrangement == "spatial-first":
            return channel(spatial(x))
        if arrangement == "parallel":
            return x * channel.attention(x) * spatial.attention(x)
        raise ValueError(error)

    return combine


def test_an_error_that_does_not_name_the_choices_fails(capsys):
    assert not check_arrangements(combine_with("unknown arrangement"))
    (line,) = failures(capsys)
    assert "the ValueError says 'unknown arrangement'; name the three choices" in line
    assert check_arrangements(combine_with("use 'channel-first', 'spatial-first' or 'parallel'"))


def test_parallel_as_the_product_of_two_gate_calls_gets_the_parallel_recipe(capsys):
    def combine(x, channel, spatial, arrangement="channel-first"):
        if arrangement == "parallel":
            return channel(x) * spatial(x)
        return combine_with("channel-first, spatial-first, parallel")(x, channel, spatial,
                                                                        arrangement)

    assert not check_arrangements(combine)
    (line,) = failures(capsys)
    assert "channel(x) * spatial(x) multiplies by x twice" in line
    assert "Eq. 1" not in line


@pytest.mark.parametrize("parallel, named", [
    (lambda x, c, s: x * (c.attention(x) + s.attention(x)), "the two maps were added"),
    (lambda x, c, s: c(x) + s(x), "the two maps were added"),
    (lambda x, c, s: (c(x) + s(x)) / 2, "the two maps were averaged"),
])
def test_parallel_as_a_sum_of_the_maps_is_told_they_multiply(parallel, named, capsys):
    def combine(x, channel, spatial, arrangement="channel-first"):
        if arrangement == "parallel":
            return parallel(x, channel, spatial)
        return combine_with("channel-first, spatial-first, parallel")(x, channel, spatial,
                                                                        arrangement)

    assert not check_arrangements(combine)
    (line,) = failures(capsys)
    assert named in line
    assert "the parallel arrangement multiplies the two maps" in line


def test_the_fallback_hint_of_an_arrangement_names_that_arrangement(capsys):
    def combine(x, channel, spatial, arrangement="channel-first"):
        if arrangement == "parallel":
            return x * channel.attention(x) * spatial.attention(x) * 0.5
        return combine_with("channel-first, spatial-first, parallel")(x, channel, spatial,
                                                                        arrangement)

    assert not check_arrangements(combine)
    (line,) = failures(capsys)
    assert "differs from 'parallel', M_c(x) * M_s(x) * x" in line


class WithBody(nn.Module):
    """Right output, but a second module holding the gates: the lesson's load_state_dict fails."""

    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.channel = cbam.ChannelAttention(channels, reduction)
        self.spatial = cbam.SpatialAttention(kernel_size)
        self.body = nn.Sequential(self.channel, self.spatial)

    def forward(self, x):
        return self.body(x)


def test_extra_state_dict_keys_fail_the_block(capsys):
    assert not check_cbam_block(WithBody)
    (line,) = failures(capsys)
    assert ("the same weights are registered under two names (channel.mlp.0.weight and "
            "body.0.mlp.0.weight), so its state_dict has keys cbam.CBAM's has not") in line
    assert "the lesson's load_state_dict fails" in line


class InPlace(nn.Module):
    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.channel = cbam.ChannelAttention(channels, reduction)
        self.spatial = cbam.SpatialAttention(kernel_size)

    def forward(self, x):
        out = self.channel(x)
        out *= self.spatial.attention(out)
        return out


def test_an_in_place_product_is_pointed_at(capsys):
    assert not check_cbam_block(InPlace)
    (line,) = failures(capsys)
    assert "an in-place operation (*=, mul_, +=, relu_)" in line
    assert "write out = out * map instead of out *= map" in line


# --- lesson 04 ---------------------------------------------------------------------------------


def meta_models():
    with torch.device("meta"):
        return {"ResNet-50": cbam.resnet50(), "ResNet-50 + SE": cbam.resnet50(attention="se"),
                "ResNet-50 + CBAM": cbam.resnet50(attention="cbam")}


def count_halving_with_a_slash(model, input_size=(1, 3, 224, 224)):
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(input_size, device=device))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 2


def test_table4_counts_that_are_floats_fail(capsys):
    assert not check_table4(count_halving_with_a_slash, meta_models)
    lines = failures(capsys)
    assert len(lines) == 5  # the small network twice, and the three rows
    assert all("the MACs count is a float" in line and "flops // 2, not flops / 2" in line
               for line in lines)


# --- lesson 05 (the training-step cases are in test_checks_training.py) -------------------------
# --- lesson 07 ---------------------------------------------------------------------------------


def seed_style(block, x):
    """Lesson 07's seed-style forward."""
    mlp = block.channel.mlp
    avg = F.adaptive_avg_pool2d(x, 1).squeeze(-1).squeeze(-1)
    mx = F.adaptive_max_pool2d(x, 1).squeeze(-1).squeeze(-1)
    channel = torch.sigmoid(mlp(avg) + mlp(mx)).unsqueeze(-1).unsqueeze(-1)
    y = x * channel
    mean = torch.mean(y, dim=1, keepdim=True)
    mx, _ = torch.max(y, dim=1, keepdim=True)
    spatial = torch.sigmoid(block.spatial.conv(torch.cat([mean, mx], dim=1)))
    return y * spatial


def fast(block, x):
    descriptors = torch.stack([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])
    gate = torch.sigmoid(block.channel.mlp(descriptors).sum(dim=0))
    y = x * gate[:, :, None, None]
    pooled = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
    return y.mul_(torch.sigmoid(block.spatial.conv(pooled)))


@pytest.mark.parametrize(
    ("forward", "counted"),
    [
        (seed_style, ["2 reduction(s) that also compute the index of every maximum "
                      "(adaptive_max_pool2d, max.dim)", "the MLP's first layer was applied 2 "
                      "times", "2 feature-map-sized buffers allocated (mul ×2)"]),
        (lambda block, x: block.spatial(block.channel(x)),
         ["2 feature-map-sized buffers allocated (mul ×2); the budget is one"]),
        (lambda block, x: fast(block, x.clone()),
         ["2 feature-map-sized buffers allocated (clone, mul)",
          "7 operations read the whole feature map (clone, mean.dim ×2, amax ×2, mul, mul_); "
          "the budget is 6"]),
    ],
    ids=["seed-style", "two-module-call", "clone-first"],
)
def test_fast_cbam_over_the_budget_is_refused_naming_the_count(forward, counted, capsys):
    assert not check_fast_cbam(forward)
    (line,) = failures(capsys)
    assert "within the exercise's budget" in line
    for text in counted:
        assert text in line


def test_fast_cbam_written_other_ways_passes(capsys):
    def gates_then_one_product(block, x):
        gate = torch.sigmoid(block.channel.mlp(torch.stack(
            [x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])).sum(0))[:, :, None, None]
        y = x * gate
        pooled = torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1)
        return torch.mul(y, torch.sigmoid(block.spatial.conv(pooled)), out=y)

    for forward in (fast, gates_then_one_product):
        assert check_fast_cbam(forward)
        assert passes(capsys)
