"""The checks of lesson 04 (attention in a bottleneck, Table 4 by counting) give the right
verdict and the right hint.

Each wrong implementation makes one mistake learners make; the test asserts that the check
fails and that a failing line's hint names that mistake. Correct implementations written
differently from the lesson's (the library's own bottleneck, in-place additions, counting with
``cbam.counting``, networks built on the CPU) must pass every line.
"""

from __future__ import annotations

from functools import cache, partial

import pytest
import torch
from check_verdicts import assert_all_pass, assert_fails_with, assert_not_implemented, verdicts
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cbam
import cbam.resnet
from cbam.checks.resnet import check_attention_block, check_table4
from cbam.resnet import resnet50

# --- attention-block -------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """The lesson's skeleton with its solution."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.attention = nn.Identity() if attention is None else attention(planes * self.expansion)

    def branch(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def shortcut(self, x):
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x):
        return self.relu(self.attention(self.branch(x)) + self.shortcut(x))


class InPlaceAdd(Bottleneck):
    """Written as torchvision does: `out += identity`, attention width from conv3."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
        super().__init__(inplanes, planes, stride, downsample, None)
        if attention is not None:
            self.attention = attention(self.conv3.out_channels)

    def forward(self, x):
        identity = self.shortcut(x)
        out = self.attention(self.branch(x))
        out += identity
        return torch.relu(out)


@pytest.mark.parametrize("implementation", [Bottleneck, InPlaceAdd])
def test_correct_blocks_pass(implementation, capsys):
    assert_all_pass(check_attention_block(implementation), capsys, 4)


class PlanesWide(Bottleneck):
    """The authors' first release: the module built for `planes` channels."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
        super().__init__(inplanes, planes, stride, downsample, None)
        if attention is not None:
            self.attention = attention(planes)


class AfterAdd(Bottleneck):
    def forward(self, x):
        return self.relu(self.attention(self.branch(x) + self.shortcut(x)))


class AfterAddAndRelu(Bottleneck):
    def forward(self, x):
        return self.attention(self.relu(self.branch(x) + self.shortcut(x)))


class BeforeBn3(Bottleneck):
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.attention(self.conv3(out)))
        return self.relu(out + self.shortcut(x))


class NeverApplied(Bottleneck):
    def forward(self, x):
        return self.relu(self.branch(x) + self.shortcut(x))


class OnTheShortcut(Bottleneck):
    def forward(self, x):
        return self.relu(self.branch(x) + self.attention(self.shortcut(x)))


class NoFinalRelu(Bottleneck):
    def forward(self, x):
        return self.attention(self.branch(x)) + self.shortcut(x)


class NoneKeptAsNone(Bottleneck):
    def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
        super().__init__(inplanes, planes, stride, downsample, attention)
        if attention is None:
            self.attention = None

    def forward(self, x):
        out = self.branch(x)
        if self.attention is not None:
            out = self.attention(out)
        return self.relu(out + self.shortcut(x))


class FactoryStored(Bottleneck):
    """The factory kept instead of called, in the skeleton (no .attention set before)."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
        nn.Module.__init__(self)
        plain = Bottleneck(inplanes, planes, stride, downsample)
        for name in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "relu", "downsample"):
            setattr(self, name, getattr(plain, name))
        self.attention = nn.Identity() if attention is None else attention


class FactoryStoredOverAModule(Bottleneck):
    """The same, assigned over the nn.Identity() already there (nn.Module refuses it)."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
        super().__init__(inplanes, planes, stride, downsample, None)
        if attention is not None:
            self.attention = attention


WRONG_BLOCKS = {
    "planes wide": (PlanesWide, "built for planes = 16 channels"),
    "after the add": (AfterAdd, "after the residual add"),
    "after the add and relu": (AfterAddAndRelu, "after the residual add and ReLU"),
    "before bn3": (BeforeBn3, "before bn3"),
    "never applied": (NeverApplied, "never applied"),
    "on the shortcut": (OnTheShortcut, "applied to the shortcut"),
    "no final relu": (NoFinalRelu, "the final ReLU is missing"),
    "none kept as none": (NoneKeptAsNone, "with attention=None use nn.Identity()"),
}


@pytest.mark.parametrize("name", WRONG_BLOCKS)
def test_wrong_blocks_fail_with_their_hint(name, capsys):
    implementation, hint = WRONG_BLOCKS[name]
    assert_fails_with(check_attention_block(implementation), capsys, hint)


def test_the_planes_slip_is_named_on_every_line_that_builds_attention(capsys):
    check_attention_block(PlanesWide)
    lines = verdicts(capsys)
    assert [ok for ok, _, _ in lines] == [True, False, False, False]
    assert all("planes * expansion" in hint for ok, _, hint in lines if not ok)


@pytest.mark.parametrize("implementation", [FactoryStored, FactoryStoredOverAModule])
def test_a_stored_factory_is_told_to_call_it_with_the_channel_count(implementation, capsys):
    check_attention_block(implementation)
    lines = verdicts(capsys)
    assert [ok for ok, _, _ in lines] == [True, False, False, False]
    for *_, hint in lines[1:]:
        assert "the factory itself, not a module: call it with the block's output channel" in hint
        assert "attention(planes * self.expansion)" in hint
        assert "_Factory" not in hint and "attention=None" not in hint


