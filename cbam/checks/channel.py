"""Checks for lesson 01, channel attention (Eq. 2 of the CBAM paper).

One function per exercise, each called by the lesson's check cell:

* ``check_channel_descriptors(channel_descriptors)``: the average and max descriptors, (N, C) each
* ``check_shared_mlp(shared_mlp)``: the C -> max(C // r, 1) -> C MLP
* ``check_channel_attention(ChannelAttention)``: the module, compared with ``cbam.ChannelAttention``

A learner's module is compared with the library's by loading the same weights into both. The
weights are found by their shapes, not their names, so a Linear or a 1x1-conv MLP under any
attribute names passes. A wrong result is compared with the usual mistakes (one pooling only, a
sigmoid per branch, ...) so that the hint names the mistake that was made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from cbam import attention
from cbam.attention import ChannelAttention as ReferenceChannelAttention
from cbam.checks.own_work import OwnWork
from cbam.checks.report import CheckFailed, expect_shape, run_seeded_checks, tensors_close

Tensor = torch.Tensor
Weights = dict[str, Tensor]

# (N, C, H, W, r) of the feature maps the modules are compared on: non-square maps, N = 1, a
# map of height 1, and widths 4, 12 and 2.
VALUE_CASES = ((2, 64, 7, 7, 16), (3, 48, 5, 9, 4), (1, 20, 1, 3, 8))


def hidden_width(channels: int, reduction: float) -> int:
    """The MLP's width the lesson asks for, as ``cbam.ChannelAttention`` has it by default."""
    return max(int(channels // reduction), 1)


# What each exercise must not hand its work to: cbam's own version of it.
OWN_DESCRIPTORS = OwnWork("channel_descriptors", (attention._global_pool,))
OWN_MLP = OwnWork("shared_mlp", (ReferenceChannelAttention,), watch_init=True)
OWN_MODULE = OwnWork("ChannelAttention", (ReferenceChannelAttention,))


def run_isolated(exercise: str, checks: list[tuple[str, Callable[[], object]]],
                 own: tuple[object, OwnWork] | None = None):
    return run_seeded_checks(exercise, checks, own=own)


def feature_map(shape: tuple[int, ...], seed: int, requires_grad: bool = False) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator).requires_grad_(requires_grad)


def close(a: Tensor, b: Tensor) -> bool:
    return tensors_close(a, b)


def _weights(channels: int, hidden: int, seed: int) -> Weights:
    """MLP weights scaled so that the logits are of order 1: the sigmoid is far from flat."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int, scale: float) -> Tensor:
        return scale * torch.randn(shape, generator=generator)

    return {
        "w0": draw(hidden, channels, scale=channels**-0.5),
        "b0": draw(hidden, scale=0.5),
        "w1": draw(channels, hidden, scale=max(hidden, 1) ** -0.5),
        "b1": draw(channels, scale=0.5),
    }


def _mlp_fn(weights: Weights, activation: Callable[[Tensor], Tensor] = torch.relu):
    def mlp(v: Tensor) -> Tensor:
        return activation(v @ weights["w0"].T + weights["b0"]) @ weights["w1"].T + weights["b1"]

    return mlp


# --- finding a learner's MLP by the shapes of its parameters --------------------------------


def _matrix_shape(p: Tensor) -> tuple[int, int] | None:
    """(out, in) of a Linear weight or of a 1x1 Conv2d weight; None for anything else."""
    if p.dim() == 2:
        return tuple(p.shape)
    if p.dim() == 4 and tuple(p.shape[2:]) == (1, 1):
        return tuple(p.shape[:2])
    return None


@dataclass
class FoundMLP:
    """The parameters of a learner's MLP, one entry per MLP found (a shared MLP has one)."""

    hidden: int
    w0: list[Tensor] = field(default_factory=list)
    w1: list[Tensor] = field(default_factory=list)
    b0: list[Tensor] = field(default_factory=list)
    b1: list[Tensor] = field(default_factory=list)

    def load(self, weights: Weights) -> Weights:
        """Copy ``weights`` into every MLP found; returns them with absent biases set to zero."""
        weights = dict(weights)
        with torch.no_grad():
            for key in ("w0", "w1", "b0", "b1"):
                targets = getattr(self, key)
                if not targets:
                    weights[key] = torch.zeros_like(weights[key])
                for p in targets:
                    p.copy_(weights[key].reshape(p.shape))
        return weights


def find_mlp(module: nn.Module, channels: int) -> FoundMLP:
    """Pair each C -> h weight with an h -> C weight; biases are the vectors of length h and C."""
    params = list(module.parameters())
    shapes = [tuple(p.shape) for p in params]
    matrices = [p for p in params if _matrix_shape(p) is not None]
    if not matrices or len(matrices) % 2:
        raise CheckFailed(
            f"expected the weights of two layers, C -> h and h -> C (nn.Linear or 1x1 nn.Conv2d), "
            f"for C = {channels}; found parameters of shapes {shapes}"
        )
    found: FoundMLP | None = None
    for first, second in zip(matrices[0::2], matrices[1::2], strict=True):
        (out0, in0), (out1, in1) = _matrix_shape(first), _matrix_shape(second)
        if in0 == channels and out1 == channels and out0 == in1:
            w0, w1, hidden = first, second, out0
        elif in1 == channels and out0 == channels and out1 == in0:  # registered back to front
            w0, w1, hidden = second, first, out1
        else:
            raise CheckFailed(
                f"expected a C -> h layer and an h -> C layer for C = {channels}; "
                f"found weights of shapes {[tuple(m.shape) for m in matrices]}"
            )
        if found is None:
            found = FoundMLP(hidden)
        elif hidden != found.hidden:
            raise CheckFailed(f"found MLPs of different widths {found.hidden} and {hidden}")
        found.w0.append(w0)
        found.w1.append(w1)
    vectors = [p for p in params if p.dim() == 1]
    if found.hidden == channels:  # lengths alike: biases follow their layers' order
        found.b0, found.b1 = vectors[0::2], vectors[1::2]
    else:
        found.b0 = [v for v in vectors if len(v) == found.hidden]
        found.b1 = [v for v in vectors if len(v) == channels]
    return found


def _check_width(module: nn.Module, channels: int, reduction: float) -> None:
    mlp = find_mlp(module, channels)
    expected = hidden_width(channels, reduction)
    if len(mlp.w0) > 1:
        raise CheckFailed(
            f"found {len(mlp.w0)} MLPs, one per descriptor: Eq. 2 sends both descriptors "
            "through one shared MLP (one W0, one W1)"
        )
    if mlp.hidden == 0:
        raise CheckFailed(
            f"hidden width 0 for C = {channels}, r = {reduction}: C // r is 0, and a width-0 "
            "MLP outputs a constant, so the gate ignores its input; use max(C // r, 1)"
        )
    if mlp.hidden != expected:
        fixed = " (is reduction ignored?)" if mlp.hidden == hidden_width(channels, 8) else ""
        raise CheckFailed(
            f"hidden width {mlp.hidden} for C = {channels}, r = {reduction}; expected "
            f"max(C // r, 1) = {expected}{fixed}"
        )


def _check_parameter_count(module: nn.Module, channels: int, reduction: float) -> None:
    hidden = hidden_width(channels, reduction)
    expected = 2 * channels * hidden + hidden + channels
    count = sum(p.numel() for p in module.parameters())
    if count == expected:
        return
    try:
        found = find_mlp(module, channels)
    except CheckFailed:
        found = None
    if found is None:
        reason = "see the lines above"
    elif len(found.w0) > 1:
        reason = f"{len(found.w0)} MLPs instead of one shared MLP"
    elif found.hidden != hidden:
        reason = f"a hidden width of {found.hidden}, see the width line"
    elif not (found.b0 or found.b1):
        reason = (
            "no biases (bias=False?): the paper's MLP has them and its parameter counts "
            "include them"
        )
    else:
        reason = "parameters besides the MLP's two layers and their biases"
    raise CheckFailed(
        f"{count} parameters for C = {channels}, r = {reduction}; expected 2·C·h + h + C = "
        f"{expected} with h = {hidden} ({reason})"
    )


def expect_gradients(module: nn.Module, x: Tensor, call: Callable[[Tensor], Tensor]) -> None:
    with torch.enable_grad():
        out = call(x)
        if not isinstance(out, Tensor) or not out.requires_grad:
            raise CheckFailed(
                "the output is cut off from autograd (.detach(), .item(), NumPy or "
                "torch.no_grad()?), so nothing before it would ever learn"
            )
        weights = feature_map(out.shape, seed=99)
        (out * weights).sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all() or not x.grad.abs().sum() > 0:
        raise CheckFailed("no gradient reaches the input")
    stuck = [name for name, p in module.named_parameters() if p.numel() and p.grad is None]
    if stuck:
        raise CheckFailed(f"no gradient reaches {', '.join(stuck)}: is it used in forward?")


def expect_input_gradient(pooling: Callable[[Tensor], object]) -> None:
    """A gradient reaches the input of ``pooling`` through every tensor it returns."""
    x = feature_map((2, 3, 4, 4), seed=2, requires_grad=True)
    with torch.enable_grad():
        out = pooling(x)
        outputs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if not all(output.requires_grad for output in outputs):
            raise CheckFailed("cut off from autograd (.detach(), .item() or NumPy?)")
        sum(output.sum() for output in outputs).backward()
    if x.grad is None or not x.grad.abs().sum() > 0:
        raise CheckFailed("no gradient reaches the input")


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

    if close(avg, true_avg) and close(mx, true_max):
        return
    if close(avg, true_max) and close(mx, true_avg):
        raise CheckFailed("the two are swapped: return (avg, max) in that order")
    if not close(avg, true_avg):
        if close(avg, x.sum(dim=(2, 3))):
            raise CheckFailed("avg is the sum over H and W: divide by H·W (use .mean)")
        raise CheckFailed(f"avg is not the mean over H and W of x with shape {shape}")
    if close(mx, x.amin(dim=(2, 3))):
        raise CheckFailed("max is the minimum over H and W")
    raise CheckFailed(f"max is not the maximum over H and W of x with shape {shape}")


def check_channel_descriptors(channel_descriptors: Callable) -> bool:
    """``channel_descriptors(x)`` returns ``(avg, max)``, each (N, C), pooled over H and W."""
    return run_isolated(
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
        weights = found.load(_weights(channels, found.hidden, seed=4))
        v = feature_map((5, channels), seed=5)
        out = _call_mlp(module, v)
        expect_shape(out, (5, channels), f"the output for an input (5, {channels})")
        relu = _mlp_fn(weights)
        if torch.allclose(out.detach().float(), relu(v), atol=1e-5, rtol=1e-4):
            continue
        mistakes = [
            ("no ReLU between the two layers: Eq. 2's δ", _mlp_fn(weights, lambda t: t)(v)),
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
                _mlp_fn(weights, torch.sigmoid)(v),
            ),
        ]
        for hint, wrong in mistakes:
            if torch.allclose(out.detach().float(), wrong, atol=1e-5, rtol=1e-4):
                raise CheckFailed(hint)
        raise CheckFailed("the output differs from W1·ReLU(W0·v + b0) + b1 with the same weights")


def check_shared_mlp(shared_mlp: Callable) -> bool:
    """``shared_mlp(channels, reduction=16)`` returns Linear(C, h), ReLU, Linear(h, C)."""
    return run_isolated(
        "shared-mlp",
        [
            ("shared_mlp(64, 16) maps (N, 64) to (N, 64)", lambda: _check_mlp_shape(shared_mlp)),
            (
                "hidden width max(C // r, 1): C = 64 with r = 16 (the default) and r = 4",
                lambda: [
                    _check_width(_build_mlp(shared_mlp, 64, r), 64, r if r else 16)
                    for r in (None, 4)
                ],
            ),
            (
                "small C keeps a hidden width of at least 1: C = 6 and 15, r = 16",
                lambda: [_check_width(_build_mlp(shared_mlp, c, 16), c, 16) for c in (6, 15)],
            ),
            (
                "computes W1·ReLU(W0·v + b0) + b1 (weights copied in)",
                lambda: _check_mlp_values(shared_mlp),
            ),
            (
                "parameters: 2·C·h + h + C for C = 64, r = 16",
                lambda: _check_parameter_count(_build_mlp(shared_mlp, 64, 16), 64, 16),
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
    mlp, s = _mlp_fn(weights), torch.sigmoid
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
            s(_mlp_fn(weights, lambda t: t)(avg) + _mlp_fn(weights, lambda t: t)(mx)),
        ),
        (
            "the average descriptor is a sum over H and W: use the mean",
            s(mlp(x.sum(dim=(2, 3))) + m),
        ),
    ]
    return [(hint, value[:, :, None, None]) for hint, value in mistakes]


def _case(ChannelAttention: type, n: int, c: int, h: int, w: int, r: float, seed: int):
    """The learner's module with known weights, the reference holding them, and an input."""
    module = ChannelAttention(c, reduction=r)
    found = find_mlp(module, c)
    if found.hidden == 0:
        raise CheckFailed(
            f"with a hidden width of 0 (C = {c}, r = {r}) the map is a constant; see the width line"
        )
    weights = found.load(_weights(c, found.hidden, seed))
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
        if close(got, expected):
            continue
        for hint, wrong in _map_mistakes(x, weights):
            if close(got, wrong):
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
        if isinstance(got, Tensor) and close(got, expected_map):
            raise CheckFailed("forward returns the map: return the rescaled input x * map")
        expect_shape(got, (n, c, h, w), f"forward(x) for x of shape {(n, c, h, w)}")
        if close(got, x * expected_map):
            continue
        if close(got, x + x * expected_map):
            raise CheckFailed(
                "forward adds x back (x + x * map): return x * map; the residual "
                "add belongs to the ResNet block around it"
            )
        for hint, wrong in _map_mistakes(x, weights):
            if close(got, x * wrong):
                raise CheckFailed(hint)
        own = getattr(module, "attention", None)
        if callable(own) and close(got, x * own(x.clone()).detach()):
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
    return run_isolated(
        "channel-attention",
        [
            (
                "ChannelAttention(64) is an nn.Module with an attention(x) method",
                lambda: _check_has_attention(ChannelAttention),
            ),
            (
                "one shared MLP of width max(C // r, 1): C = 64, r = 16 (the default) and r = 4",
                lambda: [
                    _check_width(m, 64, r)
                    for m, r in ((ChannelAttention(64), 16), (ChannelAttention(64, reduction=4), 4))
                ],
            ),
            (
                "small C keeps a hidden width of at least 1: C = 6, r = 16",
                lambda: _check_width(ChannelAttention(6, reduction=16), 6, 16),
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
                lambda: _check_parameter_count(ChannelAttention(64, reduction=16), 64, 16),
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
