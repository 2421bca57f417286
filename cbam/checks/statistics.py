"""Checks for lesson 05's statistics: the method behind every comparison the course makes.

One function per exercise, each called by the lesson's check cell:

* ``check_paired_interval(paired_interval)``: mean and 95 % t-interval of a - b, seed by seed
* ``check_holm(holm)``: Holm's adjusted p-values, in the order given
* ``check_width_ratio(width_ratio)``: the paired interval's half-width over the unpaired one's
* ``check_seeds_needed(seeds_needed)``: seeds to detect a difference (normal approximation)
* ``check_equivalence_margin(equivalence_margin)``: the farther bound of the 90 % interval

A wrong answer is compared with the usual slips (z for t, n degrees of freedom for n - 1, the
unpaired formula, Bonferroni for Holm, a 95 % interval for TOST's 90 %, ...) so the hint names
the slip that was made.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from statistics import NormalDist

from cbam.checks.own_work import OwnWork
from cbam.checks.report import CheckFailed, run_checks
from cbam.experiments import design, stats
from cbam.experiments.student_t import t_quantile

OWN_INTERVAL = OwnWork("paired_interval", (stats.mean_interval,))
OWN_HOLM = OwnWork("holm", (stats.holm,))
OWN_RATIO = OwnWork("width_ratio", (design.width_ratio, design.break_even_correlation))
OWN_SEEDS = OwnWork("seeds_needed", (design.seeds_needed,))
OWN_MARGIN = OwnWork("equivalence_margin", (stats.equivalence_margin, stats.mean_interval))

# Accuracies (%) of two variants over seven seeds, and over ten: small enough to read.
A7 = [88.1, 86.4, 90.2, 87.5, 89.9, 85.7, 88.8]
B7 = [86.0, 86.9, 87.1, 85.2, 88.4, 84.9, 86.1]
A10 = [89.5, 91.2, 88.0, 90.4, 87.9, 92.1, 89.0, 90.7, 88.8, 91.5]
B10 = [86.1, 87.9, 86.6, 85.0, 86.8, 88.2, 84.9, 87.3, 86.0, 85.5]


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CheckFailed(f"{what} should be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _close(got: float, expected: float) -> bool:
    return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


# --- exercise "paired-interval" -------------------------------------------------------------


def reference_paired_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high) of the seed-by-seed differences a - b, 95 % Student-t interval."""
    interval = stats.mean_interval([x - y for x, y in zip(a, b, strict=True)])
    return interval.mean, interval.low, interval.high


