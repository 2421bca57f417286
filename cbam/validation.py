"""Argument and input checks shared by the modules.

Every error names what was expected and what came, so a wrong call explains itself.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence

import torch
import torch.fx


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def check_positive_int(name: str, value: object) -> int:
    """``value`` as a Python int: an int, or an integer-like value such as ``np.int64(64)`` (what
    ``operator.index`` takes); floats and bools are refused."""
    # bool is an int subclass (and NumPy's bool_ has __index__): CBAM(True) would silently mean
    # CBAM(1).
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise TypeError(f"{name} must be an int, got {_describe(value)}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {_describe(value)}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {number}")
    return number


def check_conv1x1_channels(value: object) -> int:
    """The channels of SpatialAttention's learned reduction, which has no default."""
    if value is None:
        raise ValueError('channel_reduction="conv1x1" needs channels (the input\'s C), got None')
    return check_positive_int("channels", value)


def check_odd_kernel_size(value: object) -> int:
    size = check_positive_int("kernel_size", value)
    if size % 2 == 0:
        raise ValueError(
            f"kernel_size must be odd, so that padding kernel_size // 2 keeps H and W, got {size}"
        )
    return size


def check_reduction(value: object) -> float | int:
    # numbers.Real takes NumPy's scalars too, but also bool, which would mean r = 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"reduction must be a number > 0 (16 in the paper), got {_describe(value)}")
    if not value > 0:  # also catches nan
        raise ValueError(f"reduction must be a number > 0 (16 in the paper), got {value!r}")
    return operator.index(value) if isinstance(value, numbers.Integral) else float(value)


def check_flag(name: str, value: object) -> None:
    # A string such as "False" is truthy: refuse it rather than silently switch the option on.
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")


def check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_pool_types(value: object, known: Sequence[str]) -> tuple[str, ...]:
    """A non-empty sequence of distinct known pooling names, returned as a tuple."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(
            f"pool_types must be a sequence of names such as ('avg', 'max'), got {_describe(value)}"
        )
    if len(value) == 0:
        raise ValueError(
            f"pool_types must name at least one of {tuple(known)}, got an empty "
            f"{type(value).__name__}"
        )
    unknown = [p for p in value if p not in known]
    if unknown:
        raise ValueError(f"pool_types must be among {tuple(known)}, got unknown {unknown!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"pool_types must not repeat a pooling, got {tuple(value)!r}")
    return tuple(value)


def check_feature_map(x: object, channels: int | None, module: str) -> None:
    """A feature map is a floating-point (N, C, H, W) tensor with the module's C and H, W >= 1.

    Nothing is checked while FX or a jit trace records the call: FX's Proxy has no shape to
    read, and a jit trace would record each check as a constant of the graph.
    """
    if isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing():
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{module} expects a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}"
        )
    if x.dim() != 4:
        raise ValueError(
            f"{module} expects a 4-D tensor (N, C, H, W), got {x.dim()}-D with shape "
            f"{tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{module} expects a floating-point tensor (e.g. torch.float32), got dtype {x.dtype}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{module} was built for {channels} channels, got input with {x.shape[1]} channels "
            f"(shape {tuple(x.shape)})"
        )
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(
            f"{module} expects H and W >= 1 (a global pooling over no pixels has no "
            f"value), got shape {tuple(x.shape)}"
        )
