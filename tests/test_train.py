"""The training loop on problems small enough to run in a second or two."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cbam.device import pick_device, run_mode
from cbam.train import (
    History,
    class_accuracies,
    epoch_learning_rates,
    evaluate,
    fit,
    seed_everything,
    train_model,
)


def _separable(n: int = 256, seed: int = 0) -> TensorDataset:
    """Two Gaussian blobs in 8-D, labelled by side: a linear model can learn it."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    centres = torch.stack([torch.full((8,), -1.0), torch.full((8,), 1.0)])
    features = centres[labels] + 0.8 * torch.randn(n, 8, generator=g)
    return TensorDataset(features, labels)


def _loaders(batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    return (
        DataLoader(_separable(256, 0), batch_size=batch_size, shuffle=True),
        DataLoader(_separable(128, 1), batch_size=batch_size),
    )


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))


def test_loss_goes_down_and_history_has_one_entry_per_epoch():
    train_loader, val_loader = _loaders()
    seed_everything(0)
    model = _mlp()
    history = fit(model, train_loader, val_loader, epochs=4, lr=0.05, seed=0, progress=False)
    assert isinstance(history, History) and history.epochs == 4
    for values in history.as_dict().values():
        assert len(values) == 4
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_acc[-1] > 0.9
    assert all(0 <= acc <= 1 for acc in history.train_acc + history.val_acc)


def test_the_same_seed_gives_the_same_run_and_another_seed_another():
    train_loader, val_loader = _loaders()

    def run(seed: int) -> tuple[nn.Module, History]:
        return train_model(
            _mlp, train_loader, val_loader, seed=seed, epochs=2, lr=0.05, progress=False
        )

    (first, h1), (second, h2), (_, h3) = run(3), run(3), run(4)
    assert h1.train_loss == h2.train_loss and h1.val_acc == h2.val_acc
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert h1.train_loss != h3.train_loss


def test_evaluate_returns_loss_and_accuracy_and_keeps_the_mode():
    inputs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 1])
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2) * 2)  # predicts the hot coordinate: 3 of 4 right
    model.train()
    # Batches with a third element (masks) are fine: it is ignored.
    loader = [(inputs[:2], labels[:2], None), (inputs[2:], labels[2:], None)]
    loss, accuracy = evaluate(model, loader)
    expected = nn.functional.cross_entropy(model(inputs), labels).item()
    assert accuracy == 0.75 and loss == pytest.approx(expected, rel=1e-6)
    assert model.training


