"""The ResNet family: where attention goes, shapes, stride placement, construction errors."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

import cbam
from cbam.resnet import (
    BasicBlock,
    Bottleneck,
    CifarResNet,
    ResNet,
    make_attention,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet_cifar,
)

BUILDERS = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
}


class ScaleBy3(nn.Module):
    """A stand-in attention that remembers its width and input and visibly changes its input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.clone()
        return 3 * x


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes)
    )


def _record_output(module: nn.Module, store: dict, key: str):
    return module.register_forward_hook(lambda _m, _i, out: store.__setitem__(key, out.clone()))


@pytest.mark.parametrize(
    ("block_type", "last_bn"),
    [(Bottleneck, "bn3"), (BasicBlock, "bn2")],
)
@pytest.mark.parametrize("with_downsample", [False, True])
def test_attention_sits_after_last_bn_and_before_residual_add(block_type, last_bn, with_downsample):
    torch.manual_seed(0)
    planes, stride = 8, 2 if with_downsample else 1
    outplanes = planes * block_type.expansion
    inplanes = 16 if with_downsample else outplanes
    downsample = _downsample(inplanes, outplanes, stride) if with_downsample else None
    block = block_type(inplanes, planes, stride, downsample, attention=ScaleBy3).eval()
    # Non-trivial BatchNorm statistics, so "after the BN" and "before the BN" differ.
    for module in block.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-1, 1)

    captured: dict[str, torch.Tensor] = {}
    _record_output(getattr(block, last_bn), captured, "last_bn")
    if downsample is not None:
        _record_output(downsample, captured, "shortcut")
    x = torch.randn(2, inplanes, 8, 8)
    with torch.no_grad():
        out = block(x)

    assert block.attention.channels == outplanes
    assert torch.equal(block.attention.seen, captured["last_bn"])
    shortcut = captured.get("shortcut", x)
    # The residual is added to the attended features, then the ReLU.
    assert torch.allclose(out, torch.relu(3 * captured["last_bn"] + shortcut))
    # Not attention applied after the addition, which would scale the shortcut too.
    assert not torch.allclose(out, torch.relu(3 * (captured["last_bn"] + shortcut)))


def test_every_block_gets_its_own_attention_on_its_output_width():
    model = resnet50(attention="cbam")
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 3 + 4 + 6 + 3
    for block in blocks:
        assert isinstance(block.attention, cbam.CBAM)
        assert (
            block.attention.channel.channels == block.bn3.num_features == block.conv3.out_channels
        )
    assert len({id(block.attention) for block in blocks}) == len(blocks)
    assert blocks[0].attention.channel.channels == 256  # 64 planes * 4, not 64
    assert blocks[-1].attention.channel.channels == 2048

    se = resnet18(attention="se")
    for block in (m for m in se.modules() if isinstance(m, BasicBlock)):
        assert isinstance(block.attention, cbam.SqueezeExcitation)
        assert block.attention.channels == block.bn2.num_features


def test_plain_resnet_has_identity_attention():
    block = resnet18().layer1[0]
    assert isinstance(block.attention, nn.Identity)


# Parameter counts published for torchvision's ResNets (stride placement does not change them).
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
}


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("attention", [None, "se", "cbam"])
def test_builders_output_shape(name, attention):
    # Meta tensors carry shapes only: the whole family is checked without allocating weights.
    with torch.device("meta"):
        model = BUILDERS[name](num_classes=7, attention=attention)
        out = model(torch.zeros(2, 3, 224, 224))
    assert isinstance(model, ResNet)
    assert out.shape == (2, 7)


@pytest.mark.parametrize("name", BUILDERS)
def test_builders_match_torchvision_parameter_counts(name):
    with torch.device("meta"):
        model = BUILDERS[name]()
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name]


def test_real_forward_and_backward_with_cbam():
    torch.manual_seed(0)
    model = resnet18(num_classes=5, attention="cbam")
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.sum().backward()
    spatial_conv = model.layer1[0].attention.spatial.conv
    assert spatial_conv.weight.grad is not None and spatial_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("depth", [8, 20, 32])
