"""Reading attention maps out of a forward pass, without changing what the model computes.

Every attention module applies its map through a ``gate`` submodule (the sigmoid), so a forward
hook on each gate sees the map itself. ``record_attention`` installs those hooks for the length
of a ``with`` block:

>>> with record_attention(model) as maps:
...     logits = model(images)
>>> maps["layer1.0.attention.spatial"][0].shape   # one entry per forward call
torch.Size([8, 1, 56, 56])

``logits=True`` records what each gate receives instead, the map before its sigmoid: it ranks
positions exactly as the map does, where float32's sigmoid has rounded high logits to one value
(it returns exactly 1.0 for every logit above about 17).

On a CPU, a CBAM block whose gates are hooked runs its plain PyTorch code instead of its C
kernel (``cbam.fast.cpu_kernel``), which never calls the gates: the output is then the same up to
float rounding (about 1e-7 relative), not to the bit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from cbam.attention import CBAM, ChannelAttention, SpatialAttention
from cbam.successors import CoordinateAttention, EfficientChannelAttention, GlobalContext, SimAM
from cbam.validation import check_flag

# Modules whose maps come out of submodules named "gate" (or "gate_<axis>", one per map).
GATED = (
    ChannelAttention,
    SpatialAttention,
    EfficientChannelAttention,
    CoordinateAttention,
    SimAM,
    GlobalContext,
)


@contextmanager
def record_attention(
    model: nn.Module, *, detach: bool = True, logits: bool = False
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Collect the map of every attention module inside ``model``: CBAM's channel and spatial
    modules, SE, and ``cbam.successors``' modules.

    Yields a dict from module name (as in ``model.named_modules()``; "" for ``model`` itself) to
    the list of maps that module produced, one per call: (N, C, 1, 1) for channel maps (SE, ECA),
    (N, 1, H, W) for spatial maps and GC's pooling weights, (N, C, H, W) for SimAM. Coordinate
    attention's two maps are under its gates' names, "<module>.gate_h" (N, C, H, 1) and
    "<module>.gate_w" (N, C, 1, W). Modules that never ran have no entry. On leaving the block
    the hooks are removed, even after an error.

    ``detach=False`` keeps the maps in the autograd graph, to take gradients through them; CBAM
    blocks then run their plain code, whose maps are connected to the block's input (the fused
    training path computes its maps from detached copies).

    ``logits=True`` records each gate's input instead of its output: the same shapes, before
    the sigmoid (``torch.sigmoid`` of them gives the maps).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"record_attention expects a torch.nn.Module, got {type(model).__name__}")
    check_flag("detach", detach)
    check_flag("logits", logits)
    maps: dict[str, list[torch.Tensor]] = defaultdict(list)
    handles = []
    unfused = []

    def keeper(name: str):
        def hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            seen = inputs[0] if logits else output
            maps[name].append(seen.detach() if detach else seen)

        return hook

    for name, module in model.named_modules():
        if isinstance(module, GATED):
            for child_name, child in module.named_children():
                if child_name == "gate":
                    handles.append(child.register_forward_hook(keeper(name)))
                elif child_name.startswith("gate_"):
                    key = f"{name}.{child_name}" if name else child_name
                    handles.append(child.register_forward_hook(keeper(key)))
        if not detach and isinstance(module, CBAM) and module.fused:
            module.fused = False
            unfused.append(module)
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()
        for module in unfused:
            module.fused = True
