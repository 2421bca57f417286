"""Checks for lesson 01, channel attention (Eq. 2 of the CBAM paper).

One function per exercise, each called by the lesson's check cell:

* ``check_channel_descriptors(channel_descriptors)``: the average and max descriptors, (N, C) each
* ``check_shared_mlp(shared_mlp)``: the C -> max(C // r, 1) -> C MLP
* ``check_channel_attention(ChannelAttention)``: the module, compared with ``cbam.ChannelAttention``

A learner's module is compared with the library's by loading the same weights into both. The
weights are found by their shapes, not their names (``cbam.checks.learner_mlp``), so a Linear or
a 1x1-conv MLP under any attribute names passes. A wrong result is compared with the usual
mistakes (one pooling only, a sigmoid per branch, ...) so that the hint names the mistake that
was made.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cbam import attention
from cbam.attention import ChannelAttention as ReferenceChannelAttention
from cbam.checks.gradients import expect_gradients, expect_input_gradient
from cbam.checks.learner_mlp import (
    Weights,
    expect_parameter_count,
    expect_width,
    find_mlp,
    mlp_function,
    mlp_weights,
)
from cbam.checks.own_work import OwnWork
from cbam.checks.report import (
    CheckFailed,
    divided_sum_hint,
    expect_shape,
    feature_map,
    run_seeded_checks,
    tensors_close,
    wrong_divisors,
)

Tensor = torch.Tensor

# (N, C, H, W, r) of the feature maps the modules are compared on: non-square maps, N = 1, a
# map of height 1, and widths 4, 12 and 2.
VALUE_CASES = ((2, 64, 7, 7, 16), (3, 48, 5, 9, 4), (1, 20, 1, 3, 8))


# What each exercise must not hand its work to: cbam's own version of it.
OWN_DESCRIPTORS = OwnWork("channel_descriptors", (attention._global_pool,))
OWN_MLP = OwnWork("shared_mlp", (ReferenceChannelAttention,), watch_init=True)
OWN_MODULE = OwnWork("ChannelAttention", (ReferenceChannelAttention,))


# --- exercise "channel-descriptors" ---------------------------------------------------------


def _descriptor_shape_hint(value: object, x: Tensor) -> str:
    n, c, h, w = x.shape
    if type(value).__module__ == "torch.return_types":
        return "torch.max(x, dim) returns (values, indices): take .values, or use x.amax(...)"
    if not isinstance(value, Tensor):
        return f"should be a torch.Tensor, got {type(value).__name__}"
    shape = tuple(value.shape)
    if shape == (n, c):
        return ""
    if shape == (n, c, 1, 1):
        return (
            "is (N, C, 1, 1); return (N, C): e.g. x.mean(dim=(2, 3)), or flatten the 1x1 "
            "with .flatten(1)"
        )
    if shape in ((n, h, w), (n, 1, h, w)):
        return "pooled over the channels (dim 1); channel attention pools over H and W (dims 2, 3)"
    if n == 1 and shape in ((c,), ()):
        return (f"is {shape} for x of shape {tuple(x.shape)}: with N = 1, .squeeze() also "
                "drops the batch dim (and C = 1 the channel dim); squeeze only what was pooled, "
                ".flatten(1) or .squeeze(-1).squeeze(-1), or pool with x.mean(dim=(2, 3))")
    if shape == (c,):
        return "pooled over the batch too: keep dim 0, pool over H and W only"
    if shape in ((n, c, h), (n, c, w)):
        return "pooled over one spatial dim only: pool over both H and W"
    return f"has shape {shape}, expected (N, C) = {(n, c)}"


def _descriptors(channel_descriptors: Callable, x: Tensor) -> tuple[Tensor, Tensor]:
    result = channel_descriptors(x.clone())
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"a {type(result).__name__}" + (
            f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
        )
        raise CheckFailed(f"should return two tensors (avg, max), got {got}")
    for name, value in zip(("avg", "max"), result, strict=True):
        hint = _descriptor_shape_hint(value, x)
        if hint:
            raise CheckFailed(f"{name} {hint}")
    return result[0], result[1]


def _check_descriptor_values(channel_descriptors: Callable, shape: tuple[int, ...]) -> None:
    x = feature_map(shape, seed=1) + 0.5  # shifted, so a sum and a mean differ
    avg, mx = _descriptors(channel_descriptors, x)
    true_avg, true_max = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))

    if tensors_close(avg, true_avg) and tensors_close(mx, true_max):
        return
    if tensors_close(avg, true_max) and tensors_close(mx, true_avg):
        raise CheckFailed("the two are swapped: return (avg, max) in that order")
    if not tensors_close(avg, true_avg):
        divided = divided_sum_hint(avg, x, (2, 3), "H and W")
        if divided:
            raise CheckFailed(f"avg {divided}")
        raise CheckFailed(f"avg is not the mean over H and W of x with shape {shape}")
    if tensors_close(mx, x.amin(dim=(2, 3))):
        raise CheckFailed("max is the minimum over H and W")
    raise CheckFailed(f"max is not the maximum over H and W of x with shape {shape}")


def check_channel_descriptors(channel_descriptors: Callable) -> bool:
    """``channel_descriptors(x)`` returns ``(avg, max)``, each (N, C), pooled over H and W."""
    return run_seeded_checks(
        "channel-descriptors",
        [
            (
                "returns (avg, max), each (N, C), for x of shape (2, 5, 3, 4)",
                lambda: _descriptors(channel_descriptors, feature_map((2, 5, 3, 4), seed=0)),
            ),
            (
                "avg is the mean and max the maximum over H and W",
                lambda: _check_descriptor_values(channel_descriptors, (2, 5, 3, 4)),
            ),
            (
                "the same for shapes (1, 3, 1, 1) and (4, 7, 6, 2)",
                lambda: [
                    _check_descriptor_values(channel_descriptors, s)
                    for s in ((1, 3, 1, 1), (4, 7, 6, 2))
                ],
            ),
            (
                "gradients flow back to the input",
                lambda: expect_input_gradient(channel_descriptors),
            ),
        ],
        own=(channel_descriptors, OWN_DESCRIPTORS),
    )


# --- exercise "shared-mlp" ------------------------------------------------------------------


def _build_mlp(shared_mlp: Callable, channels: int, reduction: float | None = None) -> nn.Module:
    mlp = shared_mlp(channels) if reduction is None else shared_mlp(channels, reduction)
    if not isinstance(mlp, nn.Module):
        raise CheckFailed(f"should return an nn.Module, got {type(mlp).__name__}")
    return mlp


def _call_mlp(mlp: nn.Module, v: Tensor) -> Tensor:
    try:
        return mlp(v)
    except RuntimeError as error:
        try:
            mlp(v[:, :, None, None])
        except Exception:
            raise error from None
        raise CheckFailed(
            "takes (N, C, 1, 1) but not (N, C): this MLP works on the squeezed "
            "descriptors, so use nn.Linear layers"
        ) from None


def _check_mlp_shape(shared_mlp: Callable) -> None:
    mlp = _build_mlp(shared_mlp, 64, 16)
    out = _call_mlp(mlp, feature_map((3, 64), seed=3))
    expect_shape(out, (3, 64), "the output for an input (3, 64)")


def _check_mlp_values(shared_mlp: Callable) -> None:
    for channels, reduction in ((64, 16), (48, 4)):
        module = _build_mlp(shared_mlp, channels, reduction)
        found = find_mlp(module, channels)
        weights = found.load(mlp_weights(channels, found.hidden, seed=4))
        v = feature_map((5, channels), seed=5)
        out = _call_mlp(module, v)
        expect_shape(out, (5, channels), f"the output for an input (5, {channels})")
        relu = mlp_function(weights)
        if torch.allclose(out.detach().float(), relu(v), atol=1e-5, rtol=1e-4):
            continue
        mistakes = [
            ("no ReLU between the two layers: Eq. 2's δ", mlp_function(weights, lambda t: t)(v)),
            (
                "a ReLU after the last layer too: the MLP's output must be free to go negative",
                relu(v).relu(),
            ),
            (
                "a sigmoid inside the MLP: it comes once, after the two branches are added",
                torch.sigmoid(relu(v)),
            ),
            (
                "a sigmoid between the layers: Eq. 2 uses a ReLU there",
                mlp_function(weights, torch.sigmoid)(v),
            ),
        ]
        for hint, wrong in mistakes:
            if torch.allclose(out.detach().float(), wrong, atol=1e-5, rtol=1e-4):
                raise CheckFailed(hint)
        raise CheckFailed("the output differs from W1·ReLU(W0·v + b0) + b1 with the same weights")


def check_shared_mlp(shared_mlp: Callable) -> bool:
    """``shared_mlp(channels, reduction=16)`` returns Linear(C, h), ReLU, Linear(h, C)."""
    return run_seeded_checks(
        "shared-mlp",
        [
            ("shared_mlp(64, 16) maps (N, 64) to (N, 64)", lambda: _check_mlp_shape(shared_mlp)),
            (
                "hidden width max(C // r, 1): C = 64 with r = 16 (the default) and r = 4",
                lambda: [
                    expect_width(_build_mlp(shared_mlp, 64, r), 64, r if r else 16)
                    for r in (None, 4)
                ],
            ),
            (
                "small C keeps a hidden width of at least 1: C = 6 and 15, r = 16",
                lambda: [expect_width(_build_mlp(shared_mlp, c, 16), c, 16) for c in (6, 15)],
            ),
            (
                "computes W1·ReLU(W0·v + b0) + b1 (weights copied in)",
                lambda: _check_mlp_values(shared_mlp),
            ),
            (
                "parameters: 2·C·h + h + C for C = 64, r = 16",
                lambda: expect_parameter_count(_build_mlp(shared_mlp, 64, 16), 64, 16),
            ),
            ("gradients reach the input and both layers", lambda: _check_mlp_gradients(shared_mlp)),
        ],
        own=(shared_mlp, OWN_MLP),
    )


def _check_mlp_gradients(shared_mlp: Callable) -> None:
    module = _build_mlp(shared_mlp, 32, 8)
    expect_gradients(
        module, feature_map((4, 32), seed=6, requires_grad=True), lambda v: _call_mlp(module, v)
    )


# --- exercise "channel-attention" -----------------------------------------------------------


def reference_module(channels: int, weights: Weights) -> ReferenceChannelAttention:
    """``cbam.ChannelAttention`` of the width of ``weights`` and holding them."""
    hidden = weights["w0"].shape[0]
    # reduction = C gives C // C = 1, so min_hidden sets the width to any hidden >= 1.
    reference = ReferenceChannelAttention(channels, reduction=channels, min_hidden=hidden)
    with torch.no_grad():
        reference.mlp[0].weight.copy_(weights["w0"])
        reference.mlp[0].bias.copy_(weights["b0"])
        reference.mlp[2].weight.copy_(weights["w1"])
        reference.mlp[2].bias.copy_(weights["b1"])
    return reference


def _map_mistakes(x: Tensor, weights: Weights) -> list[tuple[str, Tensor]]:
    """(hint, the (N, C, 1, 1) map that mistake gives) for the usual mistakes."""
    mlp, s = mlp_function(weights), torch.sigmoid
    avg, mx = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
    a, m = mlp(avg), mlp(mx)
    mistakes = [
        (
            "only the average-pooled descriptor is used (that is the SE block): add the MLP "
            "output of the max-pooled one",
            s(a),
        ),
        (
            "only the max-pooled descriptor is used: add the MLP output of the average-pooled one",
            s(m),
        ),
        (
            "a sigmoid on each branch, then summed: add the two MLP outputs first, then apply one "
            "sigmoid",
            s(a) + s(m),
        ),
        (
            "a sigmoid on each branch, then averaged: add the two MLP outputs first, then apply "
            "one sigmoid",
            (s(a) + s(m)) / 2,
        ),
        (
            "a sigmoid on each branch, then multiplied: add the two MLP outputs first, then apply "
            "one sigmoid",
            s(a) * s(m),
        ),
        ("no sigmoid: squash the sum with torch.sigmoid so each weight lies in (0, 1)", a + m),
        ("the sigmoid is applied twice", s(s(a + m))),
        (
            "a softmax over channels instead of a sigmoid: the channels would share one unit of "
            "weight; each needs its own sigmoid",
            torch.softmax(a + m, dim=1),
        ),
        (
            "the descriptors are added before the MLP: send each through the MLP, then add",
            s(mlp(avg + mx)),
        ),
        (
            "the descriptors are averaged before the MLP: send each through the MLP, then add",
            s(mlp((avg + mx) / 2)),
        ),
        (
            "no ReLU between the MLP's layers",
            s(mlp_function(weights, lambda t: t)(avg) + mlp_function(weights, lambda t: t)(mx)),
        ),
    ]
    total = x.sum(dim=(2, 3))
    mistakes += [(f"the average descriptor {hint}", s(mlp(total / size) + m))
                 for size, hint in wrong_divisors(tuple(x.shape), (2, 3), "H and W")]
    return [(hint, value[:, :, None, None]) for hint, value in mistakes]


def _case(ChannelAttention: type, n: int, c: int, h: int, w: int, r: float, seed: int):
    """The learner's module with known weights, the reference holding them, and an input."""
    module = ChannelAttention(c, reduction=r)
    found = find_mlp(module, c)
    if found.hidden == 0:
        raise CheckFailed(
            f"with a hidden width of 0 (C = {c}, r = {r}) the map is a constant; see the width line"
        )
    weights = found.load(mlp_weights(c, found.hidden, seed))
    x = feature_map((n, c, h, w), seed=seed + 1)
    return module, weights, reference_module(c, weights), x


