"""Probes of lesson 05's statistics exercises: intervals, Holm, pairing, seeds, equivalence.

Each draws its own numbers (how many seeds, how many p-values, which correlation), so an
answer learned by heart from the check cell's cases cannot pass.
"""

from __future__ import annotations

from cbam.checks.statistics import (
    OWN_HOLM,
    OWN_INTERVAL,
    OWN_MARGIN,
    OWN_RATIO,
    OWN_SEEDS,
    reference_paired_interval,
)
from cbam.course.grading.probes import Draw, Probe
from cbam.experiments import design, stats


def _accuracies(draw: Draw, n: int, centre: float) -> list[float]:
    return [round(centre + 2 * v, 2) for v in draw.tensor(n).tolist()]


def _paired_cases(draw: Draw) -> list[dict]:
    cases = []
    for _ in range(3):
        n = draw.int(3, 14)
        cases.append({"about": f"{n} paired seeds", "a": _accuracies(draw, n, 88.0),
                      "b": _accuracies(draw, n, 86.5)})
    return cases


def _holm_cases(draw: Draw) -> list[dict]:
    cases = []
    for _ in range(3):
        m = draw.int(2, 9)
        # Up to 0.6, so that some families need the cap at 1.
        p = [round(float(v), 4) for v in draw.uniform(m, high=0.6).tolist()]
        cases.append({"about": f"a family of {m}", "p": p})
    return cases


def _ratio_cases(draw: Draw) -> list[dict]:
    return [{"about": "a correlation and a number of seeds",
             "rho": round(float(draw.uniform(1, low=-0.9, high=0.95)), 3), "n": draw.int(2, 30)}
            for _ in range(4)]  # fmt: skip


def _seeds_cases(draw: Draw) -> list[dict]:
    return [{"about": "a difference and an sd",
             "d": round(float(draw.uniform(1, low=0.3, high=2.0)), 2),
             "sd": round(float(draw.uniform(1, low=1.0, high=3.0)), 2)}
            for _ in range(4)]  # fmt: skip


def _margin_cases(draw: Draw) -> list[dict]:
    cases = []
    for _ in range(3):
        n = draw.int(3, 14)
        cases.append({"about": f"differences of {n} seeds",
                      "d": [round(v, 3) for v in draw.tensor(n).tolist()]})
    return cases


LESSON = "05"
PROBES = [
    Probe("paired-interval", ("paired_interval",), _paired_cases,
          lambda f, case: {"(mean, low, high)": list(f(list(case["a"]), list(case["b"])))},
          lambda case: {"(mean, low, high)": list(reference_paired_interval(case["a"],
                                                                            case["b"]))},
          own=OWN_INTERVAL),
    Probe("holm", ("holm",), _holm_cases,
          lambda f, case: {"adjusted": list(f(list(case["p"])))},
          lambda case: {"adjusted": stats.holm(case["p"])}, own=OWN_HOLM),
    Probe("width-ratio", ("width_ratio",), _ratio_cases,
          lambda f, case: {"ratio": f(case["rho"], case["n"])},
          lambda case: {"ratio": design.width_ratio(case["rho"], case["n"])}, own=OWN_RATIO),
    Probe("seeds-needed", ("seeds_needed",), _seeds_cases,
          lambda f, case: {"seeds": f(case["d"], case["sd"])},
          lambda case: {"seeds": design.seeds_needed(case["d"], case["sd"])}, own=OWN_SEEDS,
          atol=0, rtol=0),
    Probe("equivalence-margin", ("equivalence_margin",), _margin_cases,
          lambda f, case: {"margin": f(list(case["d"]))},
          lambda case: {"margin": stats.equivalence_margin(case["d"])}, own=OWN_MARGIN),
]  # fmt: skip