def _interval_slips(a: Sequence[float], b: Sequence[float]) -> dict[str, tuple[float, float]]:
    """(low, high) that the usual slips give, by what the slip is."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean, sd = _mean_sd(d)
    population_sd = sd * math.sqrt((n - 1) / n)
    t = t_quantile(0.975, n - 1)
    (mean_a, sd_a), (mean_b, sd_b) = _mean_sd(a), _mean_sd(b)
    unpaired = t_quantile(0.975, 2 * n - 2) * math.sqrt((sd_a**2 + sd_b**2) / n)
    slips = {
        "1.96 (the normal quantile) is used where Student's t with n - 1 degrees of freedom "
        "belongs: with ten seeds that is 2.262, from t_quantile(0.975, n - 1)": 1.96 * sd / n**0.5,
        "the t quantile has n degrees of freedom; the mean of n differences has n - 1": (
            t_quantile(0.975, n) * sd / n**0.5
        ),
        "the standard deviation divides by n; the sample sd divides by n - 1": (
            t * population_sd / n**0.5
        ),
        "the half-width is t * sd, without dividing by sqrt(n): that is the spread of one "
        "seed's difference, not of the mean of n": t * sd,
        "t(0.95) is a one-sided quantile: a two-sided 95 % interval takes t(0.975)": (
            t_quantile(0.95, n - 1) * sd / n**0.5
        ),
    }
    intervals = {why: (mean - half, mean + half) for why, half in slips.items()}
    intervals["this is the unpaired interval (the two variants' spreads combined); pair the "
              "seeds: take a[i] - b[i] first, then one mean and one sd of those differences"] = (
        mean_a - mean_b - unpaired, mean_a - mean_b + unpaired)  # fmt: skip
    return intervals


def _expect_interval(paired_interval: Callable, a: list[float], b: list[float]) -> None:
    result = paired_interval(list(a), list(b))
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise CheckFailed(
            f"paired_interval should return (mean, low, high), three numbers; got {result!r}"
        )
    got = [_number(v, name) for v, name in zip(result, ("mean", "low", "high"), strict=True)]
    mean, low, high = reference_paired_interval(a, b)
    if _close(got[0], -mean):
        raise CheckFailed("the mean has the wrong sign: the difference is a - b (a variant minus "
                          "its reference), seed by seed")
    if not _close(got[0], mean):
        raise CheckFailed(f"the mean is {got[0]:.4f}, expected {mean:.4f}: the mean of the "
                          "seed-by-seed differences a[i] - b[i]")
    if _close(got[1], low) and _close(got[2], high):
        return
    for why, (slip_low, slip_high) in _interval_slips(a, b).items():
        if _close(got[1], slip_low) and _close(got[2], slip_high):
            raise CheckFailed(why)
    raise CheckFailed(f"the interval is [{got[1]:.4f}, {got[2]:.4f}], expected "
                      f"[{low:.4f}, {high:.4f}]: mean ± t(0.975, n - 1) · sd / sqrt(n)")


def check_paired_interval(paired_interval: Callable) -> bool:
    """``paired_interval(a, b)`` -> (mean, low, high) of a - b over paired seeds, 95 %."""
    return run_checks(
        "paired-interval",
        [
            ("the mean and 95 % interval of a - b over 7 paired seeds",
             lambda: _expect_interval(paired_interval, A7, B7)),
            ("the same over 10 seeds", lambda: _expect_interval(paired_interval, A10, B10)),
            ("two seeds are enough to compute one", lambda: _expect_interval(
                paired_interval, [90.0, 88.5], [87.0, 88.0])),
        ],
        own=(paired_interval, OWN_INTERVAL),
    )  # fmt: skip


# --- exercise "holm" ------------------------------------------------------------------------

HOLM_CASES = (
    [0.010, 0.040, 0.030, 0.005],
    [0.002, 0.043, 0.003, 0.30, 0.21, 0.96],  # lesson 05's family of six: monotone and capped
    [0.6, 0.01, 0.7],  # 2 x 0.6 = 1.2: capped at 1
)


def _expect_holm(holm: Callable, p_values: list[float]) -> None:
    result = holm(list(p_values))
    if not isinstance(result, (tuple, list)) or len(result) != len(p_values):
        raise CheckFailed(f"holm should return a list of {len(p_values)} adjusted p-values, "
                          f"one per input, got {result!r}")
    got = [_number(v, "an adjusted p-value") for v in result]
    expected = stats.holm(list(p_values))
    if all(_close(g, e) for g, e in zip(got, expected, strict=True)):
        return
    m = len(p_values)
    if all(_close(g, min(1.0, m * p)) for g, p in zip(got, p_values, strict=True)):
        raise CheckFailed("every p is multiplied by m: that is Bonferroni. Holm multiplies the "
                          "smallest by m, the next by m - 1, ..., the largest by 1")
    if sorted(got) == sorted(expected) and got != expected:
        raise CheckFailed("the adjusted values come back sorted: return them in the order the "
                          "p-values were given, each at its own place")
    if any(g > 1 for g in got):
        raise CheckFailed("an adjusted p-value is above 1: cap each at 1")
    order = sorted(range(m), key=lambda i: p_values[i])
    if any(got[order[k]] < got[order[k - 1]] for k in range(1, m)):
        raise CheckFailed("in the order of the raw p-values the adjusted ones go down somewhere: "
                          "each adjusted value is at least the one before it (take the running "
                          "maximum), or a larger p could be rejected where a smaller one is not")
    raise CheckFailed(f"got {[round(g, 4) for g in got]}, expected "
                      f"{[round(e, 4) for e in expected]}")


def check_holm(holm: Callable) -> bool:
    """``holm(p_values)`` -> Holm's adjusted p-values, in the order given."""
    return run_checks(
        "holm",
        [(f"the adjusted p-values of {case}", lambda case=case: _expect_holm(holm, case))
         for case in HOLM_CASES],
        own=(holm, OWN_HOLM),
    )  # fmt: skip


# --- exercise "width-ratio" -----------------------------------------------------------------

RATIO_CASES = ((0.05, 10), (0.86, 10), (-0.40, 10), (0.5, 3))


def _expect_ratio(width_ratio: Callable, rho: float, n: int) -> None:
    got = _number(width_ratio(rho, n), "width_ratio(rho, n)")
    expected = design.width_ratio(rho, n)
    if _close(got, expected):
        return
    t_ratio = t_quantile(0.975, n - 1) / t_quantile(0.975, 2 * n - 2)
    slips = {
        "the t quantiles are left out: the paired interval has n - 1 degrees of freedom, the "
        "unpaired 2n - 2, and t(0.975, n - 1) / t(0.975, 2n - 2) is part of the ratio": (
            math.sqrt(1 - rho)),
        "the square root is missing: the sd of a - b is sqrt(2 (1 - rho)) sd, and the "
        "unpaired interval's sqrt(2) sd cancels the 2 only": t_ratio * (1 - rho),
        "the ratio is upside down: paired half-width over unpaired": 1 / expected,
        "the degrees of freedom are swapped: paired has n - 1, unpaired 2n - 2": (
            1 / t_ratio * math.sqrt(1 - rho)),
    }  # fmt: skip
    for why, value in slips.items():
        if _close(got, value):
            raise CheckFailed(why)
    raise CheckFailed(f"width_ratio({rho}, {n}) is {got:.4f}, expected {expected:.4f}")


