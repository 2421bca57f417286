"""Quantiles of Student's t distribution for whole degrees of freedom, exactly.

The experiments' intervals need t(0.975, n - 1) for a handful of seeds, nothing more: a closed
form does it in a few lines, where scipy would be a large dependency to install for one number.

For whole degrees of freedom ν the probability P(|T| ≤ t) is a finite sum in θ = atan(t / √ν)
(Abramowitz & Stegun 26.7.3-4). It rises with θ, so bisection on θ inverts it to the last bit.
"""

from __future__ import annotations

import math


def central_probability(theta: float, df: int) -> float:
    """P(|T| ≤ √df · tan θ) for T ~ Student's t with ``df`` degrees of freedom, 0 ≤ θ ≤ π/2."""
    s, c = math.sin(theta), math.cos(theta)
    odd = df % 2 == 1
    # Odd ν: (2/π)(θ + sin θ (cos θ + 2/3 cos³θ + ...)), ν - 1 over 2 terms in the bracket;
    # even ν: sin θ (1 + 1/2 cos²θ + 3/8 cos⁴θ + ...), ν over 2 terms. Each term is the one
    # before times cos²θ (k - 1) / k, k running over the odd (or even) numbers up to ν - 2.
    if odd and df == 1:
        return 2 * theta / math.pi
    term = c if odd else 1.0
    total = term
    for k in range(3 if odd else 2, df - 1, 2):
        term *= c * c * (k - 1) / k
        total += term
    return 2 / math.pi * (theta + s * total) if odd else s * total


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` (a whole number ≥ 1) degrees of freedom."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be a whole number >= 1, got {df!r}")
    if not 0 < p < 1:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p!r}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target = 2 * p - 1
    low, high = 0.0, math.pi / 2
    while True:
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if central_probability(middle, df) < target:
            low = middle
        else:
            high = middle
    return math.sqrt(df) * math.tan((low + high) / 2)
