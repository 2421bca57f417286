"""The checks of lesson 00: right answers pass, each usual mistake gets the hint naming it."""

from __future__ import annotations

import pytest
import torch

from cbam.checks.shapes import check_apply_gate, check_global_descriptors, check_pool_over_channels


def lines(check, function, capsys) -> tuple[bool, list[str]]:
    passed = check(function)
    return passed, capsys.readouterr().out.splitlines()


def failures(output: list[str]) -> str:
    return "\n".join(line for line in output if line.startswith("✗"))


def test_right_answers_pass(capsys):
    for check, function in [
        (
            check_global_descriptors,
            lambda x: (x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)),
        ),
        (
            check_global_descriptors,  # a different route to the same numbers
            lambda x: (torch.nn.AdaptiveAvgPool2d(1)(x), torch.nn.AdaptiveMaxPool2d(1)(x)),
        ),
        (
            check_pool_over_channels,
            lambda x: (x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True).values),
        ),
        (check_apply_gate, lambda x, w: x * w[:, :, None, None]),
        (check_apply_gate, lambda x, w: x * w.view(*w.shape, 1, 1)),
    ]:
        passed, output = lines(check, function, capsys)
        assert passed, output
        assert output and all(line.startswith("✓ ") for line in output)


@pytest.mark.parametrize(
    ("function", "hint"),
    [
        (
            lambda x: (x.mean(dim=(2, 3)), x.amax(dim=(2, 3))),
            "mean has shape (2, 3), expected (2, 3, 1, 1): pass keepdim=True",
        ),
        (
            lambda x: (x.mean(dim=(1, 2), keepdim=True), x.amax(dim=(1, 2), keepdim=True)),
            "it reduced over C, H, the exercise reduces over H, W",
        ),
        (
            lambda x: (x.mean(dim=(2, 3), keepdim=True), x.max(dim=3, keepdim=True)),
            "max is a (values, indices) pair: torch.max(x, dim=...) returns both, take .values",
        ),
        (
            lambda x: (x.mean(dim=(2, 3), keepdim=True), x.max()),
            "max has shape (), expected (2, 3, 1, 1): it reduced over N, C, H, W (no dim given "
            "reduces everything) and dropped them",
        ),
        (
            lambda x: (x.sum(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)),
            "mean is the sum over H and W, not divided: a mean over H and W divides by H·W = 20",
        ),
        (
            lambda x: x.mean(dim=(2, 3), keepdim=True),
            "should return a pair (mean, max), got a tensor of shape (2, 3, 1, 1)",
        ),
    ],
)
def test_global_descriptors_mistakes(function, hint, capsys):
    passed, output = lines(check_global_descriptors, function, capsys)
    assert not passed
    assert hint in failures(output)


def test_pool_over_channels_mistakes(capsys):
    passed, output = lines(
        check_pool_over_channels, lambda x: (x.mean(dim=1), x.max(dim=1, keepdim=True)), capsys
    )
    assert not passed
    text = failures(output)
    assert "mean has shape (2, 4, 5), expected (2, 1, 4, 5): pass keepdim=True" in text
    assert "max is a (values, indices) pair" in text


def test_a_stub_reads_not_implemented(capsys):
    def stub(x):
        raise NotImplementedError("exercise global-descriptors: write it")

    passed, output = lines(check_global_descriptors, stub, capsys)
    assert not passed
    assert output == [output[0]] and "global-descriptors: not implemented yet" in output[0]


def test_apply_gate_mistakes(capsys):
    passed, output = lines(check_apply_gate, lambda x, w: x * w, capsys)
    assert not passed
    text = failures(output)
    assert "x * weights fails for x (2, 3, 4, 5) and weights (2, 3)" in text
    # With N = H and C = W the same mistake does not crash; the values give it away.
    assert "still right when N = H and C = W" in text and "different values" in text

    passed, output = lines(check_apply_gate, lambda x, w: x.mul_(w[:, :, None, None]), capsys)
    assert not passed
    assert "x was changed in place" in failures(output)


def test_checks_leave_the_global_random_stream_alone(capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_global_descriptors(
        lambda x: (x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True))
    )
    check_apply_gate(lambda x, w: x * w[:, :, None, None])
    assert torch.equal(torch.rand(3), expected)
