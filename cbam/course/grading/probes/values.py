"""Values a probe hands from the sandbox to the grader: plain JSON, and how two are compared.

A tensor travels as its shape and its numbers; everything else as a bool, a number, a string,
a list or a dict of those. Nothing is unpickled on the grader's side: what comes out of the
sandbox is data, never code.
"""

from __future__ import annotations

import math

import torch

MAX_NUMBERS = 200_000  # per probe: the probes' inputs are small


class OneOf:
    """An expected value with accepted variants (the authors' pooling order, a harmless bias)."""

    def __init__(self, *options: object) -> None:
        self.options = options


def encode(value: object) -> object:
    """``value`` as JSON-ready data; a type the probes do not use is recorded by its name."""
    if isinstance(value, OneOf):
        return {"one of": [encode(option) for option in value.options]}
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.is_complex() or value.is_meta:
            return {"type": f"tensor on {value.device} of {value.dtype}"}
        data = value.to("cpu", torch.float64).flatten().tolist()
        return {"shape": list(value.shape), "data": data}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return {"type": type(value).__name__}


def _numbers(value: object) -> int:
    if isinstance(value, dict):
        return sum(_numbers(v) for v in value.values())
    if isinstance(value, list):
        return len(value) + sum(_numbers(v) for v in value if isinstance(v, (list, dict)))
    return 1


def too_large(value: object) -> bool:
    return _numbers(value) > MAX_NUMBERS


def differs(got: object, expected: object, atol: float, rtol: float) -> str | None:
    """None when ``got`` matches ``expected``; otherwise what differs, in a few words."""
    if isinstance(expected, dict) and "one of" in expected:
        reasons = [differs(got, option, atol, rtol) for option in expected["one of"]]
        return None if None in reasons else reasons[0]
    if isinstance(expected, dict) and "shape" in expected and "data" in expected:
        if not (isinstance(got, dict) and "shape" in got and "data" in got):
            return f"a tensor of shape {tuple(expected['shape'])} was expected, got {_kind(got)}"
        if got["shape"] != expected["shape"]:
            return f"shape {tuple(got['shape'])}, expected {tuple(expected['shape'])}"
        try:
            a = torch.tensor(got["data"], dtype=torch.float64)
            b = torch.tensor(expected["data"], dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            return "numbers that are not numbers"
        if a.shape != b.shape:
            return "a tensor whose numbers do not fill its shape"
        if not torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=False):
            worst = (a - b).abs().nan_to_num(math.inf).max().item() if a.numel() else 0.0
            return f"different values (largest difference {worst:.3g})"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{_kind(got)} where {_kind(expected)} was expected"
        for key, value in expected.items():
            if key not in got:
                return f"no {key}"
            if (why := differs(got[key], value, atol, rtol)) is not None:
                return f"{key}: {why}"
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return f"{_kind(got)} where {len(expected)} values were expected"
        for index, (a, b) in enumerate(zip(got, expected, strict=True)):
            if (why := differs(a, b, atol, rtol)) is not None:
                return f"[{index}] {why}"
        return None
    if isinstance(expected, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return None
        return f"{got!r}, expected {expected!r}"
    if type(got) is not type(expected) or got != expected:
        return f"{_short(got)}, expected {_short(expected)}"
    return None


def _kind(value: object) -> str:
    if isinstance(value, dict) and "shape" in value:
        return f"a tensor of shape {tuple(value['shape'])}"
    if isinstance(value, dict) and "type" in value:
        return f"a {value['type']}"
    return f"a {type(value).__name__}"


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, dict) else _kind(value)
    return text if len(text) <= 80 else text[:77] + "..."
