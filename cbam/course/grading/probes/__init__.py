"""Probes: the grader's own test of each exercise, judged outside the learner's process.

A check cell runs in the learner's kernel, and whatever runs there can be bent by the learner's
code (``print`` swapped, a check patched, the reference's expected lines replayed). So the
grader does not take a check's word for a pass. After an exercise's check cell, a probe cell
hands the learner's objects inputs drawn from a seed the grader picked at grading time (no one
knows it in advance), and writes *what they computed*, as plain numbers, to the scratch folder.
The grader then computes the same from the same seed with the reference implementation, in its
own process, and compares. An exercise passes when its check cell printed the reference's lines
*and* its probe's values match: printing, patching or writing files cannot pass it; only code
that computes the answers can.

Each probe (one per exercise, in the module of its lesson) has

* ``cases(draw)``: the inputs, drawn from the seed (sizes too, not only values);
* ``observe(subjects, case)``: runs in the sandbox, calls the learner's objects, returns values;
* ``expect(case)``: runs in the grader, the same values from cbam's reference code.

While a probe observes, cbam's own solution of that exercise is refused as in the check cells
(``cbam.checks.own_work``), also when a factory, a copy or a class swap hands it in.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cbam.checks.own_work import (
    OwnWork,
    Shortcut,
    expect_not_built_by_the_library,
    expect_not_the_library,
    watching,
)
from cbam.course.grading.probes.values import differs, encode, too_large

PREFIX = "probe-"  # the file a probe writes: probe-<exercise>.json in the scratch folder
Case = dict


class Draw:
    """Inputs drawn from the grader's seed: the same in the sandbox and in the grader."""

    def __init__(self, seed: int, exercise: str) -> None:
        mixed = (int(seed) * 1_000_003 + zlib.crc32(exercise.encode())) % (2**63 - 1)
        self.generator = torch.Generator().manual_seed(mixed)

    def int(self, low: int, high: int) -> int:
        """A whole number from low to high, both included."""
        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def choice(self, options: Sequence) -> object:
        return options[self.int(0, len(options) - 1)]

    def tensor(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(shape, generator=self.generator)

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=self.generator)

    def seed(self) -> int:
        return self.int(0, 2**31 - 1)


@dataclass(frozen=True)
class Probe:
    exercise: str
    subjects: tuple[str, ...]  # the names the lesson's check cell hands its check
    cases: Callable[[Draw], list[Case]]
    observe: Callable[..., dict]  # (learner's objects..., case) -> values
    expect: Callable[[Case], dict]  # case -> the same values, from cbam's reference code
    own: OwnWork | None = None
    atol: float = 1e-5
    rtol: float = 1e-4


@dataclass
class Judgement:
    passed: bool
    hint: str = ""
    refused: bool = False


_rule: list[OwnWork | None] = [None]  # the refusal in force while a probe observes
_JUDGING = threading.Lock()


def built(product: object, what: str) -> object:
    """``product``, which the learner's code returned, after making sure it is not cbam's own
    solution (an instance of the library's class, however it was made)."""
    if _rule[0] is not None:
        expect_not_built_by_the_library(product, _rule[0], what)
    return product


def _registry() -> dict[tuple[str, str], Probe]:
    """Each lesson's probes, by (lesson, exercise)."""
    from cbam.course.grading.probes import (
        block,
        channel,
        localization,
        resnet,
        shapes,
        spatial,
        speed,
        statistics,
        successors,
        training,
    )

    probes = {}
    modules = (shapes, channel, spatial, block, resnet, training, statistics, localization, speed,
               successors)  # fmt: skip
    for module in modules:
        probes.update({(module.LESSON, p.exercise): p for p in module.PROBES})
    return probes


