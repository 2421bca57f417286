"""The grader's probes, outside a graded run: their inputs, their comparison, their judging."""

from __future__ import annotations

import json
import threading

import torch

from cbam.course.grading import probes
from cbam.course.grading.probes.values import OneOf, differs, encode


def test_every_exercise_of_the_course_has_a_probe():
    from cbam.course.grading.references import load_reference, references_in, solutions_dir

    for lesson, path in references_in(solutions_dir()).items():
        assert set(load_reference(path).exercises) == probes.probed(lesson), lesson


def test_the_inputs_are_the_seeds_and_differ_from_seed_to_seed():
    first = probes.Draw(7, "channel-attention").tensor(3, 4)
    assert torch.equal(first, probes.Draw(7, "channel-attention").tensor(3, 4))
    assert not torch.equal(first, probes.Draw(8, "channel-attention").tensor(3, 4))
    assert not torch.equal(first, probes.Draw(7, "shared-mlp").tensor(3, 4))


def test_values_are_compared_by_shape_number_and_type():
    tensor = encode(torch.ones(2, 3))
    assert differs(tensor, tensor, 1e-5, 1e-4) is None
    assert "shape (3, 2)" in differs(encode(torch.ones(3, 2)), tensor, 1e-5, 1e-4)
    assert "different values" in differs(encode(torch.ones(2, 3) * 1.01), tensor, 1e-5, 1e-4)
    assert differs(3, 3, 0, 0) is None and differs(3.0, 3, 0, 0) is not None  # an int is asked
    assert "no out" in differs({}, {"out": 1}, 0, 0)
    assert differs(encode(7), encode(OneOf(6, 7)), 0, 0) is None
    assert differs(encode(5), encode(OneOf(6, 7)), 0, 0) is not None


def test_what_cannot_be_read_fails_the_exercise():
    for raw in (None, b"not json", b"[]", json.dumps({"exercise": "other"}).encode()):
        assert not probes.judge("01", "channel-attention", 1, raw).passed
    refused = probes.judge("01", "channel-attention", 1, json.dumps(
        {"exercise": "channel-attention", "refused": "... write it yourself"}).encode())
    assert refused.refused and not refused.passed


def _wrong_record(lesson: str, exercise: str, seed: int) -> bytes:
    probe = probes._registry()[lesson, exercise]
    cases = probe.cases(probes.Draw(seed, exercise))
    return json.dumps({"exercise": exercise, "cases": [{} for _ in cases]}).encode()


def test_judging_in_threads_is_safe():
    """Table 4's reference counts under FlopCounterMode, whose module hooks are process-wide:
    judged while another thread differentiates a reference, they broke its autograd.grad."""
    errors: list[BaseException] = []

    def judge(lesson: str, exercise: str, times: int) -> None:
        for seed in range(times):
            try:
                assert not probes.judge(lesson, exercise, seed,
                                        _wrong_record(lesson, exercise, seed)).passed
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)

    threads = [threading.Thread(target=judge, args=("04", "table4", 2)),
               threading.Thread(target=judge, args=("02", "spatial-attention", 40))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
