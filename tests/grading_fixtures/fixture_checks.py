"""The checks of the grader's test lesson (91_grading_fixture.py), beside it as lessons' files are.

Built like the course's checks: one line per check through ``cbam.checks.run_checks``, the
learner's weights copied into the library's module (found by shape, so a 1x1-conv MLP or other
attribute names pass), the random generator left as it was found.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import cbam
from cbam.checks import CheckFailed, expect_close, expect_shape, run_checks


def _isolated(exercise: str, checks: list[tuple[str, Callable[[], object]]]) -> bool:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return run_checks(exercise, checks)


def _as_matrix(p: torch.Tensor) -> torch.Tensor:
    return p.flatten(1) if p.dim() == 4 and p.shape[2:] == (1, 1) else p


def _copy_by_shape(learner: nn.Module, reference: nn.Module) -> None:
    """Load the learner's parameters, in their order, into the reference's."""
    theirs = [_as_matrix(p) for p in learner.parameters()]
    ours = list(reference.parameters())
    if [tuple(p.shape) for p in theirs] != [tuple(p.shape) for p in ours]:
        raise CheckFailed(f"parameters of shapes {[tuple(p.shape) for p in theirs]}, expected "
                          f"{[tuple(p.shape) for p in ours]}")
    with torch.no_grad():
        for mine, yours in zip(ours, theirs, strict=True):
            mine.copy_(yours)


def _module(cls: type, *args: object) -> nn.Module:
    module = cls(*args)
    if not isinstance(module, nn.Module):
        raise CheckFailed(f"{cls.__name__}(...) gave a {type(module).__name__}, not an nn.Module")
    return module.eval()


# --- channel-attention ----------------------------------------------------------------------


def _channel_values(cls: type) -> None:
    learner, reference = _module(cls, 32, 8), cbam.ChannelAttention(32, 8).eval()
    count = sum(p.numel() for p in learner.parameters())
    expected = sum(p.numel() for p in reference.parameters())
    if count == 2 * expected:
        raise CheckFailed("twice the parameters: both poolings must share one MLP")
    _copy_by_shape(learner, reference)
    x = torch.randn(2, 32, 5, 6)
    with torch.no_grad():
        out = learner(x)
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 32, 1, 1):
            raise CheckFailed("returned the map (N, C, 1, 1): return x rescaled by it")
        expect_shape(out, tuple(x.shape), "the output")
        mlp = reference.mlp
        avg, mx = mlp(x.mean(dim=(2, 3))), mlp(x.amax(dim=(2, 3)))
        mistakes = {
            "only the average pooling is used: add the max-pooled branch": torch.sigmoid(avg),
            "a sigmoid on each branch: add the branches, then one sigmoid":
                torch.sigmoid(avg) + torch.sigmoid(mx),
            "no sigmoid: the map must lie in (0, 1)": avg + mx,
        }
        for hint, weights in mistakes.items():
            if torch.allclose(out, x * weights[:, :, None, None], atol=1e-5):
                raise CheckFailed(hint)
        expect_close(out, reference(x), "the output")


def check_channel_attention(cls: type) -> bool:
    return _isolated("channel-attention", [
        ("ChannelAttention(32, 8) keeps the input's shape",
         lambda: expect_shape(_module(cls, 32, 8)(torch.randn(2, 32, 5, 6)), (2, 32, 5, 6),
                              "the output")),
        ("the output is x * sigmoid(mlp(avg) + mlp(max)) with one shared MLP",
         lambda: _channel_values(cls)),
    ])


# --- spatial-attention ----------------------------------------------------------------------


def _spatial_shape(cls: type, kernel_size: int) -> None:
    out = _module(cls, kernel_size)(torch.randn(2, 8, 9, 11))
    if isinstance(out, torch.Tensor) and out.shape[2:] != (9, 11):
        raise CheckFailed(f"H, W became {tuple(out.shape[2:])}: use padding kernel_size // 2")
    expect_shape(out, (2, 8, 9, 11), "the output")


def _spatial_values(cls: type) -> None:
    learner, reference = _module(cls, 7), cbam.SpatialAttention(7).eval()
    _copy_by_shape(learner, reference)
    x = torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        out = learner(x)
        expect_shape(out, tuple(x.shape), "the output")
        expect_close(out, reference(x), "the output", "pool over the channels, mean then max")


def check_spatial_attention(cls: type) -> bool:
    return _isolated("spatial-attention", [
        ("SpatialAttention(7) keeps H and W", lambda: _spatial_shape(cls, 7)),
        ("SpatialAttention(3) keeps H and W", lambda: _spatial_shape(cls, 3)),
        ("the output is x * sigmoid(conv([mean; max]))", lambda: _spatial_values(cls)),
    ])


# --- cbam-block -----------------------------------------------------------------------------


def _block_values(cls: type) -> None:
    learner, reference = _module(cls, 16, 4, 7), cbam.CBAM(16, 4, 7).eval()
    reference.load_state_dict(learner.state_dict())
    with torch.no_grad():
        nn.init.normal_(reference.spatial.conv.weight, std=0.5)
        learner.load_state_dict(reference.state_dict())
        x = torch.randn(2, 16, 6, 6)
        out = learner(x)
        expect_shape(out, tuple(x.shape), "the output")
        if torch.allclose(out, reference.channel(reference.spatial(x)), atol=1e-5):
            raise CheckFailed("spatial attention came first: apply channel attention first")
        expect_close(out, reference(x), "the output")


def check_cbam_block(cls: type) -> bool:
    return _isolated("cbam-block", [
        ("CBAM(16, 4, 7) is channel attention, then spatial attention",
         lambda: _block_values(cls)),
    ])


# --- attention-in-block ---------------------------------------------------------------------


class ReferenceBlock(nn.Module):
    """A residual block with CBAM after its last BatchNorm, before the residual add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.attention = cbam.CBAM(channels, reduction=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(self.attention(out) + x)


def _insertion(block_forward: Callable) -> None:
    block = ReferenceBlock(8).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        out = block_forward(block, x)
        expect_shape(out, tuple(x.shape), "the output")
        residual = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
        late = block.relu(block.attention(residual + x))
        if torch.allclose(out, late, atol=1e-5):
            raise CheckFailed("the attention was applied after the residual add: apply it "
                              "before the add")
        expect_close(out, block(x), "the output", "attention after bn2, before the add")


def check_attention_in_block(block_forward: Callable) -> bool:
    return _isolated("attention-in-block", [
        ("the attention sits after bn2, before the residual add",
         lambda: _insertion(block_forward)),
    ])
