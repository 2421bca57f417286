"""Grad-CAM (Selvaraju et al., ICCV 2017): where a layer's features pushed a class score up.

For a chosen layer with activations A (N, K, h, w) and a class score y_c, each channel's weight
is its gradient averaged over positions, ``alpha_k = mean_ij dy_c / dA_kij``, and the map is
``ReLU(sum_k alpha_k A_k)``, upsampled to the image and scaled to [0, 1] per image.

The activations are caught by a forward hook on the layer and their gradient by a hook on that
tensor; both hooks are removed before ``grad_cam`` returns, even if the model raises.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _resolve_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    if isinstance(layer, nn.Module):
        if not any(module is layer for module in model.modules()):
            raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model")
        return layer
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as error:
            names = [name for name, _ in model.named_children()]
            raise ValueError(
                f"the model has no submodule {layer!r}; its top-level children are {names}"
            ) from error
    raise TypeError(f"layer must be an nn.Module or a submodule name, got {type(layer).__name__}")


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    layer: nn.Module | str,
    target: int | torch.Tensor | None = None,
    *,
    upsample: bool = True,
) -> torch.Tensor:
    """Grad-CAM maps of ``images`` for ``layer``: (N, H, W) in [0, 1] (or (N, h, w) unsampled).

    Args:
        model: a classifier returning logits (N, classes); run in eval mode here, then restored.
        images: (N, C, H, W).
        layer: the module whose output is explained (or its name, e.g. ``"layer3"``); the last
            convolutional stage is the usual choice: coarse but class-specific.
        target: the class to explain, one for all images or one per image (N,); by default the
            predicted class of each image.
        upsample: bilinearly resize the maps to the images' H x W.

    An image whose map is zero everywhere (no position raised the score) gets a zero map.
    The model's parameter gradients are left untouched.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a 4-D tensor (N, C, H, W), got {shape}")
    module = _resolve_layer(model, layer)
    caught: dict[str, torch.Tensor] = {}

    def keep_gradient(gradient: torch.Tensor) -> None:
        caught["gradient"] = gradient.detach()

    def keep_activation(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"Grad-CAM needs a layer that returns a tensor, got {type(output)}")
        caught["activation"] = output
        output.register_hook(keep_gradient)  # lives with this tensor only, gone after the call

    was_training = model.training
    model.eval()
    handle = module.register_forward_hook(keep_activation)
    try:
        with torch.enable_grad():
            # An input that requires grad makes every activation differentiable, even a layer
            # that has no parameters before it (a frozen stem, or the input itself).
            logits = model(images.detach().requires_grad_(True))
            if "activation" not in caught:
                raise RuntimeError("the layer did not run in the model's forward pass")
            if logits.dim() != 2:
                raise ValueError(
                    f"the model should return logits (N, classes), got {tuple(logits.shape)}"
                )
            classes = _targets(target, logits)
            score = logits.gather(1, classes[:, None]).sum()
            # Differentiate with respect to the activation only, so parameters' .grad stay as
            # they were (a Grad-CAM in the middle of training must not leak into the update).
            score.backward(inputs=[caught["activation"]])
    finally:
        handle.remove()
        model.train(was_training)

    activation, gradient = caught["activation"].detach(), caught["gradient"]
    # The activation holds the hook that holds ``caught``: a cycle that would keep the whole
    # forward graph (every saved tensor) alive until Python's cycle collector happens by.
    caught.clear()
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # alpha_k: one weight per channel
    cams = F.relu((weights * activation).sum(dim=1, keepdim=True))
    if upsample:
        cams = F.interpolate(cams, size=images.shape[-2:], mode="bilinear", align_corners=False)
    cams = cams[:, 0].float()
    peak = cams.flatten(1).amax(dim=1).clamp_min(torch.finfo(cams.dtype).tiny)
    return cams / peak[:, None, None]


def _targets(target: int | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    n, classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    chosen = torch.as_tensor(target, device=logits.device, dtype=torch.long)
    if chosen.dim() == 0:
        chosen = chosen.expand(n)
    if chosen.shape != (n,):
        raise ValueError(
            f"target must be one class or {n} classes, got shape {tuple(chosen.shape)}"
        )
    if (chosen < 0).any() or (chosen >= classes).any():
        raise ValueError(f"target classes must be in 0..{classes - 1}, got {chosen.tolist()}")
    return chosen
