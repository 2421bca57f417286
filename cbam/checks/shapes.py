"""Checks for lesson 00, tensors and shapes.

One function per exercise, each called by the lesson's check cell:

* ``check_global_descriptors(global_descriptors)``: mean and max over H, W, shape (N, C, 1, 1)
* ``check_pool_over_channels(pool_over_channels)``: mean and max over C, shape (N, 1, H, W)
* ``check_apply_gate(apply_gate)``: x scaled by (N, C) channel weights, shape (N, C, H, W)

The inputs have four different sizes (N, C, H, W) = (2, 3, 4, 5), so a result's shape tells which
dims were reduced; the hints name the usual mistakes: keepdim forgotten, the wrong dims reduced,
``torch.max(x, dim)`` used without taking ``.values``, a gate broadcast along W instead of C.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cbam.checks.report import CheckFailed, divided_sum_hint, expect_shape, run_checks

Tensor = torch.Tensor
DIM_NAMES = ("N", "C", "H", "W")
SHAPE = (2, 3, 4, 5)


def feature_map(shape: tuple[int, ...] = SHAPE, seed: int = 0) -> Tensor:
    # A generator of its own: checking draws nothing from the lesson's random stream.
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _names(dims) -> str:
    names = [DIM_NAMES[d] for d in dims]
    return ", ".join(names) if names else "no dim"


Reduction = tuple[tuple[int, ...], bool]


def _reduced_dims(shape: tuple[int, ...], full: tuple[int, ...]) -> Reduction | None:
    """Which dims of ``full`` were reduced to give ``shape``, and whether they were kept.

    Works because the check inputs have four different sizes; None when no reduction fits.
    """
    if len(shape) == len(full):
        dims = tuple(d for d in range(len(full)) if shape[d] == 1 and full[d] != 1)
        others_kept = all(shape[d] == full[d] for d in range(len(full)) if d not in dims)
        return (dims, True) if others_kept else None
    for dims in itertools.combinations(range(len(full)), len(full) - len(shape)):
        if tuple(s for d, s in enumerate(full) if d not in dims) == shape:
            return dims, False
    return None


def expect_reduction(result: object, x: Tensor, dims: tuple[int, ...], what: str) -> Tensor:
    """``result`` must be ``x`` reduced over ``dims`` with keepdim=True; the hint says how not."""
    if isinstance(result, tuple) and hasattr(result, "values") and hasattr(result, "indices"):
        raise CheckFailed(
            f"{what} is a (values, indices) pair: torch.max(x, dim=...) returns "
            "both, take .values (or use x.amax, which returns the values only)"
        )
    if not isinstance(result, Tensor):
        raise CheckFailed(f"{what} should be a torch.Tensor, got {type(result).__name__}")
    expected = tuple(1 if d in dims else size for d, size in enumerate(x.shape))
    shape = tuple(result.shape)
    if shape == expected:
        return result
    found = _reduced_dims(shape, tuple(x.shape))
    if found == (dims, False):
        raise CheckFailed(
            f"{what} has shape {shape}, expected {expected}: pass keepdim=True, "
            "so the reduced dims stay as size 1 and the result broadcasts against x"
        )
    if found is not None:
        reduced, kept = found
        dropped = "" if kept else " and dropped them (pass keepdim=True)"
        everything = " (no dim given reduces everything)" if len(reduced) == x.dim() else ""
        raise CheckFailed(
            f"{what} has shape {shape}, expected {expected}: it reduced over "
            f"{_names(reduced)}{everything}{dropped}, the exercise reduces over "
            f"{_names(dims)}"
        )
    raise CheckFailed(f"{what} has shape {shape}, expected {expected}")


def expect_values(result: Tensor, expected: Tensor, what: str, hint: str) -> None:
    if not torch.allclose(result.detach().float(), expected, atol=1e-5, rtol=1e-4):
        raise CheckFailed(f"{what} has the right shape but different values ({hint})")


def _pair(function: Callable, x: Tensor) -> Callable[[], tuple[object, object]]:
    """Calls ``function(x)`` once, on first use, and checks it returned two things."""
    cache: list[tuple[object, object]] = []

    def result() -> tuple[object, object]:
        if not cache:
            value = function(x.clone())
            # A list [mean, max] is a pair too: the course takes tuples and lists alike.
            if isinstance(value, Tensor) or not isinstance(value, (tuple, list)) or len(value) != 2:
                kind = (
                    f"a tensor of shape {tuple(value.shape)}"
                    if isinstance(value, Tensor)
                    else type(value).__name__
                )
                raise CheckFailed(f"should return a pair (mean, max), got {kind}")
            cache.append(tuple(value))
        return cache[0]

    return result


def _reduction_checks(
    function: Callable, dims: tuple[int, ...], over: str, shape_text: str
) -> list[tuple[str, Callable[[], object]]]:
    over_dims = " and ".join(DIM_NAMES[d] for d in dims)
    x = feature_map()
    result = _pair(function, x)
    mean, maximum = x.mean(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)

    def swapped() -> bool:
        first, second = result()
        return all(isinstance(v, Tensor) and v.shape == mean.shape for v in (first, second)) and (
            torch.allclose(first.detach().float(), maximum) and
            torch.allclose(second.detach().float(), mean))

    def mean_checked():
        if swapped():
            raise CheckFailed("mean and max are swapped: return (mean, max) in that order")
        value = expect_reduction(result()[0], x, dims, "mean")
        divided = divided_sum_hint(value, x, dims, over_dims)
        if divided:
            raise CheckFailed(f"mean {divided}")
        expect_values(
            value,
            mean,
            "mean",
            f"expected the average over {over}; sum or max gives other numbers",
        )

    def max_checked():
        if swapped():
            raise CheckFailed("mean and max are swapped: return (mean, max) in that order")
        expect_values(
            expect_reduction(result()[1], x, dims, "max"),
            maximum,
            "max",
            f"expected the largest value over {over}",
        )

    return [
        ("returns a pair (mean, max)", result),
        (f"mean: shape {shape_text}, the average over {over}", mean_checked),
        (f"max: shape {shape_text}, the largest value over {over}", max_checked),
    ]


def check_global_descriptors(global_descriptors: Callable[[Tensor], tuple[Tensor, Tensor]]) -> bool:
    """``global_descriptors(x)`` -> (mean, max) of each channel over H and W, (N, C, 1, 1) each."""
    checks = _reduction_checks(global_descriptors, (2, 3), "H and W", "(N, C, 1, 1)")
    return run_checks("global-descriptors", checks)


def check_pool_over_channels(pool_over_channels: Callable[[Tensor], tuple[Tensor, Tensor]]) -> bool:
    """``pool_over_channels(x)`` -> (mean, max) over C at each position, (N, 1, H, W) each."""
    checks = _reduction_checks(pool_over_channels, (1,), "C at each position", "(N, 1, H, W)")
    return run_checks("pool-over-channels", checks)


class _LastOperands(TorchDispatchMode):
    """Notes the shapes of the tensors each operation gets: after a broadcast error, the last
    ones say how the learner reshaped the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.shapes = [tuple(a.shape) for a in args if isinstance(a, Tensor)]
        return func(*args, **(kwargs or {}))


