"""The checks of lesson 01 (channel attention) give the right verdict and the right hint.

Each wrong implementation below makes one mistake that learners make; the test asserts which
check lines fail and that each failing line's hint names that mistake. Correct implementations
written differently from the lesson's (1x1 convolutions, other attribute names, other pooling
calls) must pass every line.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cbam.checks.channel import (
    check_channel_attention,
    check_channel_descriptors,
    check_shared_mlp,
)


def verdicts(capsys) -> dict[str, tuple[bool, str]]:
    """The printed lines as {description: (passed, hint)}."""
    found = {}
    for line in capsys.readouterr().out.splitlines():
        mark, rest = line[0], line[2:]
        _exercise, _, rest = rest.partition(": ")
        description, _, hint = rest.partition(" — ")
        found[description] = (mark == "✓", hint)
    return found


def failures(capsys) -> dict[str, str]:
    """{the start of each failed description (its first two words): hint}."""
    return {" ".join(d.split()[:2]): hint for d, (ok, hint) in verdicts(capsys).items() if not ok}


def assert_not_implemented(capsys, passed: bool) -> None:
    lines = capsys.readouterr().out.splitlines()
    assert not passed
    assert len(lines) == 1 and lines[0].startswith("✗") and "not implemented" in lines[0]


# --- channel-descriptors --------------------------------------------------------------------


def descriptors(x):
    return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))


def descriptors_adaptive(x):
    return nn.AdaptiveAvgPool2d(1)(x).flatten(1), nn.AdaptiveMaxPool2d(1)(x).flatten(1)


def descriptors_max_values(x):
    return x.flatten(2).mean(-1), torch.max(x.flatten(2), dim=-1).values


@pytest.mark.parametrize(
    "implementation", [descriptors, descriptors_adaptive, descriptors_max_values]
)
def test_correct_descriptors_pass(implementation, capsys):
    assert check_channel_descriptors(implementation)
    results = verdicts(capsys)
    assert len(results) == 4 and all(ok for ok, _ in results.values())


WRONG_DESCRIPTORS = {
    "swapped": (
        lambda x: (x.amax(dim=(2, 3)), x.mean(dim=(2, 3))),
        {"avg is": "swapped", "the same": "swapped"},
    ),
    "keepdim": (
        lambda x: (x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)),
        {"returns (avg,": "(N, C, 1, 1)", "avg is": "(N, C, 1, 1)", "the same": "(N, C, 1, 1)"},
    ),
    "over channels": (
        lambda x: (x.mean(dim=1), x.amax(dim=1)),
        {
            "returns (avg,": "pooled over the channels",
            "avg is": "over the channels",
            "the same": "over the channels",
        },
    ),
    "sum": (
        lambda x: (x.sum(dim=(2, 3)), x.amax(dim=(2, 3))),
        {"avg is": "sum over H and W", "the same": "sum over H and W"},
    ),
    "max without values": (
        lambda x: (x.mean(dim=(2, 3)), torch.max(x.flatten(2), dim=2)),
        {
            "returns (avg,": ".values",
            "avg is": ".values",
            "the same": ".values",
            "gradients flow": "",
        },
    ),
    "detached": (
        lambda x: (x.mean(dim=(2, 3)).detach(), x.amax(dim=(2, 3)).detach()),
        {"gradients flow": "cut off from autograd"},
    ),
}


@pytest.mark.parametrize("name", WRONG_DESCRIPTORS)
def test_wrong_descriptors_fail_with_their_hint(name, capsys):
    implementation, expected = WRONG_DESCRIPTORS[name]
    assert not check_channel_descriptors(implementation)
    failed = failures(capsys)
    assert set(failed) == set(expected)
    for line, hint in expected.items():
        assert hint in failed[line]


def test_descriptors_stub_prints_one_line(capsys):
    def stub(x):
        raise NotImplementedError("exercise channel-descriptors: write it")

    assert_not_implemented(capsys, check_channel_descriptors(stub))


# --- shared-mlp -----------------------------------------------------------------------------


def width(channels, reduction):
    return max(channels // reduction, 1)


def mlp(channels, reduction=16):
    h = width(channels, reduction)
    return nn.Sequential(nn.Linear(channels, h), nn.ReLU(), nn.Linear(h, channels))


class FunctionalMLP(nn.Module):
    """Raw parameters under other names, the second layer registered first."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        h = width(channels, reduction)
        self.up = nn.Parameter(torch.randn(channels, h))
        self.up_bias = nn.Parameter(torch.zeros(channels))
        self.down = nn.Parameter(torch.randn(h, channels))
        self.down_bias = nn.Parameter(torch.zeros(h))

    def forward(self, v):
        return F.linear(F.relu(F.linear(v, self.down, self.down_bias)), self.up, self.up_bias)


