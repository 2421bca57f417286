"""Probes of lesson 02: pooling over channels, the padding, the spatial module (Eq. 3)."""

from __future__ import annotations

import torch

from cbam.attention import SpatialAttention as ReferenceSpatialAttention
from cbam.checks.spatial import OWN_MODULE, find_conv
from cbam.course.grading.probes import Draw, Probe, built


def _maps(draw: Draw) -> list[dict]:
    cases = []
    for _ in range(2):
        n, c, h, w = draw.int(1, 3), draw.int(1, 24), draw.int(1, 9), draw.int(1, 9)
        cases.append({"about": f"x of shape {(n, c, h, w)}", "x": draw.tensor(n, c, h, w),
                      "w_out": draw.tensor(n, 2, h, w)})
    return cases


def _pool_values(pool, case: dict) -> dict:
    x = case["x"].clone().requires_grad_(True)
    pooled = pool(x)
    (gradient,) = torch.autograd.grad((pooled * case["w_out"]).sum(), x)
    return {"pooled": pooled, "input gradient": gradient}


def _expect_pool(case: dict) -> dict:
    def pool(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)

    return _pool_values(pool, case)


def _kernel_sizes(draw: Draw) -> list[dict]:
    odd = [2 * draw.int(0, 10) + 1 for _ in range(3)]
    bad = [2 * draw.int(1, 10), -draw.int(1, 9), 0]
    return [{"about": f"kernel_size = {k}", "k": k} for k in odd + bad]


def _observe_padding(same_padding, case: dict) -> dict:
    k = case["k"]
    try:
        padding = same_padding(k)
    except Exception as error:
        return {"raises": type(error).__name__, "names k": str(k) in str(error)}
    return {"padding": padding, "type": type(padding).__name__}


def _expect_padding(case: dict) -> dict:
    k = case["k"]
    if k <= 0 or k % 2 == 0:
        return {"raises": "ValueError", "names k": True}
    return {"padding": k // 2, "type": "int"}


def _module_cases(draw: Draw) -> list[dict]:
    cases = []
    for k in (draw.choice((1, 3, 5)), draw.choice((7, 9))):
        n, c, h, w = draw.int(1, 3), draw.int(1, 16), draw.int(1, 9), draw.int(1, 9)
        cases.append({"about": f"kernel_size = {k}, x of shape {(n, c, h, w)}", "k": k,
                      "kernel": draw.tensor(1, 2, k, k, scale=1.5 / k),
                      "x": draw.tensor(n, c, h, w), "w_out": draw.tensor(n, c, h, w)})
    return cases


def _module_values(module, kernel: torch.Tensor, count: int, case: dict) -> dict:
    x = case["x"].clone().requires_grad_(True)
    given = x.detach().clone()
    spatial_map = module.attention(given)
    out = module(x)
    gradient, kernel_gradient = torch.autograd.grad((out * case["w_out"]).sum(), [x, kernel])
    return {"map": spatial_map, "out": out, "input gradient": gradient,
            "kernel gradient": kernel_gradient, "parameters": count,
            "input unchanged": torch.equal(given, case["x"])}


def _observe_module(SpatialAttention, case: dict) -> dict:
    k = case["k"]
    module = built(SpatialAttention(k), f"SpatialAttention({k})")
    default = sum(p.numel() for p in built(SpatialAttention(), "SpatialAttention()").parameters())
    count = sum(p.numel() for p in module.parameters())
    weight, _ = find_conv(module, k)
    with torch.no_grad():
        weight.copy_(case["kernel"])
    return {**_module_values(module, weight, count, case), "default parameters": default}


def _expect_module(case: dict) -> dict:
    k = case["k"]
    module = ReferenceSpatialAttention(k)
    with torch.no_grad():
        module.conv.weight.copy_(case["kernel"])
    return {**_module_values(module, module.conv.weight, 2 * k * k, case),
            "default parameters": 2 * 7 * 7}


LESSON = "02"
PROBES = [
    Probe("channel-pool", ("channel_pool",), _maps, _pool_values, _expect_pool),
    Probe("same-padding", ("same_padding",), _kernel_sizes, _observe_padding, _expect_padding),
    Probe("spatial-attention", ("SpatialAttention",), _module_cases, _observe_module,
          _expect_module, own=OWN_MODULE),
]
