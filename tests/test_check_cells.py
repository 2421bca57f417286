"""A check cell shows its ✓/✗ lines and nothing else: no ``Out[]`` value under them.

The checks return a ``Verdict``, true or false like a bool, which IPython shows as nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from cbam.checks.report import Verdict

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("reference", REFERENCES, ids=[p.stem for p in REFERENCES])
def test_no_check_cell_of_a_reference_has_an_output_value(reference):
    cells = json.loads(reference.read_text(encoding="utf-8"))["cells"]
    checks = [c for c in cells if "check" in c.get("metadata", {})]
    assert checks, f"{reference.name} has no check cell"
    valued = [c["metadata"]["check"] for c in checks
              if any(o["output_type"] == "execute_result" for o in c.get("outputs", []))]
    assert not valued, (f"check cells of {reference.name} show an Out[] value: {valued}; "
                        "rebuild the lesson (cbam-course build)")


def test_a_verdict_is_a_bool_that_ipython_shows_as_nothing():
    assert Verdict(True) and not Verdict(False)
    assert Verdict(True) == True and Verdict(False) == False  # noqa: E712 - the point here
    assert repr(Verdict(False)) == "False"
    # What the kernel's display hook sends as the Out[] value: nothing for a verdict (the
    # kernel then sends no execute_result), the text for an ordinary bool.
    formatter = InteractiveShell.instance().display_formatter
    assert formatter.format(Verdict(True)) == ({}, {})
    assert formatter.format(True)[0] == {"text/plain": "True"}
