"""Probe of lesson 06: the share of a map's energy that falls on the object."""

from __future__ import annotations

import torch

from cbam.course.grading.probes import Draw, Probe
from cbam.localization import energy_share


def _cases(draw: Draw) -> list[dict]:
    cases = []
    for zero_map in (False, False, True):
        n, h, w = draw.int(1, 5), draw.int(2, 12), draw.int(2, 12)
        maps = draw.uniform(n, h, w)
        if zero_map:
            maps[0] = 0.0
        masks = draw.uniform(n, h, w) < 0.3
        masks[:, 0, 0] = True  # every image has some object
        about = f"{n} maps of {h}x{w}" + (", the first all zeros" if zero_map else "")
        cases.append({"about": about, "maps": maps, "masks": masks})
    return cases


def _observe(my_energy_share, case: dict) -> dict:
    maps, masks = case["maps"].clone(), case["masks"].clone()
    return {"scores": my_energy_share(maps, masks),
            "inputs unchanged": torch.equal(maps, case["maps"]) and torch.equal(masks,
                                                                                case["masks"])}


def _expect(case: dict) -> dict:
    return {"scores": energy_share(case["maps"], case["masks"]), "inputs unchanged": True}


LESSON = "06"
PROBES = [Probe("energy-share", ("my_energy_share",), _cases, _observe, _expect)]
