"""Pictures and tables of a stored experiment beside the paper's numbers (lessons 01-05)."""

from __future__ import annotations

from cbam.experiments.stats import VariantSummary, summarize
from cbam.experiments.variants import get_experiment


def paper_comparison(result: dict) -> str:
    """One line per variant: this course's accuracy (mean ± sd over seeds) and its paired
    difference from the reference with a 95 % interval; then the paper's top-1 error (ImageNet,
    ResNet-50, one run each) and how many points of error it saves against the paper's
    reference (positive: better, as a positive accuracy difference is); "-" where CBAM's paper
    has no such row.
    """
    experiment = get_experiment(result["experiment"])
    paper = experiment.paper_top1_error
    reference = experiment.reference

    def error(variant: str) -> str:
        return f"{paper[variant]:.2f}" if variant in paper else "-"

    header = (
        f"{'variant':<14}{'here: accuracy %':>18}{'paired diff [95% CI]':>24}"
        f"{'paper: error %':>17}{'paper: gain':>13}"
    )
    lines = [header]
    for row in summarize(result):
        here = "reference"
        gain = "reference"
        if row.difference is not None:
            here = str(row.difference)
            known = reference in paper and row.variant in paper
            gain = f"{paper[reference] - paper[row.variant]:+.2f}" if known else "-"
        accuracy = f"{row.mean:.1f} ± {row.sd:.1f}"
        lines.append(f"{row.variant:<14}{accuracy:>18}{here:>24}{error(row.variant):>17}{gain:>13}")
    return "\n".join(lines)


def plot_differences(rows: list[VariantSummary], ax, title: str = "") -> None:
    """Each variant's paired difference from the reference with its 95 % interval; a line at 0.

    The verdict is the colour: grey for "no difference shown" (an interval that crosses the
    line, or one that excludes it but does not survive Holm's correction over the rows' family),
    green above the reference, red below.
    """
    others = [row for row in rows if row.difference is not None]
    reference = next(row.variant for row in rows if row.difference is None)
    for y, row in enumerate(others):
        d = row.difference
        shown = row.verdict != "no difference shown"
        colour = "tab:gray" if not shown else ("tab:green" if d.mean > 0 else "tab:red")
        ax.errorbar(
            d.mean, y, xerr=[[d.mean - d.low], [d.high - d.mean]], fmt="o", color=colour, capsize=4
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(others)), [row.variant for row in others])
    ax.set_ylim(-0.7, len(others) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel(f"accuracy minus {reference}'s, same seed (points; 95 % CI)")
    if title:
        ax.set_title(title)