def probed(lesson: str) -> frozenset[str]:
    """The exercises of ``lesson`` that have a probe."""
    return frozenset(exercise for (number, exercise) in _registry() if number == lesson)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _observe_cases(probe: Probe, subjects: list, cases: list[Case]) -> list:
    observed = []
    for case in cases:
        try:
            values = probe.observe(*subjects, case)
        except (Shortcut, NotImplementedError):
            raise  # decided for the whole exercise by observe()
        except Exception as error:  # the learner's code raised: that is what it computed
            values = {"raised": _first_line(error)}
        observed.append(encode(values))
    return observed


def observe(lesson: str, exercise: str, namespace: dict) -> None:
    """In the kernel, after the exercise's check cell: run the probe, write what came out."""
    seed, folder = os.environ.get("CBAM_PROBE_SEED"), os.environ.get("CBAM_PROBE_DIR")
    if not seed or not folder:
        return  # not a graded run
    probe = _registry()[lesson, exercise]
    record: dict = {"exercise": exercise}
    _rule[0] = probe.own
    try:
        missing = [name for name in probe.subjects if name not in namespace]
        if missing:
            raise NameError(f"name {missing[0]!r} is not defined")
        subjects = [namespace[name] for name in probe.subjects]
        if probe.own is not None:
            for subject in subjects:
                expect_not_the_library(subject, probe.own)
        cases = probe.cases(Draw(int(seed), exercise))
        watched = watching(probe.own) if probe.own is not None else contextlib.nullcontext()
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), watched:
            warnings.simplefilter("ignore")
            torch.manual_seed(int(seed) % 2**63)
            record["cases"] = _observe_cases(probe, subjects, cases)
    except Shortcut as shortcut:
        record = {"exercise": exercise, "refused": shortcut.hint}
    except NotImplementedError:
        record = {"exercise": exercise, "not_implemented": True}
    except Exception as error:
        record = {"exercise": exercise, "error": _first_line(error)}
    finally:
        _rule[0] = None
    if too_large(record):
        record = {"exercise": exercise, "error": "the values computed were too large to hand in"}
    Path(folder, f"{PREFIX}{exercise}.json").write_text(json.dumps(record), encoding="utf-8")


def judge(lesson: str, exercise: str, seed: int, raw: bytes | None) -> Judgement:
    """In the grader: compare what the probe wrote with what the reference computes."""
    if raw is None:
        return Judgement(False, "the grader's probe of this exercise did not finish (the notebook "
                                "stopped, timed out or its kernel died before it)")
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return Judgement(False, "the grader's probe left no readable result")
    if not isinstance(record, dict) or record.get("exercise") != exercise:
        return Judgement(False, "the grader's probe left no readable result")
    if "refused" in record:
        return Judgement(False, str(record["refused"])[:400], refused=True)
    if record.get("not_implemented"):
        return Judgement(False, "not implemented")
    if "error" in record:
        return Judgement(False, f"on the grader's own inputs: {str(record['error'])[:300]}")
    probe = _registry()[lesson, exercise]
    # One judge at a time: the grader grades several notebooks in threads, and what the
    # references compute with is process-wide (torch's random state, the warning filters, and
    # the module hooks FlopCounterMode installs while Table 4 is counted, which would reach into
    # another thread's autograd.grad).
    with _JUDGING, torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = probe.cases(Draw(seed, exercise))
        expected = [encode(probe.expect(case)) for case in cases]
    got = record.get("cases")
    if not isinstance(got, list) or len(got) != len(expected):
        return Judgement(False, "the grader's probe left no readable result")
    for case, mine, theirs in zip(cases, got, expected, strict=True):
        if isinstance(mine, dict) and "raised" in mine and "raised" not in theirs:
            return Judgement(False, f"on the grader's own inputs ({case['about']}) the code "
                                    f"raised {str(mine['raised'])[:200]}")
        if (why := differs(mine, theirs, probe.atol, probe.rtol)) is not None:
            return Judgement(False, f"on the grader's own inputs ({case['about']}): {why}")
    return Judgement(True)