def check_width_ratio(width_ratio: Callable) -> bool:
    """``width_ratio(rho, n)`` -> paired half-width / unpaired half-width."""
    return run_checks(
        "width-ratio",
        [(f"rho = {rho:+.2f}, n = {n}", lambda rho=rho, n=n: _expect_ratio(width_ratio, rho, n))
         for rho, n in RATIO_CASES],
        own=(width_ratio, OWN_RATIO),
    )  # fmt: skip


# --- exercise "seeds-needed" ----------------------------------------------------------------

SEEDS_CASES = ((0.5, 1.66), (2.0, 1.66), (1.0, 2.0), (1.5, 0.9))


def _expect_seeds(seeds_needed: Callable, difference: float, sd: float) -> None:
    got = seeds_needed(difference, sd)
    expected = design.seeds_needed(difference, sd)
    if isinstance(got, float) and got.is_integer() is False:
        raise CheckFailed(f"got {got!r}: a number of seeds is whole; round up (math.ceil), "
                          "since fewer seeds than computed would not give the power asked")
    if isinstance(got, bool) or not isinstance(got, numbers.Integral):
        raise CheckFailed(f"seeds_needed should return an int, got {type(got).__name__} {got!r}")
    if got == expected:
        return
    z = NormalDist().inv_cdf
    slips = {
        "the formula is not squared: n = ((z(1 - alpha/2) + z(power)) * sd / d) ** 2": math.ceil(
            (z(0.975) + z(0.8)) * sd / difference),
        "z(1 - alpha) is one-sided: a two-sided test at 5 % takes z(1 - alpha/2) = 1.96": (
            math.ceil(((z(0.95) + z(0.8)) * sd / difference) ** 2)),
        "z(power) is missing: without it the power is 50 %, not 80 %": math.ceil(
            (z(0.975) * sd / difference) ** 2),
        "the result is rounded down or to the nearest: round up (math.ceil)": round(
            ((z(0.975) + z(0.8)) * sd / difference) ** 2),
    }  # fmt: skip
    for why, value in slips.items():
        if got == value and value != expected:
            raise CheckFailed(why)
    raise CheckFailed(f"seeds_needed({difference}, {sd}) is {got}, expected {expected}")


def check_seeds_needed(seeds_needed: Callable) -> bool:
    """``seeds_needed(difference, sd)`` -> paired seeds for 80 % power at 5 %, two-sided."""
    return run_checks(
        "seeds-needed",
        [(f"a difference of {d} points, sd of the differences {sd}",
          lambda d=d, sd=sd: _expect_seeds(seeds_needed, d, sd)) for d, sd in SEEDS_CASES],
        own=(seeds_needed, OWN_SEEDS),
    )  # fmt: skip


# --- exercise "equivalence-margin" ----------------------------------------------------------


def _expect_margin(equivalence_margin: Callable, differences: list[float]) -> None:
    got = _number(equivalence_margin(list(differences)), "equivalence_margin(differences)")
    expected = stats.equivalence_margin(differences)
    if _close(got, expected):
        return
    wide = stats.mean_interval(differences, confidence=0.95)
    mean = math.fsum(differences) / len(differences)
    if _close(got, max(abs(wide.low), abs(wide.high))):
        raise CheckFailed("this is the 95 % interval's bound: two one-sided tests at 5 % each "
                          "make a 90 % interval (t(0.95, n - 1), not t(0.975, n - 1))")
    narrow = stats.mean_interval(differences, confidence=0.90)
    if _close(got, min(abs(narrow.low), abs(narrow.high))):
        raise CheckFailed("this is the nearer bound: the margin must hold the whole interval, "
                          "so it is the farther one, max(|low|, |high|)")
    if _close(got, abs(mean)):
        raise CheckFailed("this is |mean|: the margin is the farthest the difference could be, "
                          "the bound of its interval, not where its estimate lies")
    raise CheckFailed(f"got {got:.4f}, expected {expected:.4f}: max(|low|, |high|) of the 90 % "
                      "Student-t interval of the differences")


def check_equivalence_margin(equivalence_margin: Callable) -> bool:
    """``equivalence_margin(differences)`` -> the farther bound of their 90 % interval."""
    cases = ([x - y for x, y in zip(A7, B7, strict=True)],
             [-0.6, 0.4, 0.9, -1.1, 0.2, 0.0, 0.7, -0.3, 0.5, -0.8])  # fmt: skip
    return run_checks(
        "equivalence-margin",
        [("differences of 7 seeds, all of one sign", lambda: _expect_margin(
            equivalence_margin, cases[0])),
         ("differences of 10 seeds around 0", lambda: _expect_margin(
            equivalence_margin, cases[1]))],
        own=(equivalence_margin, OWN_MARGIN),
    )  # fmt: skip
