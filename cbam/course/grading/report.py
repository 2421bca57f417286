"""A graded submission: one verdict per exercise, the score, and how to print it.

Exit status of ``cbam-course grade``: 0 when every exercise passed, 1 when some failed, 2 when
the input could not be graded at all (not a notebook, no reference, another lesson).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PASSED = "passed"


@dataclass
class ExerciseResult:
    """``status``: passed, failed, not implemented, missing, timed out, suspicious or not run;
    ``hint`` says why in one line; ``lines`` are what the exercise's checks printed."""

    name: str
    status: str
    hint: str = ""
    lines: list[str] = field(default_factory=list)
    points: float = 1.0  # what the exercise is worth (the lesson's metadata, default 1)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0.0


@dataclass
class Report:
    submission: str
    student: str = ""  # the submission's folder (or file) name: a gradebook row
    lesson: str | None = None
    slug: str | None = None
    reference: str | None = None
    exercises: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    sandbox: str | None = None  # how its code was confined; None: it was not
    cpu_seconds: float | None = None  # CPU time of the notebook's run, where a cgroup counted it

    @property
    def score(self) -> int:
        return sum(e.passed for e in self.exercises)

    @property
    def points(self) -> float:
        return sum(e.earned for e in self.exercises)

    @property
    def points_possible(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def out_of(self) -> int:
        return len(self.exercises)

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 2
        return 0 if self.score == self.out_of else 1

    def exercise(self, name: str) -> ExerciseResult:
        for result in self.exercises:
            if result.name == name:
                return result
        raise KeyError(f"no exercise {name!r} in the report of {self.submission}; it has "
                       f"{[e.name for e in self.exercises]}")

    def to_dict(self) -> dict:
        data = asdict(self)
        for result in data["exercises"]:
            result["passed"] = result["status"] == PASSED
        data.update(score=self.score, out_of=self.out_of, points=self.points,
                    points_possible=self.points_possible, exit_code=self.exit_code,
                    seconds=round(self.seconds, 2))
        return data

    def to_text(self) -> str:
        if self.error is not None:
            return f"{self.submission}: cannot grade: {self.error}"
        title = f"lesson {self.lesson}" + (f" ({self.slug})" if self.slug else "")
        lines = [f"{self.submission}: {title}"]
        width = max(len(e.name) for e in self.exercises) if self.exercises else 0
        for result in self.exercises:
            mark = "PASS" if result.passed else "FAIL"
            hint = f"  {result.hint}" if result.hint and not result.passed else ""
            lines.append(f"  {mark}  {result.name:<{width}}{hint}".rstrip())
        lines.append(f"  score {self.score}/{self.out_of}")
        if self.sandbox:
            lines.append(f"  sandbox: {self.sandbox}")
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
