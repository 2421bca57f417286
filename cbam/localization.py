"""Scoring saliency maps against ground-truth object masks.

Two scores, each per image, in [0, 1]:

* **pointing game** (Zhang et al., ECCV 2016): does the map's highest point fall on the object?
  When several pixels share the maximum, the score is the share of them on the object, the
  expected hit of a pick at random among them; so a constant map scores the object's area
  share, exactly like a random guess. Values within ``tolerance`` of the map's range below its
  maximum count as shared: float rounding, which differs between processors, must not be what
  picks the winner among equal values (a bilinear upsampling of a map with zeros makes many).
* **energy share**: the fraction of the map's total mass that lies on the object,
  ``sum(map * mask) / sum(map)``. A map that is zero everywhere counts as constant.

Baselines that know no class: ``uniform_maps`` (both scores equal the object's share of the
image), ``gaussian_maps`` (a centred blob: objects are never at the border) and ``painted_maps``
(every pixel painted in a colour of the task's palette, object and clutter alike). A map says
something about the object only where it beats the strongest of them.

The sanity check of Adebayo et al. (NeurIPS 2018): a saliency method that explains the trained
weights must give other maps, and lower scores, once those weights are replaced by random ones.
``randomized_copy`` replaces them module by module, ``top_down`` names the modules from the
output back (their cascading randomisation).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

# Values closer than this (a fraction of the map's range) to its maximum share the peak.
POINTING_TOLERANCE = 1e-4


def _check(
    maps: torch.Tensor, masks: torch.Tensor, *, signed: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
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
    if not signed and (maps < 0).any():
        raise ValueError(
            "maps must be non-negative (a share of mass needs mass); "
            "rescale them first, e.g. with rescale_maps(maps)"
        )
    return maps, masks.to(maps.device)


def pointing_game(
    maps: torch.Tensor, masks: torch.Tensor, *, tolerance: float = POINTING_TOLERANCE
) -> torch.Tensor:
    """Per image, the share of the map's maximal pixels that lie on the object: (N,) floats.

    A pixel is maximal when it is within ``tolerance * (max - min)`` of the map's maximum.
    Maps may be negative here (a logit map ranks positions as well as its sigmoid).
    """
    maps, masks = _check(maps, masks, signed=True)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    flat = maps.flatten(1)
    peak, low = flat.amax(dim=1)[:, None, None], flat.amin(dim=1)[:, None, None]
    at_peak = maps >= peak - tolerance * (peak - low)
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


def gaussian_maps(masks: torch.Tensor, sigma: float) -> torch.Tensor:
    """A centred Gaussian of standard deviation ``sigma`` pixels, the same for every mask.

    Its peak is the image's centre whatever ``sigma`` (on an even size, the four middle pixels
    tie), so its pointing score does not depend on ``sigma``; its energy share does.
    """
    if masks.dim() != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {tuple(masks.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    h, w = masks.shape[-2:]
    ys = torch.arange(h, dtype=torch.float64) + 0.5 - h / 2
    xs = torch.arange(w, dtype=torch.float64) + 0.5 - w / 2
    blob = torch.exp(-(ys[:, None].square() + xs[None, :].square()) / (2 * sigma**2))
    return blob.float().to(masks.device).expand(masks.shape[0], h, w).clone()


def painted_maps(
    images: torch.Tensor, palette: torch.Tensor | None = None, *, atol: float = 1e-3
) -> torch.Tensor:
    """1.0 where a pixel's colour is one of ``palette``'s, else 0.0: (N, H, W) floats.

    ``images`` are (N, 3, H, W) in [0, 1] (``SyntheticShapes.unnormalized()``); ``palette`` is
    (K, 3), by default ``cbam.data.PALETTE``, the colours the task paints its object and its
    clutter in. The map knows where paint is, not which paint is the object: class-blind.
    """
    if palette is None:
        from cbam.data import PALETTE as palette
    if images.dim() != 4 or images.shape[1] != palette.shape[1]:
        raise ValueError(
            f"images must be (N, {palette.shape[1]}, H, W) in [0, 1], got {tuple(images.shape)}"
        )
    colours = palette.to(images.device, images.dtype)[None, :, :, None, None]
    same = ((images[:, None] - colours).abs() <= atol).all(dim=2)  # (N, K, H, W)
    return same.any(dim=1).float()


def blurred_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The masks averaged to ``size`` cells and upsampled back as coarse maps are: (N, H, W).

    The object itself, seen at a coarse map's resolution: what blur alone costs a map.
    """
    coarse = F.adaptive_avg_pool2d(masks.float()[:, None], tuple(size))[:, 0]
    return resize_maps(coarse, masks.shape[-2:])


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


def top_down(model: nn.Module) -> list[str]:
    """The names of ``model``'s top-level children that hold weights, from the output back.

    The order of cascading randomisation: the classifier first, then each stage below it.
    """
    names = [
        name
        for name, child in model.named_children()
        if any(True for _ in child.parameters()) or any(True for _ in child.buffers())
    ]
    return names[::-1]


def randomized_copy(model: nn.Module, fresh: nn.Module, modules: Iterable[str]) -> nn.Module:
    """A copy of ``model`` whose submodules named in ``modules`` hold ``fresh``'s weights.

    ``fresh`` is the same architecture, newly initialised (e.g. built from another seed); its
    parameters and buffers (batch-norm statistics included) replace the trained ones in those
    submodules, the rest stay trained. ``model`` itself is left untouched.
    """
    names = list(modules)
    copied = copy.deepcopy(model)
    for name in names:
        try:
            target, source = copied.get_submodule(name), fresh.get_submodule(name)
        except AttributeError as error:
            raise ValueError(f"no submodule {name!r} in both models") from error
        mine, theirs = target.state_dict(), source.state_dict()
        if mine.keys() != theirs.keys() or any(
            mine[key].shape != theirs[key].shape for key in mine
        ):
            raise ValueError(f"{name!r} is not the same architecture in both models")
        target.load_state_dict(theirs)
    return copied.train(model.training)


def localization_scores(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Both scores averaged over the images: ``{"pointing": ..., "energy": ...}``."""
    return {
        "pointing": pointing_game(maps, masks).mean().item(),
        "energy": energy_share(maps, masks).mean().item(),
    }
