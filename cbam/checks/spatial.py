"""Checks for lesson 02, spatial attention (Eq. 3 of the CBAM paper).

One function per exercise, each called by the lesson's check cell:

* ``check_channel_pool(channel_pool)``: mean and max over C, concatenated to (N, 2, H, W)
* ``check_same_padding(same_padding)``: k // 2 for odd k, ValueError otherwise
* ``check_spatial_attention(SpatialAttention)``: the module, compared with
  ``cbam.SpatialAttention``

The learner's convolution weight is found by its shape (1, 2, k, k), whatever its name, and the
same values are loaded into the library's module. A wrong result is compared with the usual
mistakes (pooling order, padding, missing sigmoid, ...) so that the hint names the one made.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cbam.attention import SpatialAttention as ReferenceSpatialAttention
from cbam.checks.gradients import expect_gradients, expect_input_gradient
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

# (N, C, H, W, k): k = 7 first, then 3, where a padding fixed at 3 no longer fits; non-square
# maps, N = 1, C = 1 (where mean and max coincide).
VALUE_CASES = ((2, 8, 9, 11, 7), (3, 4, 5, 6, 3), (1, 16, 12, 7, 5), (2, 1, 6, 6, 3))
OWN_MODULE = OwnWork("SpatialAttention", (ReferenceSpatialAttention,))


# --- exercise "channel-pool" ----------------------------------------------------------------


def _pooled_shape_hint(value: object, x: Tensor) -> str:
    n, c, h, w = x.shape
    if not isinstance(value, Tensor):
        return f"should return a torch.Tensor, got {type(value).__name__}"
    shape = tuple(value.shape)
    if shape == (n, 2, h, w):
        return ""
    if shape == (n, 2 * h, w):
        return (
            "is (N, 2H, W): the mean and max lost their channel dim, so cat(dim=1) stacked "
            "them along H; pool with keepdim=True"
        )
    if shape in ((n, 2 * c, 1, 1), (n, 2 * c)):
        return (
            "pooled over H and W (the channel module's descriptors); spatial attention pools "
            "over the channels, dim 1"
        )
    if shape == (2 * n, 1, h, w):
        return "concatenated along the batch (dim 0); concatenate along dim 1"
    if shape in ((n, 1, h, w), (n, h, w)):
        return "is one map; concatenate the mean and the max into two channels"
    return f"has shape {shape}, expected (N, 2, H, W) = {(n, 2, h, w)}"


def _pool(channel_pool: Callable, x: Tensor) -> Tensor:
    try:
        pooled = channel_pool(x.clone())
    except TypeError as error:
        if "return_types" in str(error):
            raise CheckFailed(
                "torch.max(x, dim) returns (values, indices): take .values, or use "
                "x.amax(dim=1, keepdim=True)"
            ) from None
        raise
    hint = _pooled_shape_hint(pooled, x)
    if hint:
        raise CheckFailed(f"the result {hint}")
    return pooled


def _check_pool_values(channel_pool: Callable, shape: tuple[int, ...]) -> None:
    x = feature_map(shape, seed=1) + 0.5  # shifted, so a sum and a mean differ
    pooled = _pool(channel_pool, x)
    mean, mx = x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    if tensors_close(pooled, torch.cat([mean, mx], dim=1)):
        return
    if tensors_close(pooled, torch.cat([mx, mean], dim=1)):
        raise CheckFailed(
            "[max, mean]: the authors' order; this course, timm and "
            "cbam.SpatialAttention put the mean first, [mean, max]"
        )
    first, second = pooled[:, :1], pooled[:, 1:]
    divided = divided_sum_hint(first, x, (1,), "C")
    if tensors_close(second, mx) and divided:
        raise CheckFailed(f"channel 0 {divided}")
    which = "channel 0 (the mean)" if not tensors_close(first, mean) else "channel 1 (the max)"
    raise CheckFailed(f"{which} differs, for x of shape {shape}")


def check_channel_pool(channel_pool: Callable) -> bool:
    """``channel_pool(x)`` returns ``cat([mean over C, max over C], dim=1)``, (N, 2, H, W)."""
    return run_seeded_checks(
        "channel-pool",
        [
            (
                "returns (N, 2, H, W) for x of shape (2, 5, 6, 7)",
                lambda: _pool(channel_pool, feature_map((2, 5, 6, 7), seed=0)),
            ),
            (
                "channel 0 is the mean over C, channel 1 the max over C",
                lambda: _check_pool_values(channel_pool, (2, 5, 6, 7)),
            ),
            (
                "the same for shapes (1, 1, 4, 4) and (3, 16, 2, 9)",
                lambda: [
                    _check_pool_values(channel_pool, s) for s in ((1, 1, 4, 4), (3, 16, 2, 9))
                ],
            ),
            ("gradients flow back to the input", lambda: expect_input_gradient(channel_pool)),
        ],
    )


# --- exercise "same-padding" ----------------------------------------------------------------


def _check_odd_padding(same_padding: Callable) -> None:
    for k in (1, 3, 5, 7, 9, 11):
        p = same_padding(k)
        if isinstance(p, bool) or not isinstance(p, int):
            raise CheckFailed(f"same_padding({k}) returned {p!r}: it should be an int (use //)")
        if p == k // 2:
            continue
        if p == 3:
            reason = "a fixed padding of 3 only fits k = 7; it must grow with k"
        elif p == k - 1:
            reason = "k - 1 is the padding of both sides together; each side gets half"
        else:
            reason = f"H + 2p - k + 1 = H needs p = (k - 1) / 2 = {k // 2}"
        raise CheckFailed(f"same_padding({k}) returned {p}: {reason}")


def _expect_value_error(same_padding: Callable, k: int, why: str) -> None:
    try:
        p = same_padding(k)
    except ValueError as error:
        if str(k) not in str(error):
            raise CheckFailed(
                f"the ValueError for k = {k} should name the kernel size it got "
                f"(its message is {str(error)!r})"
            ) from None
        return
    except Exception as error:
        raise CheckFailed(f"k = {k} raised {type(error).__name__}; raise ValueError") from None
    raise CheckFailed(f"same_padding({k}) returned {p!r}: {why}; raise ValueError")


def check_same_padding(same_padding: Callable) -> bool:
    """``same_padding(k)`` is ``k // 2`` for odd k >= 1 and raises ValueError otherwise."""
    even = "with an even k no padding keeps H and W (the map grows or shrinks by one)"
    return run_seeded_checks(
        "same-padding",
        [
            (
                "same_padding(k) = k // 2 for k = 1, 3, 5, 7, 9, 11",
                lambda: _check_odd_padding(same_padding),
            ),
            (
                "an even kernel size raises ValueError naming it (k = 2, 4, 8)",
                lambda: [_expect_value_error(same_padding, k, even) for k in (2, 4, 8)],
            ),
            (
                "k = 0 and k = -3 raise ValueError naming it",
                lambda: [
                    _expect_value_error(same_padding, k, "a kernel has a positive size")
                    for k in (0, -3)
                ],
            ),
        ],
    )


