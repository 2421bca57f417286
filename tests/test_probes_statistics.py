"""The grader's probes of lesson 05's statistics exercises, run as a graded notebook runs them:
``observe`` in the learner's process (seed and folder from the environment), ``judge`` in the
grader's. A right answer passes on every seed, a usual slip fails, the library's own is refused.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from cbam.course.grading import probes
from cbam.experiments import design, stats
from cbam.experiments.student_t import t_quantile

SEEDS = (0, 1, 7, 123)


def _mean_sd(values):
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def paired_interval(a, b, quantile=lambda n: t_quantile(0.975, n - 1)):
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean, sd = _mean_sd(d)
    half = quantile(len(d)) * sd / math.sqrt(len(d))
    return mean, mean - half, mean + half


def holm(p_values, cap=True):
    m = len(p_values)
    adjusted = [0.0] * m
    top = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        value = (m - rank) * p_values[i]
        top = max(top, min(1.0, value) if cap else value)
        adjusted[i] = top
    return adjusted


def width_ratio(rho, n):
    return t_quantile(0.975, n - 1) / t_quantile(0.975, 2 * n - 2) * math.sqrt(1 - rho)


def seeds_needed(d, sd, square=True):
    z = NormalDist().inv_cdf
    base = (z(0.975) + z(0.8)) * sd / d
    return math.ceil(base**2 if square else base)


def equivalence_margin(d, p=0.95):
    mean, sd = _mean_sd(d)
    half = t_quantile(p, len(d) - 1) * sd / math.sqrt(len(d))
    return abs(mean) + half


EXERCISES = {
    # exercise: (the name the check cell hands in, right, a usual slip, the library's own)
    "paired-interval": ("paired_interval", paired_interval,
                        lambda a, b: paired_interval(a, b, quantile=lambda n: 1.96),
                        lambda a, b: (lambda i: (i.mean, i.low, i.high))(
                            stats.mean_interval([x - y for x, y in zip(a, b, strict=True)]))),
    "holm": ("holm", holm, lambda p: [min(1.0, len(p) * v) for v in p], stats.holm),
    "width-ratio": ("width_ratio", width_ratio, lambda rho, n: math.sqrt(1 - rho),
                    design.width_ratio),
    "seeds-needed": ("seeds_needed", seeds_needed, lambda d, sd: seeds_needed(d, sd, False),
                     design.seeds_needed),
    "equivalence-margin": ("equivalence_margin", equivalence_margin,
                           lambda d: equivalence_margin(d, p=0.975), stats.equivalence_margin),
}  # fmt: skip


def graded(monkeypatch, tmp_path, exercise: str, subject, seed: int) -> probes.Judgement:
    """Observe ``subject`` as the notebook's probe cell would, then judge what it wrote."""
    name = EXERCISES[exercise][0]
    monkeypatch.setenv("CBAM_PROBE_SEED", str(seed))
    monkeypatch.setenv("CBAM_PROBE_DIR", str(tmp_path))
    path = tmp_path / f"{probes.PREFIX}{exercise}.json"
    path.unlink(missing_ok=True)
    probes.observe("05", exercise, {name: subject})
    return probes.judge("05", exercise, seed, path.read_bytes())


def test_lesson_05_has_a_probe_for_each_statistics_exercise():
    assert set(EXERCISES) <= probes.probed("05")


@pytest.mark.parametrize("exercise", list(EXERCISES))
def test_a_right_answer_passes_on_every_seed(exercise, monkeypatch, tmp_path):
    for seed in SEEDS:
        judgement = graded(monkeypatch, tmp_path, exercise, EXERCISES[exercise][1], seed)
        assert judgement.passed, (seed, judgement.hint)


@pytest.mark.parametrize("exercise", list(EXERCISES))
def test_a_usual_slip_fails(exercise, monkeypatch, tmp_path):
    for seed in SEEDS:
        judgement = graded(monkeypatch, tmp_path, exercise, EXERCISES[exercise][2], seed)
        assert not judgement.passed and not judgement.refused, seed
        assert "on the grader's own inputs" in judgement.hint


@pytest.mark.parametrize("exercise", list(EXERCISES))
def test_the_librarys_own_function_is_refused(exercise, monkeypatch, tmp_path):
    judgement = graded(monkeypatch, tmp_path, exercise, EXERCISES[exercise][3], 0)
    assert not judgement.passed and judgement.refused
    assert "write it yourself" in judgement.hint


def test_answers_learned_from_another_seed_fail(monkeypatch, tmp_path):
    """The inputs are drawn from the seed: what seed 0 asked is not what seed 1 asks."""
    monkeypatch.setenv("CBAM_PROBE_SEED", "0")
    monkeypatch.setenv("CBAM_PROBE_DIR", str(tmp_path))
    probes.observe("05", "holm", {"holm": holm})
    raw = (tmp_path / f"{probes.PREFIX}holm.json").read_bytes()
    assert probes.judge("05", "holm", 0, raw).passed
    assert not probes.judge("05", "holm", 1, raw).passed


def test_an_exercise_not_written_yet_is_not_implemented(monkeypatch, tmp_path):
    def stub(p_values):
        raise NotImplementedError

    judgement = graded(monkeypatch, tmp_path, "holm", stub, 0)
    assert not judgement.passed and judgement.hint == "not implemented"
