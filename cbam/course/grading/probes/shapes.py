"""Probes of lesson 00: reductions with keepdim, and a gate broadcast over H and W."""

from __future__ import annotations

import torch

from cbam.course.grading.probes import Draw, Probe


def _shape(draw: Draw) -> tuple[int, ...]:
    """Four different sizes, so a wrong reduction cannot give the right shape by chance."""
    sizes = []
    while len(sizes) < 4:
        size = draw.int(2, 9)
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes)


def _maps(draw: Draw) -> list[dict]:
    cases = []
    for _ in range(2):
        shape = _shape(draw)
        cases.append({"about": f"x of shape {shape}", "x": draw.tensor(*shape)})
    return cases


def _pair_values(function, case: dict) -> dict:
    given = case["x"].clone()
    result = function(given)
    first, second = result  # a pair, as the exercise asks
    return {"mean": first, "max": second, "input unchanged": torch.equal(given, case["x"])}


def _reduced(dims: tuple[int, ...]):
    def expect(case: dict) -> dict:
        x = case["x"]
        return {"mean": x.mean(dim=dims, keepdim=True), "max": x.amax(dim=dims, keepdim=True),
                "input unchanged": True}

    return expect


def _gates(draw: Draw) -> list[dict]:
    cases = []
    for _ in range(2):
        shape = _shape(draw)
        cases.append({"about": f"x of shape {shape}", "x": draw.tensor(*shape),
                      "weights": draw.uniform(*shape[:2])})
    return cases


def _apply_gate(apply_gate, case: dict) -> dict:
    x, weights = case["x"].clone(), case["weights"].clone()
    out = apply_gate(x, weights)
    return {"out": out, "input unchanged": torch.equal(x, case["x"])}


def _gated(case: dict) -> dict:
    return {"out": case["x"] * case["weights"][:, :, None, None], "input unchanged": True}


LESSON = "00"
PROBES = [
    Probe("global-descriptors", ("global_descriptors",), _maps, _pair_values, _reduced((2, 3))),
    Probe("pool-over-channels", ("pool_over_channels",), _maps, _pair_values, _reduced((1,))),
    Probe("apply-gate", ("apply_gate",), _gates, _apply_gate, _gated),
]
