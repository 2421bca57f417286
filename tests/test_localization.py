"""Localisation scores on hand-made maps and masks whose answers are known."""

from __future__ import annotations

import pytest
import torch

from cbam import experiments
from cbam.data import PALETTE, SyntheticShapes
from cbam.gradcam import grad_cam
from cbam.localization import (
    blurred_masks,
    energy_share,
    gaussian_maps,
    localization_scores,
    painted_maps,
    pointing_game,
    randomized_copy,
    rescale_maps,
    resize_maps,
    top_down,
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


def test_near_ties_within_the_tolerance_share_the_peak(mask):
    maps = torch.zeros(1, 8, 8)
    maps[0, 1, 4] = 1.0  # on the object
    maps[0, 7, 7] = 1.0 - 1e-6  # off it, equal up to float rounding
    assert pointing_game(maps, mask).tolist() == [0.5]
    assert pointing_game(maps, mask, tolerance=0).tolist() == [1.0]
    maps[0, 7, 7] = 0.99  # a real difference stays one
    assert pointing_game(maps, mask).tolist() == [1.0]
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(maps, mask, tolerance=1.5)


def test_pointing_reads_signed_maps_as_their_sigmoid(mask):
    logits = torch.linspace(-20, 5, 64).view(1, 8, 8)
    logits[0, 2, 5] = 30.0  # on the object; sigmoid(30) and sigmoid(25) are both 1.0 in float32
    logits[0, 6, 0] = 25.0
    assert pointing_game(logits, mask).tolist() == [1.0]
    assert pointing_game(torch.sigmoid(logits), mask).tolist() == [0.5]


def test_gaussian_peaks_at_the_centre_whatever_its_width():
    masks = torch.zeros(3, 16, 16, dtype=torch.bool)
    masks[0, 7:9, 7:9] = True  # the four middle pixels
    masks[1, 7, 7] = True  # one of them
    masks[2, 0:4, 0:4] = True  # a corner
    for sigma in (1.0, 2.0, 5.0):
        maps = gaussian_maps(masks, sigma)
        assert maps.shape == masks.shape and torch.equal(maps[0], maps[2])
        assert pointing_game(maps, masks).tolist() == [1.0, 0.25, 0.0]
    centred = energy_share(gaussian_maps(masks[:1], 1.0), masks[:1]).item()
    wide = energy_share(gaussian_maps(masks[:1], 5.0), masks[:1]).item()
    assert centred > wide > 4 / 256


def test_painted_map_of_an_image_without_clutter_is_its_object():
    shapes = SyntheticShapes(40, seed=3, size=16, clutter=0)
    painted = painted_maps(shapes.unnormalized())
    assert torch.equal(painted.bool(), shapes.masks)
    assert pointing_game(painted, shapes.masks).tolist() == [1.0] * 40
    assert energy_share(painted, shapes.masks).tolist() == pytest.approx([1.0] * 40)


def test_painted_map_with_clutter_covers_the_object_and_more():
    shapes = SyntheticShapes(200, seed=4, size=16, clutter=8)
    painted = painted_maps(shapes.unnormalized()).bool()
    assert (painted | ~shapes.masks).all()  # every object pixel is painted
    extra = (painted & ~shapes.masks).flatten(1).sum(1)
    assert (extra > 0).float().mean() > 0.9  # clutter is painted too, in almost every image
    scores = pointing_game(painted.float(), shapes.masks)
    assert 0 < scores.mean() < 1
    background = SyntheticShapes(50, seed=5, size=16, clutter=0)
    grey = background.unnormalized() * ~background.masks[:, None]  # the object blacked out
    assert painted_maps(grey).sum() == 0  # noisy grey is never a palette colour


def test_painted_map_is_blind_to_the_class():
    images = torch.full((2, 3, 4, 4), 0.4)
    images[0, :, 1, 1] = PALETTE[0]
    images[1, :, 1, 1] = PALETTE[5]
    painted = painted_maps(images)
    assert torch.equal(painted[0], painted[1]) and painted.sum().item() == 2.0
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        painted_maps(images[:, :2])


def test_blurred_masks_cost_energy_at_coarse_resolution():
    shapes = SyntheticShapes(50, seed=6, size=16)
    full = blurred_masks(shapes.masks, (16, 16))
    assert torch.equal(full.bool(), shapes.masks)
    shares = [
        energy_share(blurred_masks(shapes.masks, (s, s)), shapes.masks).mean().item()
        for s in (16, 8, 4)
    ]
    assert shares[0] == pytest.approx(1.0) and shares[0] > shares[1] > shares[2] > 0.05


def trained_cbam() -> tuple[torch.nn.Module, torch.nn.Module]:
    experiment = experiments.get_experiment("attention")
    build = lambda seed: experiments.build_model(experiment, "cbam", seed, experiments.QUICK, 4)  # noqa: E731
    model = build(0)
    model.load_state_dict(experiments.load_model_state("attention", "cbam", 0))
    return model.eval(), build(100).eval()


def test_top_down_names_the_stages_from_the_output_back():
    model, _ = trained_cbam()
    assert top_down(model) == ["fc", "layer3", "layer2", "layer1", "bn1", "conv1"]


def test_a_randomized_network_differs_from_the_trained_one_in_every_layer():
    model, fresh = trained_cbam()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    random = randomized_copy(model, fresh, top_down(model))
    assert not random.training
    trained, randomized = model.state_dict(), random.state_dict()
    weights = [k for k, v in trained.items() if v.is_floating_point()]
    assert len(weights) > 20
    differ = [k for k in weights if not torch.equal(trained[k], randomized[k])]
    assert differ == weights  # every weight and batch-norm statistic
    assert all(torch.equal(before[k], trained[k]) for k in before)  # the original untouched
    assert all(torch.equal(randomized[k], fresh.state_dict()[k]) for k in weights)


def test_cascading_randomization_replaces_only_the_named_stages():
    model, fresh = trained_cbam()
    random = randomized_copy(model, fresh, ["fc", "layer3"])
    for key, value in random.state_dict().items():
        replaced = key.startswith(("fc.", "layer3."))
        source = fresh if replaced else model
        assert torch.equal(value, source.state_dict()[key]), key
    x = SyntheticShapes(8, seed=7, size=16).images
    with torch.no_grad():
        assert not torch.allclose(random(x), model(x))
    cams = grad_cam(random, x, "layer3", target=0)
    assert not torch.allclose(cams, grad_cam(model, x, "layer3", target=0))


def test_randomized_copy_refuses_another_architecture():
    model, _ = trained_cbam()
    other = experiments.build_model(
        experiments.get_experiment("attention"), "baseline", 0, experiments.QUICK, 4
    )
    with pytest.raises(ValueError, match="same architecture"):
        randomized_copy(model, other, ["layer1"])
    with pytest.raises(ValueError, match="no submodule"):
        randomized_copy(model, other, ["layer9"])
