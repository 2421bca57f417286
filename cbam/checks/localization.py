"""Checks for lesson 06, scoring attention maps against ground-truth masks.

* ``check_energy_share(energy_share)``: ``energy_share(maps, masks)`` with (N, H, W) maps and
  (N, H, W) boolean masks returns, per image, the fraction of the map's mass on the object,
  compared with ``cbam.localization.energy_share``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cbam.checks.report import CheckFailed, expect_shape, run_checks, tensors_close
from cbam.localization import energy_share as reference_energy_share


def _case(n: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand((n, h, w), generator=generator)
    masks = torch.rand((n, h, w), generator=generator) < 0.3
    masks[:, 0, 0] = True  # every image has some object
    return maps, masks


def _score(energy_share: Callable, maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    out = energy_share(maps.clone(), masks.clone())
    if isinstance(out, torch.Tensor) and out.dim() == 0:
        raise CheckFailed("returns one number for the whole batch; return one score per image, "
                          "shape (N,)")
    expect_shape(out, (maps.shape[0],), "the scores")
    return out


def _check_values(energy_share: Callable) -> None:
    for n, h, w, seed in ((4, 8, 8, 0), (1, 5, 9, 1), (3, 16, 4, 2)):
        maps, masks = _case(n, h, w, seed)
        out = _score(energy_share, maps, masks)
        expected = reference_energy_share(maps, masks)
        if tensors_close(out, expected):
            continue
        inside = (maps * masks).flatten(1).sum(1)
        if tensors_close(out, inside):
            raise CheckFailed("the mass inside the mask is right but not divided by the map's "
                              "total mass")
        if tensors_close(out, 1 - expected):
            raise CheckFailed("that is the share outside the object: multiply by the mask, "
                              "not by its complement")
        if tensors_close(out, inside / masks.flatten(1).sum(1)):
            raise CheckFailed("divided by the object's area; divide by the map's total mass")
        raise CheckFailed(f"scores differ from sum(map * mask) / sum(map) per image on {n} "
                          f"images of {h}x{w}")


def _check_extremes(energy_share: Callable) -> None:
    masks = torch.zeros(3, 6, 6, dtype=torch.bool)
    masks[:, 1:3, 2:5] = True
    on_object = masks.float()
    off_object = (~masks).float()
    uniform = torch.ones(3, 6, 6)
    out = torch.stack([_score(energy_share, m, masks) for m in (on_object, off_object, uniform)])
    area = masks.flatten(1).float().mean(1)
    if not tensors_close(out[0], torch.ones(3)):
        raise CheckFailed("a map that is 1 on the object and 0 elsewhere should score 1.0")
    if not tensors_close(out[1], torch.zeros(3)):
        raise CheckFailed("a map that is 0 on the object should score 0.0")
    if not tensors_close(out[2], area):
        raise CheckFailed("a uniform map should score the object's share of the image")


def _check_zero_map(energy_share: Callable) -> None:
    maps, masks = _case(2, 6, 6, 3)
    out = _score(energy_share, torch.zeros_like(maps), masks)
    if not torch.isfinite(out).all():
        raise CheckFailed("a map of zeros gives NaN or inf (0 / 0); score it like a uniform map")
    if not tensors_close(out, masks.flatten(1).float().mean(1)):
        raise CheckFailed("a map of zeros should score like a uniform map: the object's area "
                          "share")


def check_energy_share(energy_share: Callable) -> bool:
    """``energy_share(maps, masks)``: (N,) fractions of each map's mass on its object."""
    return run_checks("energy-share", [
        ("returns one score per image, shape (N,)",
         lambda: _score(energy_share, *_case(4, 8, 8, 0))),
        ("each score is sum(map * mask) / sum(map), on three batches",
         lambda: _check_values(energy_share)),
        ("a map on the object scores 1, off it 0, a uniform map the object's area share",
         lambda: _check_extremes(energy_share)),
        ("a map of zeros scores like a uniform map (no 0 / 0)",
         lambda: _check_zero_map(energy_share)),
    ])
