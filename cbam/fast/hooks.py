"""Whether a hook watches a module that a faster route would bypass.

A route computes the block without calling its submodules, so their hooks would never fire
(forward hooks, backward hooks, and the global ones of ``nn.modules.module``); where any is
registered, the block runs the plain code, which calls every submodule.
"""

from torch import nn

_module = nn.modules.module


def watched(block: nn.Module) -> bool:
    """A hook on ``block``, on any module inside it, or on every module.

    Called on every forward: the tree is walked through ``_modules`` directly, several times
    faster than ``block.modules()``.
    """
    if (
        _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    ):
        return True
    return _watched(block)


def _watched(module: nn.Module) -> bool:
    if (
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    ):
        return True
    return any(child is not None and _watched(child) for child in module._modules.values())
