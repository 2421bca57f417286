"""``cbam-course experiment NAME``: run (or resume) a stored experiment, then summarise it."""

from __future__ import annotations

import argparse
import sys

from cbam.experiments.runner import parse_seeds, run_experiment
from cbam.experiments.settings import MODES
from cbam.experiments.stats import format_table, plateau_change, summarize
from cbam.experiments.variants import EXPERIMENTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cbam-course experiment",
        description="Train every (variant, seed) of an experiment and print its summary. Runs "
        "already in --out are kept and not run again.",
    )
    parser.add_argument("name", choices=tuple(EXPERIMENTS))
    parser.add_argument("--variants", help="comma-separated (default: all of the experiment's)")
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,5-6 (default 0-9)")
    parser.add_argument("--mode", choices=MODES, default="quick")
    parser.add_argument("--out", help="the result file (JSON); written after every run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    parser.add_argument(
        "--keep-models", default="", help="seeds whose trained models are saved beside --out"
    )
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
        keep = parse_seeds(args.keep_models) if args.keep_models else []
        variants = args.variants.split(",") if args.variants else None
        result = run_experiment(
            args.name,
            variants=variants,
            seeds=seeds,
            mode=args.mode,
            out=args.out,
            jobs=args.jobs,
            keep_models=keep,
            command=["cbam-course", "experiment", *(sys.argv[2:] if argv is None else argv)],
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"cbam-course experiment: {error}", file=sys.stderr)
        return 2
    rows = summarize(result) if len({r["seed"] for r in result["runs"]}) > 1 else None
    if rows is not None and all(len(row.seeds) > 1 for row in rows):
        print(format_table(rows))
        for row in rows:
            print(
                f"{row.variant}: the mean accuracy moves "
                f"{plateau_change(result, row.variant):.2f} points over the last 3 epochs"
            )
    else:
        for run in result["runs"]:
            print(
                f"{run['variant']} seed {run['seed']}: final validation accuracy "
                f"{100 * run['final_val_acc']:.2f} %"
            )
    return 0
