"""cbam in other people's code: factory keywords, integer-like sizes, timm, export, tracing,
scripting, hooks, double backward and empty batches. Wherever a faster route exists, the plain
code's graph and values are what comes out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cbam
from cbam import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation

# name: (class, arguments, keywords) of each module the library exports, in its configurations
MODULES = {
    "CBAM": (CBAM, (32,), {}),
    "CBAM with BatchNorm": (CBAM, (32,), {"batch_norm": True}),
    "ChannelAttention": (ChannelAttention, (32,), {}),
    "SqueezeExcitation": (SqueezeExcitation, (32,), {}),
    "SpatialAttention": (SpatialAttention, (), {}),
    "SpatialAttention conv1x1": (
        SpatialAttention,
        (),
        {"channel_reduction": "conv1x1", "channels": 32},
    ),
}


def build(name: str, **factory) -> nn.Module:
    module_cls, args, kwargs = MODULES[name]
    return module_cls(*args, **kwargs, **factory)


# --- factory keywords and integer-like sizes ---------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_every_module_takes_device_and_dtype(name):
    module = build(name, device="meta", dtype=torch.float64)
    tensors = list(module.parameters()) + list(module.buffers())
    assert tensors
    # BatchNorm's num_batches_tracked is an integer counter, left integer as nn.BatchNorm2d does.
    assert all(t.device.type == "meta" for t in tensors)
    assert all(t.dtype == torch.float64 for t in tensors if t.is_floating_point())


@pytest.mark.parametrize("name", MODULES)
def test_skip_init_builds_a_working_module(name):
    module_cls, args, kwargs = MODULES[name]
    module = nn.utils.skip_init(module_cls, *args, **kwargs)
    reference = build(name)
    assert module.state_dict().keys() == reference.state_dict().keys()
    module.load_state_dict(reference.state_dict())
    x = torch.randn(2, 32, 6, 6)
    torch.testing.assert_close(module(x), reference(x))


def test_skip_init_builds_a_resnet_with_cbam():
    model = nn.utils.skip_init(cbam.ResNet, cbam.Bottleneck, [3, 4, 6, 3], attention="cbam")
    assert sum(p.numel() for p in model.parameters()) == 28_089_592  # Table 4's 28.09 M


@pytest.mark.parametrize("attention", ["cbam", "se", None, lambda c: CBAM(c, reduction=8)])
def test_resnets_take_device_and_dtype(attention):
    model = cbam.resnet_cifar(20, attention=attention, dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    model = cbam.resnet18(attention=attention, device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_integer_like_sizes_are_accepted_and_stored_as_int():
    class Index:
        def __index__(self):
            return 64

    for channels in (np.int64(64), np.int32(64), Index()):
        block = CBAM(channels, np.int64(16), np.int64(7))
        assert type(block.channel.channels) is int and block.channel.channels == 64
        assert block.channel.hidden_channels == 4 and block.spatial.kernel_size == 7
        assert block(torch.randn(1, 64, 5, 5)).shape == (1, 64, 5, 5)
    model = cbam.resnet_cifar(np.int64(20), np.int64(10), width=np.int64(8))
    assert model.fc.out_features == 10 and model.conv1.out_channels == 8


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "bool True"), (np.True_, "bool"), (64.0, "float 64.0"), (np.float64(64), "float64")],
)
def test_bools_and_floats_are_still_refused_with_what_came(value, shown):
    with pytest.raises(TypeError, match="channels must be an int") as error:
        CBAM(value)
    assert shown in str(error.value)


def test_timm_builds_a_resnet_with_cbam_as_its_attention_layer():
    try:
        import timm
    except ImportError as error:  # timm imports torchvision, which a CPU-only torch may lack
        pytest.skip(f"timm does not import here: {error}")
    model = timm.create_model("resnet18", block_args={"attn_layer": CBAM}, num_classes=10)
    blocks = [m for m in model.modules() if isinstance(m, CBAM)]
    assert len(blocks) == 8 and blocks[0].channel.channels == 64
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    meta = timm.create_model("resnet18", block_args={"attn_layer": CBAM}, device="meta")
    assert {p.device.type for p in meta.parameters()} == {"meta"}
