"""Checks for lesson 05, training.

* ``check_training_step(train_step)``: one step of SGD on a batch, compared with a reference step
  on an identical copy of a small model: the returned loss, the parameters after one step and
  after two (two steps catch gradients that pile up when they are not zeroed). A first step
  that already differs is compared with softmax-then-cross-entropy, the other common slip, so
  that only a difference appearing on the second step is blamed on zeroing.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def _softmax_step(model, images, labels, optimizer) -> float:
    """The slip: probabilities handed to F.cross_entropy, which applies log-softmax itself."""
    optimizer.zero_grad()
    loss = F.cross_entropy(F.softmax(model(images), dim=1), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


SOFTMAX_FIRST = ("softmax was applied before F.cross_entropy, which applies log-softmax to the "
                 "logits itself: pass it the raw logits, F.cross_entropy(model(images), labels)")


def _problem(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    images = torch.randn(8, 6, generator=generator)
    labels = torch.randint(3, (8,), generator=generator)
    return model, images, labels


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)


def _twins(seed: int):
    """Two identical models, each with its own SGD optimizer (momentum: state that carries over)."""
    model, images, labels = _problem(seed)
    twin = copy.deepcopy(model)
    return (model, _sgd(model)), (twin, _sgd(twin)), images, labels


def _differing(mine: nn.Module, reference: nn.Module) -> str | None:
    """The name of the first parameter that differs from the reference's, or None."""
    for (name, a), b in zip(mine.named_parameters(), reference.parameters(), strict=True):
        if not torch.equal(a, b) and not torch.allclose(a, b, atol=1e-6, rtol=1e-5):
            return name
    return None


def _same_parameters(mine: nn.Module, reference: nn.Module, after: str) -> None:
    name = _differing(mine, reference)
    if name is not None:
        raise CheckFailed(
            f"after {after}, parameter {name} differs from one SGD step's result "
            "(order: zero the gradients, forward, cross-entropy, backward, optimizer.step())"
        )


@contextmanager
def _calls_in_order(model: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[list[str]]:
    """Records "zero_grad", "backward" (a gradient reaching the parameters) and "step" in the
    order they happen; the instance attributes that do it are removed afterwards."""
    calls: list[str] = []

    def recording(name: str, method: Callable) -> Callable:
        def run(*args: object, **kwargs: object) -> object:
            calls.append(name)
            return method(*args, **kwargs)

        return run

    first = next(model.parameters())
    hook = first.register_hook(lambda grad: calls.append("backward"))
    optimizer.step = recording("step", optimizer.step)
    optimizer.zero_grad = recording("zero_grad", optimizer.zero_grad)
    try:
        yield calls
    finally:
        hook.remove()
        del optimizer.step, optimizer.zero_grad


def _expect_order(calls: list[str]) -> None:
    """Name the order that was used when it cannot give SGD's step."""
    said = ", then ".join({"zero_grad": "optimizer.zero_grad()", "backward": "loss.backward()",
                           "step": "optimizer.step()"}[c] for c in calls) or "none of them"
    if "backward" not in calls:
        raise CheckFailed(f"no gradient reached the parameters: call loss.backward() (called: "
                          f"{said})")
    if "step" not in calls:
        raise CheckFailed(f"optimizer.step() was never called (called: {said})")
    step, backward = calls.index("step"), calls.index("backward")
    if step < backward:
        raise CheckFailed(f"the order was {said}: optimizer.step() uses the gradients that "
                          "loss.backward() computes, so call backward first")
    if "zero_grad" in calls[backward:step]:
        raise CheckFailed(f"the order was {said}: zero_grad() between backward() and step() "
                          "wipes the gradients the step needs; zero them first")


def _is_softmax_first(model: nn.Module, seed: int, steps: int) -> bool:
    """Whether ``model`` holds what ``steps`` softmax-then-cross-entropy steps give on problem
    ``seed``."""
    reference, images, labels = _problem(seed)
    optimizer = _sgd(reference)
    for _ in range(steps):
        _softmax_step(reference, images, labels, optimizer)
    return _differing(model, reference) is None


def check_training_step(train_step: Callable) -> bool:
    """``train_step(model, images, labels, optimizer)`` -> the batch's loss before the step."""

    def returns_the_loss() -> None:
        (model, optimizer), _, images, labels = _twins(0)
        with torch.no_grad():
            logits = model(images)
            expected = F.cross_entropy(logits, labels).item()
            of_probabilities = F.cross_entropy(F.softmax(logits, dim=1), labels).item()
        loss = train_step(model, images, labels, optimizer)
        if loss is None:
            raise CheckFailed("train_step returned None; return the loss of the batch")
        if isinstance(loss, torch.Tensor):
            graph = (" that still holds the autograd graph" if loss.requires_grad else
                     " (loss.detach() is still a tensor)")
            raise CheckFailed(
                f"returned a tensor{graph}; return a plain Python number, loss.item(), which "
                "also lets the graph's memory go"
            )
        if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
            raise CheckFailed(f"the loss should be one number, got {type(loss).__name__}")
        value = float(loss)
        if abs(value - expected) <= 1e-5 * max(1.0, abs(expected)):
            return
        if abs(value - of_probabilities) <= 1e-5 * max(1.0, abs(of_probabilities)):
            raise CheckFailed(f"the returned loss is not the batch's cross-entropy: "
                              f"{SOFTMAX_FIRST}")
        raise CheckFailed(
            "the returned loss is not the cross-entropy of the batch before the update "
            "(F.cross_entropy(model(images), labels))"
        )

    def one_step_updates_like_sgd() -> None:
        (model, optimizer), (twin, twin_optimizer), images, labels = _twins(1)
        with _calls_in_order(model, optimizer) as calls:
            train_step(model, images, labels, optimizer)
        _expect_order(calls)
        _reference_step(twin, images, labels, twin_optimizer)
        untouched = _problem(1)[0].parameters()
        if all(torch.equal(a, b) for a, b in zip(model.parameters(), untouched, strict=True)):
            raise CheckFailed(
                "the parameters did not change: call loss.backward() and optimizer.step()"
            )
        if _differing(model, twin) is not None and _is_softmax_first(model, 1, steps=1):
            raise CheckFailed(f"the step differs from SGD's: {SOFTMAX_FIRST}")
        _same_parameters(model, twin, "one step")

    def two_steps_do_not_pile_up_gradients() -> None:
        (model, optimizer), (twin, twin_optimizer), images, labels = _twins(2)
        for step in (1, 2):
            with _calls_in_order(model, optimizer) as calls:
                train_step(model, images, labels, optimizer)
            _expect_order(calls)
            _reference_step(twin, images, labels, twin_optimizer)
            if _differing(model, twin) is None:
                continue
            if _is_softmax_first(model, 2, steps=step):
                raise CheckFailed(f"step {step} differs from SGD's: {SOFTMAX_FIRST}")
            if step == 1:
                # A first step cannot pile up gradients: the difference is elsewhere.
                raise CheckFailed("the first step already differs from SGD's, so this is not "
                                  "about zeroing (a difference that appears only on the second "
                                  "step is); see the line above")
            raise CheckFailed(
                "the first step matches SGD's and the second differs: zero the gradients first "
                "(optimizer.zero_grad()), or backward() adds the new gradients to the old ones; "
                "and use the optimizer you are given"
            )

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