def test_a_stub_block_gives_one_not_implemented_line(capsys):
    class Stub(Bottleneck):
        def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
            nn.Module.__init__(self)
            raise NotImplementedError("exercise attention-block: write this part")

    assert_not_implemented(check_attention_block(Stub), capsys)


# --- table4 ----------------------------------------------------------------------------------

NAMES = ("ResNet-50", "ResNet-50 + SE", "ResNet-50 + CBAM")


def count(model, input_size=(1, 3, 224, 224)):
    """The lesson's solution."""
    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(input_size, device=device))
    return params, counter.get_total_flops() // 2


@cache
def _meta_networks(stride_in="1x1"):
    # Built once per layout: a check only reads meta-device networks, so tests can share them.
    with torch.device("meta"):
        return {name: resnet50(attention=spec, stride_in=stride_in)
                for name, spec in zip(NAMES, (None, "se", "cbam"), strict=True)}


def meta_models(stride_in="1x1"):
    return dict(_meta_networks(stride_in))


def cpu_models():
    """Built on the CPU with real weights; the check counts them on the meta device anyway."""
    return {name: resnet50(attention=spec)
            for name, spec in zip(NAMES, (None, "se", "cbam"), strict=True)}


@pytest.mark.parametrize("counter, models", [(count, meta_models),
                                             (count, cpu_models)],
                         ids=["flop-counter-meta", "flop-counter-cpu"])
def test_correct_table4_passes(counter, models, capsys):
    assert_all_pass(check_table4(counter, models), capsys, 6)


def count_flops(model, input_size=(1, 3, 224, 224)):
    params, macs = count(model, input_size)
    return params, 2 * macs


def count_state_dict(model, input_size=(1, 3, 224, 224)):
    _, macs = count(model, input_size)
    return sum(t.numel() for t in model.state_dict().values()), macs


def count_on_cpu(model, input_size=(1, 3, 224, 224)):
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(input_size))
    return params, counter.get_total_flops() // 2


def count_in_billions(model, input_size=(1, 3, 224, 224)):
    params, macs = count(model, input_size)
    return params, macs / 1e9


def count_fixed_input(model, input_size=(1, 3, 224, 224)):
    return count(model)  # input_size ignored


def v15_models():
    return meta_models(stride_in="3x3")


def biasless_models():
    models = meta_models()
    with torch.device("meta"):
        models["ResNet-50 + SE"] = resnet50(
            attention=partial(cbam.SqueezeExcitation, bias=False))
    return models


def se_as_cbam_models():
    models = meta_models()
    with torch.device("meta"):
        models["ResNet-50 + CBAM"] = resnet50(attention="se")
    return models


def misnamed_models():
    models = meta_models()
    return {"resnet50": models["ResNet-50"], "se": models["ResNet-50 + SE"],
            "cbam": models["ResNet-50 + CBAM"]}


# name: (count, table4_models, hint, which of the 6 lines pass)
COUNTING_WRONG = [False, False, True, False, False, False]
NETWORKS_WRONG = [True, True, True, False, False, False]
WRONG_TABLE4 = {
    "flops, not macs": (count_flops, meta_models, "counted FLOPs", COUNTING_WRONG),
    "buffers counted": (count_state_dict, meta_models, "counted buffers",
                        [False, False, True, False, False, False]),
    "input on the cpu": (count_on_cpu, meta_models, "create the input on the model's device",
                         [True, False, True, False, False, False]),
    "billions returned": (count_in_billions, meta_models, "returned billions", COUNTING_WRONG),
    "input size ignored": (count_fixed_input, meta_models, "whatever input_size was",
                           [False, False, True, True, True, True]),
    "v1.5 stride": (count, v15_models, "stride 2 sits in the 3x3", NETWORKS_WRONG),
    "mlp without bias": (count, biasless_models, "have no biases",
                         [True, True, True, True, False, True]),
    "se for cbam": (count, se_as_cbam_models, "has no spatial attention",
                    [True, True, True, True, True, False]),
    "keys": (count, misnamed_models, "with the keys", [True, True, False, False, False, False]),
}


@pytest.mark.parametrize("name", WRONG_TABLE4)
def test_wrong_table4_fails_with_its_hint(name, capsys):
    counter, models, hint, pattern = WRONG_TABLE4[name]
    passed = check_table4(counter, models)
    lines = verdicts(capsys)
    assert not passed
    assert [ok for ok, _, _ in lines] == pattern, lines
    assert any(hint in h for ok, _, h in lines if not ok), lines


def test_a_stub_table4_gives_one_not_implemented_line(capsys):
    def stub(model, input_size=(1, 3, 224, 224)):
        raise NotImplementedError("exercise table4: write this part")

    assert_not_implemented(check_table4(stub, meta_models), capsys)