def _check_has_attention(ChannelAttention: type) -> None:
    module = ChannelAttention(64)
    if not isinstance(module, nn.Module):
        raise CheckFailed(f"should be an nn.Module, got {type(module).__name__}")
    if not callable(getattr(module, "attention", None)):
        raise CheckFailed(
            "no attention(x) method: it returns the (N, C, 1, 1) map, and forward "
            "returns x * self.attention(x)"
        )


def _check_attention_map(ChannelAttention: type) -> None:
    for seed, (n, c, h, w, r) in enumerate(VALUE_CASES):
        module, weights, reference, x = _case(ChannelAttention, n, c, h, w, r, seed=10 * seed)
        expected = reference.attention(x).detach()
        got = module.attention(x.clone())
        if isinstance(got, Tensor) and tuple(got.shape) == (n, c):
            raise CheckFailed(
                "the map is (N, C): reshape it to (N, C, 1, 1) so that it broadcasts over H and W"
            )
        expect_shape(got, (n, c, 1, 1), f"attention(x) for x of shape {(n, c, h, w)}")
        if tensors_close(got, expected):
            continue
        for hint, wrong in _map_mistakes(x, weights):
            if tensors_close(got, wrong):
                raise CheckFailed(hint)
        raise CheckFailed(
            f"the map differs from cbam.ChannelAttention's for x of shape {(n, c, h, w)}, r = {r}"
        )


