"""Student-t quantiles (cbam.experiments.student_t) against published table values."""

import math

import pytest

from cbam.experiments.student_t import central_probability, t_quantile

# (p, df, quantile): printed t tables, six decimals.
TABLE = [
    (0.975, 1, 12.706205),
    (0.975, 2, 4.302653),
    (0.975, 3, 3.182446),
    (0.975, 4, 2.776445),
    (0.975, 9, 2.262157),
    (0.975, 18, 2.100922),
    (0.975, 30, 2.042272),
    (0.95, 5, 2.015048),
    (0.99, 10, 2.763769),
    (0.995, 20, 2.845340),
    (0.9995, 7, 5.407883),
]


@pytest.mark.parametrize(("p", "df", "expected"), TABLE)
def test_quantiles_match_the_table(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=5e-7)


def test_lower_quantiles_mirror_the_upper_ones():
    assert t_quantile(0.025, 9) == -t_quantile(0.975, 9)


def test_large_df_approaches_the_normal_quantile():
    # The normal distribution's 0.975 quantile, 1.959964: t(0.975, 10000) is 1.960201.
    assert t_quantile(0.975, 10_000) == pytest.approx(1.960201, abs=5e-7)


def test_one_and_two_df_have_closed_forms():
    # df = 1 is Cauchy: tan(π (p - 1/2)); df = 2: (2p - 1) sqrt(2 / (1 - (2p - 1)²)).
    p = 0.9
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-12)
    a = 2 * p - 1
    assert t_quantile(p, 2) == pytest.approx(a * math.sqrt(2 / (1 - a * a)), rel=1e-12)


def test_central_probability_spans_zero_to_one():
    for df in (1, 2, 7, 8):
        assert central_probability(0.0, df) == 0.0
        assert central_probability(math.pi / 2, df) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize(("p", "df"), [(0.975, 0), (0.975, 2.5), (0.975, True), (0.0, 5), (1.0, 5)])
def test_refuses_what_it_cannot_compute(p, df):
    with pytest.raises(ValueError):
        t_quantile(p, df)
