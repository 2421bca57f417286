"""Checks for lesson 03: the CBAM block (Eq. 1) and the three ways to arrange its two modules.

A learner's block is compared with ``cbam.CBAM`` carrying the learner's own weights, so any
correct implementation passes whatever its submodules are called: the weights are found by their
shapes (an MLP C -> C/r -> C as Linear or 1x1 Conv2d, a 2 -> 1 k x k convolution). When the output
differs, the usual mistakes are computed with the same weights and the one that matches names the
hint.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cbam.attention import ARRANGEMENTS, ChannelAttention, SpatialAttention
from cbam.attention import CBAM as ReferenceCBAM
from cbam.checks.own_work import OwnWork
from cbam.checks.report import (
    CheckFailed,
    expect_shape,
    run_seeded_checks,
    seeded,
    tensors_close,
)

SEED = 0
ATOL, RTOL = 1e-5, 1e-4
# (channels, reduction, kernel_size, input shape): the paper's defaults, then other sizes.
DEFAULT_CASE = (32, 16, 7, (2, 32, 9, 11))
OTHER_CASE = (24, 4, 3, (3, 24, 5, 7))
# The exercises build on cbam.ChannelAttention and cbam.SpatialAttention; only the library's
# block itself, which also implements the arrangements, would do the exercise for the learner.
OWN_BLOCK = OwnWork("CBAM", (ReferenceCBAM,))
OWN_COMBINE = OwnWork("combine", (ReferenceCBAM,))

# ---------------------------------------------------------------------------------------------
# Finding the learner's weights


def _as_matrix(p: torch.Tensor) -> torch.Tensor | None:
    """A Linear weight (out, in) or a 1x1 Conv2d weight (out, in, 1, 1) as a matrix, else None."""
    if p.dim() == 2:
        return p
    if p.dim() == 4 and p.shape[2:] == (1, 1):
        return p.flatten(1)
    return None


def _one(found: list[tuple[str, torch.Tensor, nn.Parameter]], what: str) -> tuple | None:
    """The single (value, parameter) found, None if none; several mean unshared MLPs."""
    if len(found) > 1:
        names = ", ".join(name for name, _, _ in found)
        raise CheckFailed(f"found several {what} ({names}); the MLP must be shared by the "
                          "average- and max-pooled descriptors (one MLP, called twice)")
    return found[0][1:] if found else None


def _learner_weights(block: nn.Module, channels: int, reduction: int, kernel_size: int) -> dict:
    """The learner's CBAM weights, found by shape, or CheckFailed saying which one is missing.

    Values are (weight as cbam.CBAM stores it, the learner's own parameter) pairs; the parameter
    is kept for its gradient.
    """
    hidden = max(channels // reduction, 1)
    params = list(block.named_parameters())
    if not params:
        raise CheckFailed("the block has no parameters: build a ChannelAttention and a "
                          "SpatialAttention in __init__ and keep them as attributes")
    matrices = [(n, m, p) for n, p in params if (m := _as_matrix(p)) is not None]
    w0 = _one([f for f in matrices if f[1].shape == (hidden, channels)],
              f"MLP weights of shape ({hidden}, {channels})")
    w1 = _one([f for f in matrices if f[1].shape == (channels, hidden)],
              f"MLP weights of shape ({channels}, {hidden})")
    if w0 is None or w1 is None:
        widths = sorted({m.shape[0] for _, m, _ in matrices if m.shape[1] == channels})
        got = f"a hidden width of {widths[0]}" if widths else "no MLP from the channels"
        raise CheckFailed(f"CBAM({channels}, reduction={reduction}) has {got}; its channel MLP "
                          f"should be {channels} -> {hidden} -> {channels} (channels // reduction):"
                          " pass reduction on to ChannelAttention")
    convs = [(n, p, p) for n, p in params if p.dim() == 4 and p.shape[:2] == (1, 2)]
    if not convs:
        raise CheckFailed("no spatial convolution with 2 input channels and 1 output channel "
                          "found: build a SpatialAttention in __init__")
    conv = _one(convs, "spatial convolutions")
    if conv[0].shape[2:] != (kernel_size, kernel_size):
        raise CheckFailed(f"the spatial convolution is {conv[0].shape[2]}x{conv[0].shape[3]}, "
                          f"expected {kernel_size}x{kernel_size}: pass kernel_size on to "
                          "SpatialAttention")
    vectors = {tuple(p.shape): (p, p) for _, p in params if p.dim() == 1}
    return {
        "w0": w0, "w1": w1, "conv": conv,
        "b0": vectors.get((hidden,)), "b1": vectors.get((channels,)),
        "conv_bias": vectors.get((1,)) if hidden != 1 else None,
    }


def _references(weights: dict, channels: int, reduction: int, kernel_size: int) -> list:
    """cbam.CBAM with the learner's weights; two of them, since the authors' code pools the
    channels in the order [max, mean] where cbam (and the paper's equation) has [mean, max]."""
    bias = weights["b0"] is not None and weights["b1"] is not None
    conv = weights["conv"][0]
    references = []
    for oriented in (conv, conv.flip(1)):
        ref = ReferenceCBAM(channels, reduction, kernel_size, bias=bias)
        with torch.no_grad():
            ref.channel.mlp[0].weight.copy_(weights["w0"][0])
            ref.channel.mlp[2].weight.copy_(weights["w1"][0])
            if bias:
                ref.channel.mlp[0].bias.copy_(weights["b0"][0])
                ref.channel.mlp[2].bias.copy_(weights["b1"][0])
            if weights["conv_bias"] is not None:
                ref.spatial.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
                ref.spatial.conv.bias.copy_(weights["conv_bias"][0])
            ref.spatial.conv.weight.copy_(oriented)
        references.append(ref.eval())
    return references


# ---------------------------------------------------------------------------------------------
# Naming what a wrong output computed


def _mistakes(channel: ChannelAttention, spatial: SpatialAttention, x: torch.Tensor) -> list:
    """(output, hint) for the usual wrong compositions, computed with the reference's weights."""
    refined = channel(x)  # F' = M_c(x) * x
    return [
        (channel(spatial(x)), "spatial attention was applied first: apply channel attention to "
                              "x, then spatial attention to its result"),
        (x * channel.attention(x) * spatial.attention(x),
         "both maps were computed from x (the parallel arrangement): compute the spatial map "
         "from F' = M_c(x) * x, not from x"),
        (x * spatial.attention(refined), "the spatial map was applied to x instead of to "
                                         "F' = M_c(x) * x"),
        (channel.attention(x) * spatial.attention(refined),
         "the product of the two maps was returned, not the refined features: multiply by "
         "the features"),
        (x * spatial(refined), "the refined features were multiplied by x once more"),
        (refined, "only channel attention was applied: follow it with spatial attention"),
        (spatial(x), "only spatial attention was applied: apply channel attention first"),
        (x, "the input came back unchanged: apply both attention modules"),
    ]


def _explain_shape(out: object, x: torch.Tensor) -> None:
    n, c, h, w = x.shape
    if isinstance(out, torch.Tensor):
        if tuple(out.shape) == (n, c, 1, 1):
            raise CheckFailed(f"returned shape {tuple(out.shape)}: that is the channel map "
                              "M_c; return the features refined by both maps")
        if tuple(out.shape) == (n, 1, h, w):
            raise CheckFailed(f"returned shape {tuple(out.shape)}: that is the spatial map "
                              "M_s; return M_s(F') * F'")
    expect_shape(out, (n, c, h, w), "the output")


EQ1 = "channel attention followed by spatial attention (Eq. 1)"


def _compare(out: object, x: torch.Tensor, references: list, mistakes: Callable,
             recipe: str = EQ1) -> None:
    _explain_shape(out, x)
    with torch.no_grad():
        if any(tensors_close(out, ref(x)) for ref in references):
            return
        for ref in references:
            for wrong, hint in mistakes(ref, x):
                if tensors_close(out, wrong):
                    raise CheckFailed(hint)
    raise CheckFailed(f"the output has the right shape but differs from {recipe} with the same "
                      "weights")


# ---------------------------------------------------------------------------------------------
# check_cbam_block


def _build(CBAM: type, channels: int, reduction: int, kernel_size: int) -> nn.Module:
    block = CBAM(channels, reduction=reduction, kernel_size=kernel_size)
    if not isinstance(block, nn.Module):
        raise CheckFailed(f"CBAM(...) gave a {type(block).__name__}; make CBAM a subclass of "
                          "nn.Module")
    return block.eval()


def _check_case(CBAM: type, case: tuple) -> None:
    channels, reduction, kernel_size, shape = case
    with seeded(SEED):
        block = _build(CBAM, channels, reduction, kernel_size)
        x = torch.randn(shape)
    original = x.clone()
    with torch.no_grad():
        out = block(x)
    if not torch.equal(x, original):
        raise CheckFailed("the input x was changed in place: use x * map, not x.mul_(map) or *=")
    _explain_shape(out, x)
    weights = _learner_weights(block, channels, reduction, kernel_size)
    references = _references(weights, channels, reduction, kernel_size)
    _compare(out, x, references, lambda ref, x: _mistakes(ref.channel, ref.spatial, x))


def _check_defaults(CBAM: type) -> None:
    channels, reduction, kernel_size, _ = DEFAULT_CASE
    with seeded(SEED):
        block = CBAM(channels)
    if not isinstance(block, nn.Module):
        raise CheckFailed(f"CBAM({channels}) gave a {type(block).__name__}; make CBAM a "
                          "subclass of nn.Module")
    weights = _learner_weights(block, channels, reduction, kernel_size)
    expected = sum(p.numel() for p in ReferenceCBAM(channels).parameters())
    # A bias in the spatial convolution is a harmless variant: one parameter more.
    expected += 0 if weights["conv_bias"] is None else 1
    got = sum(p.numel() for p in block.parameters())
    if got != expected:
        raise CheckFailed(f"CBAM({channels}) has {got} parameters, expected {expected} "
                          "(an MLP with biases and a 7x7 convolution without one)")


def _check_state_dict(CBAM: type) -> None:
    """Each weight under one name: the lesson loads cbam.CBAM's weights with load_state_dict,
    which refuses the extra keys of a module registered twice (self.body = nn.Sequential(
    self.channel, self.spatial) beside self.channel and self.spatial)."""
    with seeded(SEED):
        block = CBAM(DEFAULT_CASE[0])
    names: dict[int, list[str]] = {}
    for name, parameter in block.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), []).append(name)
    twice = [found for found in names.values() if len(found) > 1]
    if twice:
        raise CheckFailed(f"the same weights are registered under two names ({twice[0][0]} and "
                          f"{twice[0][1]}), so its state_dict has keys cbam.CBAM's has not and "
                          "the lesson's load_state_dict fails: keep each gate in one attribute, "
                          "self.channel and self.spatial")


