"""Reading a notebook file without trusting it: JSON in, cells and the course's metadata out.

A submitted notebook may be anything: truncated JSON, a notebook from another course, cells
whose metadata was edited by hand. ``read_notebook`` opens the file read-only, never writes
to it, and turns every problem that makes it ungradable into ``UnusableNotebook`` with a
message that says what was expected and what was found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UnusableNotebook(Exception):
    """The file cannot be graded at all (the grader exits with status 2)."""


def normalize_lesson(value: object) -> str | None:
    """``1``, ``"1"`` and ``"01"`` all name lesson ``"01"``; anything else is kept as text."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    return f"{int(text):02d}" if text.isdigit() else text


def _text(value: object) -> str:
    """A cell source as stored on disk: a string or a list of lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part for part in value if isinstance(part, str))
    return ""


@dataclass(frozen=True)
class Cell:
    """One cell, as far as the grader cares; ``number`` counts from 1, as a reader would."""

    number: int
    cell_type: str
    source: str
    metadata: dict[str, Any]
    id: str | None
    outputs: list[Any] = field(default_factory=list)
    execution_count: int | None = None

    @property
    def tags(self) -> list[str]:
        tags = self.metadata.get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    @property
    def exercise(self) -> str | None:
        """The exercise this cell holds, from its metadata."""
        name = self.metadata.get("exercise")
        return name if isinstance(name, str) and name else None

    @property
    def check(self) -> str | None:
        """The exercise this cell checks, from its metadata."""
        name = self.metadata.get("check")
        return name if isinstance(name, str) and name else None

    @property
    def is_code(self) -> bool:
        return self.cell_type == "code"

    def first_line(self, width: int = 60) -> str:
        line = next((s.strip() for s in self.source.splitlines() if s.strip()), "")
        return line if len(line) <= width else line[: width - 1] + "…"


@dataclass(frozen=True)
class Notebook:
    """A notebook's cells and its ``cbam`` metadata (lesson, slug, course version)."""

    path: Path
    content: dict[str, Any]
    cells: list[Cell]
    lesson: str | None
    slug: str | None
    course_version: str | None

    @property
    def code_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.is_code]


def _parse(data: bytes, path: Path) -> dict[str, Any]:
    if not data.strip():
        raise UnusableNotebook(f"{path} is empty; expected a Jupyter notebook (.ipynb JSON)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnusableNotebook(
            f"{path} is not UTF-8 text (byte {error.start}); expected a Jupyter notebook "
            "(.ipynb JSON)"
        ) from None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise UnusableNotebook(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column "
            f"{error.colno}); expected a Jupyter notebook (.ipynb). Was it saved completely? "
            "Download it again from Jupyter or Colab (File > Download > .ipynb)."
        ) from None
    if not isinstance(content, dict):
        raise UnusableNotebook(
            f"{path} holds JSON {type(content).__name__}, not a Jupyter notebook "
            "(a JSON object with a 'cells' list)"
        )
    if "cells" not in content and "worksheets" in content:
        raise UnusableNotebook(
            f"{path} is an nbformat 3 notebook; open it in a current Jupyter and save it "
            "(nbformat 4) before grading"
        )
    if not isinstance(content.get("cells"), list):
        keys = ", ".join(sorted(map(str, content))[:8]) or "none"
        raise UnusableNotebook(
            f"{path} is JSON but not a Jupyter notebook: expected a 'cells' list, found the "
            f"keys {keys}"
        )
    return content


def read_notebook(path: str | Path) -> Notebook:
    """Read ``path`` (read-only) into a ``Notebook``, or raise ``UnusableNotebook``."""
    path = Path(path)
    if path.is_dir():
        raise UnusableNotebook(f"{path} is a folder; expected a notebook file (.ipynb)")
    try:
        with path.open("rb") as stream:  # read-only: a submission is never written to
            data = stream.read()
    except OSError as error:
        raise UnusableNotebook(f"cannot read {path}: {error.strerror or error}") from None
    content = _parse(data, path)
    cells = []
    for number, raw in enumerate(content["cells"], start=1):
        if not isinstance(raw, dict):
            raise UnusableNotebook(f"{path}: cell {number} is not a JSON object; the file is "
                                   "damaged")
        metadata = raw.get("metadata")
        outputs = raw.get("outputs")
        count = raw.get("execution_count")
        cell_id = raw.get("id")
        cells.append(Cell(
            number=number,
            cell_type=str(raw.get("cell_type", "")),
            source=_text(raw.get("source")),
            metadata=metadata if isinstance(metadata, dict) else {},
            id=cell_id if isinstance(cell_id, str) else None,
            outputs=outputs if isinstance(outputs, list) else [],
            execution_count=count if isinstance(count, int) else None,
        ))
    metadata = content.get("metadata")
    course = metadata.get("cbam") if isinstance(metadata, dict) else None
    course = course if isinstance(course, dict) else {}
    version = course.get("course_version")
    slug = course.get("slug")
    return Notebook(
        path=path,
        content=content,
        cells=cells,
        lesson=normalize_lesson(course.get("lesson")),
        slug=str(slug) if slug is not None else None,
        course_version=str(version) if version is not None else None,
    )
