"""cbam's own solution handed in as the learner's is refused by the exercise's check, at run time;
what a lesson is meant to build on stays allowed.

Each shortcut is tried in the forms a learner would write: the class itself, under a name built
at run time, an import, an empty subclass, a wrapper whose forward calls the library's, a class
that borrows the library's methods.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cbam
from cbam.checks.block import check_arrangements, check_cbam_block
from cbam.checks.channel import (
    check_channel_attention,
    check_channel_descriptors,
    check_shared_mlp,
)
from cbam.checks.own_work import OwnWork, Shortcut, watching
from cbam.checks.resnet import check_attention_block, check_table4
from cbam.checks.spatial import check_spatial_attention


def refused(check, candidate, capsys, *args) -> str:
    """The one line a refused shortcut prints."""
    passed = check(candidate, *args)
    lines = capsys.readouterr().out.splitlines()
    assert not passed, lines
    assert lines[-1].startswith("✗"), lines
    return lines[-1]


# --- lesson 01 ---------------------------------------------------------------------------------


class Subclass(cbam.ChannelAttention):
    pass


class Wrapper(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.inner = cbam.ChannelAttention(channels, reduction)

    def attention(self, x):
        return self.inner.attention(x)

    def forward(self, x):
        return self.inner(x)


class Borrower(nn.Module):
    """Its own __init__, the library's attention and forward."""

    attention = cbam.ChannelAttention.attention
    forward = cbam.ChannelAttention.forward

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.channels = channels
        self.pool_types = ("avg", "max")
        hidden = max(channels // int(reduction), 1)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(),
                                 nn.Linear(hidden, channels))
        self.gate = nn.Sigmoid()


@pytest.mark.parametrize(
    ("candidate", "hint"),
    [
        (cbam.ChannelAttention, "ChannelAttention is cbam's own class cbam.ChannelAttention: "
                                "write it yourself"),
        (getattr(cbam, "Channel" + "Attention"), "is cbam's own class cbam.ChannelAttention"),
        (importlib.import_module("cbam.attention").ChannelAttention,
         "is cbam's own class cbam.ChannelAttention"),
        (cbam.SqueezeExcitation, "is a subclass of cbam.ChannelAttention"),
        (Subclass, "ChannelAttention is a subclass of cbam.ChannelAttention, so cbam's code "
                   "does the work: write it yourself"),
        (Wrapper, "ChannelAttention delegates its attention to cbam.ChannelAttention.attention: "
                  "write it yourself"),
        (Borrower, "ChannelAttention borrows cbam's own cbam.ChannelAttention.attention as its "
                   "attention: write it yourself"),
    ],
    ids=["itself", "name-built-at-run-time", "import", "library-subclass", "empty-subclass",
         "wrapper", "borrowed-methods"],
)
def test_channel_attention_shortcuts_are_refused(candidate, hint, capsys):
    line = refused(check_channel_attention, candidate, capsys)
    assert hint in line


def test_a_shortcut_stops_the_check_at_one_line(capsys):
    assert not check_channel_attention(cbam.ChannelAttention)
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_the_library_mlp_handed_in_as_shared_mlp_is_refused(capsys):
    line = refused(check_shared_mlp, lambda c, r=16: cbam.ChannelAttention(c, r).mlp, capsys)
    assert "shared_mlp calls cbam.ChannelAttention.__init__: write it yourself" in line


def test_the_library_pooling_handed_in_as_descriptors_is_refused(capsys):
    from cbam.attention import _global_pool

    line = refused(check_channel_descriptors,
                   lambda x: (_global_pool(x, "avg"), _global_pool(x, "max")), capsys)
    assert "calls cbam.attention._global_pool" in line


def test_a_shortcut_caught_by_the_learner_is_still_refused(capsys):
    class Swallows(Wrapper):
        def forward(self, x):
            try:
                return self.inner(x)
            except Exception:  # noqa: BLE001 - what a learner hiding the call would write
                return x

    line = refused(check_channel_attention, Swallows, capsys)
    assert "delegates its" in line


# --- lesson 02 ---------------------------------------------------------------------------------


