"""The checks of lesson 03 (the CBAM block, its arrangements) give the right verdict and hint.

Each wrong implementation makes one mistake learners make; the test asserts that the check
fails and that a failing line's hint names that mistake. Correct implementations written
differently from the lesson's (own modules, 1x1 convolutions, the authors' [max, mean] pooling
order, other attribute names) must pass every line.
"""

from __future__ import annotations

import pytest
import torch
from check_verdicts import assert_all_pass, assert_fails_with, assert_not_implemented, verdicts
from torch import nn

from cbam import ChannelAttention, SpatialAttention
from cbam.checks.block import check_arrangements, check_cbam_block

# --- cbam-block: correct implementations -----------------------------------------------------


class Composed(nn.Module):
    """The lesson's solution."""

    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x):
        return self.spatial(self.channel(x))


class FromScratch(nn.Module):
    """Written without the library: 1x1 convolutions for the MLP, adaptive pooling, the authors'
    [max, mean] channel-pool order, a bias in the spatial convolution, other names."""

    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        hidden = channels // reduction
        self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(),
                                nn.Conv2d(hidden, channels, 1))
        self.squeeze_avg, self.squeeze_max = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)
        self.where = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        weights = torch.sigmoid(self.fc(self.squeeze_avg(x)) + self.fc(self.squeeze_max(x)))
        x = x * weights
        pooled = torch.cat([torch.max(x, 1, keepdim=True)[0], torch.mean(x, 1, keepdim=True)], 1)
        return x * torch.sigmoid(self.where(pooled))


class ViaAttentionMaps(Composed):
    """Uses the maps explicitly instead of the gates' forward."""

    def forward(self, x):
        refined = x * self.channel.attention(x)
        return refined * self.spatial.attention(refined)


@pytest.mark.parametrize("implementation", [Composed, FromScratch, ViaAttentionMaps])
def test_correct_blocks_pass(implementation, capsys):
    assert_all_pass(check_cbam_block(implementation), capsys, 5)


# --- cbam-block: wrong implementations -------------------------------------------------------


class SpatialFirst(Composed):
    def forward(self, x):
        return self.channel(self.spatial(x))


class Parallel(Composed):
    def forward(self, x):
        return x * self.channel.attention(x) * self.spatial.attention(x)


class ReturnsChannelMap(Composed):
    def forward(self, x):
        return self.channel.attention(x)


class ReturnsSpatialMap(Composed):
    def forward(self, x):
        return self.spatial.attention(self.channel(x))


class SpatialMapFromInput(Composed):
    def forward(self, x):
        return self.channel(x) * self.spatial.attention(x)


class SpatialMapOnInput(Composed):
    def forward(self, x):
        return x * self.spatial.attention(self.channel(x))


class ChannelOnly(Composed):
    def forward(self, x):
        return self.channel(x)


class IgnoresReduction(Composed):
    """The seed's habit: a fixed ratio of 8."""

    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__(channels, 8, kernel_size)


class IgnoresKernelSize(Composed):
    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__(channels, reduction, 7)


class Detached(Composed):
    def forward(self, x):
        refined = x * self.channel.attention(x).detach()
        return refined * self.spatial.attention(refined).detach()


class ChannelMapDetached(Composed):
    def forward(self, x):
        return self.spatial(x * self.channel.attention(x).detach())


class TwoMLPs(nn.Module):
    """A separate MLP for each descriptor: Eq. 2 shares one."""

    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        hidden = channels // reduction
        self.mlp_avg = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(),
                                     nn.Linear(hidden, channels))
        self.mlp_max = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(),
                                     nn.Linear(hidden, channels))
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x):
        logits = self.mlp_avg(x.mean((2, 3))) + self.mlp_max(x.amax((2, 3)))
        return self.spatial(x * torch.sigmoid(logits)[:, :, None, None])


class InPlace(Composed):
    def forward(self, x):
        x.mul_(self.channel.attention(x))
        return x.mul_(self.spatial.attention(x))


WRONG_BLOCKS = {
    "spatial first": (SpatialFirst, "spatial attention was applied first"),
    "parallel": (Parallel, "both maps were computed from x"),
    "channel map returned": (ReturnsChannelMap, "that is the channel map"),
    "spatial map returned": (ReturnsSpatialMap, "that is the spatial map"),
    # M_s(x) applied to F' is x * M_c(x) * M_s(x): the parallel arrangement, and named so.
    "spatial map from x": (SpatialMapFromInput, "compute the spatial map from F' = M_c(x) * x"),
    "spatial map on x": (SpatialMapOnInput, "the spatial map was applied to x"),
    "channel only": (ChannelOnly, "only channel attention was applied"),
    "reduction ignored": (IgnoresReduction, "pass reduction on to ChannelAttention"),
    "kernel size ignored": (IgnoresKernelSize, "the spatial convolution is 7x7, expected 3x3"),
    "detached maps": (Detached, "are the maps detached"),
    "channel map detached": (ChannelMapDetached, "no gradient reached the channel MLP"),
    "unshared MLPs": (TwoMLPs, "must be shared"),
    "in place": (InPlace, "changed in place"),
}


