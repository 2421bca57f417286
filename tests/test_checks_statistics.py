"""The checks of lesson 05's statistics exercises: a right answer passes, each usual slip is told
apart by its hint, and the library's own function handed in is refused."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from cbam.checks.statistics import (
    check_equivalence_margin,
    check_holm,
    check_paired_interval,
    check_seeds_needed,
    check_width_ratio,
)
from cbam.experiments import design, stats
from cbam.experiments.student_t import t_quantile


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def _passes(check, candidate, capsys) -> None:
    verdict = check(candidate)
    lines = _lines(capsys)
    assert verdict, lines
    assert lines and all(line.startswith("✓") for line in lines), lines


def _caught(check, candidate, capsys, hint: str) -> list[str]:
    """The failing lines; at least one names ``hint``."""
    verdict = check(candidate)
    lines = _lines(capsys)
    assert not verdict, lines
    failed = [line for line in lines if line.startswith("✗")]
    assert failed, lines
    assert any(hint in line for line in failed), failed
    return failed


def _mean_sd(values):
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


# --- paired-interval ---------------------------------------------------------------------------


def _interval(a, b, quantile, spread=lambda d, sd: sd / math.sqrt(len(d))):
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean, sd = _mean_sd(d)
    half = quantile(len(d)) * spread(d, sd)
    return mean, mean - half, mean + half


def paired_interval(a, b):
    return _interval(a, b, lambda n: t_quantile(0.975, n - 1))


def normal_quantile(a, b):
    return _interval(a, b, lambda n: 1.96)


def n_degrees_of_freedom(a, b):
    return _interval(a, b, lambda n: t_quantile(0.975, n))


def population_sd(a, b):
    return _interval(
        a,
        b,
        lambda n: t_quantile(0.975, n - 1),
        lambda d, sd: sd * math.sqrt((len(d) - 1) / len(d)) / math.sqrt(len(d)),
    )


def no_sqrt_n(a, b):
    return _interval(a, b, lambda n: t_quantile(0.975, n - 1), lambda d, sd: sd)


def one_sided(a, b):
    return _interval(a, b, lambda n: t_quantile(0.95, n - 1))


def unpaired(a, b):
    n = len(a)
    (mean_a, sd_a), (mean_b, sd_b) = _mean_sd(a), _mean_sd(b)
    half = t_quantile(0.975, 2 * n - 2) * math.sqrt((sd_a**2 + sd_b**2) / n)
    return mean_a - mean_b, mean_a - mean_b - half, mean_a - mean_b + half


def b_minus_a(a, b):
    return paired_interval(b, a)


def test_a_right_paired_interval_passes(capsys):
    _passes(check_paired_interval, paired_interval, capsys)


@pytest.mark.parametrize("slip, hint", [
    (normal_quantile, "1.96 (the normal quantile)"),
    (n_degrees_of_freedom, "the t quantile has n degrees of freedom"),
    (population_sd, "the sample sd divides by n - 1"),
    (no_sqrt_n, "without dividing by sqrt(n)"),
    (one_sided, "t(0.95) is a one-sided quantile"),
    (unpaired, "this is the unpaired interval"),
    (b_minus_a, "the mean has the wrong sign"),
])  # fmt: skip
def test_each_interval_slip_is_named(slip, hint, capsys):
    _caught(check_paired_interval, slip, capsys, hint)


def test_an_interval_of_another_shape_is_told_what_to_return(capsys):
    _caught(
        check_paired_interval,
        lambda a, b: paired_interval(a, b)[1:],
        capsys,
        "should return (mean, low, high)",
    )


# --- holm --------------------------------------------------------------------------------------


def holm(p_values, cap=True, running=True, keep_order=True):
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    top = 0.0
    for rank, i in enumerate(order):
        value = (m - rank) * p_values[i]
        value = min(1.0, value) if cap else value
        top = max(top, value) if running else value
        adjusted[i] = top
    return sorted(adjusted) if not keep_order else adjusted


def test_a_right_holm_passes(capsys):
    _passes(check_holm, holm, capsys)


@pytest.mark.parametrize("slip, hint", [
    (lambda p: [min(1.0, len(p) * v) for v in p], "that is Bonferroni"),
    (lambda p: holm(p, keep_order=False), "the adjusted values come back sorted"),
    (lambda p: holm(p, running=False), "take the running maximum"),
])  # fmt: skip
def test_each_holm_slip_is_named(slip, hint, capsys):
    _caught(check_holm, slip, capsys, hint)


def test_a_holm_without_the_cap_is_caught(capsys):
    _caught(check_holm, lambda p: holm(p, cap=False), capsys, "cap each at 1")


def test_holm_of_the_wrong_length_is_told(capsys):
    _caught(check_holm, lambda p: p[:1], capsys, "should return a list of")


# --- width-ratio -------------------------------------------------------------------------------


def _t_ratio(n):
    return t_quantile(0.975, n - 1) / t_quantile(0.975, 2 * n - 2)


def width_ratio(rho, n):
    return _t_ratio(n) * math.sqrt(1 - rho)


def test_a_right_width_ratio_passes(capsys):
    _passes(check_width_ratio, width_ratio, capsys)


@pytest.mark.parametrize("slip, hint", [
    (lambda rho, n: math.sqrt(1 - rho), "the t quantiles are left out"),
    (lambda rho, n: _t_ratio(n) * (1 - rho), "the square root is missing"),
    (lambda rho, n: 1 / width_ratio(rho, n), "the ratio is upside down"),
    (lambda rho, n: math.sqrt(1 - rho) / _t_ratio(n), "the degrees of freedom are swapped"),
])  # fmt: skip
def test_each_ratio_slip_is_named(slip, hint, capsys):
    _caught(check_width_ratio, slip, capsys, hint)


# --- seeds-needed ------------------------------------------------------------------------------

Z = NormalDist().inv_cdf


def _raw_seeds(d, sd, z_alpha=None, with_power=True, square=True):
    z_alpha = Z(0.975) if z_alpha is None else z_alpha
    base = (z_alpha + (Z(0.8) if with_power else 0.0)) * sd / d
    return base**2 if square else base


def seeds_needed(d, sd):
    return math.ceil(_raw_seeds(d, sd))


def test_a_right_seeds_needed_passes(capsys):
    _passes(check_seeds_needed, seeds_needed, capsys)


@pytest.mark.parametrize("slip, hint", [
    (lambda d, sd: math.ceil(_raw_seeds(d, sd, square=False)), "the formula is not squared"),
    (lambda d, sd: math.ceil(_raw_seeds(d, sd, z_alpha=Z(0.95))), "z(1 - alpha) is one-sided"),
    (lambda d, sd: math.ceil(_raw_seeds(d, sd, with_power=False)), "z(power) is missing"),
    (lambda d, sd: round(_raw_seeds(d, sd)), "round up (math.ceil)"),
    (lambda d, sd: int(_raw_seeds(d, sd)), "rounded down or to the nearest"),
    (lambda d, sd: _raw_seeds(d, sd), "a number of seeds is whole"),
])  # fmt: skip
def test_each_seeds_slip_is_named(slip, hint, capsys):
    _caught(check_seeds_needed, slip, capsys, hint)


def test_seeds_as_a_whole_float_is_told_to_be_an_int(capsys):
    _caught(
        check_seeds_needed, lambda d, sd: float(seeds_needed(d, sd)), capsys, "should return an int"
    )


# --- equivalence-margin ------------------------------------------------------------------------


def _bounds(d, p):
    mean, sd = _mean_sd(d)
    half = t_quantile(p, len(d) - 1) * sd / math.sqrt(len(d))
    return mean, abs(mean - half), abs(mean + half)


def equivalence_margin(d):
    _, low, high = _bounds(d, 0.95)
    return max(low, high)


def test_a_right_equivalence_margin_passes(capsys):
    _passes(check_equivalence_margin, equivalence_margin, capsys)


@pytest.mark.parametrize("slip, hint", [
    (lambda d: max(_bounds(d, 0.975)[1:]), "this is the 95 % interval's bound"),
    (lambda d: min(_bounds(d, 0.95)[1:]), "this is the nearer bound"),
    (lambda d: abs(_bounds(d, 0.95)[0]), "this is |mean|"),
])  # fmt: skip
def test_each_margin_slip_is_named(slip, hint, capsys):
    _caught(check_equivalence_margin, slip, capsys, hint)


def test_a_margin_that_is_not_a_number_is_told(capsys):
    _caught(
        check_equivalence_margin, lambda d: str(equivalence_margin(d)), capsys, "should be a number"
    )


# --- the library's own functions ---------------------------------------------------------------


@pytest.mark.parametrize("check, own", [
    (check_paired_interval,
     lambda a, b: (lambda i: (i.mean, i.low, i.high))(
         stats.mean_interval([x - y for x, y in zip(a, b, strict=True)]))),
    (check_holm, stats.holm),
    (check_holm, lambda p: stats.holm(p)),
    (check_width_ratio, design.width_ratio),
    (check_width_ratio, lambda rho, n: design.width_ratio(rho, n)),
    (check_seeds_needed, design.seeds_needed),
    (check_seeds_needed, lambda d, sd: design.seeds_needed(d, sd)),
    (check_equivalence_margin, stats.equivalence_margin),
    (check_equivalence_margin, lambda d: stats.equivalence_margin(d)),
])  # fmt: skip
def test_the_librarys_own_function_is_refused(check, own, capsys):
    verdict = check(own)
    lines = _lines(capsys)
    assert not verdict, lines
    assert len(lines) == 1 and lines[0].startswith("✗"), lines
    assert "write it yourself" in lines[0]
