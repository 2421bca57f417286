"""Compare two `pip freeze` listings: fail, naming them, when packages of the first changed.

    python scripts/colab_freeze_diff.py BEFORE AFTER [--only VERSIONS]

BEFORE is Colab's environment as shipped, AFTER the same once the course is installed. A
package that changed version or disappeared is a change to Colab's own packages (exit 1); a
package added beside them (the course itself) is only listed. --only keeps the comparison to the
packages a versions file pins. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def canonical(name: str) -> str:
    """Package names as pip compares them (PEP 503): case and -_. runs do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_freeze(text: str) -> dict[str, str]:
    """name -> version (or the URL of a direct reference) for each line of a freeze."""
    packages = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(\S+)|@\s*(\S+))$", line)
        if match is None:
            raise ValueError(f"not a `pip freeze` line: {line!r}")
        name, version, url = match.groups()
        packages[canonical(name)] = version or url
    return packages


def differences(before: dict[str, str], after: dict[str, str]) -> tuple[list[str], list[str]]:
    """(changes to what ``before`` had, packages ``after`` added), each as readable lines."""
    changed = [
        f"{name} {version} -> {after[name]}" if name in after else f"{name} {version} removed"
        for name, version in sorted(before.items())
        if after.get(name) != version
    ]
    added = [f"{name} {after[name]}" for name in sorted(set(after) - set(before))]
    return changed, added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--only", type=Path, help="compare only the packages this file pins")
    args = parser.parse_args(argv)
    before = read_freeze(args.before.read_text())
    after = read_freeze(args.after.read_text())
    if args.only is not None:
        pinned = set(read_freeze(args.only.read_text()))
        before = {name: v for name, v in before.items() if name in pinned}
        after = {name: v for name, v in after.items() if name in pinned}
    changed, added = differences(before, after)
    for line in added:
        print(f"added: {line}")
    if changed:
        print(f"{len(changed)} of Colab's packages changed:")
        for line in changed:
            print(f"  {line}")
        return 1
    print(f"none of the {len(before)} packages compared changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
