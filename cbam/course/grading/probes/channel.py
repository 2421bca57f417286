"""Probes of lesson 01: the descriptors, the shared MLP and the channel attention module (Eq. 2).

A learner's MLP is found by the shapes of its weights (``cbam.checks.learner_mlp``) and given
weights drawn from the grader's seed; the grader computes Eq. 2 with the same weights.
"""

from __future__ import annotations

import torch

from cbam.checks.channel import OWN_DESCRIPTORS, OWN_MLP, OWN_MODULE, reference_module
from cbam.checks.learner_mlp import find_mlp, hidden_width, mlp_function, mlp_weights
from cbam.course.grading.probes import Draw, Probe, built


def _feature_maps(draw: Draw, count: int = 2) -> list[dict]:
    cases = []
    for _ in range(count):
        n, c, h, w = draw.int(1, 4), draw.int(2, 24), draw.int(1, 7), draw.int(1, 7)
        cases.append({"about": f"x of shape {(n, c, h, w)}", "x": draw.tensor(n, c, h, w) + 0.5,
                      "w_avg": draw.tensor(n, c), "w_max": draw.tensor(n, c)})
    return cases


def _descriptor_values(avg, mx, case: dict) -> dict:
    x = case["x"]
    loss = (avg * case["w_avg"]).sum() + (mx * case["w_max"]).sum()
    (gradient,) = torch.autograd.grad(loss, x)
    return {"avg": avg, "max": mx, "input gradient": gradient}


def _observe_descriptors(channel_descriptors, case: dict) -> dict:
    x = case["x"].clone().requires_grad_(True)
    avg, mx = channel_descriptors(x)
    return _descriptor_values(avg, mx, {**case, "x": x})


def _expect_descriptors(case: dict) -> dict:
    x = case["x"].clone().requires_grad_(True)
    return _descriptor_values(x.mean(dim=(2, 3)), x.amax(dim=(2, 3)), {**case, "x": x})


def _mlp_cases(draw: Draw) -> list[dict]:
    cases = []
    for small in (False, False, True):
        c = draw.int(2, 12) if small else draw.int(16, 96)
        r = draw.choice((16, 32)) if small else draw.choice((2, 4, 8, 16))
        default = not small and draw.int(0, 1) == 1
        n = draw.int(1, 6)
        cases.append({"about": f"C = {c}, r = {'16 (the default)' if default else r}",
                      "channels": c, "reduction": 16 if default else r, "default": default,
                      "seed": draw.seed(), "v": draw.tensor(n, c), "w_out": draw.tensor(n, c)})
    return cases


def _mlp_values(mlp, weights_hidden: int, count: int, case: dict) -> dict:
    v = case["v"].clone().requires_grad_(True)
    out = mlp(v)
    (gradient,) = torch.autograd.grad((out * case["w_out"]).sum(), v)
    return {"hidden": weights_hidden, "parameters": count, "out": out, "input gradient": gradient}


def _observe_mlp(shared_mlp, case: dict) -> dict:
    c = case["channels"]
    mlp = built(shared_mlp(c) if case["default"] else shared_mlp(c, case["reduction"]),
                "what shared_mlp returns")
    count = sum(p.numel() for p in mlp.parameters())
    found = find_mlp(mlp, c)
    if len(found.w0) != 1:
        return {"shared MLPs": len(found.w0)}
    found.load(mlp_weights(c, found.hidden, case["seed"]))
    return _mlp_values(mlp, found.hidden, count, case)


def _paper_count(c: int, hidden: int) -> int:
    return 2 * c * hidden + hidden + c


def _expect_mlp(case: dict) -> dict:
    c = case["channels"]
    hidden = hidden_width(c, case["reduction"])
    mlp = mlp_function(mlp_weights(c, hidden, case["seed"]))
    return _mlp_values(mlp, hidden, _paper_count(c, hidden), case)


def _module_cases(draw: Draw) -> list[dict]:
    cases = []
    for index in range(3):
        n, h, w = draw.int(1, 3), draw.int(1, 6), draw.int(1, 6)
        c = draw.int(3, 10) if index == 2 else draw.int(16, 72)
        r = draw.choice((2, 4, 8, 16))
        cases.append({"about": f"C = {c}, r = {r}, x of shape {(n, c, h, w)}", "channels": c,
                      "reduction": r, "seed": draw.seed(), "x": draw.tensor(n, c, h, w),
                      "w_out": draw.tensor(n, c, h, w), "extra": draw.int(1, 5)})
    return cases


def _module_values(module, gate, w0, count: int, case: dict) -> dict:
    x = case["x"].clone().requires_grad_(True)
    given = x.detach().clone()
    channel_map = module.attention(given)
    out = module(x)
    loss = (out * case["w_out"]).sum()
    gradient, w0_gradient = torch.autograd.grad(loss, [x, w0])
    c = case["channels"]
    wrong = case["x"].new_zeros(case["x"].shape[0], c + case["extra"], *case["x"].shape[2:])
    try:
        module(wrong)
        rejects = False
    except Exception:
        rejects = True
    # flatten(1): a 1x1 convolution's (h, C, 1, 1) weight is the Linear's (h, C)
    return {"map": channel_map, "out": out, "input gradient": gradient,
            "W0 gradient": w0_gradient.flatten(1),
            "parameters": count, "input unchanged": torch.equal(given, case["x"]),
            "rejects other channel counts": rejects, "gate": gate}


def _observe_module(ChannelAttention, case: dict) -> dict:
    c, r = case["channels"], case["reduction"]
    module = built(ChannelAttention(c, reduction=r), f"ChannelAttention({c}, reduction={r})")
    default = built(ChannelAttention(c), f"ChannelAttention({c})")
    count = sum(p.numel() for p in module.parameters())
    found = find_mlp(module, c)
    if len(found.w0) != 1:
        return {"shared MLPs": len(found.w0)}
    found.load(mlp_weights(c, found.hidden, case["seed"]))
    gate = {"hidden": found.hidden, "default hidden": find_mlp(default, c).hidden}
    return _module_values(module, gate, found.w0[0], count, case)


def _expect_module(case: dict) -> dict:
    c, r = case["channels"], case["reduction"]
    hidden = hidden_width(c, r)
    module = reference_module(c, mlp_weights(c, hidden, case["seed"]))
    gate = {"hidden": hidden, "default hidden": hidden_width(c, 16)}
    return _module_values(module, gate, module.mlp[0].weight, _paper_count(c, hidden), case)


LESSON = "01"
PROBES = [
    Probe("channel-descriptors", ("channel_descriptors",), _feature_maps, _observe_descriptors,
          _expect_descriptors, own=OWN_DESCRIPTORS),
    Probe("shared-mlp", ("shared_mlp",), _mlp_cases, _observe_mlp, _expect_mlp, own=OWN_MLP),
    Probe("channel-attention", ("ChannelAttention",), _module_cases, _observe_module,
          _expect_module, own=OWN_MODULE),
]