def _check_gradients(CBAM: type) -> None:
    channels, reduction, kernel_size, shape = DEFAULT_CASE
    with seeded(SEED):
        block = _build(CBAM, channels, reduction, kernel_size)
        x = torch.randn(shape)
    out = block(x)
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise CheckFailed("the output does not depend on any weight through autograd: are the "
                          "maps detached, or computed under torch.no_grad()?")
    out.square().sum().backward()
    weights = _learner_weights(block, channels, reduction, kernel_size)
    for key, what in (("w0", "the channel MLP"), ("conv", "the spatial convolution")):
        grad = weights[key][1].grad
        if grad is None or not bool(grad.abs().sum() > 0):
            raise CheckFailed(f"no gradient reached {what}: is a map detached, or computed "
                              "under torch.no_grad()?")


def check_cbam_block(CBAM: type) -> bool:
    """Lesson 03, exercise "cbam-block": ``CBAM(channels, reduction=16, kernel_size=7)``."""
    c, r, k, shape = DEFAULT_CASE
    c2, r2, k2, shape2 = OTHER_CASE
    return run_seeded_checks("cbam-block", [
        (f"CBAM({c}) has the paper's parts: a {c} -> {c // r} -> {c} MLP and a {k}x{k} conv",
         lambda: _check_defaults(CBAM)),
        (f"CBAM({c}) on {shape} equals channel then spatial attention (Eq. 1)",
         lambda: _check_case(CBAM, DEFAULT_CASE)),
        (f"CBAM({c2}, reduction={r2}, kernel_size={k2}) on {shape2} does too",
         lambda: _check_case(CBAM, OTHER_CASE)),
        ("gradients reach the channel MLP and the spatial convolution",
         lambda: _check_gradients(CBAM)),
        ("each weight is registered once (the lesson loads cbam.CBAM's weights into it)",
         lambda: _check_state_dict(CBAM)),
    ], own=(CBAM, OWN_BLOCK))