# --- exercise "spatial-attention" -----------------------------------------------------------


def _batch_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def find_conv(module: nn.Module, kernel_size: int) -> tuple[Tensor, Tensor | None]:
    """The (1, 2, k, k) weight of the learner's convolution, and its bias if it has one."""
    params = list(module.parameters())
    kernels = [p for p in params if p.dim() == 4]
    if len(kernels) != 1:
        raise CheckFailed(
            f"expected one convolution weight of shape (1, 2, k, k); found "
            f"parameters of shapes {[tuple(p.shape) for p in params]}"
        )
    weight = kernels[0]
    k = kernel_size
    if tuple(weight.shape[:2]) == (1, 1):
        raise CheckFailed(
            "the convolution sees one map: concatenate the mean and the max into "
            "its two input channels"
        )
    if tuple(weight.shape[:2]) != (1, 2):
        raise CheckFailed(
            f"the convolution weight is {tuple(weight.shape)}; expected "
            f"(1, 2, {k}, {k}): two maps in (mean, max), one map out"
        )
    if tuple(weight.shape[2:]) != (k, k):
        raise CheckFailed(
            f"a {weight.shape[2]}x{weight.shape[3]} kernel for kernel_size = {k} "
            "(is kernel_size ignored?)"
        )
    in_norms = {id(p) for bn in _batch_norms(module) for p in bn.parameters()}
    biases = [p for p in params if p.dim() == 1 and p.numel() == 1 and id(p) not in in_norms]
    return weight, (biases[0] if biases else None)


def _check_conv(SpatialAttention: type) -> None:
    for k in (7, 3):
        module = SpatialAttention(k)
        find_conv(module, k)
        if _batch_norms(module):
            raise CheckFailed(
                "a BatchNorm after the convolution: the authors' code and timm have "
                "one, Eq. 3 has none; leave it out here"
            )


