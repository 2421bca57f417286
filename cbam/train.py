"""Training and evaluating a classifier: the loop the comparison lessons share.

``fit`` trains with SGD (Nesterov momentum, weight decay) under a one-cycle learning-rate
schedule, keeps a ``History`` of loss and accuracy per epoch for the training and validation
sets, shows a ``tqdm`` progress bar, and on CUDA uses mixed precision (``torch.autocast`` with a
``GradScaler``). With a seed and on the CPU, two runs give the same numbers on the same machine.
Under ``torchrun`` (a process group initialised) the same call trains on every process with
``DistributedDataParallel`` (see ``cbam.distributed``).

>>> model, history = train_model(lambda: resnet_cifar(8, 4), train_loader, val_loader, seed=0)
>>> history.val_acc[-1]
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cbam import distributed
from cbam.device import pick_device


@dataclass
class History:
    """Per-epoch metrics; ``val_*`` stay empty when no validation loader was given."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict[str, list[float]]:
        return {
            "train_loss": self.train_loss,
            "train_acc": self.train_acc,
            "val_loss": self.val_loss,
            "val_acc": self.val_acc,
            "seconds": self.seconds,
        }


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices) with one number."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _batch_parts(batch: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of a batch; a third element (e.g. masks) is ignored."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(
            "a batch should be (images, labels) or (images, labels, masks), got "
            f"{type(batch).__name__}"
        )
    return batch[0], batch[1]


def _grad_scaler(device: torch.device, enabled: bool):
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled and device.type == "cuda")


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.float16, enabled=enabled)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: str | torch.device | None = None,
    amp: bool | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``loader``, in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    device = _model_device(model) if device is None else torch.device(device)
    amp = device.type == "cuda" if amp is None else amp
    loss_sum, correct, count = _evaluation_sums(model, loader, device, amp)
    if count == 0:
        raise ValueError("evaluate() got an empty loader")
    return loss_sum.item() / count, correct.item() / count


