"""Input checks shared by the modules: each error names what was expected and what came."""

from __future__ import annotations

import torch


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def check_feature_map(x: object, channels: int | None, module: str) -> None:
    """A feature map is a floating-point (N, C, H, W) tensor with the module's C."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{module} expects a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{module} expects a 4-D tensor (N, C, H, W), got {x.dim()}-D with shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{module} expects a floating-point tensor, got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{module} was built for {channels} channels, got input with {x.shape[1]} channels "
            f"(shape {tuple(x.shape)})"
        )
