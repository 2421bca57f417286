"""Checks for lesson 08, the modules that came after CBAM.

* ``check_simam(simam)``: SimAM's parameter-free 3-D attention, ``simam(x, e_lambda)`` ->
  ``x * sigmoid((x - mu)^2 / (4 (var + lambda)) + 1/2)`` with mu and var per (image, channel)
  over H x W, var dividing by H W - 1 (Yang et al., ICML 2021, Eq. 5-6)

A wrong output is compared with the usual slips (the variance divided by H W, the + 1/2 left
out, no sigmoid, statistics over the channels, the map returned instead of the features) so
that the hint names the one made.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cbam.checks.own_work import OwnWork
from cbam.checks.report import CheckFailed, expect_shape, run_checks
from cbam.successors.simam import SimAM

Tensor = torch.Tensor
OWN_SIMAM = OwnWork("simam", (SimAM,))
SHAPES = ((2, 3, 4, 5), (1, 6, 7, 3), (3, 2, 2, 1))


def reference_simam(x: Tensor, e_lambda: float = 1e-4) -> Tensor:
    squared = (x - x.mean(dim=(2, 3), keepdim=True)).square()
    variance = squared.sum(dim=(2, 3), keepdim=True) / (x.shape[2] * x.shape[3] - 1)
    return x * torch.sigmoid(squared / (4 * (variance + e_lambda)) + 0.5)


def _slips(x: Tensor, e_lambda: float) -> dict[str, Tensor]:
    h, w = x.shape[2], x.shape[3]
    squared = (x - x.mean(dim=(2, 3), keepdim=True)).square()
    variance = squared.sum(dim=(2, 3), keepdim=True) / (h * w - 1)
    inverse_energy = squared / (4 * (variance + e_lambda)) + 0.5
    over_c = (x - x.mean(dim=1, keepdim=True)).square()
    return {
        "the variance divides by H·W; Eq. 5's variance is over the other H·W - 1 neurons, "
        "so divide the sum of squares by H·W - 1": x * torch.sigmoid(
            squared / (4 * (squared.mean(dim=(2, 3), keepdim=True) + e_lambda)) + 0.5),
        "the + 1/2 is missing: 1/e_t = (t - mu)^2 / (4 (var + lambda)) + 1/2": x * torch.sigmoid(
            inverse_energy - 0.5),
        "no sigmoid: the weight is sigmoid(1 / e), which keeps it between 0 and 1": (
            x * inverse_energy),
        "this is the map, not the features: return x * sigmoid(1 / e)": torch.sigmoid(
            inverse_energy),
        "the mean and variance are taken over the channels; SimAM compares each neuron with "
        "the others of its own channel, over H and W": x * torch.sigmoid(
            over_c / (4 * (over_c.sum(dim=1, keepdim=True) / (x.shape[1] - 1) + e_lambda))
            + 0.5),
    }  # fmt: skip


def _expect(simam: Callable, shape: tuple[int, ...], e_lambda: float, seed: int) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    given = x.clone()
    out = simam(given, e_lambda)
    expect_shape(out, shape, "simam(x)")
    if not torch.equal(given, x):
        raise CheckFailed("x was changed in place: compute a new tensor and leave x as it came")
    expected = reference_simam(x, e_lambda)
    if torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
        return
    for why, wrong in _slips(x, e_lambda).items():
        if wrong.shape == out.shape and torch.allclose(out, wrong, atol=1e-5, rtol=1e-4):
            raise CheckFailed(why)
    largest = (out - expected).abs().max().item()
    raise CheckFailed(f"differs from x * sigmoid(1 / e) by up to {largest:.3g}")


def check_simam(simam: Callable) -> bool:
    """``simam(x, e_lambda)`` -> SimAM's output for an (N, C, H, W) tensor."""
    return run_checks(
        "simam",
        [(f"x of shape {shape}, lambda {lam}",
          lambda shape=shape, lam=lam, seed=seed: _expect(simam, shape, lam, seed))
         for seed, (shape, lam) in enumerate(zip(SHAPES, (1e-4, 0.5, 1e-4), strict=True))],
        own=(simam, OWN_SIMAM),
    )  # fmt: skip
