"""Checks for lesson 05, training.

* ``check_training_step(train_step)``: one step of SGD on a batch, compared with a reference step
  on an identical copy of a small model: the returned loss, the parameters after one step and
  after two (two steps catch gradients that pile up when they are not zeroed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cbam.checks.report import CheckFailed, run_checks


def _reference_step(model, images, labels, optimizer) -> float:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def _problem(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    images = torch.randn(8, 6, generator=generator)
    labels = torch.randint(3, (8,), generator=generator)
    return model, images, labels


def _twins(seed: int):
    """Two identical models, each with its own SGD optimizer (momentum: state that carries over)."""
    model, images, labels = _problem(seed)
    twin = copy.deepcopy(model)

    def sgd(m: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9)

    return (model, sgd(model)), (twin, sgd(twin)), images, labels


def _same_parameters(mine: nn.Module, reference: nn.Module, after: str) -> None:
    for (name, a), b in zip(mine.named_parameters(), reference.parameters(), strict=True):
        if torch.equal(a, b):
            continue
        if not torch.allclose(a, b, atol=1e-6, rtol=1e-5):
            raise CheckFailed(
                f"after {after}, parameter {name} differs from one SGD step's result "
                "(order: zero the gradients, forward, cross-entropy, backward, optimizer.step())"
            )


def check_training_step(train_step: Callable) -> bool:
    """``train_step(model, images, labels, optimizer)`` -> the batch's loss before the step."""

    def returns_the_loss() -> None:
        (model, optimizer), _, images, labels = _twins(0)
        with torch.no_grad():
            expected = F.cross_entropy(model(images), labels).item()
        loss = train_step(model, images, labels, optimizer)
        if loss is None:
            raise CheckFailed("train_step returned None; return the loss of the batch")
        if isinstance(loss, torch.Tensor) and loss.requires_grad:
            raise CheckFailed(
                "the returned loss still holds the autograd graph; return loss.item() "
                "or loss.detach() so memory is freed"
            )
        try:
            value = float(loss)
        except (TypeError, ValueError, RuntimeError) as error:
            raise CheckFailed(
                f"the loss should be one number, got {type(loss).__name__}"
            ) from error
        if abs(value - expected) > 1e-5 * max(1.0, abs(expected)):
            raise CheckFailed(
                "the returned loss is not the cross-entropy of the batch before the update "
                "(F.cross_entropy(model(images), labels))"
            )

    def one_step_updates_like_sgd() -> None:
        (model, optimizer), (twin, twin_optimizer), images, labels = _twins(1)
        train_step(model, images, labels, optimizer)
        _reference_step(twin, images, labels, twin_optimizer)
        untouched = _problem(1)[0].parameters()
        if all(torch.equal(a, b) for a, b in zip(model.parameters(), untouched, strict=True)):
            raise CheckFailed(
                "the parameters did not change: call loss.backward() and optimizer.step()"
            )
        _same_parameters(model, twin, "one step")

    def two_steps_do_not_pile_up_gradients() -> None:
        (model, optimizer), (twin, twin_optimizer), images, labels = _twins(2)
        for _ in range(2):
            train_step(model, images, labels, optimizer)
            _reference_step(twin, images, labels, twin_optimizer)
        try:
            _same_parameters(model, twin, "two steps")
        except CheckFailed:
            raise CheckFailed(
                "the second step differs: zero the gradients first (optimizer.zero_grad()), "
                "or backward() adds the new gradients to the old ones; and use the optimizer "
                "you are given"
            ) from None

    # The checks draw no random numbers from the global generator, so the cells after this one
    # run exactly as in the reference notebook.
    with torch.random.fork_rng(devices=[]):
        return run_checks(
            "training-step",
            [
                ("returns the batch's loss as a plain number", returns_the_loss),
                ("one step updates the parameters like SGD", one_step_updates_like_sgd),
                ("two steps in a row: gradients are zeroed", two_steps_do_not_pile_up_gradients),
            ],
        )