def _check_parameter_count(SpatialAttention: type) -> None:
    for k in (7, 3):
        count = sum(p.numel() for p in SpatialAttention(k).parameters())
        expected = 2 * k * k
        if count == expected:
            continue
        if count == expected + 1:
            reason = "a bias in the convolution; the authors' has none (bias=False)"
        elif count == expected + 2:
            reason = "a BatchNorm's two parameters; Eq. 3 has none"
        elif count == 98:
            reason = "a 7x7 kernel whatever kernel_size is"
        else:
            reason = "expected only the convolution's weight"
        raise CheckFailed(
            f"{count} parameters for kernel_size = {k}, expected 2·k² = {expected} ({reason})"
        )


def _spatial_weights(kernel_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """A kernel scaled so that the logits are of order 1, and a bias for a conv that has one."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn((1, 2, kernel_size, kernel_size), generator=generator)
    return weight * 1.5 / kernel_size, torch.tensor([0.3])


def _case(SpatialAttention: type, n: int, c: int, h: int, w: int, k: int, seed: int):
    """The learner's module with a known kernel, the library's module holding it, an input."""
    module = SpatialAttention(k)
    weight, bias = find_conv(module, k)
    kernel, offset = _spatial_weights(k, seed)
    reference = ReferenceSpatialAttention(k, bias=bias is not None)
    with torch.no_grad():
        for target in (weight, reference.conv.weight):
            target.copy_(kernel)
        for target in (bias, reference.conv.bias):
            if target is not None:
                target.copy_(offset)
    x = feature_map((n, c, h, w), seed=seed + 1)
    return module, reference, x


def _map_mistakes(reference: ReferenceSpatialAttention, x: Tensor) -> list[tuple[str, Tensor]]:
    """(hint, the (N, 1, H, W) map that mistake gives) for the usual mistakes."""
    conv, s = reference.conv, torch.sigmoid
    mean, mx = x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    logits = conv(torch.cat([mean, mx], dim=1))
    k = reference.kernel_size

    def padded(mode: str) -> Tensor:
        pooled = F.pad(torch.cat([mean, mx], dim=1), (k // 2,) * 4, mode=mode)
        return F.conv2d(pooled, conv.weight, conv.bias)

    n, _, h, w = logits.shape
    total = x.sum(dim=1, keepdim=True)
    return [
        (
            "[max, mean] order (the authors'): this exercise pools [mean, max] like "
            "cbam.SpatialAttention, so that weights carry over",
            s(conv(torch.cat([mx, mean], 1))),
        ),
        ("no sigmoid: squash the convolution's output with torch.sigmoid", logits),
        ("the sigmoid is applied twice", s(s(logits))),
        (
            "a softmax over the positions instead of a sigmoid: each position needs its own "
            "weight in (0, 1)",
            torch.softmax(logits.flatten(1), dim=1).view(n, 1, h, w),
        ),
        (
            "both channels are the mean: the second is the max over C",
            s(conv(torch.cat([mean, mean], 1))),
        ),
        (
            "both channels are the max: the first is the mean over C",
            s(conv(torch.cat([mx, mx], 1))),
        ),
        (
            "a BatchNorm after the convolution: Eq. 3 has none",
            s(F.batch_norm(logits, None, None, training=True)),
        ),
        (
            "the map is 0.5 everywhere: is the convolution's output zeroed (a zero-initialised "
            "BatchNorm weight, as in the authors' code)?",
            torch.full_like(logits, 0.5),
        ),
        ("padded by reflection: Eq. 3's convolution pads with zeros", s(padded("reflect"))),
        ("padded by replication: Eq. 3's convolution pads with zeros", s(padded("replicate"))),
    ] + [
        (f"the first channel {hint}", s(conv(torch.cat([total / size, mx], 1))))
        for size, hint in wrong_divisors(tuple(x.shape), (1,), "C")
    ]


def _map_shape_hint(got: object, n: int, h: int, w: int, k: int) -> None:
    if not isinstance(got, Tensor):
        return
    shape = tuple(got.shape)
    if shape == (n, h, w):
        raise CheckFailed(
            "the map is (N, H, W): keep the channel dim, (N, 1, H, W), so that it broadcasts over C"
        )
    if shape == (n, 2, h, w):
        raise CheckFailed("returns the pooled maps: apply the convolution and the sigmoid")
    if len(shape) == 4 and shape[:2] == (n, 1) and shape[2:] != (h, w):
        raise CheckFailed(
            f"for k = {k} the map is {shape[2]}x{shape[3]}, the input {h}x{w}: "
            f"the padding must be k // 2 = {k // 2} (a fixed padding of 3 only "
            "fits k = 7)"
        )


def _check_attention_map(SpatialAttention: type) -> None:
    for seed, (n, c, h, w, k) in enumerate(VALUE_CASES):
        module, reference, x = _case(SpatialAttention, n, c, h, w, k, seed=10 * seed)
        got = module.attention(x.clone())
        _map_shape_hint(got, n, h, w, k)
        expect_shape(got, (n, 1, h, w), f"attention(x) for x of shape {(n, c, h, w)}, k = {k}")
        expected = reference.attention(x).detach()
        if tensors_close(got, expected):
            continue
        for hint, wrong in _map_mistakes(reference, x):
            if tensors_close(got, wrong.detach()):
                raise CheckFailed(hint)
        raise CheckFailed(
            f"the map differs from cbam.SpatialAttention's for x of shape {(n, c, h, w)}, k = {k}"
        )


def _check_forward(SpatialAttention: type) -> None:
    for seed, (n, c, h, w, k) in enumerate(VALUE_CASES):
        module, reference, x = _case(SpatialAttention, n, c, h, w, k, seed=10 * seed)
        given = x.clone()
        try:
            got = module(given)
        except RuntimeError as error:
            if "must match the size" not in str(error):
                raise
            own = getattr(module, "attention", None)
            shape = tuple(own(x.clone()).shape) if callable(own) else ()
            if len(shape) == 4 and shape[:2] == (n, 1) and shape[2:] != (h, w):
                raise CheckFailed(
                    f"for k = {k} the map and x differ in H or W, so x * map "
                    f"fails: the padding must be k // 2 = {k // 2}"
                ) from None
            raise CheckFailed(
                "x * map fails: the map must be (N, 1, H, W) to broadcast over the channels"
            ) from None
        if not torch.equal(given, x):
            raise CheckFailed("forward changed its input in place: return x * map as a new tensor")
        expected_map = reference.attention(x).detach()
        if isinstance(got, Tensor) and tensors_close(got, expected_map):
            raise CheckFailed("forward returns the map: return the rescaled input x * map")
        expect_shape(got, (n, c, h, w), f"forward(x) for x of shape {(n, c, h, w)}, k = {k}")
        if tensors_close(got, x * expected_map):
            continue
        if tensors_close(got, x + x * expected_map):
            raise CheckFailed(
                "forward adds x back (x + x * map): return x * map; the residual "
                "add belongs to the ResNet block around it"
            )
        for hint, wrong in _map_mistakes(reference, x):
            if tensors_close(got, x * wrong.detach()):
                raise CheckFailed(hint)
        own = getattr(module, "attention", None)
        if callable(own) and tensors_close(got, x * own(x.clone()).detach()):
            raise CheckFailed(
                "forward returns x * attention(x), but the map differs from the "
                "reference (see the attention line)"
            )
        raise CheckFailed(
            f"forward(x) differs from x * M_s(x) for x of shape {(n, c, h, w)}, k = {k}"
        )


def _check_has_attention(SpatialAttention: type) -> None:
    module = SpatialAttention()
    if not isinstance(module, nn.Module):
        raise CheckFailed(f"should be an nn.Module, got {type(module).__name__}")
    if not callable(getattr(module, "attention", None)):
        raise CheckFailed(
            "no attention(x) method: it returns the (N, 1, H, W) map, and forward "
            "returns x * self.attention(x)"
        )
    find_conv(module, 7)


def _check_module_gradients(SpatialAttention: type) -> None:
    module = SpatialAttention(7)  # the paper's k, so that a padding mistake shows only above
    expect_gradients(module, feature_map((2, 6, 9, 9), seed=7, requires_grad=True), module)


def check_spatial_attention(SpatialAttention: type) -> bool:
    """``SpatialAttention(kernel_size=7)``: ``attention(x)`` and ``forward(x)``."""
    return run_seeded_checks(
        "spatial-attention",
        [
            (
                "SpatialAttention() is an nn.Module with an attention(x) method and a 7x7 kernel",
                lambda: _check_has_attention(SpatialAttention),
            ),
            (
                "one convolution from 2 maps to 1 with a k x k kernel, no BatchNorm: k = 7 and 3",
                lambda: _check_conv(SpatialAttention),
            ),
            (
                "attention(x) is (N, 1, H, W) and matches cbam.SpatialAttention, k = 7, 3, 5",
                lambda: _check_attention_map(SpatialAttention),
            ),
            (
                "forward(x) returns x * attention(x), of the shape of x",
                lambda: _check_forward(SpatialAttention),
            ),
            (
                "parameters: 2·k² (the kernel, no bias) for k = 7 and 3",
                lambda: _check_parameter_count(SpatialAttention),
            ),
            (
                "gradients reach the input and the kernel",
                lambda: _check_module_gradients(SpatialAttention),
            ),
        ],
        own=(SpatialAttention, OWN_MODULE),
    )
