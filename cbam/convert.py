"""CBAM weights trained elsewhere, loaded into the ``cbam.CBAM`` that computes the same function.

Two implementations have trained weights people want to reuse:

* timm's ``CbamModule`` (``timm/layers/cbam.py``): ``from_timm``;
* the authors' ``CBAM`` (Jongchan/attention-module, ``MODELS/cbam.py``): ``from_authors``.

Each takes a block's ``state_dict()`` (or the module, or a whole network's state dict with the
block's ``prefix``, e.g. ``"layer1.0.cbam."``) and returns a ``cbam.CBAM`` in the configuration
that matches: same outputs in eval mode, same BatchNorm updates in training mode. What differs
between them, and what the conversion does about it:

* the MLP: timm's is two 1x1 convolutions without bias, the authors' two ``nn.Linear`` with
  bias - the same function; the weights are reshaped;
* the hidden width: timm rounds C/16 to the nearest (at least 1), the authors floor it; they
  differ at C = 24 (2 against 1) and 72 (5 against 4), so the width is read from the weights;
* the spatial gate: both put a BatchNorm after the k x k convolution (``batch_norm=True``); the
  authors' has momentum 0.01 (nn.BatchNorm2d's default is 0.1), which the converted block keeps
  for fine-tuning;
* the pooling over channels: the authors stack [max, mean], timm and cbam [mean, max], so the
  authors' convolution weight has its two input channels swapped.

Both assume a sigmoid gate and a ReLU, their defaults: a timm block built with another
``gate_layer`` or ``act_layer`` has the same weights but computes another function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from cbam.attention import CBAM

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
AUTHORS_BN_MOMENTUM = 0.01  # BasicConv in MODELS/cbam.py


def from_timm(source: Mapping[str, torch.Tensor] | nn.Module, *, prefix: str = "") -> CBAM:
    """The ``cbam.CBAM`` computing what timm's ``CbamModule`` with these weights computes.

    Keys read: ``channel.fc1.weight`` (hidden, C, 1, 1), ``channel.fc2.weight``, their biases
    where ``mlp_bias=True``, ``spatial.conv.conv.weight`` (1, 2, k, k) and
    ``spatial.conv.bn.*``.
    """
    state = _block_state(source, prefix, "timm's CbamModule", "channel.fc1.weight")
    fc1, fc2 = state["channel.fc1.weight"], _needed(state, "channel.fc2.weight", "timm")
    conv = _needed(state, "spatial.conv.conv.weight", "timm")
    bias = "channel.fc1.bias" in state
    renamed = {
        "channel.mlp.0.weight": fc1.flatten(1),
        "channel.mlp.2.weight": fc2.flatten(1),
        "spatial.conv.weight": conv,
        **{f"spatial.bn.{name}": _needed(state, f"spatial.conv.bn.{name}", "timm") for name in _BN},
    }
    if bias:
        renamed["channel.mlp.0.bias"] = _needed(state, "channel.fc1.bias", "timm")
        renamed["channel.mlp.2.bias"] = _needed(state, "channel.fc2.bias", "timm")
    block = CBAM(
        fc1.shape[1],
        kernel_size=conv.shape[-1],
        hidden_channels=fc1.shape[0],
        bias=bias,
        batch_norm=True,
        device=fc1.device,
        dtype=fc1.dtype,
    )
    return _loaded(block, renamed, state, "timm's CbamModule")


def from_authors(
    source: Mapping[str, torch.Tensor] | nn.Module,
    *,
    prefix: str = "",
    pool_types: Sequence[str] = ("avg", "max"),
) -> CBAM:
    """The ``cbam.CBAM`` computing what the authors' ``CBAM`` with these weights computes.

    Keys read: ``ChannelGate.mlp.1.*`` and ``ChannelGate.mlp.3.*`` (the Linear layers; index 0
    is their Flatten), ``SpatialGate.spatial.conv.weight`` and ``SpatialGate.spatial.bn.*``
    (absent when the block was built with ``no_spatial=True``). ``pool_types`` is not in the
    state: pass what the block was built with (their default is the paper's avg and max).
    """
    state = _block_state(source, prefix, "the authors' CBAM", "ChannelGate.mlp.1.weight")
    first = state["ChannelGate.mlp.1.weight"]
    renamed = {
        "channel.mlp.0.weight": first,
        "channel.mlp.0.bias": _needed(state, "ChannelGate.mlp.1.bias", "the authors'"),
        "channel.mlp.2.weight": _needed(state, "ChannelGate.mlp.3.weight", "the authors'"),
        "channel.mlp.2.bias": _needed(state, "ChannelGate.mlp.3.bias", "the authors'"),
    }
    spatial = "SpatialGate.spatial.conv.weight" in state
    kernel_size = 7
    if spatial:
        conv = state["SpatialGate.spatial.conv.weight"]
        kernel_size = conv.shape[-1]
        # They stack [max, mean] over channels; cbam stacks [mean, max].
        renamed["spatial.conv.weight"] = conv.flip(1)
        for name in _BN:
            key = f"SpatialGate.spatial.bn.{name}"
            renamed[f"spatial.bn.{name}"] = _needed(state, key, "the authors'")
    block = CBAM(
        first.shape[1],
        kernel_size=kernel_size,
        hidden_channels=first.shape[0],
        spatial=spatial,
        batch_norm=spatial,
        pool_types=pool_types,
        device=first.device,
        dtype=first.dtype,
    )
    if spatial:
        block.spatial.bn.momentum = AUTHORS_BN_MOMENTUM
    return _loaded(block, renamed, state, "the authors' CBAM")


def _block_state(
    source: Mapping[str, torch.Tensor] | nn.Module, prefix: str, kind: str, first_key: str
) -> dict[str, torch.Tensor]:
    """The block's entries of ``source``, without ``prefix``."""
    if isinstance(source, nn.Module):
        source = source.state_dict()
    if not isinstance(source, Mapping):
        raise TypeError(
            f"expected a state dict (a mapping of names to tensors) or an nn.Module of {kind}, "
            f"got {type(source).__name__}"
        )
    state = {k[len(prefix) :]: v for k, v in source.items() if k.startswith(prefix)}
    if first_key not in state:
        shown = sorted(state)[:6]
        raise ValueError(
            f"expected the state of {kind}, with the key {prefix + first_key!r}; got "
            f"{len(state)} keys under prefix {prefix!r}, e.g. {shown}"
        )
    return state


def _needed(state: Mapping[str, torch.Tensor], key: str, kind: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"{kind} state lacks {key!r}; it has {sorted(state)}")
    return state[key]


def _loaded(
    block: CBAM, renamed: dict[str, torch.Tensor], state: Mapping[str, torch.Tensor], kind: str
) -> CBAM:
    """``block`` with ``renamed`` loaded; every key of ``state`` must have been used."""
    used = len(renamed)
    if used != len(state):
        raise ValueError(
            f"{kind} state has {len(state)} entries and {used} were converted: it comes from a "
            f"configuration this conversion does not know ({sorted(state)})"
        )
    block.load_state_dict(renamed)
    return block
