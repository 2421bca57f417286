"""The checks of lesson 02 (spatial attention) give the right verdict and the right hint.

Each wrong implementation below makes one mistake that learners make; the test asserts which
check lines fail and that each failing line's hint names that mistake. Correct implementations
written differently from the lesson's (padding="same", raw kernels, [max, mean] with a kernel
that follows it) must pass every line.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cbam.checks.spatial import check_channel_pool, check_same_padding, check_spatial_attention


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


def assert_fails_with(capsys, passed: bool, expected: dict[str, str]) -> None:
    failed = failures(capsys)
    assert not passed
    assert set(failed) == set(expected)
    for line, hint in expected.items():
        assert hint in failed[line]


def assert_not_implemented(capsys, passed: bool) -> None:
    lines = capsys.readouterr().out.splitlines()
    assert not passed
    assert len(lines) == 1 and lines[0].startswith("✗") and "not implemented" in lines[0]


def assert_all_pass(capsys, passed: bool, count: int) -> None:
    results = verdicts(capsys)
    assert passed
    assert len(results) == count and all(ok for ok, _ in results.values())


# --- channel-pool ---------------------------------------------------------------------------


def pool(x):
    return torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)


def pool_stacked(x):
    return torch.stack([x.mean(dim=1), torch.max(x, dim=1).values], dim=1)


@pytest.mark.parametrize("implementation", [pool, pool_stacked])
def test_correct_pools_pass(implementation, capsys):
    assert_all_pass(capsys, check_channel_pool(implementation), 4)


WRONG_POOLS = {
    "[max, mean]": (
        lambda x: pool(x).flip(1),
        {"channel 0": "the authors' order", "the same": "the authors' order"},
    ),
    "no keepdim": (
        lambda x: torch.cat([x.mean(dim=1), x.amax(dim=1)], dim=1),
        {"returns (N,": "keepdim=True", "channel 0": "keepdim=True", "the same": "keepdim=True"},
    ),
    "over H and W": (
        lambda x: torch.cat(
            [x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)], dim=1
        ),
        {
            "returns (N,": "over the channels",
            "channel 0": "over the channels",
            "the same": "over the channels",
        },
    ),
    "along the batch": (
        lambda x: torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=0),
        {"returns (N,": "dim 0", "channel 0": "dim 0", "the same": "dim 0"},
    ),
    "sum": (
        lambda x: torch.cat([x.sum(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], 1),
        {"channel 0": "sum over C", "the same": "sum over C"},
    ),
    "max without values": (
        lambda x: torch.cat(
            [x.mean(dim=1, keepdim=True), torch.max(x, dim=1, keepdim=True)], dim=1
        ),
        {
            "returns (N,": ".values",
            "channel 0": ".values",
            "the same": ".values",
            "gradients flow": "",
        },
    ),
    "detached": (lambda x: pool(x).detach(), {"gradients flow": "cut off from autograd"}),
}


@pytest.mark.parametrize("name", WRONG_POOLS)
def test_wrong_pools_fail_with_their_hint(name, capsys):
    implementation, expected = WRONG_POOLS[name]
    assert_fails_with(capsys, check_channel_pool(implementation), expected)


def test_pool_stub_prints_one_line(capsys):
    def stub(x):
        raise NotImplementedError("exercise channel-pool: write it")

    assert_not_implemented(capsys, check_channel_pool(stub))


# --- same-padding ---------------------------------------------------------------------------


def padding(k):
    if k <= 0 or k % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {k}")
    return k // 2


def padding_halved(kernel_size):
    if kernel_size < 1 or not kernel_size % 2:
        raise ValueError(f"no padding keeps the size for kernel_size={kernel_size}")
    return (kernel_size - 1) // 2


@pytest.mark.parametrize("implementation", [padding, padding_halved])
def test_correct_paddings_pass(implementation, capsys):
    assert_all_pass(capsys, check_same_padding(implementation), 3)


def _checked(rule):
    """rule(k) for odd k >= 1, the lesson's ValueError otherwise."""

    def same_padding(k):
        if k <= 0 or k % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {k}")
        return rule(k)

    return same_padding


def _never_raises(k):
    return k // 2


def _raises_type_error(k):
    if k % 2 == 0 or k <= 0:
        raise TypeError(f"bad kernel_size {k}")
    return k // 2


def _silent_message(k):
    if k % 2 == 0 or k <= 0:
        raise ValueError("kernel_size must be odd and positive")
    return k // 2


WRONG_PADDINGS = {
    "fixed 3": (_checked(lambda k: 3), {"same_padding(k) =": "a fixed padding of 3"}),
    "k - 1": (_checked(lambda k: k - 1), {"same_padding(k) =": "both sides together"}),
    "float": (_checked(lambda k: k / 2), {"same_padding(k) =": "should be an int"}),
    "no error": (
        _never_raises,
        {"an even": "no padding keeps H and W", "k =": "a kernel has a positive size"},
    ),
    "TypeError": (_raises_type_error, {"an even": "raise ValueError", "k =": "raise ValueError"}),
    "message without k": (
        _silent_message,
        {"an even": "should name the kernel size", "k =": "should name the kernel size"},
    ),
}


@pytest.mark.parametrize("name", WRONG_PADDINGS)
def test_wrong_paddings_fail_with_their_hint(name, capsys):
    implementation, expected = WRONG_PADDINGS[name]
    assert_fails_with(capsys, check_same_padding(implementation), expected)


def test_padding_stub_prints_one_line(capsys):
    def stub(kernel_size):
        raise NotImplementedError("exercise same-padding: write it")

    assert_not_implemented(capsys, check_same_padding(stub))


# --- spatial-attention ----------------------------------------------------------------------


