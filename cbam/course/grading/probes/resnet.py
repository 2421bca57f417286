"""Probes of lesson 04: attention inside the bottleneck, and Table 4 by counting.

The bottleneck gets weights and BatchNorm statistics drawn from the grader's seed by name (the
lesson's skeleton names its layers as ``cbam.Bottleneck`` does), and an attention factory that
builds ``cbam.CBAM``. The counting is tried on small networks of drawn sizes, on a real and on
the meta device, and on the learner's three Table 4 networks.
"""

from __future__ import annotations

import torch
from torch import nn

from cbam import resnet
from cbam.attention import CBAM
from cbam.checks.resnet import OWN_BLOCK, OWN_COUNT
from cbam.counting import count_macs, count_params
from cbam.course.grading.probes import Draw, Probe, built
from cbam.course.grading.probes.weights import fill
from cbam.table4 import IMAGE_SIZE, PAPER_TABLE4


class _Factory:
    """The attention the block asks for, noting the widths it asked for."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def __call__(self, channels: int) -> nn.Module:
        self.widths.append(int(channels))
        return CBAM(channels, reduction=4)


def _block_cases(draw: Draw) -> list[dict]:
    cases = []
    for kind in ("plain", "attention", "downsampling"):
        planes = draw.choice((2, 4, 8))
        inplanes = draw.choice((8, 16, 24)) if kind == "downsampling" else planes * 4
        stride = 2 if kind == "downsampling" else 1
        n, h, w = draw.int(1, 2), draw.int(3, 8), draw.int(3, 8)
        cases.append({"about": f"a {kind} block, planes = {planes}, x of shape "
                               f"{(n, inplanes, h, w)}", "kind": kind, "planes": planes,
                      "inplanes": inplanes, "stride": stride, "seed": draw.seed(),
                      "x": draw.tensor(n, inplanes, h, w)})
    return cases


def _downsample(case: dict) -> nn.Module | None:
    if case["kind"] != "downsampling":
        return None
    width = case["planes"] * 4
    return nn.Sequential(nn.Conv2d(case["inplanes"], width, 1, stride=2, bias=False),
                         nn.BatchNorm2d(width))


def _block_values(make, case: dict) -> dict:
    factory = None if case["kind"] == "plain" else _Factory()
    block = make(case["inplanes"], case["planes"], case["stride"], _downsample(case),
                 attention=factory)
    layers = fill(block, case["seed"])
    block.eval()
    x = case["x"].clone()
    with torch.no_grad():
        out = block(x)
    values = {"layers": layers, "out": out, "input unchanged": torch.equal(x, case["x"])}
    if factory is not None:
        values["attention widths"] = factory.widths
    return values


def _observe_block(Bottleneck, case: dict) -> dict:
    return _block_values(lambda *a, **k: built(Bottleneck(*a, **k), "the Bottleneck"), case)


def _expect_block(case: dict) -> dict:
    return _block_values(resnet.Bottleneck, case)


def _network(spec: dict) -> nn.Module:
    c, k, classes = spec["width"], spec["kernel"], spec["classes"]
    return nn.Sequential(nn.Conv2d(3, c, k, padding=k // 2), nn.BatchNorm2d(c), nn.ReLU(),
                         nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def _count_cases(draw: Draw) -> list[dict]:
    cases = []
    for on_meta in (False, True):
        spec = {"width": draw.int(3, 24), "kernel": draw.choice((1, 3, 5)),
                "classes": draw.int(2, 12)}
        size = (draw.int(1, 3), 3, draw.int(6, 20), draw.int(6, 20))
        where = "on the meta device" if on_meta else "on the CPU"
        cases.append({"about": f"a small network {where}, input {size}", "spec": spec,
                      "input_size": size, "meta": on_meta})
    cases.append({"about": "the three Table 4 networks", "table4": True})
    return cases


def _build(spec: dict, meta: bool) -> nn.Module:
    if meta:
        with torch.device("meta"):
            return _network(spec)
    return _network(spec)


def _observe_count(count, table4_models, case: dict) -> dict:
    if case.get("table4"):
        models = table4_models()
        return {row.model: [int(n) for n in count(models[row.model],
                                                  (1, 3, IMAGE_SIZE, IMAGE_SIZE))]
                for row in PAPER_TABLE4}
    params, macs = count(_build(case["spec"], case["meta"]), case["input_size"])
    return {"params": params, "macs": macs}


def _expect_count(case: dict) -> dict:
    if case.get("table4"):
        found = {}
        for row in PAPER_TABLE4:
            with torch.device("meta"):
                model = resnet.resnet50(attention=row.attention)
            found[row.model] = [count_params(model),
                                count_macs(model, (1, 3, IMAGE_SIZE, IMAGE_SIZE))]
        return found
    model = _build(case["spec"], case["meta"])
    return {"params": count_params(model), "macs": count_macs(model, case["input_size"])}


LESSON = "04"
PROBES = [
    Probe("attention-block", ("Bottleneck",), _block_cases, _observe_block, _expect_block,
          own=OWN_BLOCK),
    Probe("table4", ("count", "table4_models"), _count_cases, _observe_count, _expect_count,
          own=OWN_COUNT),
]
