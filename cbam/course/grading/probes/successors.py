"""Probe of lesson 08: SimAM on shapes and lambdas drawn at grading time."""

from __future__ import annotations

from cbam.checks.successors import OWN_SIMAM, reference_simam
from cbam.course.grading.probes import Draw, Probe


def _cases(draw: Draw) -> list[dict]:
    cases = []
    for _ in range(3):
        shape = (draw.int(1, 4), draw.int(1, 8), draw.int(2, 9), draw.int(1, 9))
        e_lambda = float(draw.choice((1e-4, 1e-2, 0.3)))
        cases.append({"about": f"x of shape {shape}, lambda {e_lambda}",
                      "x": draw.tensor(*shape, scale=2.0), "lambda": e_lambda})
    return cases


def _observe(simam, case: dict) -> dict:
    x = case["x"].clone()
    return {"out": simam(x, case["lambda"]), "input unchanged": bool((x == case["x"]).all())}


def _expect(case: dict) -> dict:
    return {"out": reference_simam(case["x"], case["lambda"]), "input unchanged": True}


LESSON = "08"
PROBES = [Probe("simam", ("simam",), _cases, _observe, _expect, own=OWN_SIMAM)]