def _check_forward(ChannelAttention: type) -> None:
    for seed, (n, c, h, w, r) in enumerate(VALUE_CASES):
        module, weights, reference, x = _case(ChannelAttention, n, c, h, w, r, seed=10 * seed)
        expected_map = reference.attention(x).detach()
        given = x.clone()
        try:
            got = module(given)
        except RuntimeError as error:
            if "must match the size" in str(error):
                raise CheckFailed(
                    "x * map fails: the map must be (N, C, 1, 1) to broadcast over H and W"
                ) from None
            raise
        if not torch.equal(given, x):
            raise CheckFailed("forward changed its input in place: return x * map as a new tensor")
        if isinstance(got, Tensor) and tensors_close(got, expected_map):
            raise CheckFailed("forward returns the map: return the rescaled input x * map")
        expect_shape(got, (n, c, h, w), f"forward(x) for x of shape {(n, c, h, w)}")
        if tensors_close(got, x * expected_map):
            continue
        if tensors_close(got, x + x * expected_map):
            raise CheckFailed(
                "forward adds x back (x + x * map): return x * map; the residual "
                "add belongs to the ResNet block around it"
            )
        for hint, wrong in _map_mistakes(x, weights):
            if tensors_close(got, x * wrong):
                raise CheckFailed(hint)
        own = getattr(module, "attention", None)
        if callable(own) and tensors_close(got, x * own(x.clone()).detach()):
            raise CheckFailed(
                "forward returns x * attention(x), but the map differs from the "
                "reference (see the attention line)"
            )
        raise CheckFailed(f"forward(x) differs from x * M_c(x) for x of shape {(n, c, h, w)}")


