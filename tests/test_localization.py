"""Localisation scores on hand-made maps and masks whose answers are known."""

from __future__ import annotations

import pytest
import torch

from cbam.localization import (
    energy_share,
    localization_scores,
    pointing_game,
    rescale_maps,
    resize_maps,
    uniform_maps,
)


@pytest.fixture
def mask() -> torch.Tensor:
    """One 8x8 image whose object is the 2x3 block at rows 1-2, columns 4-6 (6 of 64 pixels)."""
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 1:3, 4:7] = True
    return mask


def test_pointing_hit_and_miss(mask):
    hit = torch.zeros(1, 8, 8)
    hit[0, 2, 5] = 1.0
    miss = torch.zeros(1, 8, 8)
    miss[0, 6, 1] = 1.0
    assert pointing_game(hit, mask).tolist() == [1.0]
    assert pointing_game(miss, mask).tolist() == [0.0]


def test_pointing_ties_count_as_a_random_pick(mask):
    tied = torch.zeros(1, 8, 8)
    tied[0, 1, 4] = tied[0, 7, 7] = tied[0, 0, 0] = tied[0, 2, 6] = 3.0  # 2 of 4 peaks inside
    assert pointing_game(tied, mask).tolist() == [0.5]


def test_energy_all_inside_none_inside_and_half(mask):
    inside = mask.float()
    outside = (~mask).float()
    half = inside + outside * (6 / 58)  # as much mass outside as inside
    assert energy_share(inside, mask).tolist() == [1.0]
    assert energy_share(outside, mask).tolist() == [0.0]
    assert energy_share(half, mask).item() == pytest.approx(0.5)


def test_uniform_baseline_scores_the_area_share(mask):
    uniform = uniform_maps(mask)
    assert uniform.shape == mask.shape
    assert energy_share(uniform, mask).item() == pytest.approx(6 / 64)
    assert pointing_game(uniform, mask).item() == pytest.approx(6 / 64)
    zeros = torch.zeros(1, 8, 8)  # no mass anywhere counts as the uniform map
    assert energy_share(zeros, mask).item() == pytest.approx(6 / 64)


def test_batches_are_scored_per_image_and_averaged(mask):
    masks = mask.repeat(3, 1, 1)
    maps = torch.stack([mask[0].float(), (~mask[0]).float(), torch.ones(8, 8)])
    assert energy_share(maps, masks).tolist() == pytest.approx([1.0, 0.0, 6 / 64])
    scores = localization_scores(maps[:, None], masks)  # (N, 1, H, W) maps are fine too
    assert scores["energy"] == pytest.approx((1 + 0 + 6 / 64) / 3)
    assert scores["pointing"] == pytest.approx((1 + 0 + 6 / 64) / 3)


def test_rescale_and_resize():
    maps = torch.tensor([[[0.5, 0.6], [0.7, 0.9]]])
    rescaled = rescale_maps(maps)
    assert rescaled.min().item() == 0.0 and rescaled.max().item() == pytest.approx(1.0)
    assert torch.equal(rescaled.flatten().argsort(), maps.flatten().argsort())
    assert rescale_maps(torch.full((1, 2, 2), 0.3)).abs().max().item() == 0.0
    assert resize_maps(maps, (8, 8)).shape == (1, 8, 8)
    assert resize_maps(maps[:, None], (4, 6)).shape == (1, 4, 6)


def test_bad_inputs_say_what_was_expected(mask):
    with pytest.raises(ValueError, match="same shape.*resize_maps"):
        energy_share(torch.ones(1, 4, 4), mask)
    with pytest.raises(TypeError, match="bool"):
        pointing_game(torch.ones(1, 8, 8), mask.float())
    with pytest.raises(ValueError, match="non-negative"):
        energy_share(-torch.ones(1, 8, 8), mask)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        energy_share(torch.ones(8, 8), mask[0])
