"""Counting a model's parameters and multiply-accumulates (MACs) without training it.

MACs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts the matrix products
and convolutions a forward pass runs (2 FLOPs per multiply-accumulate) and nothing else:
BatchNorm, activations, pooling and the element-wise products of an attention gate are free in
this convention. That is the convention of the CBAM paper's "GFLOPs" (really GMACs), so
``count_macs(resnet50()) / 1e9`` reproduces its Table 4.

>>> count_macs(nn.Conv2d(3, 8, 3, padding=1), (1, 3, 32, 32))   # 8 * 32 * 32 outputs * 27 each
221184
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """How many parameters ``model`` has, trainable or not (buffers such as BatchNorm's running
    statistics are not parameters and are not counted)."""
    _check_model(model)
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> int:
    """Multiply-accumulates of one forward pass on an input of shape ``input_size``.

    The default is one ImageNet image at 224x224, the setting of the paper's Table 4.
    """
    counter = _count_flops(model, input_size)
    return counter.get_total_flops() // 2


def macs_by_module(
    model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)
) -> dict[str, int]:
    """MACs per submodule, keyed by ``model.named_modules()`` names (``""`` is the whole model).

    Each entry includes the MACs of the module's own submodules (``"layer1"`` covers all of
    ``"layer1.0.conv1"``, ``"layer1.0.attention"``, ...), as ``FlopCounterMode`` counts them.
    Only modules that ran some counted work appear, in ``named_modules`` order; a module that
    does none (BatchNorm, ReLU, pooling, a sigmoid gate) is absent, so look names up with
    ``.get(name, 0)``. A module registered under two names is reported under one of them.
    """
    counter = _count_flops(model, input_size)
    # FlopCounterMode names modules "<root class name>.<named_modules name>"; "Global" is the sum.
    root = type(model).__name__
    macs: dict[str, int] = {}
    for key, by_op in counter.get_flop_counts().items():
        if key == "Global":
            continue
        name = "" if key == root else key.removeprefix(root + ".")
        macs[name] = sum(by_op.values()) // 2
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return dict(sorted(macs.items(), key=lambda item: order.get(item[0], len(order))))


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_input_size(input_size: object) -> tuple[int, ...]:
    valid = (
        isinstance(input_size, Sequence)
        and not isinstance(input_size, str)
        and len(input_size) > 0
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_size)
    )
    if not valid:
        raise ValueError(
            f"input_size must be a non-empty sequence of positive ints such as (1, 3, 224, 224), "
            f"got {input_size!r}"
        )
    return tuple(input_size)


def _count_flops(model: nn.Module, input_size: Sequence[int]) -> FlopCounterMode:
    """Run ``model`` once in eval mode without gradients under a FlopCounterMode."""
    _check_model(model)
    shape = _check_input_size(input_size)
    first = next(model.parameters(), None)
    # The input follows the model's device and dtype, so a model on a GPU is counted there.
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    # Eval mode: BatchNorm uses its running statistics and no statistics get updated by counting.
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(shape, device=device, dtype=dtype))
    finally:
        for module, training in modes.items():
            module.training = training
    return counter