def test_training_does_not_depend_on_batch_format_and_learns_images():
    # A tiny conv net on 3-element (image, label, mask) batches, as the synthetic data gives.
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = torch.randn(64, 3, 8, 8, generator=g) * 0.3
    images[labels == 1, 0, :4] += 2.0  # class 1: a bright top half in the red channel
    masks = torch.zeros(64, 8, 8, dtype=torch.bool)
    loader = DataLoader(TensorDataset(images, labels, masks), batch_size=16, shuffle=True)
    seed_everything(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    history = fit(model, loader, loader, epochs=10, lr=0.2, seed=0, progress=False)
    assert history.val_acc[-1] > 0.9


def test_on_epoch_is_called_after_each_epoch():
    train_loader, _ = _loaders()
    seen = []
    fit(
        _mlp(),
        train_loader,
        epochs=3,
        lr=0.05,
        progress=False,
        on_epoch=lambda epoch, history: seen.append((epoch, history.epochs)),
    )
    assert seen == [(0, 1), (1, 2), (2, 3)]


def test_bad_arguments():
    train_loader, _ = _loaders()
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        fit(_mlp(), train_loader, epochs=0)
    with pytest.raises(ValueError, match="empty training loader"):
        fit(_mlp(), [], epochs=1)
    with pytest.raises(TypeError, match=r"\(images, labels\)"):
        fit(_mlp(), [torch.zeros(2, 8)], epochs=1, progress=False)
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything("0")


def test_device_choice_and_mode(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda.is_available"):
            pick_device("cuda")
    monkeypatch.setenv("CBAM_MODE", "full")
    assert run_mode() == "full"
    monkeypatch.setenv("CBAM_MODE", "quick")
    assert run_mode() == "quick"
    monkeypatch.setenv("CBAM_MODE", "fast")
    with pytest.raises(ValueError, match="CBAM_MODE"):
        run_mode()
    monkeypatch.delenv("CBAM_MODE")
    assert run_mode() == ("full" if torch.cuda.is_available() else "quick")


def test_a_step_of_ones_own_gives_the_built_in_steps_weights():
    """Lesson 05 drives fit with the learner's train_step: on a CPU it must train identically."""
    import torch.nn.functional as F

    calls = []

    def train_step(model, images, labels, optimizer):
        calls.append(len(labels))
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    train_loader, val_loader = _loaders()
    runs = []
    for step in (None, train_step):
        seed_everything(0)
        model = _mlp()
        history = fit(model, train_loader, val_loader, epochs=2, lr=0.05, seed=0,
                      progress=False, step=step)  # fmt: skip
        runs.append((model, history))
    (built_in, h1), (own, h2) = runs
    assert sum(calls) == 2 * 256  # every batch of both epochs went through the learner's step
    for a, b in zip(built_in.parameters(), own.parameters(), strict=True):
        assert torch.equal(a, b)
    assert h1.val_acc == h2.val_acc
    assert h2.train_loss == pytest.approx(h1.train_loss, rel=1e-6)
    assert h2.train_acc == []  # the learner's step returns no logits to count from


class _AlwaysOne(nn.Module):
    """Says class 1 whatever it is shown; notes the mode it was called in."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.num_classes = num_classes
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        logits = torch.zeros(x.shape[0], self.num_classes)
        logits[:, 1] = self.scale
        return logits


def test_class_accuracies_of_a_model_that_always_says_one():
    # Classes 0, 1 and 2 appear, 3 does not.
    loader = [
        (torch.zeros(3, 8), torch.tensor([0, 1, 2])),
        (torch.zeros(4, 8), torch.tensor([1, 1, 0, 2])),
    ]
    model = _AlwaysOne()
    model.train()
    accuracies = class_accuracies(model, loader, 4)
    assert accuracies[:3] == [0.0, 1.0, 0.0]
    assert math.isnan(accuracies[3])
    assert model.modes == [False, False]  # evaluated in eval mode
    assert model.training  # and given back in train mode
    model.eval()
    class_accuracies(model, loader, 4)
    assert not model.training


def test_class_accuracies_count_each_class_over_batches():
    # The images are the logits: predicted classes 0 1 | 0 1 1 0 for labels 0 0 | 0 1 1 2.
    logits = torch.eye(3)
    loader = [
        (logits[[0, 1]], torch.tensor([0, 0])),
        (logits[[0, 1, 1, 0]], torch.tensor([0, 1, 1, 2])),
    ]
    accuracies = class_accuracies(nn.Identity(), loader, 3)
    assert accuracies == pytest.approx([2 / 3, 1.0, 0.0])


def _one_cycle_by_hand(total: int, lr: float) -> list[float]:
    """OneCycleLR's documented schedule (cosine, div_factor 25, final_div_factor 1e4) with
    pct_start 0.25: from lr/25 up to lr by step total/4 - 1, then down to lr/25/1e4 at the end."""
    initial, final, peak = lr / 25, lr / 25 / 1e4, 0.25 * total - 1

    def cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    return [
        cos(initial, lr, s / peak) if s <= peak else cos(lr, final, (s - peak) / (total - 1 - peak))
        for s in range(total)
    ]


@pytest.mark.parametrize("epochs, steps", [(8, 10), (20, 3)])
def test_epoch_learning_rates_follow_fits_one_cycle(epochs, steps):
    lr = 0.1
    means = epoch_learning_rates(epochs, steps, lr)
    assert len(means) == epochs
    # The rate peaks at step total/4 - 1: the epoch ending there is still warming up, so the
    # largest mean is that epoch's or the next, which starts at the quarter. Up before, down after.
    peak = max(range(epochs), key=means.__getitem__)
    assert epochs / 4 - 1 <= peak <= epochs / 4
    assert means[: peak + 1] == sorted(means[: peak + 1])
    assert means[peak:] == sorted(means[peak:], reverse=True)
    assert means[-1] < 0.05 * lr
    by_hand = _one_cycle_by_hand(epochs * steps, lr)
    expected = [sum(by_hand[e * steps : (e + 1) * steps]) / steps for e in range(epochs)]
    assert means == pytest.approx(expected, rel=1e-9)

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps, pct_start=0.25
    )
    stepped = []
    for _ in range(epochs * steps):
        stepped.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert means == pytest.approx(
        [sum(stepped[e * steps : (e + 1) * steps]) / steps for e in range(epochs)], rel=1e-12
    )
