"""What the sandbox and the probes cost: lessons 01-03 graded several ways, side by side.

Each round grades every reference notebook of the lessons once per way, in an order that turns
from round to round, so that a busy machine slows every way alike:

* ``sandbox``: this checkout's grader, as an instructor runs it;
* ``no sandbox``: the same with ``--no-sandbox`` (the probes still run);
* ``baseline``: another checkout's grader (``--baseline DIR``, e.g. a ``git worktree`` of an
  earlier commit), to compare with the grader as it was.

Printed: each lesson's median seconds (the grader's own count for the notebook) and the ratios
to ``sandbox``, with their spread over rounds. Quote the ratios of one run, not the seconds.

    python scripts/grading_cost.py [--rounds 3] [--lessons 01 02 03] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def grade(notebook: Path, checkout: Path, *options: str) -> float:
    """The grader's seconds for ``notebook``, graded by ``checkout``'s code in a new process."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    run = subprocess.run([sys.executable, "-m", "cbam.course.cli", "grade", str(notebook),
                          "--json", "--timeout", "120", *options], cwd=checkout, env=env,
                         capture_output=True, text=True, check=False)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        why = run.stderr[-2000:]
        raise SystemExit(f"{checkout} could not grade {notebook.name}:\n{why}") from None
    if report["score"] != report["out_of"]:
        raise SystemExit(f"{notebook.name} did not score full marks with {checkout} {options}")
    return float(report["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lessons", nargs="+", default=["01", "02", "03"])
    parser.add_argument("--baseline", type=Path, help="another checkout of the course")
    args = parser.parse_args()
    ways = {"sandbox": (ROOT, ()), "no sandbox": (ROOT, ("--no-sandbox",))}
    if args.baseline:
        ways["baseline"] = (args.baseline.resolve(), ())
    notebooks = [next((ROOT / "solutions").glob(f"{lesson}_*.ipynb")) for lesson in args.lessons]
    seconds: dict[tuple[str, str], list[float]] = {}
    names = list(ways)
    for round_number in range(args.rounds):
        order = names[round_number % len(names):] + names[:round_number % len(names)]
        for notebook in notebooks:
            for way in order:
                checkout, options = ways[way]
                seconds.setdefault((notebook.name, way), []).append(
                    grade(notebook, checkout, *options))
    others = [w for w in names if w != "sandbox"]
    print(f"{'notebook':<28}" + "".join(f"{w + ', s':>15}" for w in names)
          + "".join(f"{'sandbox / ' + w:>24}" for w in others))
    ratios: dict[str, list[float]] = {w: [] for w in others}
    for notebook in notebooks:
        line = f"{notebook.name:<28}" + "".join(
            f"{statistics.median(seconds[notebook.name, w]):15.1f}" for w in names)
        for way in others:
            pairs = [a / b for a, b in zip(seconds[notebook.name, "sandbox"],
                                           seconds[notebook.name, way], strict=True)]
            ratios[way] += pairs
            line += f"{statistics.median(pairs):16.2f} ({min(pairs):.2f}-{max(pairs):.2f})"
        print(line)
    for way, found in ratios.items():
        print(f"sandbox / {way}: median {statistics.median(found):.2f}, range "
              f"{min(found):.2f}-{max(found):.2f} over {len(found)} pairs")


if __name__ == "__main__":
    main()