def _broadcast_hint(x: Tensor, operands: list[tuple[int, ...]]) -> str:
    n, c = x.shape[:2]
    gate = next((s for s in operands if s != tuple(x.shape)), None)
    if gate is None or gate == (n, c):
        return (f"x * weights fails for x {tuple(x.shape)} and weights {(n, c)}: broadcasting "
                "lines up the last dims, so (N, C) meets (H, W); reshape the weights to "
                "(N, C, 1, 1) first")
    return (f"x * weights fails for x {tuple(x.shape)} and the weights reshaped to {gate}: "
            "broadcasting lines up the dims from the right, so each size of the weights must "
            f"meet its own dim of x; the C weights belong at dim 1: (N, C, 1, 1) = {(n, c, 1, 1)}")


def _wrong_dims_hint(out: Tensor, x: Tensor, weights: Tensor) -> str:
    """Which dim the weights scaled instead of C, when N = H and C = W let it through."""
    if tuple(x.shape[:2]) == tuple(x.shape[2:]) and torch.allclose(
            out.detach().float(), x * weights[:, None, None, :], atol=1e-5, rtol=1e-4):
        return ("weights[n, c] scaled column c (dim 3, W) of every channel, not channel c: the "
                "C weights belong at dim 1, (N, C, 1, 1)")
    return "weights[n, c] must scale the whole H x W map of channel c of sample n"


def _gated(apply_gate: Callable[[Tensor, Tensor], Tensor], shape: tuple[int, ...], seed: int):
    x = feature_map(shape, seed)
    weights = torch.rand(shape[:2], generator=torch.Generator().manual_seed(seed + 1))
    recorder = _LastOperands()
    try:
        with recorder:
            out = apply_gate(x.clone(), weights.clone())
    except RuntimeError as error:
        if "must match the size" not in str(error):
            raise
        raise CheckFailed(_broadcast_hint(x, recorder.shapes)) from None
    expect_shape(out, shape, "the output")
    expect_values(out, x * weights[:, :, None, None], "the output",
                  _wrong_dims_hint(out, x, weights))
    return x, weights


def check_apply_gate(apply_gate: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``apply_gate(x, weights)`` -> x scaled channel by channel by (N, C) ``weights``."""

    def leaves_input_alone():
        x = feature_map(SHAPE, 7)
        weights = torch.rand(SHAPE[:2], generator=torch.Generator().manual_seed(8))
        before = x.clone()
        try:
            apply_gate(x, weights)
        except RuntimeError as error:
            if "must match the size" not in str(error):
                raise
            raise CheckFailed("x * weights fails (see the first line), so this could not be "
                              "tried") from None
        if not torch.equal(x, before):
            raise CheckFailed(
                "x was changed in place (mul_, *=): return a new tensor, the "
                "network still needs its input"
            )

    return run_checks(
        "apply-gate",
        [
            (
                "scales channel c of sample n by weights[n, c], shape (N, C, H, W)",
                lambda: _gated(apply_gate, SHAPE, 3),
            ),
            # N = H and C = W: here the wrong broadcast does not crash, it silently scales columns.
            (
                "still right when N = H and C = W, where a wrong broadcast does not crash",
                lambda: _gated(apply_gate, (2, 3, 2, 3), 5),
            ),
            ("leaves x unchanged", leaves_input_alone),
        ],
    )