@pytest.mark.parametrize("name", WRONG_BLOCKS)
def test_wrong_blocks_fail_with_their_hint(name, capsys):
    implementation, hint = WRONG_BLOCKS[name]
    assert_fails_with(check_cbam_block(implementation), capsys, hint)


def test_an_ignored_kernel_size_fails_only_the_other_setting(capsys):
    """A block that ignores kernel_size still has the paper's parts at the defaults."""
    check_cbam_block(IgnoresKernelSize)
    lines = verdicts(capsys)
    assert [ok for ok, _, _ in lines] == [True, True, False, True, True]


def test_a_stub_block_gives_one_not_implemented_line(capsys):
    class Stub(nn.Module):
        def __init__(self, channels, reduction=16, kernel_size=7):
            super().__init__()
            raise NotImplementedError("exercise cbam-block: write this part")

    assert_not_implemented(check_cbam_block(Stub), capsys)


def test_checking_leaves_the_global_random_stream_alone(capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_cbam_block(Composed)
    assert torch.equal(torch.rand(3), expected)


# --- arrangements ----------------------------------------------------------------------------


def combine(x, channel, spatial, arrangement="channel-first"):
    if arrangement == "channel-first":
        return spatial(channel(x))
    if arrangement == "spatial-first":
        return channel(spatial(x))
    if arrangement == "parallel":
        return x * channel.attention(x) * spatial.attention(x)
    raise ValueError(f"unknown arrangement {arrangement!r}: use channel-first, spatial-first "
                     "or parallel")


def combine_by_table(x, channel, spatial, arrangement="channel-first"):
    """Maps named explicitly, the choice looked up in a dict, the error raised by hand."""
    def channel_first():
        refined = x * channel.attention(x)
        return refined * spatial.attention(refined)

    def spatial_first():
        refined = x * spatial.attention(x)
        return refined * channel.attention(refined)

    def parallel():
        return channel.attention(x) * spatial.attention(x) * x

    recipes = {"channel-first": channel_first, "spatial-first": spatial_first,
               "parallel": parallel}
    if arrangement not in recipes:
        raise ValueError(f"arrangement must be one of {sorted(recipes)}, got {arrangement!r}")
    return recipes[arrangement]()


@pytest.mark.parametrize("implementation", [combine, combine_by_table])
def test_correct_arrangements_pass(implementation, capsys):
    assert_all_pass(check_arrangements(implementation), capsys, 5)


def swapped(x, channel, spatial, arrangement="channel-first"):
    if arrangement == "spatial-first":
        return spatial(channel(x))
    return combine(x, channel, spatial, "spatial-first" if arrangement == "channel-first"
                   else arrangement)


def parallel_sequential(x, channel, spatial, arrangement="channel-first"):
    if arrangement == "parallel":
        return spatial(channel(x))
    return combine(x, channel, spatial, arrangement)


def no_error(x, channel, spatial, arrangement="channel-first"):
    if arrangement in ("spatial-first", "parallel"):
        return combine(x, channel, spatial, arrangement)
    return combine(x, channel, spatial)


def key_error(x, channel, spatial, arrangement="channel-first"):
    return {"channel-first": lambda: spatial(channel(x)),
            "spatial-first": lambda: channel(spatial(x)),
            "parallel": lambda: x * channel.attention(x) * spatial.attention(x)}[arrangement]()


def parallel_default(x, channel, spatial, arrangement="parallel"):
    return combine(x, channel, spatial, arrangement)


def channel_map_on_input(x, channel, spatial, arrangement="channel-first"):
    if arrangement == "spatial-first":
        return x * channel.attention(spatial(x))
    return combine(x, channel, spatial, arrangement)


def maps_only(x, channel, spatial, arrangement="channel-first"):
    if arrangement == "parallel":
        return channel.attention(x) * spatial.attention(x)
    return combine(x, channel, spatial, arrangement)


WRONG_ARRANGEMENTS = {
    "swapped": (swapped, "returned what 'spatial-first' gives; for 'channel-first'"),
    "parallel done sequentially": (parallel_sequential,
                                   "returned what 'channel-first' gives; for 'parallel'"),
    "no error": (no_error, "an unknown arrangement returned a result"),
    "key error": (key_error, "raised KeyError; raise ValueError"),
    "parallel default": (parallel_default, "make 'channel-first' the default"),
    "channel map on x": (channel_map_on_input, "the channel map was applied to x"),
    "maps only": (maps_only, "returned the product of the maps"),
}


@pytest.mark.parametrize("name", WRONG_ARRANGEMENTS)
def test_wrong_arrangements_fail_with_their_hint(name, capsys):
    implementation, hint = WRONG_ARRANGEMENTS[name]
    assert_fails_with(check_arrangements(implementation), capsys, hint)


def test_a_stub_combine_gives_one_not_implemented_line(capsys):
    def stub(x, channel, spatial, arrangement="channel-first"):
        raise NotImplementedError("exercise arrangements: write this part")

    assert_not_implemented(check_arrangements(stub), capsys)
