"""Solution blocks in exercise cells, and the stubs that replace them in learner notebooks.

In a lesson source an exercise cell holds one or more blocks::

    def global_descriptors(x):
        ### BEGIN SOLUTION
        ### STUB: return (mean, max), each of shape (N, C, 1, 1)
        return x.mean(...), x.amax(...)
        ### END SOLUTION

The learner notebook gets, at the indentation of the markers::

        # YOUR CODE HERE
        raise NotImplementedError("exercise global-descriptors: return (mean, max), ...")

The optional ``### STUB:`` line says what to write; it is dropped from the learner notebook.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "### STUB:"
YOUR_CODE_HERE = "# YOUR CODE HERE"
DEFAULT_STUB_TEXT = "write this part, then run the check cell below"

# Anything an author may have meant as a marker; a near miss (two hashes, lower case, text after
# the marker) is an error, since silently leaving it would ship the solution to learners.
_MARKER_LIKE = re.compile(r"^\s*#+\s*(BEGIN\s+SOLUTION|END\s+SOLUTION|STUB\s*:)", re.IGNORECASE)


class MarkerError(ValueError):
    """Malformed solution markers; the message names the line within the cell."""


@dataclass(frozen=True)
class SolutionBlock:
    """One ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block, by 0-based line index."""

    begin: int
    end: int
    indent: str
    stub_text: str | None

    def solution_lines(self, lines: list[str]) -> list[str]:
        """The lines between the markers, without the ``### STUB:`` line."""
        inside = lines[self.begin + 1 : self.end]
        return [line for line in inside if not line.strip().startswith(STUB)]


def has_markers(source: str) -> bool:
    """Whether any line of ``source`` is, or looks like, a solution marker."""
    return any(_MARKER_LIKE.match(line) for line in source.splitlines())


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def find_blocks(source: str) -> list[SolutionBlock]:
    """The solution blocks of a cell's source, checked for balance, indentation and spelling."""
    lines = source.splitlines()
    blocks: list[SolutionBlock] = []
    open_at: int | None = None
    stub_text: str | None = None
    for index, line in enumerate(lines):
        number, text = index + 1, line.strip()
        if _MARKER_LIKE.match(line) and text not in (BEGIN, END) and not text.startswith(STUB):
            raise MarkerError(
                f"line {number} {text!r} looks like a solution marker but is not one; markers are "
                f"exactly {BEGIN!r}, {END!r} and {STUB!r} <text>, each on a line of its own"
            )
        if text == BEGIN:
            if open_at is not None:
                raise MarkerError(
                    f"line {number}: {BEGIN!r} inside the block opened on line {open_at + 1}; "
                    f"close that block with {END!r} first"
                )
            open_at, stub_text = index, None
        elif text == END:
            if open_at is None:
                raise MarkerError(f"line {number}: {END!r} without a {BEGIN!r} before it")
            indent = _indent_of(lines[open_at])
            if _indent_of(line) != indent:
                raise MarkerError(
                    f"line {number}: {END!r} is indented {len(_indent_of(line))} characters but "
                    f"its {BEGIN!r} on line {open_at + 1} is indented {len(indent)}; "
                    "put both at the indentation of the code they hold"
                )
            blocks.append(SolutionBlock(open_at, index, indent, stub_text))
            open_at = None
        elif text.startswith(STUB):
            if open_at is None:
                raise MarkerError(f"line {number}: {STUB!r} outside a solution block")
            if stub_text is not None:
                raise MarkerError(f"line {number}: a second {STUB!r} line in the same block")
            stub_text = text[len(STUB) :].strip()
            if not stub_text:
                raise MarkerError(f"line {number}: {STUB!r} needs the text to show the learner")
        elif open_at is not None and text and not line.startswith(_indent_of(lines[open_at])):
            raise MarkerError(
                f"line {number} is indented less than the {BEGIN!r} on line {open_at + 1}; the "
                "stub replaces the whole block at the markers' indentation, so the code in the "
                "block must be indented at least as far as the markers"
            )
    if open_at is not None:
        raise MarkerError(f"the {BEGIN!r} on line {open_at + 1} has no {END!r} after it")
    return blocks


def stub_lines(exercise: str, indent: str, stub_text: str | None) -> list[str]:
    """The two lines that stand for a solution block in the learner notebook."""
    message = f"exercise {exercise}: {stub_text or DEFAULT_STUB_TEXT}"
    # A JSON string is a valid Python string literal, escapes included.
    literal = json.dumps(message, ensure_ascii=False)
    return [f"{indent}{YOUR_CODE_HERE}", f"{indent}raise NotImplementedError({literal})"]


def stub_source(source: str, exercise: str) -> str:
    """``source`` with each solution block replaced by a stub naming ``exercise``."""
    lines = source.splitlines()
    out: list[str] = []
    position = 0
    for block in find_blocks(source):
        out += lines[position : block.begin]
        out += stub_lines(exercise, block.indent, block.stub_text)
        position = block.end + 1
    out += lines[position:]
    return "\n".join(out)


def solution_lines(source: str) -> list[str]:
    """Every line inside the solution blocks of ``source`` (markers and stub text excluded)."""
    lines = source.splitlines()
    return [line for block in find_blocks(source) for line in block.solution_lines(lines)]
