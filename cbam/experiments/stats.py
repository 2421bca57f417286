"""Summaries of stored runs: mean ± sd per variant, and paired differences with an interval.

One rule is used everywhere in the course: a variant is reported as *different* from its
reference only when its paired difference stays significant at 5 % after a Holm correction over
the family of comparisons it is read with (by default, every variant of its experiment against
the reference). For a single comparison that is exactly "its 95 % interval excludes 0".
Otherwise the honest statement is "no difference shown", which is not the same as "equal"; where
the interval is narrow enough, ``equivalence_margin`` says how large a difference is ruled out.

Why a correction: with five comparisons at 5 % each and no real difference anywhere, the chance
that at least one of them looks "significant" is 1 - 0.95^5, about 23 %. Holm's step-down
procedure (Holm, Scand. J. Statistics, 1979) keeps that chance at 5 % for the whole family and
rejects at least as much as Bonferroni's division by the family's size.

Differences are *paired*: for a seed, two variants start from the same backbone weights and see
the same batches, so what the seed does to both can cancel in their difference. The interval is
Student's t over the seeds' differences: mean ± t(0.975, n - 1) · sd / sqrt(n).

Sums are exact (``math.fsum``), so the printed figures do not depend on the Python version
(3.12 changed how ``sum`` adds floats, which moved a printed plateau from 0.95 to 0.94).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from cbam.experiments.student_t import central_probability, t_quantile

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def p_value(self) -> float:
        """The two-sided p-value of Student's t-test of mean 0 behind this interval: below
        1 - confidence exactly when the interval excludes 0."""
        df = self.n - 1
        standard_error = (self.high - self.low) / 2 / t_quantile(0.5 + self.confidence / 2, df)
        if standard_error == 0:
            return 1.0 if self.mean == 0 else 0.0
        t = abs(self.mean) / standard_error
        return 1 - central_probability(math.atan(t / math.sqrt(df)), df)

    def __str__(self) -> str:
        """``+1.3 [-0.04, +2.7]``: one decimal, two where one would round a bound to a
        signed zero and hide which side of 0 it lies on."""
        return f"{_signed(self.mean)} [{_signed(self.low)}, {_signed(self.high)}]"

    def verdict(self, better: str = "higher", worse: str = "lower") -> str:
        """The course's one rule, in words."""
        if not self.excludes_zero:
            return "no difference shown"
        return better if self.mean > 0 else worse