# ---------------------------------------------------------------------------------------------
# check_arrangements


_RECIPES = {
    "channel-first": "apply channel attention to x, then spatial attention to its result",
    "spatial-first": "apply spatial attention to x, then channel attention to its result",
    "parallel": "compute both maps from x and apply them together: x * M_c(x) * M_s(x)",
}


def _arrangement_mistakes(arrangement: str) -> Callable:
    """The other arrangements' outputs, then the usual slips of this one."""

    def mistakes(ref: ReferenceCBAM, x: torch.Tensor) -> list:
        channel, spatial = ref.channel, ref.spatial
        outputs = {
            "channel-first": spatial(channel(x)),
            "spatial-first": channel(spatial(x)),
            "parallel": x * channel.attention(x) * spatial.attention(x),
        }
        found = [(out, f"returned what '{name}' gives; for '{arrangement}' "
                       f"{_RECIPES[arrangement]}")
                 for name, out in outputs.items() if name != arrangement]
        found.append((channel.attention(x) * spatial.attention(x),
                      "returned the product of the maps, not the refined features: multiply "
                      "it by x"))
        if arrangement == "channel-first":
            found += _mistakes(channel, spatial, x)
        elif arrangement == "parallel":
            found.append((channel(x) * spatial(x),
                          "channel(x) * spatial(x) multiplies by x twice (calling a gate returns "
                          "x times its map): use x * channel.attention(x) * spatial.attention(x)"))
            maps = channel.attention(x) + spatial.attention(x)  # (N, C, 1, 1) + (N, 1, H, W)
            multiply = ("the parallel arrangement multiplies the two maps: "
                        "x * channel.attention(x) * spatial.attention(x)")
            found += [(x * maps, f"the two maps were added, x * (M_c + M_s); {multiply}"),
                      (x * maps / 2, f"the two maps were averaged, x * (M_c + M_s) / 2; "
                                     f"{multiply}")]
        elif arrangement == "spatial-first":
            # (A channel map computed from x instead of F' is the parallel arrangement.)
            found.append((x * channel.attention(spatial(x)), "the channel map was applied to x "
                                                             "instead of to F' = M_s(x) * x"))
        return found

    return mistakes


