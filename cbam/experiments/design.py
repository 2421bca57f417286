"""Planning a comparison before running it: how many seeds, and whether pairing pays.

Both answers come from the same t-interval the course reads its results with
(``cbam.experiments.stats``), worked backwards.

**Seeds needed.** To detect a true paired difference ``d`` with probability ``power`` by a
two-sided test at level ``alpha``, when the seeds' differences have standard deviation ``sd``,
the normal approximation asks for ``n = ((z(1 - alpha/2) + z(power)) * sd / d)^2`` seeds; the
t-test needs a few more at small n, which ``seeds_needed(..., exact=True)`` finds by searching
with t quantiles instead.

**When pairing pays.** A paired interval over n seeds has n - 1 degrees of freedom; an unpaired
one over the same 2n runs has 2n - 2. With equal spreads and a correlation rho between the
variants' accuracies over seeds, the paired half-width over the unpaired one is
``t(n - 1) / t(2n - 2) * sqrt(1 - rho)``: pairing narrows the interval only when rho exceeds
``1 - (t(2n - 2) / t(n - 1))^2``, about 0.14 for ten seeds. Below that, the degrees of freedom
it gives up cost more than the shared seed saves.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from cbam.experiments.student_t import t_quantile


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def seeds_needed(
    difference: float,
    sd: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    exact: bool = False,
) -> int:
    """Paired seeds to detect a true mean difference ``difference`` (same units as ``sd``, the
    sd of the seeds' differences) with probability ``power`` at two-sided level ``alpha``."""
    if isinstance(difference, (int, float)) and not isinstance(difference, bool):
        difference = abs(difference)  # the sign says which variant is ahead, not how far
    difference = _positive("difference", difference)
    sd = _positive("sd", sd)
    alpha, power = _probability("alpha", alpha), _probability("power", power)
    z = NormalDist().inv_cdf
    n = max(math.ceil(((z(1 - alpha / 2) + z(power)) * sd / difference) ** 2), 2)
    while exact and (
        (t_quantile(1 - alpha / 2, n - 1) + t_quantile(power, n - 1)) * sd / difference
    ) ** 2 > n:
        n += 1
    return n


def _t_ratio(n: int) -> float:
    """t(0.975, n - 1) / t(0.975, 2n - 2): what pairing n seeds costs in degrees of freedom."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be a whole number of seeds >= 2, got {n!r}")
    return t_quantile(0.975, n - 1) / t_quantile(0.975, 2 * n - 2)


def width_ratio(rho: float, n: int) -> float:
    """The paired interval's half-width over the unpaired one's, for n seeds per variant, equal
    spreads and correlation ``rho`` between the variants' accuracies over seeds."""
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not -1 <= rho <= 1:
        raise ValueError(f"rho must be a correlation in [-1, 1], got {rho!r}")
    return _t_ratio(n) * math.sqrt(1 - rho)


def break_even_correlation(n: int) -> float:
    """The correlation above which pairing n seeds gives the narrower 95 % interval: where
    ``width_ratio`` is 1."""
    return 1 - 1 / _t_ratio(n) ** 2
