"""Bad arguments and bad inputs: each raises, and the message says what was expected and got."""

from __future__ import annotations

import pytest
import torch

from cbam.attention import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation

# (call, error type, fragments the message must contain: what was expected, then what came)
BAD_ARGUMENTS = {
    "channels zero": (lambda: CBAM(0), ValueError, ["channels must be positive", "got 0"]),
    "channels negative": (lambda: CBAM(-1), ValueError, ["channels must be positive", "got -1"]),
    "channels float": (lambda: CBAM(16.0), TypeError, ["channels must be an int", "float 16.0"]),
    "channels bool": (lambda: CBAM(True), TypeError, ["channels must be an int", "bool True"]),
    "channels string": (
        lambda: ChannelAttention("16"),
        TypeError,
        ["channels must be an int", "str '16'"],
    ),
    "reduction zero": (
        lambda: CBAM(16, 0),
        ValueError,
        ["reduction must be a number > 0", "got 0"],
    ),
    "reduction negative": (lambda: CBAM(16, -2.5), ValueError, ["number > 0", "got -2.5"]),
    "reduction nan": (lambda: CBAM(16, float("nan")), ValueError, ["number > 0", "got nan"]),
    "reduction string": (
        lambda: CBAM(16, "16"),
        TypeError,
        ["reduction must be a number", "str '16'"],
    ),
    "reduction bool": (
        lambda: ChannelAttention(16, True),
        TypeError,
        ["reduction must be a number", "bool True"],
    ),
    "kernel even": (
        lambda: CBAM(16, kernel_size=4),
        ValueError,
        ["kernel_size must be odd", "got 4"],
    ),
    "kernel zero": (
        lambda: CBAM(16, kernel_size=0),
        ValueError,
        ["kernel_size must be positive", "got 0"],
    ),
    "kernel negative": (
        lambda: SpatialAttention(-3),
        ValueError,
        ["kernel_size must be positive", "got -3"],
    ),
    "kernel float": (
        lambda: SpatialAttention(7.0),
        TypeError,
        ["kernel_size must be an int", "float 7.0"],
    ),
    "kernel bool": (
        lambda: SpatialAttention(True),
        TypeError,
        ["kernel_size must be an int", "bool True"],
    ),
    "kernel two": (lambda: SpatialAttention(2), ValueError, ["must be odd", "got 2"]),
    "unknown channel reduction": (
        lambda: SpatialAttention(7, channel_reduction="conv3x3"),
        ValueError,
        ["channel_reduction must be one of", "'pool', 'conv1x1'", "'conv3x3'"],
    ),
    "1x1 reduction without channels": (
        lambda: SpatialAttention(7, channel_reduction="conv1x1"),
        ValueError,
        ["needs channels", "got None"],
    ),
    "1x1 reduction with zero channels": (
        lambda: SpatialAttention(7, channel_reduction="conv1x1", channels=0),
        ValueError,
        ["channels must be", "got 0"],
    ),
    "unknown pool type": (
        lambda: CBAM(16, pool_types=("avg", "median")),
        ValueError,
        ["pool_types must be among", "'avg', 'max', 'lp', 'lse'", "'median'"],
    ),
    "non-string pool type": (
        lambda: ChannelAttention(8, pool_types=["avg", 3]),
        ValueError,
        ["pool_types must be among", "unknown [3]"],
    ),
    "empty pool types": (
        lambda: CBAM(16, pool_types=()),
        ValueError,
        ["at least one of", "got an empty tuple"],
    ),
    "string pool types": (
        lambda: CBAM(16, pool_types="avg"),
        TypeError,
        ["sequence of names such as ('avg', 'max')", "str 'avg'"],
    ),
    "None pool types": (
        lambda: ChannelAttention(16, pool_types=None),
        TypeError,
        ["sequence of names", "NoneType None"],
    ),
    "duplicate pool types": (
        lambda: CBAM(16, pool_types=("avg", "max", "avg")),
        ValueError,
        ["must not repeat", "('avg', 'max', 'avg')"],
    ),
    "unknown arrangement": (
        lambda: CBAM(16, arrangement="serial"),
        ValueError,
        ["arrangement must be one of", "'channel-first'", "'serial'"],
    ),
    "min_hidden zero": (
        lambda: CBAM(16, min_hidden=0),
        ValueError,
        ["min_hidden must be positive", "got 0"],
    ),
    "min_hidden float": (
        lambda: CBAM(16, min_hidden=1.5),
        TypeError,
        ["min_hidden must be an int", "float 1.5"],
    ),
    "spatial string": (
        lambda: CBAM(16, spatial="no"),
        TypeError,
        ["spatial must be True or False", "str 'no'"],
    ),
    "batch_norm int": (
        lambda: CBAM(16, batch_norm=1),
        TypeError,
        ["batch_norm must be True or False", "int 1"],
    ),
    "bias None": (
        lambda: SqueezeExcitation(16, bias=None),
        TypeError,
        ["bias must be True or False", "NoneType None"],
    ),
    "fused string": (
        lambda: CBAM(16, fused="yes"),
        TypeError,
        ["fused must be True or False", "str 'yes'"],
    ),
    "squeeze-excitation channels": (
        lambda: SqueezeExcitation(0),
        ValueError,
        ["channels must be positive", "got 0"],
    ),
}