def test_correct_mlps_pass(capsys):
    for implementation in (mlp, FunctionalMLP):
        assert check_shared_mlp(implementation)
    results = verdicts(capsys)
    assert len(results) == 6 and all(ok for ok, _ in results.values())


def _sequential(layers):
    return lambda c, r=16: nn.Sequential(*layers(c, width(c, r)))


WRONG_MLPS = {
    "no relu": (
        _sequential(lambda c, h: [nn.Linear(c, h), nn.Linear(h, c)]),
        {"computes W1·ReLU(W0·v": "no ReLU"},
    ),
    "relu at the end": (
        _sequential(lambda c, h: [nn.Linear(c, h), nn.ReLU(), nn.Linear(h, c), nn.ReLU()]),
        {"computes W1·ReLU(W0·v": "ReLU after the last layer"},
    ),
    "sigmoid inside": (
        _sequential(lambda c, h: [nn.Linear(c, h), nn.ReLU(), nn.Linear(h, c), nn.Sigmoid()]),
        {"computes W1·ReLU(W0·v": "a sigmoid inside the MLP"},
    ),
    "no minimum width": (
        lambda c, r=16: nn.Sequential(nn.Linear(c, c // r), nn.ReLU(), nn.Linear(c // r, c)),
        {"small C": "hidden width 0"},
    ),
    "no bias": (
        _sequential(
            lambda c, h: [nn.Linear(c, h, bias=False), nn.ReLU(), nn.Linear(h, c, bias=False)]
        ),
        {"parameters: 2·C·h": "no biases"},
    ),
    "reduction ignored": (
        lambda c, r=16: mlp(c, 8),
        {"hidden width": "(is reduction ignored?)", "parameters: 2·C·h": "a hidden width of 8"},
    ),
    "1x1 convolutions": (
        _sequential(lambda c, h: [nn.Conv2d(c, h, 1), nn.ReLU(), nn.Conv2d(h, c, 1)]),
        {
            "shared_mlp(64, 16)": "nn.Linear",
            "computes W1·ReLU(W0·v": "nn.Linear",
            "gradients reach": "nn.Linear",
        },
    ),
}


@pytest.mark.parametrize("name", WRONG_MLPS)
def test_wrong_mlps_fail_with_their_hint(name, capsys):
    implementation, expected = WRONG_MLPS[name]
    assert not check_shared_mlp(implementation)
    failed = failures(capsys)
    assert set(failed) == set(expected)
    for line, hint in expected.items():
        assert hint in failed[line]


def test_mlp_stub_prints_one_line(capsys):
    def stub(channels, reduction=16):
        raise NotImplementedError("exercise shared-mlp: write it")

    assert_not_implemented(capsys, check_shared_mlp(stub))


# --- channel-attention ----------------------------------------------------------------------


class Lesson(nn.Module):
    """The lesson's solution."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.mlp = mlp(channels, reduction)

    def scores(self, x):
        return self.mlp(x.mean(dim=(2, 3))), self.mlp(x.amax(dim=(2, 3)))

    def attention(self, x):
        avg, mx = self.scores(x)
        return torch.sigmoid(avg + mx)[:, :, None, None]

    def forward(self, x):
        return x * self.attention(x)


class ConvMLP(nn.Module):
    """timm's layout: 1x1 convolutions on (N, C, 1, 1), other names, adaptive pooling."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        h = width(channels, reduction)
        self.fc1 = nn.Conv2d(channels, h, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(h, channels, 1)
        self.pools = (nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1))

    def attention(self, x):
        return torch.sigmoid(sum(self.fc2(self.act(self.fc1(pool(x)))) for pool in self.pools))

    def forward(self, x):
        return self.attention(x) * x


class TorchMaxValues(Lesson):
    """The max descriptor from torch.max(...).values, one batched MLP call."""

    def attention(self, x):
        flat = x.flatten(2)
        both = torch.stack([flat.mean(-1), torch.max(flat, dim=-1).values])
        return torch.sigmoid(self.mlp(both).sum(0)).view(*x.shape[:2], 1, 1)


@pytest.mark.parametrize("implementation", [Lesson, ConvMLP, TorchMaxValues])
def test_correct_modules_pass(implementation, capsys):
    assert check_channel_attention(implementation)
    results = verdicts(capsys)
    assert len(results) == 8 and all(ok for ok, _ in results.values())


def _with_map(make_map):
    """A Lesson whose attention(x) is make_map(avg_scores, max_scores), shaped (N, C, 1, 1)."""

    class Wrong(Lesson):
        def attention(self, x):
            return make_map(*self.scores(x))[:, :, None, None]

    return Wrong


class Unshared(Lesson):
    def __init__(self, channels, reduction=16):
        super().__init__(channels, reduction)
        self.mlp_max = mlp(channels, reduction)

    def scores(self, x):
        return self.mlp(x.mean(dim=(2, 3))), self.mlp_max(x.amax(dim=(2, 3)))


class ReturnsMap(Lesson):
    def forward(self, x):
        return self.attention(x)


class FlatMap(Lesson):
    def attention(self, x):
        return torch.sigmoid(sum(self.scores(x)))


class Residual(Lesson):
    def forward(self, x):
        return x + x * self.attention(x)


class Detached(Lesson):
    def attention(self, x):
        return super().attention(x).detach()


class InPlace(Lesson):
    def forward(self, x):
        return x.mul_(self.attention(x))


class FloorEight(Lesson):
    """The C // 8 implementation: a fixed ratio of 8, no minimum, no biases."""

    def __init__(self, channels, reduction=16):
        super().__init__(channels, reduction)
        h = channels // 8
        self.mlp = nn.Sequential(
            nn.Linear(channels, h, bias=False), nn.ReLU(), nn.Linear(h, channels, bias=False)
        )


class AddedBeforeMLP(Lesson):
    def attention(self, x):
        pooled = x.mean(dim=(2, 3)) + x.amax(dim=(2, 3))
        return torch.sigmoid(self.mlp(pooled))[:, :, None, None]


class Stub(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        raise NotImplementedError("exercise channel-attention: write it")


MAP, FORWARD = "attention(x) is", "forward(x) returns"
WRONG_MODULES = {
    "sigmoid per branch": (
        _with_map(lambda a, m: torch.sigmoid(a) + torch.sigmoid(m)),
        {
            MAP: "a sigmoid on each branch, then summed",
            FORWARD: "a sigmoid on each branch, then summed",
        },
    ),
    "avg only": (
        _with_map(lambda a, m: torch.sigmoid(a)),
        {MAP: "only the average-pooled", FORWARD: "only the average-pooled"},
    ),
    "max only": (
        _with_map(lambda a, m: torch.sigmoid(m)),
        {MAP: "only the max-pooled", FORWARD: "only the max-pooled"},
    ),
    "no sigmoid": (_with_map(lambda a, m: a + m), {MAP: "no sigmoid", FORWARD: "no sigmoid"}),
    "sigmoid twice": (
        _with_map(lambda a, m: torch.sigmoid(torch.sigmoid(a + m))),
        {MAP: "applied twice", FORWARD: "applied twice"},
    ),
    "softmax": (
        _with_map(lambda a, m: torch.softmax(a + m, dim=1)),
        {MAP: "softmax", FORWARD: "softmax"},
    ),
    "added before the MLP": (
        AddedBeforeMLP,
        {MAP: "added before the MLP", FORWARD: "added before the MLP"},
    ),
    "unshared MLPs": (
        Unshared,
        {
            "one shared": "found 2 MLPs",
            "small C": "found 2 MLPs",
            "parameters: 2·C·h": "2 MLPs instead of one shared",
        },
    ),
    "returns the map": (ReturnsMap, {FORWARD: "forward returns the map"}),
    "(N, C) map": (
        FlatMap,
        {
            MAP: "the map is (N, C)",
            FORWARD: "must be (N, C, 1, 1)",
            "gradients reach": "must match the size",
        },
    ),
    "adds x back": (Residual, {FORWARD: "adds x back"}),
    "detached": (Detached, {"gradients reach": "no gradient reaches"}),
    "in place": (InPlace, {FORWARD: "in place", "gradients reach": ""}),
    "C // 8": (
        FloorEight,
        {
            "one shared": "(is reduction ignored?)",
            "small C": "hidden width 0",
            "parameters: 2·C·h": "a hidden width of 8",
        },
    ),
}


@pytest.mark.parametrize("name", WRONG_MODULES)
def test_wrong_modules_fail_with_their_hint(name, capsys):
    implementation, expected = WRONG_MODULES[name]
    assert not check_channel_attention(implementation)
    failed = failures(capsys)
    assert set(failed) == set(expected)
    for line, hint in expected.items():
        assert hint in failed[line]


def test_no_bias_fails_only_the_parameter_count(capsys):
    class NoBias(Lesson):
        def __init__(self, channels, reduction=16):
            super().__init__(channels, reduction)
            h = width(channels, reduction)
            self.mlp = nn.Sequential(
                nn.Linear(channels, h, bias=False), nn.ReLU(), nn.Linear(h, channels, bias=False)
            )

    assert not check_channel_attention(NoBias)
    failed = failures(capsys)
    assert list(failed) == ["parameters: 2·C·h"]
    assert "no biases" in failed["parameters: 2·C·h"]


def test_module_stub_prints_one_line(capsys):
    assert_not_implemented(capsys, check_channel_attention(Stub))


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_channel_attention(Lesson)
    assert torch.equal(torch.rand(3), expected)