class Lesson(nn.Module):
    """The lesson's solution."""

    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def logits(self, x):
        return self.conv(pool(x))

    def attention(self, x):
        return torch.sigmoid(self.logits(x))

    def forward(self, x):
        return x * self.attention(x)


class PaddingSame(Lesson):
    """padding="same" and torch.max(...).values."""

    def __init__(self, kernel_size=7):
        super().__init__(kernel_size)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding="same", bias=False)

    def logits(self, x):
        return self.conv(torch.cat([x.mean(1, keepdim=True), torch.max(x, 1, True).values], 1))


class MaxFirstMatchingKernel(nn.Module):
    """[max, mean] pooling with a raw kernel stored in [mean, max] order, flipped when used."""

    def __init__(self, kernel_size=7):
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(1, 2, kernel_size, kernel_size) / kernel_size)

    def attention(self, x):
        pooled = pool(x).flip(1)  # [max, mean]
        return F.conv2d(pooled, self.kernel.flip(1), padding=self.kernel.shape[-1] // 2).sigmoid()

    def forward(self, x):
        return self.attention(x) * x


@pytest.mark.parametrize(
    "implementation", [Lesson, PaddingSame, MaxFirstMatchingKernel]
)
def test_correct_modules_pass(implementation, capsys):
    assert_all_pass(capsys, check_spatial_attention(implementation), 6)


def _with_map(make_map):
    """A Lesson whose attention(x) is make_map(self, x)."""

    class Wrong(Lesson):
        def attention(self, x):
            return make_map(self, x)

    return Wrong


class FixedPadding(Lesson):
    """The from-scratch implementation's padding=3."""

    def __init__(self, kernel_size=7):
        super().__init__(kernel_size)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=3, bias=False)


class WithBias(Lesson):
    def __init__(self, kernel_size=7):
        super().__init__(kernel_size)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=True)


class AuthorsBatchNorm(Lesson):
    """The authors' gate: a BatchNorm after the conv, its weight initialised to zero."""

    def __init__(self, kernel_size=7):
        super().__init__(kernel_size)
        self.bn = nn.BatchNorm2d(1)
        nn.init.zeros_(self.bn.weight)

    def logits(self, x):
        return self.bn(super().logits(x))


class AlwaysSeven(Lesson):
    def __init__(self, kernel_size=7):
        super().__init__(7)


class MeanOnly(Lesson):
    def __init__(self, kernel_size=7):
        super().__init__(kernel_size)
        self.conv = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def logits(self, x):
        return self.conv(x.mean(dim=1, keepdim=True))


class ReturnsMap(Lesson):
    def forward(self, x):
        return self.attention(x)


class Stub(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        raise NotImplementedError("exercise spatial-attention: write it")


MAP, FORWARD, CONV = "attention(x) is", "forward(x) returns", "one convolution"
WRONG_MODULES = {
    "padding fixed at 3": (
        FixedPadding,
        {MAP: "the padding must be k // 2", FORWARD: "the padding must be k // 2"},
    ),
    "[max, mean] with the kernel unmatched": (
        _with_map(lambda self, x: torch.sigmoid(self.conv(pool(x).flip(1)))),
        {MAP: "[max, mean] order", FORWARD: "[max, mean] order"},
    ),
    "no sigmoid": (
        _with_map(lambda self, x: self.logits(x)),
        {MAP: "no sigmoid", FORWARD: "no sigmoid"},
    ),
    "sigmoid twice": (
        _with_map(lambda self, x: self.logits(x).sigmoid().sigmoid()),
        {MAP: "applied twice", FORWARD: "applied twice"},
    ),
    "softmax over positions": (
        _with_map(
            lambda self, x: torch.softmax(self.logits(x).flatten(1), 1).view(
                x.shape[0], 1, *x.shape[2:]
            )
        ),
        {MAP: "softmax", FORWARD: "softmax"},
    ),
    "(N, H, W) map": (
        _with_map(lambda self, x: torch.sigmoid(self.logits(x))[:, 0]),
        {
            MAP: "keep the channel dim",
            FORWARD: "must be (N, 1, H, W)",
            "gradients reach": "must match the size",
        },
    ),
    "returns the map": (ReturnsMap, {FORWARD: "forward returns the map"}),
    "bias": (WithBias, {"parameters: 2·k²": "a bias in the convolution"}),
    "zero-initialised BatchNorm": (
        AuthorsBatchNorm,
        {
            CONV: "a BatchNorm",
            MAP: "0.5 everywhere",
            FORWARD: "0.5 everywhere",
            "parameters: 2·k²": "a BatchNorm's two parameters",
        },
    ),
    "kernel_size ignored": (
        AlwaysSeven,
        {
            CONV: "is kernel_size ignored?",
            MAP: "is kernel_size ignored?",
            FORWARD: "is kernel_size ignored?",
            "parameters: 2·k²": "a 7x7 kernel whatever",
        },
    ),
    "mean only": (
        MeanOnly,
        {
            "SpatialAttention() is": "sees one map",
            CONV: "sees one map",
            MAP: "sees one map",
            FORWARD: "sees one map",
            "parameters: 2·k²": "parameters",
        },
    ),
    "detached": (
        _with_map(lambda self, x: torch.sigmoid(self.logits(x)).detach()),
        {"gradients reach": "no gradient reaches"},
    ),
}


@pytest.mark.parametrize("name", WRONG_MODULES)
def test_wrong_modules_fail_with_their_hint(name, capsys):
    implementation, expected = WRONG_MODULES[name]
    assert_fails_with(capsys, check_spatial_attention(implementation), expected)


def test_module_stub_prints_one_line(capsys):
    assert_not_implemented(capsys, check_spatial_attention(Stub))
