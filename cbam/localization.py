"""Scoring saliency maps against ground-truth object masks.

Two scores, each per image, in [0, 1]:

* **pointing game** (Zhang et al., 2016): does the map's highest point fall on the object?
  When several pixels share the maximum, the score is the share of them on the object, the
  expected hit of a pick at random among them; so a constant map scores the object's area
  share, exactly like a random guess.
* **energy share**: the fraction of the map's total mass that lies on the object,
  ``sum(map * mask) / sum(map)``. A map that is zero everywhere counts as constant.

``uniform_maps`` gives the baseline that knows nothing: both of its scores equal the object's
share of the image. A map is worth looking at only where it beats that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) float maps and (N, H, W) bool masks; (N, 1, H, W) maps are accepted."""
    if not isinstance(maps, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise TypeError(
            f"maps and masks must be tensors, got {type(maps).__name__} and {type(masks).__name__}"
        )
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise ValueError(f"maps must be (N, H, W) or (N, 1, H, W), got shape {tuple(maps.shape)}")
    if masks.dtype != torch.bool:
        raise TypeError(f"masks must be a bool tensor (N, H, W), got dtype {masks.dtype}")
    if maps.shape != masks.shape:
        raise ValueError(
            f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must have the same shape; "
            "resize the maps first with resize_maps(maps, masks.shape[-2:])"
        )
    maps = maps.detach().float()
    if (maps < 0).any():
        raise ValueError(
            "maps must be non-negative (a share of mass needs mass); "
            "rescale them first, e.g. with rescale_maps(maps)"
        )
    return maps, masks.to(maps.device)


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, the share of the map's maximal pixels that lie on the object: (N,) floats."""
    maps, masks = _check(maps, masks)
    peak = maps.flatten(1).amax(dim=1)[:, None, None]
    at_peak = maps == peak
    return (at_peak & masks).flatten(1).sum(1).float() / at_peak.flatten(1).sum(1).float()


def energy_share(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, the fraction of the map's mass on the object: (N,) floats.

    A map of zeros everywhere is scored as a constant map, i.e. the object's area share.
    """
    maps, masks = _check(maps, masks)
    total = maps.flatten(1).sum(1)
    inside = (maps * masks).flatten(1).sum(1)
    area = masks.flatten(1).float().mean(1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(maps.dtype).tiny), area)


def uniform_maps(masks: torch.Tensor) -> torch.Tensor:
    """The know-nothing baseline: a constant map for every mask."""
    return torch.ones(masks.shape, dtype=torch.float32, device=masks.device)


def resize_maps(maps: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resizing of (N, H, W) or (N, 1, H, W) maps to (N, *size)."""
    if maps.dim() == 3:
        maps = maps[:, None]
    if maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(f"maps must be (N, H, W) or (N, 1, H, W), got shape {tuple(maps.shape)}")
    resized = F.interpolate(maps.float(), size=tuple(size), mode="bilinear", align_corners=False)
    return resized[:, 0]


def rescale_maps(maps: torch.Tensor) -> torch.Tensor:
    """Each map shifted and scaled to span [0, 1] (a constant map becomes zeros).

    Sigmoid gates never reach 0, so a raw spatial-attention map spreads much of its mass over the
    background; rescaling scores the map's contrast rather than its floor. Pointing is unchanged.
    """
    flat = maps.detach().float().flatten(1)
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    return ((flat - low) / (high - low).clamp_min(1e-12)).view(maps.shape)


def localization_scores(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Both scores averaged over the images: ``{"pointing": ..., "energy": ...}``."""
    return {
        "pointing": pointing_game(maps, masks).mean().item(),
        "energy": energy_share(maps, masks).mean().item(),
    }
