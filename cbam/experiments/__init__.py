"""Experiments that can tell: the paper's ablations in miniature, paired, converged, stored.

A named experiment is a grid of variants x seeds on one task with one set of settings, fixed in
code (``settings.py``) before any comparison was run. ``variants.py`` lists the four and the
paper's numbers beside them; ``runner.py`` trains the grid with paired seeds; ``store.py`` keeps
the results with their provenance; ``stats.py`` summarises them with one verdict rule.

>>> from cbam import experiments
>>> result = experiments.load("attention")          # the course's stored runs
>>> print(experiments.format_table(experiments.summarize(result)))

Re-make a stored result (on a CPU, one process per core)::

    cbam-course experiment attention --seeds 0-9 --jobs 2 --out cbam/results/attention.json
"""

from cbam.experiments.design import break_even_correlation, seeds_needed, width_ratio
from cbam.experiments.figures import paper_comparison, plot_differences
from cbam.experiments.runner import build_model, parse_seeds, run_experiment, run_one
from cbam.experiments.settings import FULL, MODES, QUICK, Settings, settings_for
from cbam.experiments.stats import (
    Interval,
    VariantSummary,
    equivalence_margin,
    final_accuracies,
    format_table,
    holm,
    mean_interval,
    plateau_change,
    summarize,
)
from cbam.experiments.store import load, load_model_state, packaged_path
from cbam.experiments.variants import (
    EXPERIMENTS,
    PAPER_BASELINE_TOP1_ERROR,
    Experiment,
    get_experiment,
)

__all__ = [
    "EXPERIMENTS",
    "FULL",
    "MODES",
    "PAPER_BASELINE_TOP1_ERROR",
    "QUICK",
    "Experiment",
    "Interval",
    "Settings",
    "VariantSummary",
    "break_even_correlation",
    "build_model",
    "equivalence_margin",
    "format_table",
    "get_experiment",
    "holm",
    "load",
    "load_model_state",
    "mean_interval",
    "packaged_path",
    "paper_comparison",
    "parse_seeds",
    "plateau_change",
    "plot_differences",
    "run_experiment",
    "run_one",
    "seeds_needed",
    "settings_for",
    "summarize",
    "width_ratio",
    "final_accuracies",
]