def _modules(channels: int) -> tuple[ChannelAttention, SpatialAttention]:
    channel, spatial = ChannelAttention(channels), SpatialAttention()
    # Larger weights than the default initialisation make the arrangements differ clearly.
    with torch.no_grad():
        spatial.conv.weight.mul_(4)
    return channel.eval(), spatial.eval()


def _check_arrangement(combine: Callable, arrangement: str | None) -> None:
    with seeded(SEED):
        channel, spatial = _modules(32)
        x = torch.randn(2, 32, 9, 11)
    original = x.clone()
    with torch.no_grad():
        if arrangement is None:
            out = combine(x, channel, spatial)
        else:
            out = combine(x, channel, spatial, arrangement)
    if not torch.equal(x, original):
        raise CheckFailed("the input x was changed in place: use x * map, not x.mul_(map) or *=")
    name = arrangement or "channel-first"
    reference = ReferenceCBAM(32, arrangement=name).eval()
    reference.channel, reference.spatial = channel, spatial
    if arrangement is None and not tensors_close(out, reference(x)):
        _explain_shape(out, x)
        raise CheckFailed("without an arrangement argument the result is not channel-first: "
                          "make 'channel-first' the default")
    _compare(out, x, [reference], _arrangement_mistakes(name),
             recipe=f"'{name}', {_FORMULAS[name]}")


def _check_unknown(combine: Callable) -> None:
    with seeded(SEED):
        channel, spatial = _modules(8)
        x = torch.randn(1, 8, 4, 4)
    try:
        combine(x, channel, spatial, "diagonal")
    except ValueError as error:
        unnamed = [a for a in ARRANGEMENTS if a not in str(error)]
        if unnamed:
            raise CheckFailed(f"the ValueError says {str(error)!r}; name the three choices in "
                              f"it ({', '.join(map(repr, ARRANGEMENTS))}), so that the reader "
                              "of the error sees what to write") from None
        return
    except Exception as error:
        raise CheckFailed(f"raised {type(error).__name__}; raise ValueError naming the three "
                          "arrangements") from error
    raise CheckFailed("an unknown arrangement returned a result; raise ValueError naming the "
                      "three arrangements, so a typo cannot pass silently")


def check_arrangements(combine: Callable) -> bool:
    """Lesson 03, exercise "arrangements": ``combine(x, channel, spatial, arrangement)``."""
    checks = [(f"'{a}' gives {_FORMULAS[a]}", lambda a=a: _check_arrangement(combine, a))
              for a in ARRANGEMENTS]
    checks += [
        ("the default arrangement is 'channel-first'", lambda: _check_arrangement(combine, None)),
        ("an unknown arrangement raises ValueError naming the three",
         lambda: _check_unknown(combine)),
    ]
    return run_seeded_checks("arrangements", checks, own=(combine, OWN_COMBINE))


_FORMULAS = {
    "channel-first": "M_s(F') * F' with F' = M_c(x) * x",
    "spatial-first": "M_c(F') * F' with F' = M_s(x) * x",
    "parallel": "M_c(x) * M_s(x) * x",
}
