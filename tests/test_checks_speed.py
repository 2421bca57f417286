"""The check of lesson 07's exercise: correct fast forwards pass, the usual slips are named."""

from __future__ import annotations

import torch

from cbam.checks.speed import check_fast_cbam


def _channel_gate(block, x):
    descriptors = torch.stack([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])
    return torch.sigmoid(block.channel.mlp(descriptors).sum(dim=0))[:, :, None, None]


def _spatial_gate(block, y):
    pooled = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
    return torch.sigmoid(block.spatial.conv(pooled))


def fast(block, x):
    y = x * _channel_gate(block, x)
    return y.mul_(_spatial_gate(block, y))


def test_correct_forwards_pass(capsys):
    assert check_fast_cbam(fast)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.startswith("✓") for line in lines)


def test_calling_the_block_is_refused(capsys):
    assert not check_fast_cbam(lambda block, x: block(x))
    assert "calls block(x)" in capsys.readouterr().out


def test_calling_the_c_kernel_is_refused(capsys):
    from cbam.fast import cpu_kernel

    def through_the_kernel(block, x):
        mlp, conv = block.channel.mlp, block.spatial.conv
        weights = (mlp[0].weight, mlp[0].bias, mlp[2].weight, mlp[2].bias, conv.weight, None)
        return torch.ops.cbam.cpu_forward(x, *weights)

    assert not check_fast_cbam(through_the_kernel)
    assert "calls cbam's C kernel" in capsys.readouterr().out
    assert not check_fast_cbam(cpu_kernel.cbam_forward)
    assert "calls cbam's C kernel" in capsys.readouterr().out


def test_changing_the_input_in_place_is_named(capsys):
    def in_place(block, x):
        y = x.mul_(_channel_gate(block, x))
        return y.mul_(_spatial_gate(block, y))

    assert not check_fast_cbam(in_place)
    out = capsys.readouterr().out
    assert "✗ fast-cbam: the input tensor is left unchanged — x was changed in place" in out


def test_swapped_pooling_order_gives_different_values(capsys):
    def swapped(block, x):
        y = x * _channel_gate(block, x)
        pooled = torch.cat([y.amax(dim=1, keepdim=True), y.mean(dim=1, keepdim=True)], dim=1)
        return y * torch.sigmoid(block.spatial.conv(pooled))

    assert not check_fast_cbam(swapped)
    out = capsys.readouterr().out
    assert "the output for an input of shape (2, 32, 9, 7) is wrong: channel gate" in out


def test_sigmoid_before_the_sum_is_named_as_a_wrong_output_not_a_budget(capsys):
    def sigmoid_first(block, x):
        descriptors = torch.stack([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])
        gate = torch.sigmoid(block.channel.mlp(descriptors)).sum(dim=0)[:, :, None, None]
        y = x * gate
        return y.mul_(_spatial_gate(block, y))

    assert not check_fast_cbam(sigmoid_first)
    lines = capsys.readouterr().out.splitlines()
    eq2 = "the sigmoid of the sum of the two MLP outputs (Eq. 2)"
    assert lines[0].startswith("✗") and "is wrong" in lines[0] and eq2 in lines[0]
    budget = next(line for line in lines if "within the exercise's budget" in line)
    # The budget line says the output is wrong, and that the work was not counted.
    assert budget.startswith("✗") and "not counted: the output is wrong" in budget
    assert eq2 in budget


def test_returning_nothing_and_stubs(capsys):
    assert not check_fast_cbam(lambda block, x: None)
    assert "returned None" in capsys.readouterr().out

    def stub(block, x):
        raise NotImplementedError("exercise fast-cbam")

    assert not check_fast_cbam(stub)
    assert len(capsys.readouterr().out.splitlines()) == 1