@pytest.mark.parametrize("name", list(BAD_ARGUMENTS))
def test_bad_constructor_argument(name):
    call, error, fragments = BAD_ARGUMENTS[name]
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def block(cls=CBAM, train=False):
    module = cls() if cls is SpatialAttention else cls(16)
    return module.train(train)


BAD_INPUTS = {
    "a list": (block(), [[1.0, 2.0]], TypeError, ["CBAM expects a torch.Tensor", "got list"]),
    "a number": (
        block(ChannelAttention),
        3.0,
        TypeError,
        ["ChannelAttention expects a torch.Tensor", "got float"],
    ),
    "3-D": (
        block(),
        torch.randn(16, 5, 5),
        ValueError,
        ["expects a 4-D tensor (N, C, H, W)", "3-D with shape (16, 5, 5)"],
    ),
    "5-D": (
        block(SpatialAttention),
        torch.randn(1, 2, 16, 5, 5),
        ValueError,
        ["SpatialAttention expects a 4-D tensor", "5-D with shape (1, 2, 16, 5, 5)"],
    ),
    "2-D": (
        block(SqueezeExcitation),
        torch.randn(2, 16),
        ValueError,
        ["SqueezeExcitation expects a 4-D tensor", "2-D"],
    ),
    "wrong channels": (
        block(),
        torch.randn(2, 8, 5, 5),
        ValueError,
        ["built for 16 channels", "got input with 8 channels", "(2, 8, 5, 5)"],
    ),
    "wrong channels, training": (
        block(train=True),
        torch.randn(2, 8, 5, 5, requires_grad=True),
        ValueError,
        ["built for 16 channels", "8 channels"],
    ),
    "wrong channels, channel module": (
        block(ChannelAttention),
        torch.randn(1, 17, 3, 3),
        ValueError,
        ["built for 16 channels", "17 channels"],
    ),
    "integer dtype": (
        block(),
        torch.ones(2, 16, 5, 5, dtype=torch.int64),
        TypeError,
        ["expects a floating-point tensor", "torch.int64"],
    ),
    "bool dtype": (
        block(SpatialAttention),
        torch.ones(2, 3, 5, 5, dtype=torch.bool),
        TypeError,
        ["floating-point", "torch.bool"],
    ),
    "complex dtype": (
        block(ChannelAttention),
        torch.ones(2, 16, 5, 5, dtype=torch.complex64),
        TypeError,
        ["floating-point", "torch.complex64"],
    ),
    "no pixels": (block(), torch.randn(2, 16, 0, 5), ValueError, ["H and W >= 1", "(2, 16, 0, 5)"]),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_forward_input(name):
    module, x, error, fragments = BAD_INPUTS[name]
    with pytest.raises(error) as info:
        module(x)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_attention_methods_check_their_input_too():
    with pytest.raises(ValueError, match="built for 16 channels, got input with 4 channels"):
        ChannelAttention(16).attention(torch.randn(1, 4, 3, 3))
    with pytest.raises(ValueError, match="expects a 4-D tensor .* got 3-D"):
        SpatialAttention().attention(torch.randn(4, 3, 3))


def test_good_arguments_at_the_edges_are_accepted():
    """The checks refuse what is wrong, not what is unusual."""
    assert CBAM(1).channel.hidden_channels == 1
    assert CBAM(16, 16.0).channel.hidden_channels == 1
    assert CBAM(16, 0.5).channel.hidden_channels == 32
    assert CBAM(16, kernel_size=1).spatial.conv.padding == (0, 0)
    assert CBAM(16, pool_types=["lse"]).channel.pool_types == ("lse",)
    assert CBAM(16)(torch.randn(0, 16, 3, 3)).shape == (0, 16, 3, 3)  # an empty batch