@torch.no_grad()
def class_accuracies(
    model: nn.Module,
    loader: Iterable,
    num_classes: int,
    *,
    device: str | torch.device | None = None,
) -> list[float]:
    """The accuracy on each class's images (the fraction of class k's images predicted as k), in
    eval mode; a class with no image in ``loader`` gets NaN. The model's mode is restored."""
    num_classes = int(num_classes)
    device = _model_device(model) if device is None else torch.device(device)
    right = torch.zeros(num_classes, dtype=torch.long)
    seen = torch.zeros(num_classes, dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            images, labels = _batch_parts(batch)
            predicted = model(images.to(device)).argmax(dim=1).cpu()
            seen += torch.bincount(labels, minlength=num_classes)
            right += torch.bincount(labels[predicted == labels], minlength=num_classes)
    finally:
        model.train(was_training)
    return [
        r / s if s else float("nan") for r, s in zip(right.tolist(), seen.tolist(), strict=True)
    ]


@torch.no_grad()
def _evaluation_sums(
    model: nn.Module, loader: Iterable, device: torch.device, amp: bool
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Summed cross-entropy, number right and number of samples, left on the device."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    try:
        for batch in loader:
            images, labels = _batch_parts(batch)
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with _autocast(device, amp):
                logits = model(images)
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
            correct += (logits.argmax(dim=1) == labels).sum()
            count += labels.numel()
    finally:
        model.train(was_training)
    return loss_sum, correct, count


def _model_device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _one_cycle(
    optimizer: torch.optim.Optimizer, lr: float, total_steps: int
) -> torch.optim.lr_scheduler.OneCycleLR:
    """A quarter of the steps warming up to ``lr``, then a cosine decay to almost zero."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.25
    )


def epoch_learning_rates(epochs: int, steps_per_epoch: int, lr: float) -> list[float]:
    """The mean learning rate of each epoch under ``fit``'s schedule: how much the last epochs
    can still move the weights."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = _one_cycle(optimizer, lr, epochs * steps_per_epoch)
    means = []
    for _ in range(epochs):
        total = 0.0
        for _ in range(steps_per_epoch):
            total += optimizer.param_groups[0]["lr"]
            optimizer.step()
            schedule.step()
        means.append(total / steps_per_epoch)
    return means


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    epochs: int = 5,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.0,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    seed: int | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, History], None] | None = None,
    step: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.optim.Optimizer], float]
    | None = None,
) -> History:
    """Train ``model`` in place for ``epochs`` epochs and return its ``History``.

    Args:
        train_loader, val_loader: iterables of (images, labels) or (images, labels, masks)
            batches; ``len(train_loader)`` must be known (it sets the schedule's length).
        lr: the peak learning rate of the one-cycle schedule (it warms up to it, then anneals).
        device: where to train; by default CUDA when available, else the CPU.
        amp: mixed precision (float16 autocast + gradient scaling); by default on CUDA only.
        seed: seeds every generator first, which fixes the shuffling order of loaders that use
            torch's global generator (as ``make_loaders``' do) and any dropout.
        progress: show a tqdm bar.
        on_epoch: called as ``on_epoch(epoch, history)`` after each epoch (e.g. to draw curves).
        step: one optimisation step of your own, ``step(model, images, labels, optimizer)``
            returning the batch's loss (lesson 05's ``train_step``): it clears the gradients,
            computes the cross-entropy, backpropagates and steps; ``fit`` still schedules the
            learning rate. It runs without autocast or gradient scaling, and the history then
            has no training accuracy (the step returns no logits). The built-in step computes
            the same thing, so on a CPU both give the same weights.

    Under ``torchrun``, with a process group initialised: the model trains wrapped in
    ``DistributedDataParallel`` (on the GPU ``LOCAL_RANK`` names, unless ``device`` says
    otherwise); DataLoaders are sharded (training: a ``DistributedSampler`` seeded with ``seed``,
    shuffling as the loader did; validation: each sample on one rank); the history's metrics are
    summed over all ranks, so every rank returns the same; only rank 0 shows the bar and calls
    ``on_epoch`` (the place to print or save); at the end every rank holds rank 0's model.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    several = distributed.active()
    if several:
        train_loader = distributed.shard_training(train_loader, seed=0 if seed is None else seed)
        if val_loader is not None:
            val_loader = distributed.shard_evaluation(val_loader)
    steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise ValueError("fit() got an empty training loader")
    if seed is not None:
        seed_everything(seed)
    device = distributed.device_for_rank(device) if several else pick_device(device)
    amp = device.type == "cuda" if amp is None else amp
    model.to(device)
    # DDP shares the model's parameters and averages their gradients across ranks in backward.
    trained = distributed.wrap(model, device) if several else model
    main = distributed.is_main()

    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True
    )
    schedule = _one_cycle(optimizer, lr, epochs * steps_per_epoch)
    # Scaling keeps small float16 gradients from flushing to zero; a no-op when amp is off.
    scaler = _grad_scaler(device, amp)
    history = History()

    bar = tqdm(
        total=epochs * steps_per_epoch, disable=not (progress and main), leave=False, unit="step"
    )
    try:
        for epoch in range(epochs):
            bar.set_description(f"epoch {epoch + 1}/{epochs}")
            distributed.set_epoch(train_loader, epoch)
            start = time.perf_counter()
            model.train()
            # Sums stay on the device: one synchronisation per epoch, not per step.
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            count = 0
            for batch in train_loader:
                images, labels = _batch_parts(batch)
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                if step is not None:
                    loss_sum += float(step(trained, images, labels, optimizer)) * labels.numel()
                else:
                    with _autocast(device, amp):
                        logits = trained(images)
                        loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    loss_sum += loss.detach().float() * labels.numel()
                    correct += (logits.detach().argmax(dim=1) == labels).sum()
                schedule.step()
                count += labels.numel()
                bar.update()
            if several:
                count = _sum_across_ranks(loss_sum, correct, count)
                distributed.share_buffers(model)
            history.train_loss.append(loss_sum.item() / count)
            if step is None:
                history.train_acc.append(correct.item() / count)
            if val_loader is not None:
                val_loss, val_correct, val_count = _evaluation_sums(model, val_loader, device, amp)
                if several:
                    val_count = _sum_across_ranks(val_loss, val_correct, val_count)
                if val_count == 0:
                    raise ValueError("fit() got an empty validation loader")
                history.val_loss.append(val_loss.item() / val_count)
                history.val_acc.append(val_correct.item() / val_count)
            history.seconds.append(time.perf_counter() - start)
            bar.set_postfix(_postfix(history))
            if on_epoch is not None and main:
                on_epoch(epoch, history)
    finally:
        bar.close()
    return history


def _sum_across_ranks(loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> int:
    """Sums over all ranks, the two tensors in place; returns the total count."""
    counted = torch.tensor(count, device=loss_sum.device)
    distributed.sum_across_ranks(loss_sum, correct, counted)
    return int(counted.item())


def _postfix(history: History) -> dict[str, str]:
    shown = {"loss": f"{history.train_loss[-1]:.3f}"}
    if history.train_acc:
        shown["acc"] = f"{history.train_acc[-1]:.3f}"
    if history.val_acc:
        shown["val_acc"] = f"{history.val_acc[-1]:.3f}"
    return shown


def train_model(
    build: Callable[[], nn.Module],
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    seed: int = 0,
    **fit_options: object,
) -> tuple[nn.Module, History]:
    """Seed, then build the model with ``build()`` and ``fit`` it: one seed, one whole run.

    Seeding before building fixes the initial weights too, so ``(build, seed)`` names a run.
    """
    seed_everything(seed)
    model = build()
    history = fit(model, train_loader, val_loader, seed=seed, **fit_options)
    return model, history
