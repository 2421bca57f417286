"""Pictures and tables of a stored experiment beside the paper's numbers (lessons 01-05)."""

from __future__ import annotations

from cbam.experiments.stats import VariantSummary, summarize
from cbam.experiments.variants import get_experiment


def paper_comparison(result: dict) -> str:
    """One line per variant: this course's accuracy and paired difference from the reference,
    and the paper's top-1 error and its gap to the paper's reference (ImageNet, one run each).
    """
    experiment = get_experiment(result["experiment"])
    paper = experiment.paper_top1_error
    reference_error = paper[experiment.reference]
    lines = [
        f"{'':<14} {'here: accuracy %':>17} {'vs ' + experiment.reference + ' [95% CI]':>26}"
        f"   {'paper: top-1 err %':>18} {'vs ' + experiment.reference:>10}"
    ]
    for row in summarize(result):
        if row.difference is None:
            here = "-"
        else:
            d = row.difference
            here = f"{d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}]"
        # Lower error is better: the paper's improvement in accuracy is the error's decrease.
        gain = (
            "-"
            if row.variant == experiment.reference
            else f"{reference_error - paper[row.variant]:+.2f}"
        )
        lines.append(
            f"{row.variant:<14} {row.mean:>10.1f} ± {row.sd:<4.1f} {here:>26}"
            f"   {paper[row.variant]:>18.2f} {gain:>10}"
        )
    return "\n".join(lines)


def plot_differences(rows: list[VariantSummary], ax, title: str = "") -> None:
    """Each variant's paired difference from the reference with its 95 % interval; a line at 0.

    The verdict rule is visible: an interval that crosses the line shows no difference.
    """
    others = [row for row in rows if row.difference is not None]
    reference = next(row.variant for row in rows if row.difference is None)
    for y, row in enumerate(others):
        d = row.difference
        colour = "tab:gray" if not d.excludes_zero else ("tab:green" if d.mean > 0 else "tab:red")
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