def test_resnet_cifar_depth_counts_weighted_layers(depth):
    model = resnet_cifar(depth)
    assert isinstance(model, CifarResNet)
    n = (depth - 2) // 6
    assert [len(stage) for stage in (model.layer1, model.layer2, model.layer3)] == [n, n, n]
    # depth = the 3x3 convolutions plus the linear head (1x1 shortcut convs are not counted).
    three_by_three = [
        m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(three_by_three) + len(linears) == depth


def test_resnet_cifar_shapes_widths_and_attention():
    torch.manual_seed(0)
    model = resnet_cifar(20, num_classes=10, attention="cbam", width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    stages: dict[str, torch.Tensor] = {}
    for name in ("layer1", "layer2", "layer3"):
        _record_output(getattr(model, name), stages, name)
    with torch.no_grad(), cbam.record_attention(model) as maps:
        out = model(x)
    assert out.shape == (2, 10)
    assert stages["layer1"].shape == (2, 8, 32, 32)
    assert stages["layer2"].shape == (2, 16, 16, 16)
    assert stages["layer3"].shape == (2, 32, 8, 8)
    assert maps["layer3.2.attention.spatial"][0].shape == (2, 1, 8, 8)
    assert maps["layer2.0.attention.channel"][0].shape == (2, 16, 1, 1)


@pytest.mark.parametrize("depth", [0, 2, 7, 21, 19])
def test_resnet_cifar_rejects_depth_not_6n_plus_2(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2"):
        resnet_cifar(depth)


def test_resnet_cifar_rejects_non_int_depth():
    with pytest.raises(TypeError, match="depth must be an int"):
        resnet_cifar("20")


@pytest.mark.parametrize(
    ("stride_in", "conv1_stride", "conv2_stride"),
    [("1x1", (2, 2), (1, 1)), ("3x3", (1, 1), (2, 2))],
)
def test_stride_placement_in_downsampling_bottleneck(stride_in, conv1_stride, conv2_stride):
    with torch.device("meta"):
        model = resnet50(stride_in=stride_in)
    for stage in (model.layer2, model.layer3, model.layer4):
        first = stage[0]
        assert first.conv1.stride == conv1_stride
        assert first.conv2.stride == conv2_stride
        assert first.downsample[0].stride == (2, 2)
        for later in stage[1:]:
            assert later.conv1.stride == later.conv2.stride == (1, 1)
    assert model.layer1[0].conv1.stride == model.layer1[0].conv2.stride == (1, 1)


def test_stride_placement_changes_resolution_of_3x3_not_output():
    torch.manual_seed(0)
    x = torch.randn(1, 64, 16, 16)
    seen = {}
    for stride_in in ("1x1", "3x3"):
        block = Bottleneck(64, 16, 2, _downsample(64, 64, 2), stride_in=stride_in).eval()
        block.conv2.register_forward_hook(lambda _m, i, _o, k=stride_in: seen.__setitem__(k, i[0]))
        with torch.no_grad():
            assert block(x).shape == (1, 64, 8, 8)
    assert seen["1x1"].shape[-2:] == (8, 8)  # v1: the 3x3 runs on the downsampled map
    assert seen["3x3"].shape[-2:] == (16, 16)  # v1.5: the 3x3 runs at full size, then strides


@pytest.mark.parametrize(
    "build", [resnet50, partial(Bottleneck, 64, 16), partial(BasicBlock, 64, 64)]
)
def test_stride_in_is_validated(build):
    with pytest.raises(ValueError, match=r"stride_in must be one of \('1x1', '3x3'\), got '2x2'"):
        build(stride_in="2x2")


def test_make_attention_builds_each_kind():
    assert isinstance(make_attention(None, 32), nn.Identity)
    se = make_attention("se", 32)
    assert type(se) is cbam.SqueezeExcitation and se.channels == 32 and se.hidden_channels == 2
    block = make_attention("cbam", 32)
    assert isinstance(block, cbam.CBAM) and block.channel.channels == 32
    assert block.spatial.kernel_size == 7
    custom = make_attention(partial(cbam.CBAM, reduction=8), 64)
    assert custom.channel.hidden_channels == 8
    assert make_attention(cbam.CBAM, 64) is not make_attention(cbam.CBAM, 64)


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("bam", ValueError, r"one of \('se', 'cbam'\).*got the string 'bam'"),
        ("CBAM", ValueError, r"got the string 'CBAM'"),
        (3, TypeError, r"callable channels -> nn.Module, got int 3"),
        (cbam.CBAM(16), TypeError, r"not a module instance; got an instance of CBAM"),
        (lambda c: c * 2, TypeError, r"must return an nn.Module for 16 channels, got int"),
    ],
)
def test_make_attention_rejects_bad_specs(spec, error, message):
    with pytest.raises(error, match=message):
        make_attention(spec, 16)


def test_bad_attention_spec_fails_when_building_a_network():
    with pytest.raises(ValueError, match="got the string 'senet'"):
        resnet18(attention="senet")


def test_kaiming_init_and_attention_keeps_its_own():
    class Marked(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 1)
            nn.init.constant_(self.conv.weight, 0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    torch.manual_seed(0)
    model = resnet50(attention=Marked)
    conv = model.layer3[0].conv2  # 256 -> 256, 3x3: fan_out = 256 * 9
    expected_std = (2 / (256 * 9)) ** 0.5
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.02
    assert torch.equal(model.bn1.weight, torch.ones(64)) and torch.equal(
        model.bn1.bias, torch.zeros(64)
    )
    assert torch.all(model.layer2[1].attention.conv.weight == 0.5)


def test_network_rejects_wrong_input():
    model = resnet_cifar()
    with pytest.raises(ValueError, match="built for 3 channels, got input with 1 channels"):
        model(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="expects a 4-D tensor"):
        resnet18()(torch.zeros(3, 32, 32))


def test_resnet_validates_layers_and_block():
    with pytest.raises(ValueError, match=r"layers must be 4 block counts"):
        ResNet(Bottleneck, [3, 4, 6])
    with pytest.raises(ValueError, match=r"layers\[1\] must be positive"):
        ResNet(Bottleneck, [3, 0, 6, 3])
    with pytest.raises(TypeError, match="block must be BasicBlock or Bottleneck"):
        ResNet(nn.Conv2d, [1, 1, 1, 1])


def _features(model: CifarResNet, x: torch.Tensor) -> torch.Tensor:
    """The last feature map, before the head: the stem and the three stages."""
    x = model.relu(model.bn1(model.conv1(x)))
    return model.layer3(model.layer2(model.layer1(x)))


def test_resnet_cifar_max_head_takes_the_global_max_before_the_classifier():
    torch.manual_seed(0)
    model = resnet_cifar(8, num_classes=5, width=4, head_pool="max").eval()
    assert model.head_pool == "max"
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        features = _features(model, x)  # (2, 16, 4, 4)
        largest = features.amax(dim=(2, 3))
        expected = largest @ model.fc.weight.T + model.fc.bias
        out = model(x)
    assert features.shape == (2, 16, 4, 4)
    assert torch.allclose(out, expected, atol=1e-6)
    # Not the average: after ReLU and a residual sum the two differ on any non-constant map.
    mean_head = features.mean(dim=(2, 3)) @ model.fc.weight.T + model.fc.bias
    assert not torch.allclose(out, mean_head, atol=1e-3)


def test_resnet_cifar_average_head_is_the_default_and_unchanged():
    torch.manual_seed(0)
    default = resnet_cifar(8, num_classes=5, width=4).eval()
    torch.manual_seed(0)
    average = resnet_cifar(8, num_classes=5, width=4, head_pool="avg").eval()
    torch.manual_seed(0)
    maximum = resnet_cifar(8, num_classes=5, width=4, head_pool="max").eval()
    assert default.head_pool == "avg"
    # The head's pooling has no weights: the same seed gives the same weights in all three.
    for name, value in default.state_dict().items():
        assert torch.equal(value, average.state_dict()[name]), name
        assert torch.equal(value, maximum.state_dict()[name]), name
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = _features(default, x).mean(dim=(2, 3)) @ default.fc.weight.T + default.fc.bias
        assert torch.allclose(default(x), expected, atol=1e-6)
        assert torch.equal(default(x), average(x))


@pytest.mark.parametrize("bad", ["min", "Avg", "", None])
def test_resnet_cifar_names_a_bad_head_pool(bad):
    with pytest.raises(ValueError, match=f"head_pool must be one of .*got {bad!r}"):
        resnet_cifar(8, head_pool=bad)
