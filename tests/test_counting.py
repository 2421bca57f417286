"""Parameter and MAC counting against counts done by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cbam
from cbam.counting import count_macs, count_params, macs_by_module

N, C_IN, H, W = 2, 3, 8, 8
C_OUT, K, CLASSES = 4, 3, 5


def tiny_model() -> nn.Sequential:
    """conv (with bias) -> BN -> ReLU -> a nested head of flatten + linear (with bias)."""
    return nn.Sequential(
        nn.Conv2d(C_IN, C_OUT, K, padding=1),
        nn.BatchNorm2d(C_OUT),
        nn.ReLU(),
        nn.Sequential(nn.Flatten(), nn.Linear(C_OUT * H * W, CLASSES)),
    )


# By hand: each output element of a conv costs C_in * K * K multiply-accumulates, each output of
# a linear layer costs in_features; biases, BN and ReLU are not multiply-accumulates.
CONV_MACS = N * C_OUT * H * W * (C_IN * K * K)
LINEAR_MACS = N * CLASSES * (C_OUT * H * W)
PARAMS = (C_OUT * C_IN * K * K + C_OUT) + (2 * C_OUT) + (C_OUT * H * W * CLASSES + CLASSES)


def test_count_params_by_hand():
    model = tiny_model()
    model[0].weight.requires_grad_(False)  # frozen parameters are still parameters
    assert count_params(model) == PARAMS


def test_count_macs_by_hand():
    assert count_macs(tiny_model(), (N, C_IN, H, W)) == CONV_MACS + LINEAR_MACS


def test_count_macs_scales_with_batch():
    assert count_macs(tiny_model(), (3 * N, C_IN, H, W)) == 3 * (CONV_MACS + LINEAR_MACS)


def test_macs_by_module_names_like_named_modules():
    model = tiny_model()
    macs = macs_by_module(model, (N, C_IN, H, W))
    assert macs == {
        "": CONV_MACS + LINEAR_MACS,
        "0": CONV_MACS,
        "3": LINEAR_MACS,
        "3.1": LINEAR_MACS,
    }
    assert list(macs) == [name for name, _ in model.named_modules() if name in macs]


def test_macs_by_module_in_a_resnet():
    model = cbam.resnet_cifar(8, attention="cbam")
    macs = macs_by_module(model, (1, 3, 32, 32))
    assert macs[""] == count_macs(model, (1, 3, 32, 32))
    assert macs[""] == macs["conv1"] + macs["layer1"] + macs["layer2"] + macs["layer3"] + macs["fc"]
    block = macs["layer1.0"]
    parts = ("conv1", "conv2", "attention")
    assert block == sum(macs[f"layer1.0.{part}"] for part in parts)
    assert "layer1.0.bn1" not in macs  # BatchNorm does no counted work


def test_attention_macs_by_hand():
    channels, hidden, size = 64, 4, 14
    shape = (1, channels, size, size)
    mlp = channels * hidden + hidden * channels  # two linear layers, per descriptor
    spatial = size * size * 2 * 7 * 7  # one output channel, two pooled inputs, 7x7
    assert count_macs(cbam.SqueezeExcitation(channels), shape) == mlp  # average descriptor only
    # CBAM's shared MLP runs on the average and the max descriptors: twice SE's MACs.
    assert count_macs(cbam.CBAM(channels), shape) == 2 * mlp + spatial


def test_counting_restores_training_modes_and_leaves_statistics_alone():
    model = tiny_model().train()
    model[3].eval()
    modes = [m.training for m in model.modules()]
    mean_before = model[1].running_mean.clone()
    count_macs(model, (N, C_IN, H, W))
    macs_by_module(model, (N, C_IN, H, W))
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(model[1].running_mean, mean_before)
    assert model[1].num_batches_tracked.item() == 0


def test_counting_works_on_the_meta_device():
    with torch.device("meta"):
        model = tiny_model()
    assert count_macs(model, (N, C_IN, H, W)) == CONV_MACS + LINEAR_MACS
    assert count_params(model) == PARAMS


@pytest.mark.parametrize(
    "input_size", [(), (1, 3, 0, 8), (1, 3, -8, 8), (1.0, 3, 8, 8), "1x3x8x8", 224, (1, True, 8)]
)
def test_input_size_is_validated(input_size):
    with pytest.raises(ValueError, match=r"input_size must be .* such as \(1, 3, 224, 224\), got"):
        count_macs(tiny_model(), input_size)


def test_model_is_validated():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        count_params(lambda x: x)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        macs_by_module("resnet50")