def _check_module_gradients(ChannelAttention: type) -> None:
    module = ChannelAttention(32, reduction=8)
    expect_gradients(module, feature_map((2, 32, 5, 5), seed=7, requires_grad=True), module)


def _check_rejects_wrong_channels(ChannelAttention: type) -> None:
    module = ChannelAttention(32, reduction=8)
    try:
        module(feature_map((2, 35, 5, 5), seed=8))
    except Exception:
        return
    raise CheckFailed(
        "a module built for 32 channels accepted an input with 35 channels without an error"
    )


def check_channel_attention(ChannelAttention: type) -> bool:
    """``ChannelAttention(channels, reduction=16)``: ``attention(x)`` and ``forward(x)``."""
    return run_seeded_checks(
        "channel-attention",
        [
            (
                "ChannelAttention(64) is an nn.Module with an attention(x) method",
                lambda: _check_has_attention(ChannelAttention),
            ),
            (
                "one shared MLP of width max(C // r, 1): C = 64, r = 16 (the default) and r = 4",
                lambda: [
                    expect_width(m, 64, r)
                    for m, r in ((ChannelAttention(64), 16), (ChannelAttention(64, reduction=4), 4))
                ],
            ),
            (
                "small C keeps a hidden width of at least 1: C = 6, r = 16",
                lambda: expect_width(ChannelAttention(6, reduction=16), 6, 16),
            ),
            (
                "attention(x) is (N, C, 1, 1) and matches cbam.ChannelAttention (same weights)",
                lambda: _check_attention_map(ChannelAttention),
            ),
            (
                "forward(x) returns x * attention(x), of the shape of x",
                lambda: _check_forward(ChannelAttention),
            ),
            (
                "parameters: 2·C·h + h + C for C = 64, r = 16",
                lambda: expect_parameter_count(ChannelAttention(64, reduction=16), 64, 16),
            ),
            (
                "gradients reach the input and every parameter",
                lambda: _check_module_gradients(ChannelAttention),
            ),
            (
                "an input with the wrong number of channels raises an error",
                lambda: _check_rejects_wrong_channels(ChannelAttention),
            ),
        ],
        own=(ChannelAttention, OWN_MODULE),
    )
