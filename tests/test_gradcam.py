"""Grad-CAM: hooks cleaned up, shapes, and a network whose answer can be worked out by hand."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from cbam.gradcam import grad_cam
from cbam.resnet import resnet_cifar


class GapClassifier(nn.Module):
    """features -> global average pooling -> linear: Grad-CAM is CAM here, known in closed form."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_known_answer_for_a_pooled_linear_classifier():
    # Class 0 likes channel 0 and dislikes channel 1; class 1 the other way round.
    model = GapClassifier(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    x = torch.zeros(1, 2, 6, 6)
    x[0, 0, 1, 2] = 4.0  # evidence for class 0 at (1, 2)
    x[0, 1, 4, 4] = 2.0  # evidence for class 1 at (4, 4)
    # d(score)/dA is w / 36 everywhere, so the map is relu(w . A) up to scale, then max-normalised.
    cam0 = grad_cam(model, x, "features", target=0)
    cam1 = grad_cam(model, x, model.features, target=1)
    expected0 = torch.zeros(1, 6, 6)
    expected0[0, 1, 2] = 1.0
    expected1 = torch.zeros(1, 6, 6)
    expected1[0, 4, 4] = 1.0
    assert torch.allclose(cam0, expected0, atol=1e-6)
    assert torch.allclose(cam1, expected1, atol=1e-6)
    # By default the predicted class is explained: class 0 has the larger score here.
    assert torch.allclose(grad_cam(model, x, "features"), expected0, atol=1e-6)


def test_hooks_are_removed_and_state_restored():
    model = resnet_cifar(8, 4, width=8, attention="cbam")
    model.train()
    images = torch.randn(3, 3, 32, 32)
    maps = grad_cam(model, images, "layer3")
    assert maps.shape == (3, 32, 32)
    assert maps.min() >= 0 and maps.amax(dim=(1, 2)).max() <= 1 + 1e-6
    assert model.training  # mode restored
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
    assert all(p.grad is None for p in model.parameters())  # parameters untouched
    coarse = grad_cam(model, images, "layer3", target=torch.tensor([0, 1, 2]), upsample=False)
    assert coarse.shape == (3, 8, 8)


def test_hooks_are_removed_when_the_model_fails():
    model = resnet_cifar(8, 4, width=8)
    with pytest.raises(ValueError):
        grad_cam(model, torch.randn(1, 5, 32, 32), "layer3")  # wrong channel count
    with pytest.raises(ValueError, match="target classes must be in 0..3"):
        grad_cam(model, torch.randn(1, 3, 32, 32), "layer3", target=7)
    assert not model.get_submodule("layer3")._forward_hooks


def test_bad_layers_are_named():
    model = resnet_cifar(8, 4, width=8)
    with pytest.raises(ValueError, match="no submodule 'layer9'"):
        grad_cam(model, torch.randn(1, 3, 32, 32), "layer9")
    with pytest.raises(ValueError, match="not a submodule"):
        grad_cam(model, torch.randn(1, 3, 32, 32), nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="4-D"):
        grad_cam(model, torch.randn(3, 32, 32), "layer3")


def test_the_forward_graph_is_freed_when_grad_cam_returns():
    # The layer's output holds a hook whose closure held the output: a cycle that kept every
    # tensor the forward saved alive until the cycle collector ran (gigabytes over 20 networks).
    model = resnet_cifar(8, 4, width=8, attention="cbam").eval()
    outputs = []
    handle = model.layer3.register_forward_hook(
        lambda _module, _inputs, output: outputs.append(weakref.ref(output)))
    gc.disable()
    try:
        grad_cam(model, torch.randn(4, 3, 16, 16), "layer3")
        assert outputs and outputs[0]() is None
    finally:
        gc.enable()
        handle.remove()
