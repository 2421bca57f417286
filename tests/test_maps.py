"""record_attention: the maps of every attention module, read by hooks that leave no trace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cbam.fast.fused_backward
from cbam import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation, record_attention


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fused_for_small_inputs(monkeypatch):
    """The fused training path normally waits for large inputs; these are small."""
    monkeypatch.setattr(cbam.fast.fused_backward, "FUSED_MIN_ELEMENTS", 0)


def several_blocks() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        CBAM(8, 2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        CBAM(16, 4, 3, arrangement="spatial-first"),
        SqueezeExcitation(16, 4),
        CBAM(16, 4, 5, arrangement="parallel"),
    )


EXPECTED_SHAPES = {  # for an input of shape (2, 8, 10, 6)
    "0.channel": (2, 8, 1, 1),
    "0.spatial": (2, 1, 10, 6),
    "2.channel": (2, 16, 1, 1),
    "2.spatial": (2, 1, 5, 3),
    "3": (2, 16, 1, 1),
    "4.channel": (2, 16, 1, 1),
    "4.spatial": (2, 1, 5, 3),
}


def all_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_maps_have_the_documented_shapes_one_per_call(grad):
    model = several_blocks()
    x = torch.randn(2, 8, 10, 6, requires_grad=grad)
    with torch.set_grad_enabled(grad), record_attention(model) as maps:
        for _ in range(3):
            model(x)
    assert set(maps) == set(EXPECTED_SHAPES)
    for name, shape in EXPECTED_SHAPES.items():
        assert len(maps[name]) == 3, name
        for m in maps[name]:
            assert m.shape == shape, name
            assert not m.requires_grad
            assert ((m > 0) & (m < 1)).all()


def test_maps_are_the_modules_own_maps():
    model = several_blocks()
    x = torch.randn(2, 8, 10, 6)
    with record_attention(model) as maps:
        model(x)
    first = model[0]
    torch.testing.assert_close(maps["0.channel"][0], first.channel.attention(x))
    y = x * first.channel.attention(x)
    torch.testing.assert_close(maps["0.spatial"][0], first.spatial.attention(y))


def test_the_fused_training_path_records_the_same_maps():
    torch.manual_seed(1)
    block = CBAM(16, 4)
    x = torch.randn(2, 16, 6, 5, requires_grad=True)
    with record_attention(block) as fused_maps:
        block(x)
    block.fused = False
    with record_attention(block) as plain_maps:
        block(x)
    for name in ("channel", "spatial"):
        torch.testing.assert_close(fused_maps[name][0], plain_maps[name][0])


def test_output_is_unchanged_by_recording():
    model = several_blocks()
    x = torch.randn(2, 8, 10, 6)
    with torch.no_grad():
        before = model(x)
        with record_attention(model):
            during = model(x)
        after = model(x)
    # While recorded, the blocks run their plain code instead of the C kernel: equal up to
    # float rounding. Afterwards the kernel is back, to the bit.
    torch.testing.assert_close(during, before, rtol=1e-5, atol=1e-6)
    assert torch.equal(before, after)


def test_recording_without_the_c_kernel_changes_no_bit():
    model = several_blocks()
    for block in model.modules():
        if isinstance(block, CBAM):
            block.fused = False
    x = torch.randn(2, 8, 10, 6)
    with torch.no_grad():
        before = model(x)
        with record_attention(model):
            during = model(x)
    assert torch.equal(before, during)


def test_hooks_are_removed_after_the_block_even_after_an_error():
    model = several_blocks()
    assert all_hooks(model) == 0
    with record_attention(model) as maps:
        assert all_hooks(model) == 7  # one per gate
    assert all_hooks(model) == 0
    model(torch.randn(1, 8, 4, 4))
    assert len(maps) == 0  # nothing recorded after the block

    with pytest.raises(ValueError, match="built for 8 channels"):
        with record_attention(model):
            model(torch.randn(1, 3, 4, 4))
    assert all_hooks(model) == 0


def test_detach_false_keeps_maps_in_the_graph_of_the_input():
    torch.manual_seed(2)
    block = CBAM(16, 4)
    x = torch.randn(2, 16, 5, 5, requires_grad=True)
    with record_attention(block, detach=False) as maps:
        block(x)
        assert block.fused is False  # the plain path: maps connected to x
    assert block.fused is True
    spatial = maps["spatial"][0]
    assert spatial.requires_grad
    (grad,) = torch.autograd.grad(spatial.sum(), x)
    assert grad.abs().sum() > 0


def test_a_lone_module_is_recorded_under_the_empty_name():
    channel = ChannelAttention(4, 2)
    spatial = SpatialAttention(3)
    x = torch.randn(1, 4, 3, 3)
    with record_attention(channel) as c_maps, record_attention(spatial) as s_maps:
        channel(x)
        spatial(x)
    assert c_maps[""][0].shape == (1, 4, 1, 1)
    assert s_maps[""][0].shape == (1, 1, 3, 3)


def test_modules_that_did_not_run_have_no_entry():
    model = nn.ModuleDict({"used": CBAM(4, 2), "unused": CBAM(4, 2)})
    with record_attention(model) as maps:
        model["used"](torch.randn(1, 4, 3, 3))
    assert set(maps) == {"used.channel", "used.spatial"}


@pytest.mark.parametrize(
    "model, detach, error, fragments",
    [
        ("not a model", True, TypeError, ["expects a torch.nn.Module", "got str"]),
        (CBAM(4, 2), "yes", TypeError, ["detach must be True or False", "str 'yes'"]),
    ],
)
def test_bad_arguments(model, detach, error, fragments):
    with pytest.raises(error) as info:
        with record_attention(model, detach=detach):
            pass
    for fragment in fragments:
        assert fragment in str(info.value)


def test_logits_are_what_the_gates_receive():
    model = several_blocks().eval()
    x = torch.randn(2, 8, 10, 6)
    with record_attention(model) as maps, record_attention(model, logits=True) as logits:
        model(x)
    assert set(maps) == set(logits)
    for name in maps:
        assert logits[name][0].shape == maps[name][0].shape
        torch.testing.assert_close(torch.sigmoid(logits[name][0]), maps[name][0])
    assert any((logits[name][0] < 0).any() for name in logits)  # before the sigmoid
    assert all_hooks(model) == 0
    with pytest.raises((TypeError, ValueError)), record_attention(model, logits="yes"):
        pass
