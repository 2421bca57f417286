"""The energy-share check of lesson 06 passes right answers and names the usual mistakes."""

from __future__ import annotations

import pytest
import torch

from cbam.checks.localization import check_energy_share
from cbam.localization import energy_share


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def loop_over_images(maps, masks):
    scores = []
    for m, k in zip(maps, masks, strict=True):
        total = m.sum()
        scores.append(m[k].sum() / total if total > 0 else k.float().mean())
    return torch.stack(scores)


@pytest.mark.parametrize("implementation", [energy_share, loop_over_images])
def test_correct_implementations_pass(implementation, capsys):
    assert check_energy_share(implementation)
    lines = _lines(capsys)
    assert len(lines) == 4 and all(line.startswith("✓ energy-share:") for line in lines)


def whole_batch(maps, masks):
    return (maps * masks).sum() / maps.sum()


def unnormalised(maps, masks):
    return (maps * masks).flatten(1).sum(1)


def outside(maps, masks):
    return (maps * ~masks).flatten(1).sum(1) / maps.flatten(1).sum(1)


def by_area(maps, masks):
    return (maps * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)


def zero_division(maps, masks):
    return (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1)


@pytest.mark.parametrize(
    ("implementation", "hint"),
    [
        (whole_batch, "one number for the whole batch"),
        (unnormalised, "not divided by the map's total mass"),
        (outside, "share outside the object"),
        (by_area, "divided by the object's area"),
        (zero_division, "NaN or inf"),
    ],
)
def test_wrong_implementations_fail_with_their_hint(implementation, hint, capsys):
    assert not check_energy_share(implementation)
    failed = [line for line in _lines(capsys) if line.startswith("✗")]
    assert failed and any(hint in line for line in failed), failed


def test_a_stub_gives_one_not_implemented_line(capsys):
    def stub(maps, masks):
        raise NotImplementedError("exercise energy-share: write this part")

    assert not check_energy_share(stub)
    lines = _lines(capsys)
    assert len(lines) == 1 and "not implemented" in lines[0]
