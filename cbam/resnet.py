"""ResNets with a pluggable attention module in every residual block.

CBAM (and SE, its baseline) sits in each block after the last BatchNorm and before the residual
addition, on the block's output width ``planes * expansion``::

    out = bn_last(conv_last(...))
    out = attention(out)          # nn.Identity() for the plain ResNet
    out = relu(out + shortcut(x))

The ``attention`` argument of every builder picks the module: ``None``, ``"se"``, ``"cbam"`` or
any callable ``channels -> nn.Module`` (e.g. ``functools.partial(cbam.CBAM, reduction=8)``).

``stride_in`` says where a downsampling bottleneck puts its stride 2:

* ``"1x1"`` (default): in the first 1x1 convolution, as in the original ResNet (He et al., 2016)
  and in the ResNet-50 whose FLOPs the CBAM paper reports in Table 4 (3.858 GFLOPs);
* ``"3x3"``: in the 3x3 convolution, torchvision's "v1.5" (more accurate, ~4.09 GFLOPs).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cbam.attention import CBAM, SqueezeExcitation
from cbam.validation import check_choice, check_feature_map, check_positive_int

STRIDE_PLACES = ("1x1", "3x3")
ATTENTION_NAMES = {"se": SqueezeExcitation, "cbam": CBAM}

AttentionSpec = str | Callable[[int], nn.Module] | None
Device = torch.device | str | None
# How CifarResNet turns its last feature map into the classifier's input.
HEAD_POOLS = ("avg", "max")


def make_attention(
    spec: AttentionSpec, channels: int, *, device: Device = None, dtype: torch.dtype | None = None
) -> nn.Module:
    """The attention module for a block whose output has ``channels`` channels.

    ``None`` gives ``nn.Identity()`` (the plain ResNet); ``"se"`` gives
    ``SqueezeExcitation(channels)`` and ``"cbam"`` gives ``CBAM(channels)``, both with the paper's
    defaults (r = 16, k = 7); a callable is called as ``spec(channels)`` and must return an
    ``nn.Module``. Every call builds a new module: blocks never share attention weights.

    ``device`` and ``dtype`` (PyTorch's factory keywords) go to the named modules; a callable's
    module is moved there after it is built, so the callable keeps its one argument.
    """
    channels = check_positive_int("channels", channels)
    if spec is None:
        return nn.Identity()
    if isinstance(spec, str):
        if spec not in ATTENTION_NAMES:
            raise ValueError(
                f"attention must be None, one of {tuple(ATTENTION_NAMES)} or a callable "
                f"channels -> nn.Module, got the string {spec!r}"
            )
        return ATTENTION_NAMES[spec](channels, device=device, dtype=dtype)
    if isinstance(spec, nn.Module):
        # A module instance is callable too, but calling it with an int would fail obscurely,
        # and one instance in every block would share its weights across the network.
        raise TypeError(
            f"attention must be a factory channels -> nn.Module (e.g. the class cbam.CBAM), "
            f"not a module instance; got an instance of {type(spec).__name__}"
        )
    if not callable(spec):
        raise TypeError(
            f"attention must be None, one of {tuple(ATTENTION_NAMES)} or a callable "
            f"channels -> nn.Module, got {type(spec).__name__} {spec!r}"
        )
    module = spec(channels)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"attention factory {spec!r} must return an nn.Module for {channels} channels, "
            f"got {type(module).__name__}"
        )
    if device is not None or dtype is not None:
        module = module.to(device=device, dtype=dtype)
    return module


def _check_stride_in(stride_in: object) -> None:
    if stride_in not in STRIDE_PLACES:
        raise ValueError(f"stride_in must be one of {STRIDE_PLACES}, got {stride_in!r}")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, **factory) -> nn.Conv2d:
    # No bias: the BatchNorm that follows every convolution has its own shift.
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, **factory)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, **factory) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, **factory)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR ResNets), attention before the addition.

    ``stride_in`` is accepted so that both block types share one signature; a basic block has its
    stride in the first 3x3 whatever the value (there is no 1x1 to put it in).
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        attention: AttentionSpec = None,
        stride_in: str = "1x1",
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_stride_in(stride_in)
        factory = {"device": device, "dtype": dtype}
        self.conv1 = conv3x3(inplanes, planes, stride, **factory)
        self.bn1 = nn.BatchNorm2d(planes, **factory)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, **factory)
        self.bn2 = nn.BatchNorm2d(planes, **factory)
        self.attention = make_attention(attention, planes * self.expansion, **factory)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand by 4) (ResNet-50/101), attention before the addition.

    ``stride_in="1x1"`` puts a downsampling block's stride in ``conv1`` (ResNet v1, the paper's
    counting); ``"3x3"`` puts it in ``conv2`` (torchvision's v1.5).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        attention: AttentionSpec = None,
        stride_in: str = "1x1",
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_stride_in(stride_in)
        factory = {"device": device, "dtype": dtype}
        stride_1x1, stride_3x3 = (stride, 1) if stride_in == "1x1" else (1, stride)
        width = planes * self.expansion
        self.conv1 = conv1x1(inplanes, planes, stride_1x1, **factory)
        self.bn1 = nn.BatchNorm2d(planes, **factory)
        self.conv2 = conv3x3(planes, planes, stride_3x3, **factory)
        self.bn2 = nn.BatchNorm2d(planes, **factory)
        self.conv3 = conv1x1(planes, width, **factory)
        self.bn3 = nn.BatchNorm2d(width, **factory)
        self.relu = nn.ReLU(inplace=True)
        self.attention = make_attention(attention, width, **factory)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.attention(self.bn3(self.conv3(out)))
        return self.relu(out + shortcut)


Block = type[BasicBlock] | type[Bottleneck]


def _make_stage(
    block: Block,
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int,
    attention: AttentionSpec,
    stride_in: str,
    **factory,
) -> nn.Sequential:
    """A stage of ``blocks`` blocks; the first may change resolution and width, and so does its
    shortcut (a strided 1x1 convolution and a BatchNorm)."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            conv1x1(inplanes, planes * block.expansion, stride, **factory),
            nn.BatchNorm2d(planes * block.expansion, **factory),
        )
    options = {"attention": attention, "stride_in": stride_in, **factory}
    layers = [block(inplanes, planes, stride, downsample, **options)]
    inplanes = planes * block.expansion
    layers += [block(inplanes, planes, **options) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions and unit BatchNorms, as torchvision initialises its ResNets.

    Attention modules keep the initialisation they chose themselves (e.g. a zero-initialised
    BatchNorm in a spatial gate), so their submodules are skipped.
    """
    own_init = {
        id(sub)
        for module in model.modules()
        if isinstance(module, (BasicBlock, Bottleneck))
        for sub in module.attention.modules()
    }
    for module in model.modules():
        if id(module) in own_init:
            continue
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _check_blocks(layers: object, stages: int) -> list[int]:
    if isinstance(layers, str) or not isinstance(layers, Sequence) or len(layers) != stages:
        raise ValueError(
            f"layers must be {stages} block counts such as [3, 4, 6, 3], got {layers!r}"
        )
    return [check_positive_int(f"layers[{i}]", count) for i, count in enumerate(layers)]


class ResNet(nn.Module):
    """The ImageNet ResNet (He et al., 2016): 7x7 stem, four stages, global pooling, linear head.

    Args:
        block: ``BasicBlock`` (ResNet-18/34) or ``Bottleneck`` (ResNet-50/101).
        layers: the number of blocks in each of the four stages, e.g. [3, 4, 6, 3].
        num_classes: outputs of the final linear layer; 1000 for ImageNet-1K.
        attention: the module in every block (see ``make_attention``); None for the plain ResNet.
        stride_in: "1x1" (ResNet v1, the paper's) or "3x3" (torchvision's v1.5).
        device, dtype: where and in which dtype the parameters are made (PyTorch's factory
            keywords, which ``torch.nn.utils.skip_init`` passes).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        num_classes: int = 1000,
        *,
        attention: AttentionSpec = None,
        stride_in: str = "1x1",
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if block not in (BasicBlock, Bottleneck):
            raise TypeError(f"block must be BasicBlock or Bottleneck, got {block!r}")
        layers = _check_blocks(layers, 4)
        num_classes = check_positive_int("num_classes", num_classes)
        _check_stride_in(stride_in)
        factory = {"device": device, "dtype": dtype}
        self.stride_in = stride_in
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False, **factory)
        self.bn1 = nn.BatchNorm2d(64, **factory)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks) in enumerate(
            zip((64, 128, 256, 512), layers, strict=True), start=1
        ):
            stride = 1 if index == 1 else 2
            stage = _make_stage(
                block, inplanes, planes, blocks, stride, attention, stride_in, **factory
            )
            self.add_module(f"layer{index}", stage)
            inplanes = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes, **factory)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_feature_map(x, 3, type(self).__name__)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(
    num_classes: int = 1000,
    *,
    attention: AttentionSpec = None,
    stride_in: str = "1x1",
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    factory = {"device": device, "dtype": dtype}
    return ResNet(
        BasicBlock, [2, 2, 2, 2], num_classes, attention=attention, stride_in=stride_in, **factory
    )


def resnet34(
    num_classes: int = 1000,
    *,
    attention: AttentionSpec = None,
    stride_in: str = "1x1",
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    factory = {"device": device, "dtype": dtype}
    return ResNet(
        BasicBlock, [3, 4, 6, 3], num_classes, attention=attention, stride_in=stride_in, **factory
    )


def resnet50(
    num_classes: int = 1000,
    *,
    attention: AttentionSpec = None,
    stride_in: str = "1x1",
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> ResNet:
    """ResNet-50: bottlenecks [3, 4, 6, 3]; the network of the paper's Table 4."""
    factory = {"device": device, "dtype": dtype}
    return ResNet(
        Bottleneck, [3, 4, 6, 3], num_classes, attention=attention, stride_in=stride_in, **factory
    )


def resnet101(
    num_classes: int = 1000,
    *,
    attention: AttentionSpec = None,
    stride_in: str = "1x1",
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> ResNet:
    """ResNet-101: bottlenecks [3, 4, 23, 3]."""
    factory = {"device": device, "dtype": dtype}
    return ResNet(
        Bottleneck, [3, 4, 23, 3], num_classes, attention=attention, stride_in=stride_in, **factory
    )


class CifarResNet(nn.Module):
    """The CIFAR ResNet (He et al., 2016, Sec. 4.2) for 32x32 images: a 3x3 stem, no max pooling,
    three stages of basic blocks of widths (w, 2w, 4w) at 32x32, 16x16 and 8x8.

    Shortcuts that change shape are a 1x1 convolution with BatchNorm (the paper's option B; its
    CIFAR table used zero-padding, option A, which differs by a few thousand parameters).

    ``head_pool``: how the last feature map becomes the classifier's input, "avg" (He et al.'s
    global average pooling) or "max" (a control: does a max-pooled head alone give what max
    pooling in the channel gate gives?).
    """

    def __init__(
        self,
        blocks_per_stage: int,
        num_classes: int = 10,
        *,
        attention: AttentionSpec = None,
        width: int = 16,
        head_pool: str = "avg",
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_choice("head_pool", head_pool, HEAD_POOLS)
        blocks_per_stage = check_positive_int("blocks_per_stage", blocks_per_stage)
        num_classes = check_positive_int("num_classes", num_classes)
        width = check_positive_int("width", width)
        factory = {"device": device, "dtype": dtype}
        self.conv1 = conv3x3(3, width, **factory)
        self.bn1 = nn.BatchNorm2d(width, **factory)
        self.relu = nn.ReLU(inplace=True)
        inplanes = width
        for index, planes in enumerate((width, 2 * width, 4 * width), start=1):
            stride = 1 if index == 1 else 2
            stage = _make_stage(
                BasicBlock, inplanes, planes, blocks_per_stage, stride, attention, "1x1", **factory
            )
            self.add_module(f"layer{index}", stage)
            inplanes = planes
        self.head_pool = head_pool
        self.pool = nn.AdaptiveAvgPool2d(1) if head_pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes, **factory)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_feature_map(x, 3, type(self).__name__)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet_cifar(
    depth: int = 20,
    num_classes: int = 10,
    *,
    attention: AttentionSpec = None,
    width: int = 16,
    head_pool: str = "avg",
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> CifarResNet:
    """A CIFAR ResNet of ``depth = 6n + 2`` layers (20, 32, 44, 56, 110, ...), n blocks per stage.

    The defaults (depth 20, width 16, 10 classes) are He et al.'s ResNet-20 for CIFAR-10.
    """
    if isinstance(depth, bool) or not hasattr(type(depth), "__index__"):
        raise TypeError(f"depth must be an int 6n + 2, got {type(depth).__name__} {depth!r}")
    depth = operator.index(depth)
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(
            f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}"
        )
    return CifarResNet(
        (depth - 2) // 6,
        num_classes,
        attention=attention,
        width=width,
        head_pool=head_pool,
        device=device,
        dtype=dtype,
    )
