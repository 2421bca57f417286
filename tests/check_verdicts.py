"""Reading what a check printed, for the tests of lessons 03 and 04's checks."""

from __future__ import annotations


def verdicts(capsys) -> list[tuple[bool, str, str]]:
    """The printed lines as (passed, description, hint)."""
    found = []
    for line in capsys.readouterr().out.splitlines():
        mark, rest = line[0], line[2:]
        _exercise, _, rest = rest.partition(": ")
        description, _, hint = rest.partition(" — ")
        found.append((mark == "✓", description, hint))
    return found


def assert_all_pass(passed: bool, capsys, count: int) -> None:
    lines = verdicts(capsys)
    assert passed, lines
    assert len(lines) == count and all(ok for ok, _, _ in lines), lines


def assert_fails_with(passed: bool, capsys, hint: str) -> None:
    lines = verdicts(capsys)
    assert not passed
    failed = [h for ok, _, h in lines if not ok]
    assert failed, lines
    assert any(hint in h for h in failed), f"no failing line says {hint!r}: {failed}"


def assert_not_implemented(passed: bool, capsys) -> None:
    lines = capsys.readouterr().out.splitlines()
    assert not passed
    assert len(lines) == 1 and lines[0].startswith("✗") and "not implemented" in lines[0]
