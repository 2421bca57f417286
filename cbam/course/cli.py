"""The ``cbam-course`` command: one entry point, a subcommand per job.

Each subcommand lives in its own module with a ``main(argv) -> int``; it is imported only when
asked for, so ``cbam-course table4`` does not pay for the notebook tooling.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "table4": ("cbam.table4", "reproduce the paper's Table 4 (params, GFLOPs) by counting"),
    "build": (
        "cbam.course.building.builder",
        "build learner and reference notebooks from solutions/*.py",
    ),
    "grade": (
        "cbam.course.grading.grader",
        "grade submitted notebooks against the executed references",
    ),
    "bench": ("cbam.bench", "time cbam.CBAM against a naive version, x.clone() and torch.compile"),
    "experiment": (
        "cbam.experiments.cli",
        "run a stored ablation experiment (paired seeds) and summarise it",
    ),
}


def usage() -> str:
    lines = ["usage: cbam-course COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    lines += ["", "cbam-course COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(
            f"cbam-course: unknown command {name!r}; expected one of {', '.join(SUBCOMMANDS)}",
            file=sys.stderr,
        )
        print(usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
