"""Probes of lesson 03: the CBAM block (Eq. 1) and the three arrangements.

The learner's weights are found by their shapes, as the check cell finds them
(``cbam.checks.block``), and given weights drawn from the grader's seed. Two variants the checks
accept are accepted here too: the authors' pooling order [max, mean] (the kernel flipped) and a
bias in the spatial convolution (set to zero).
"""

from __future__ import annotations

import torch

from cbam.attention import ARRANGEMENTS, ChannelAttention, SpatialAttention
from cbam.attention import CBAM as ReferenceCBAM
from cbam.checks.block import OWN_BLOCK, OWN_COMBINE, _learner_weights
from cbam.course.grading.probes import Draw, Probe, built
from cbam.course.grading.probes.values import OneOf
from cbam.course.grading.probes.weights import fill


def _block_cases(draw: Draw) -> list[dict]:
    cases = []
    for default in (True, False):
        c = draw.int(16, 48)
        r, k = (16, 7) if default else (draw.choice((2, 4, 8)), draw.choice((3, 5)))
        n, h, w = draw.int(1, 3), draw.int(2, 9), draw.int(2, 9)
        hidden = max(c // r, 1)
        about = f"CBAM({c})" if default else f"CBAM({c}, reduction={r}, kernel_size={k})"
        cases.append({
            "about": f"{about}, x of shape {(n, c, h, w)}", "default": default,
            "channels": c, "reduction": r, "kernel_size": k,
            "w0": draw.tensor(hidden, c, scale=c**-0.5), "b0": draw.tensor(hidden, scale=0.5),
            "w1": draw.tensor(c, hidden, scale=hidden**-0.5), "b1": draw.tensor(c, scale=0.5),
            "conv": draw.tensor(1, 2, k, k, scale=1.5 / k),
            "x": draw.tensor(n, c, h, w), "w_out": draw.tensor(n, c, h, w),
        })
    return cases


def _values(block, conv: torch.Tensor, count: object, case: dict) -> dict:
    x = case["x"].clone().requires_grad_(True)
    given = x.detach().clone()
    with torch.no_grad():
        plain = block(given)
    out = block(x)
    gradient, conv_gradient = torch.autograd.grad((out * case["w_out"]).sum(), [x, conv])
    return {"out": out, "no-grad out": plain, "input gradient": gradient,
            "conv gradient": conv_gradient, "parameters": count,
            "input unchanged": torch.equal(given, case["x"])}


def _observe_block(CBAM, case: dict) -> dict:
    c, r, k = case["channels"], case["reduction"], case["kernel_size"]
    block = built(CBAM(c) if case["default"] else CBAM(c, reduction=r, kernel_size=k),
                  case["about"].split(",")[0])
    block.eval()
    count = sum(p.numel() for p in block.parameters())
    weights = _learner_weights(block, c, r, k)
    with torch.no_grad():
        for key in ("w0", "w1", "conv", "b0", "b1"):
            if weights[key] is not None:
                parameter = weights[key][1]
                parameter.copy_(case[key].reshape(parameter.shape))
        if weights["conv_bias"] is not None:
            weights["conv_bias"][1].zero_()
    return _values(block, weights["conv"][1], count, case)


def _expect_block(case: dict) -> dict:
    c, r, k = case["channels"], case["reduction"], case["kernel_size"]
    found = []
    for kernel in (case["conv"], case["conv"].flip(1)):  # [mean, max], or the authors' order
        reference = ReferenceCBAM(c, r, k, fused=False).eval()
        with torch.no_grad():
            reference.channel.mlp[0].weight.copy_(case["w0"])
            reference.channel.mlp[0].bias.copy_(case["b0"])
            reference.channel.mlp[2].weight.copy_(case["w1"])
            reference.channel.mlp[2].bias.copy_(case["b1"])
            reference.spatial.conv.weight.copy_(kernel)
        values = _values(reference, reference.spatial.conv.weight, None, case)
        if len(found) == 1:  # the flipped kernel's gradient, flipped back to the learner's order
            values["conv gradient"] = values["conv gradient"].flip(1)
        found.append(values)
    count = sum(p.numel() for p in ReferenceCBAM(c, r, k).parameters())
    merged = {key: OneOf(*(v[key] for v in found)) for key in found[0]}
    merged["parameters"] = OneOf(count, count + 1)  # a bias in the spatial conv is harmless
    merged["input unchanged"] = True
    return merged


def _arrangement_cases(draw: Draw) -> list[dict]:
    cases = []
    for arrangement in (*ARRANGEMENTS, None, "unknown"):
        c, n, h, w = draw.int(8, 40), draw.int(1, 3), draw.int(2, 9), draw.int(2, 9)
        about = arrangement or "the default arrangement"
        cases.append({"about": f"{about}, x of shape {(n, c, h, w)}", "arrangement": arrangement,
                      "channels": c, "seed": draw.seed(), "x": draw.tensor(n, c, h, w)})
    return cases


def _gates(case: dict) -> tuple[ChannelAttention, SpatialAttention]:
    c = case["channels"]
    channel, spatial = ChannelAttention(c, reduction=4), SpatialAttention(7)
    fill(channel, case["seed"])
    fill(spatial, case["seed"] + 1)
    return channel.eval(), spatial.eval()


def _observe_combine(combine, case: dict) -> dict:
    channel, spatial = _gates(case)
    x = case["x"].clone()
    arrangement = case["arrangement"]
    with torch.no_grad():
        if arrangement == "unknown":
            try:
                combine(x, channel, spatial, "diagonal")
            except Exception as error:
                return {"raises": type(error).__name__,
                        "names the three": all(a in str(error) for a in ARRANGEMENTS)}
            return {"raises": None}
        out = (combine(x, channel, spatial) if arrangement is None
               else combine(x, channel, spatial, arrangement))
    return {"out": out, "input unchanged": torch.equal(x, case["x"])}


def _expect_combine(case: dict) -> dict:
    if case["arrangement"] == "unknown":
        return {"raises": "ValueError", "names the three": True}
    reference = ReferenceCBAM(case["channels"], arrangement=case["arrangement"] or ARRANGEMENTS[0],
                              fused=False).eval()
    reference.channel, reference.spatial = _gates(case)
    with torch.no_grad():
        return {"out": reference(case["x"].clone()), "input unchanged": True}


LESSON = "03"
PROBES = [
    Probe("cbam-block", ("CBAM",), _block_cases, _observe_block, _expect_block, own=OWN_BLOCK),
    Probe("arrangements", ("combine",), _arrangement_cases, _observe_combine, _expect_combine,
          own=OWN_COMBINE),
]
