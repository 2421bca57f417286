"""cbam.fast's choice of route: the one place that says which faster route a call takes, and why
the others do not. (That each route computes the reference's values is tests/test_attention.py's,
tests/test_cpu_kernel.py's and tests/test_precision.py's job.)"""

import ast
from pathlib import Path

import pytest
import torch

import cbam
import cbam.fast.fused_backward
from cbam import CBAM, fast, record_attention
from cbam.fast import cpu_kernel

needs_kernel = pytest.mark.skipif(
    not cpu_kernel.available(), reason=f"no CPU kernel here: {cpu_kernel.unavailable_reason()}"
)


@pytest.fixture
def taken(monkeypatch):
    """The routes CBAM.forward took, in order ("plain" when neither)."""
    routes = []
    kernel, fused = cpu_kernel.forward, cbam.fast.fused_backward.forward
    monkeypatch.setattr(cpu_kernel, "forward", lambda *a: routes.append("cpu_kernel") or kernel(*a))
    monkeypatch.setattr(
        cbam.fast.fused_backward, "forward", lambda *a: routes.append("fused_backward") or fused(*a)
    )
    return routes


def route_of(block, x, taken):
    """The route block(x) takes, and what why_not says of the same call."""
    reasons = fast.why_not(block, x)
    taken.clear()
    block(x)
    return (taken[0] if taken else "plain"), reasons


@needs_kernel
def test_inference_takes_the_kernel_and_says_why_not_the_fused_path(taken):
    block = CBAM(16).eval()
    with torch.no_grad():
        route, reasons = route_of(block, torch.randn(2, 16, 8, 8), taken)
    assert route == "cpu_kernel" and reasons["cpu_kernel"] is None
    assert "autograd records nothing" in reasons["fused_backward"]


def test_training_on_a_large_input_takes_the_fused_path(taken):
    block = CBAM(64)
    x = torch.randn(4, 64, 32, 32, requires_grad=True)
    assert x.numel() >= cbam.fast.fused_backward.FUSED_MIN_ELEMENTS
    route, reasons = route_of(block, x, taken)
    assert route == "fused_backward" and reasons["fused_backward"] is None
    assert "autograd records the call" in reasons["cpu_kernel"]


def test_a_small_input_in_training_takes_the_plain_code(taken):
    block = CBAM(16)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    route, reasons = route_of(block, x, taken)
    assert route == "plain"
    assert "2048 elements, under FUSED_MIN_ELEMENTS" in reasons["fused_backward"]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"fused": False}, "fused=False"),
        ({"spatial": False}, "no spatial module"),
        ({"channel_reduction": "conv1x1"}, "conv1x1"),
        ({"arrangement": "parallel"}, "'channel-first'"),
        ({"pool_types": ("avg",)}, "('avg', 'max')"),
    ],
)
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_a_block_other_than_the_papers_takes_neither_route(options, reason, grad, taken):
    block = CBAM(64, **options)
    x = torch.randn(4, 64, 32, 32, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        route, reasons = route_of(block, x, taken)
    assert route == "plain"
    assert all(reason in r for r in reasons.values()), reasons


@needs_kernel
def test_a_hook_keeps_inference_off_the_kernel(taken):
    block = CBAM(16).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad(), record_attention(block):
        route, reasons = route_of(block, x, taken)
    assert route == "plain" and "hook" in reasons["cpu_kernel"]


@needs_kernel
def test_an_input_the_kernel_cannot_read_is_named(taken):
    block = CBAM(16).eval().double()
    with torch.no_grad():
        route, reasons = route_of(block, torch.randn(2, 16, 8, 8, dtype=torch.float64), taken)
    assert (
        route == "plain"
        and "float32" in reasons["cpu_kernel"]
        and "float64" in reasons["cpu_kernel"]
    )


def test_the_reference_file_holds_only_the_paper():
    """attention.py runs Eq. 1-3 with PyTorch operations: no autograd Function, no C."""
    tree = ast.parse(Path(cbam.attention.__file__).read_text())
    bases = [ast.unparse(b) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for b in c.bases]
    assert bases and not [b for b in bases if "Function" in b], bases
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not imported & {"ctypes", "cpu_kernel", "fused_backward"}, imported
