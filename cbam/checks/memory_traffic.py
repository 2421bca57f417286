"""Counting the work a forward does on a feature map, operation by operation, without a clock.

Under a ``TorchDispatchMode`` every ATen operation passes through ``__torch_dispatch__`` with
its real arguments and results, after autograd and before the kernel: the level where a
multiplication is one ``aten.mul`` whatever Python wrote it. ``count_traffic`` notes there, for
a feature map of ``numel`` elements:

* ``reads``: operations that take a tensor of that size (views, which move no data, excluded);
* ``buffers``: tensors of that size in new memory (an in-place result reuses its input's);
* ``indices``: operations over a map of that size that also return integer indices (``max``
  over a dim, ``adaptive_max_pool2d``), work ``amax`` does not do;
* ``uses``: how many operations took ``watched`` (a weight) itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _short(func: object) -> str:
    """aten.mul.Tensor -> mul, aten.max.dim -> max.dim: the name a hint can show."""
    name = str(func).removeprefix("aten.")
    return name.removesuffix(".default").removesuffix(".Tensor")


@dataclass
class Traffic:
    numel: int
    reads: list[str] = field(default_factory=list)
    buffers: list[str] = field(default_factory=list)
    indices: list[str] = field(default_factory=list)
    uses: int = 0


class _Counter(TorchDispatchMode):
    def __init__(self, traffic: Traffic, watched: torch.Tensor | None) -> None:
        super().__init__()
        self.traffic, self.watched = traffic, watched

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        traffic, name = self.traffic, _short(func)
        if self.watched is not None and any(a is self.watched for a in inputs):
            traffic.uses += 1
        if getattr(func, "is_view", False):
            return out
        full = [a for a in inputs if a.numel() == traffic.numel]
        if full:
            traffic.reads.append(name)
            if any(not (o.is_floating_point() or o.is_complex()) and o.numel() > 0
                   for o in outputs):
                traffic.indices.append(name)
        held = {a.untyped_storage().data_ptr() for a in inputs}
        traffic.buffers += [name for o in outputs if o.numel() == traffic.numel
                            and o.untyped_storage().data_ptr() not in held]
        return out


@contextmanager
def count_traffic(numel: int, watched: torch.Tensor | None = None) -> Iterator[Traffic]:
    """Count, in the body, the operations on tensors of ``numel`` elements (see the module)."""
    traffic = Traffic(numel)
    with _Counter(traffic, watched):
        yield traffic