def _signed(value: float) -> str:
    text = f"{value:+.1f}"
    return f"{value:+.2f}" if text in ("+0.0", "-0.0") and value != 0 else text


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` with its Student-t confidence interval (needs two values or more)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"an interval needs at least 2 values, got {n}")
    mean = math.fsum(values) / n
    sd = sample_sd(values)
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def holm(p_values: list[float]) -> list[float]:
    """Holm's adjusted p-values, in the order given: the i-th smallest p is multiplied by
    (m - i + 1) for a family of m, and the adjusted values are made non-decreasing in that order
    and capped at 1. A comparison is significant at level a over the family when its adjusted
    p-value is below a."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def equivalence_margin(values: list[float], alpha: float = 1 - CONFIDENCE) -> float:
    """The smallest margin d for which two one-sided t-tests at level ``alpha`` (TOST; Schuirmann,
    1987) show the mean of ``values`` to lie within [-d, +d]: the farther bound of the
    (1 - 2 alpha) interval, a 90 % interval for alpha = 5 %. "No difference shown" becomes
    "any difference is smaller than d"."""
    interval = mean_interval(values, confidence=1 - 2 * alpha)
    return max(abs(interval.low), abs(interval.high))


def sample_sd(values: list[float]) -> float:
    """The sample standard deviation (divides by n - 1), as torch.std and numpy's ddof=1."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a standard deviation needs at least 2 values, got {n}")
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class VariantSummary:
    """One row of an experiment's table; accuracies in percent."""

    variant: str
    seeds: tuple[int, ...]
    mean: float
    sd: float
    # Against the experiment's reference, over the seeds both have; None for the reference.
    difference: Interval | None
    # The difference's p-value after Holm's correction over the family it is read with.
    adjusted_p: float | None = None

    @property
    def verdict(self) -> str:
        if self.difference is None:
            return "reference"
        if self.adjusted_p is not None and self.adjusted_p >= 1 - CONFIDENCE:
            return "no difference shown"
        return self.difference.verdict("better than the reference", "worse than the reference")


def final_accuracies(result: dict, variant: str) -> dict[int, float]:
    """seed -> final validation accuracy in percent, for one variant of a stored result."""
    return {
        run["seed"]: 100 * run["final_val_acc"]
        for run in result["runs"]
        if run["variant"] == variant
    }


def summarize(result: dict, reference: str | None = None) -> list[VariantSummary]:
    """Per variant of ``result`` (as ``cbam.experiments.load`` returns it): the mean and sample
    sd of its final validation accuracy, and its paired difference from ``reference`` (the
    experiment's reference variant by default) with a 95 % interval and its p-value after
    Holm's correction over the result's comparisons with that reference (its family).
    """
    from cbam.experiments.variants import get_experiment

    experiment = get_experiment(result["experiment"])
    reference = experiment.reference if reference is None else reference
    present = {run["variant"] for run in result["runs"]}
    order = [v for v in experiment.variants if v in present]
    if reference not in present:
        raise ValueError(f"the result has no runs of the reference variant {reference!r}")
    base = final_accuracies(result, reference)
    rows = []
    for variant in order:
        accuracies = final_accuracies(result, variant)
        values = list(accuracies.values())
        difference = None
        if variant != reference:
            paired = sorted(set(accuracies) & set(base))
            difference = mean_interval([accuracies[s] - base[s] for s in paired])
        rows.append(
            VariantSummary(
                variant,
                tuple(sorted(accuracies)),
                math.fsum(values) / len(values),
                sample_sd(values),
                difference,
            )
        )
    compared = [i for i, row in enumerate(rows) if row.difference is not None]
    adjusted = holm([rows[i].difference.p_value for i in compared])
    for i, p in zip(compared, adjusted, strict=True):
        rows[i] = dataclasses.replace(rows[i], adjusted_p=p)
    return rows


def format_table(rows: list[VariantSummary]) -> str:
    """The summary as a plain-text table, accuracies in percent with one decimal."""
    lines = [
        f"{'variant':<14} {'seeds':>5} {'accuracy, mean ± sd':>20} "
        f"{'paired difference [95% CI]':>28} {'p (Holm)':>9}  verdict"
    ]
    for row in rows:
        accuracy = f"{row.mean:.1f} ± {row.sd:.1f}"
        difference = "-" if row.difference is None else str(row.difference)
        p = "-" if row.adjusted_p is None else f"{row.adjusted_p:.3f}"
        lines.append(
            f"{row.variant:<14} {len(row.seeds):>5} {accuracy:>20} {difference:>28} {p:>9}  "
            f"{row.verdict}"
        )
    return "\n".join(lines)


def plateau_change(result: dict, variant: str, last: int = 3) -> float:
    """How much the seeds' mean validation accuracy moves over the last ``last`` epochs
    (largest minus smallest, in points): the course calls a run converged when it is at most 1.
    """
    curves = [run["val_acc"] for run in result["runs"] if run["variant"] == variant]
    if not curves:
        raise ValueError(f"the result has no runs of {variant!r}")
    epochs = min(len(curve) for curve in curves)
    if epochs < last:
        raise ValueError(f"{variant!r} has {epochs} epochs, fewer than {last}")
    means = [100 * math.fsum(curve[e] for curve in curves) / len(curves) for e in range(epochs)]
    tail = means[-last:]
    return max(tail) - min(tail)