class SpatialWrapper(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.inner = cbam.SpatialAttention(kernel_size)

    def attention(self, x):
        return self.inner.attention(x)

    def forward(self, x):
        return x * self.attention(x)


@pytest.mark.parametrize(
    ("candidate", "hint"),
    [
        (cbam.SpatialAttention, "SpatialAttention is cbam's own class cbam.SpatialAttention"),
        (type("SpatialAttention", (cbam.SpatialAttention,), {}),
         "SpatialAttention is a subclass of cbam.SpatialAttention"),
        (SpatialWrapper, "SpatialAttention delegates its attention to "
                         "cbam.SpatialAttention.attention"),
    ],
    ids=["itself", "empty-subclass", "wrapper"],
)
def test_spatial_attention_shortcuts_are_refused(candidate, hint, capsys):
    assert hint in refused(check_spatial_attention, candidate, capsys)


# --- lesson 03 ---------------------------------------------------------------------------------


class BlockWrapper(nn.Module):
    """The issue's wrapper: the library's block inside, its gates exposed, its forward called."""

    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.block = cbam.CBAM(channels, reduction, kernel_size, fused=False)
        self.channel, self.spatial = self.block.channel, self.block.spatial

    def forward(self, x):
        return self.block(x)


class BuiltFromTheLibrarysGates(nn.Module):
    """What lesson 03 asks: cbam.ChannelAttention and cbam.SpatialAttention, composed here."""

    def __init__(self, channels, reduction=16, kernel_size=7):
        super().__init__()
        self.channel = cbam.ChannelAttention(channels, reduction)
        self.spatial = cbam.SpatialAttention(kernel_size)

    def forward(self, x):
        return self.spatial(self.channel(x))


@pytest.mark.parametrize(
    ("candidate", "hint"),
    [
        (cbam.CBAM, "CBAM is cbam's own class cbam.CBAM: write it yourself"),
        (type("CBAM", (cbam.CBAM,), {}), "CBAM is a subclass of cbam.CBAM"),
        (BlockWrapper, "CBAM delegates its forward to cbam.CBAM.forward: write it yourself"),
    ],
    ids=["itself", "empty-subclass", "wrapper"],
)
def test_cbam_block_shortcuts_are_refused(candidate, hint, capsys):
    assert hint in refused(check_cbam_block, candidate, capsys)


def test_a_block_built_from_the_librarys_gates_passes(capsys):
    assert check_cbam_block(BuiltFromTheLibrarysGates)
    assert all(line.startswith("✓") for line in capsys.readouterr().out.splitlines())


def combine_through_the_library(x, channel, spatial, arrangement="channel-first"):
    block = cbam.CBAM(x.shape[1], arrangement=arrangement)
    block.channel, block.spatial = channel, spatial
    return block(x)


def combine_with_the_given_gates(x, channel, spatial, arrangement="channel-first"):
    if arrangement not in ("channel-first", "spatial-first", "parallel"):
        raise ValueError(f"arrangement must be channel-first, spatial-first or parallel, "
                         f"got {arrangement!r}")
    if arrangement == "parallel":
        return x * channel.attention(x) * spatial.attention(x)
    first, second = (channel, spatial) if arrangement == "channel-first" else (spatial, channel)
    return second(first(x))


def test_arrangements_through_the_librarys_block_are_refused(capsys):
    line = refused(check_arrangements, combine_through_the_library, capsys)
    assert "combine calls cbam.CBAM.forward: write it yourself" in line


def test_arrangements_from_the_given_gates_pass(capsys):
    assert check_arrangements(combine_with_the_given_gates)
    assert all(line.startswith("✓") for line in capsys.readouterr().out.splitlines())


# --- lesson 04 ---------------------------------------------------------------------------------


class BottleneckWrapper(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
        super().__init__()
        self.inner = cbam.Bottleneck(inplanes, planes, stride, downsample, attention=attention)
        for name in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample", "attention"):
            setattr(self, name, getattr(self.inner, name))

    def forward(self, x):
        return self.inner(x)


@pytest.mark.parametrize(
    ("candidate", "hint"),
    [
        (cbam.Bottleneck, "Bottleneck is cbam's own class cbam.Bottleneck"),
        (type("Bottleneck", (cbam.Bottleneck,), {}), "Bottleneck is a subclass of cbam.Bottleneck"),
        (BottleneckWrapper, "Bottleneck delegates its forward to cbam.Bottleneck.forward"),
    ],
    ids=["itself", "empty-subclass", "wrapper"],
)
def test_bottleneck_shortcuts_are_refused(candidate, hint, capsys):
    assert hint in refused(check_attention_block, candidate, capsys)


def meta_models():
    with torch.device("meta"):
        return {"ResNet-50": cbam.resnet50(), "ResNet-50 + SE": cbam.resnet50(attention="se"),
                "ResNet-50 + CBAM": cbam.resnet50(attention="cbam")}


def count_with_flop_counter(model, input_size=(1, 3, 224, 224)):
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(input_size, device=device))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


@pytest.mark.parametrize(
    ("count", "hint"),
    [
        (lambda model, input_size=(1, 3, 224, 224): (cbam.count_params(model),
                                                     cbam.count_macs(model, input_size)),
         "count calls cbam.count_params: write it yourself"),
        (lambda model, input_size=(1, 3, 224, 224): (
            sum(p.numel() for p in model.parameters()), cbam.count_macs(model, input_size)),
         "count calls cbam.count_macs: write it yourself"),
    ],
    ids=["both", "macs-only"],
)
def test_counting_with_the_library_is_refused(count, hint, capsys):
    assert hint in refused(check_table4, count, capsys, meta_models)


def test_table4_from_the_librarys_resnets_passes(capsys):
    # The networks are cbam's own ResNets, as the lesson says; only the counting is the exercise.
    assert check_table4(count_with_flop_counter, meta_models)
    assert all(line.startswith("✓") for line in capsys.readouterr().out.splitlines())


# --- the watch itself ----------------------------------------------------------------------------


def test_the_watch_puts_the_librarys_code_back():
    codes = (cbam.CBAM.forward.__code__, cbam.CBAM.extra_repr.__code__)
    with watching(OwnWork("CBAM", (cbam.CBAM,))):
        assert cbam.CBAM.forward.__code__ is not codes[0]  # the stand-in, while watched
    assert (cbam.CBAM.forward.__code__, cbam.CBAM.extra_repr.__code__) == codes
    with pytest.raises(RuntimeError), watching(OwnWork("CBAM", (cbam.CBAM,))):
        raise RuntimeError("a check that fails")
    assert cbam.CBAM.forward.__code__ is codes[0]


def test_a_watched_method_keeps_its_defaults_and_super():
    # ChannelAttention.__init__ has keyword defaults and calls super(): under the stand-in
    # both still work (and a test's frame, like a learner's, is noted).
    with pytest.raises(Shortcut), watching(
            OwnWork("shared_mlp", (cbam.ChannelAttention,), watch_init=True)):
        module = cbam.ChannelAttention(32, min_hidden=3)
        assert module.hidden_channels == 3 and module.pool_types == ("avg", "max")
    assert cbam.ChannelAttention(32).hidden_channels == 2


def test_a_call_from_learner_code_is_a_shortcut():
    block = cbam.CBAM(8).eval()
    with pytest.raises(Shortcut, match="calls cbam.CBAM.forward"), \
            watching(OwnWork("learner", (cbam.CBAM,))):
        def learner(x):
            return block(x)

        learner(torch.randn(1, 8, 4, 4))


def test_unrelated_code_runs_unwatched():
    with watching(OwnWork("CBAM", (cbam.CBAM,))):
        F.relu(cbam.ChannelAttention(8)(torch.randn(1, 8, 4, 4)))


def test_the_library_compiled_again_is_refused_and_a_look_alike_is_not():
    import pathlib
    import runpy

    from cbam.checks.channel import OWN_MODULE
    from cbam.checks.own_work import Shortcut, expect_not_the_library

    library = pathlib.Path(cbam.__file__).parent / "attention.py"
    again = runpy.run_path(str(library))["ChannelAttention"]
    with pytest.raises(Shortcut, match="its code is the library's"):
        expect_not_the_library(again, OWN_MODULE)
    executed: dict = {"__name__": "copied"}
    exec(compile(library.read_text(), "<string>", "exec"), executed)
    with pytest.raises(Shortcut, match="write it yourself"):
        expect_not_the_library(executed["ChannelAttention"], OWN_MODULE)
    # The library's forward, written in a cell at the very line where the library has it: the
    # same code, yet the learner's own.
    line = cbam.ChannelAttention.forward.__code__.co_firstlineno
    cell = ("\n" * (line - 2) + "class ChannelAttention(nn.Module):\n"
            "    def forward(self, x):\n        return x * self.attention(x)\n")
    written: dict = {"nn": torch.nn}
    exec(compile(cell, "/tmp/ipykernel_1/cell.py", "exec"), written)
    assert (written["ChannelAttention"].forward.__code__.co_firstlineno == line)
    expect_not_the_library(written["ChannelAttention"], OWN_MODULE)
