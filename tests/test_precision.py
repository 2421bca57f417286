"""CBAM's fused training path holds to the plain code in low precision: values and gradients in
float32, float16 and bfloat16, under autocast, in channels_last.

On a CUDA GPU every case runs (``make gpu-check`` runs them with ``CBAM_REQUIRE_CUDA=1``, which
makes a missing GPU a failure instead of a skip); on the CPU, autocast, where the spatial conv's
own backward (``_SameConv``) joins in. Low precision is judged against float64: the fused path's
error may be at most about the plain code's own, whose summation order differs.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

import cbam
from cbam.fast.fused_backward import FUSED_MIN_ELEMENTS, _FusedChannelFirst

NO_CUDA = f"no CUDA GPU (torch {torch.__version__}): make gpu-check runs these on one"
if not torch.cuda.is_available() and os.environ.get("CBAM_REQUIRE_CUDA") == "1":
    raise RuntimeError(f"CBAM_REQUIRE_CUDA=1 but {NO_CUDA}")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)

SHAPE = (8, 64, 32, 32)  # 2**19 elements: the fused path applies
# Error allowed beyond the plain code's, relative to the reference's largest magnitude.
SLACK = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def _run(block, x, grad, *, autocast=None):
    """Output, input gradient and parameter gradients (by name) of one forward+backward."""
    x = x.detach().requires_grad_()
    block.zero_grad(set_to_none=True)
    dtype = autocast or torch.float32
    with torch.autocast(x.device.type, dtype=dtype, enabled=autocast is not None):
        out = block(x)
    out.backward(grad.to(out.dtype))
    results = {"output": out.detach(), "input grad": x.grad}
    results.update({f"{n} grad": p.grad for n, p in block.named_parameters()})
    return results


def _relative_error(value, reference):
    scale = reference.abs().max().clamp_min(1e-30)
    return ((value.double() - reference).abs().max() / scale).item()


def _compare(device, dtype, *, channels_last=False, autocast=None, batch_norm=False):
    torch.manual_seed(0)
    assert torch.Size(SHAPE).numel() >= FUSED_MIN_ELEMENTS
    fused = cbam.CBAM(64, batch_norm=batch_norm).to(device)
    plain = copy.deepcopy(fused)
    plain.fused = False
    reference = copy.deepcopy(plain).double()
    x = torch.randn(SHAPE, device=device)
    grad = torch.randn(SHAPE, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = _run(reference, x.double(), grad.double())
    if autocast is None:
        fused, plain = fused.to(dtype), plain.to(dtype)
        x = x.to(dtype)
    calls = []
    apply = _FusedChannelFirst.apply

    def counted(*args):
        calls.append(1)
        return apply(*args)

    _FusedChannelFirst.apply = staticmethod(counted)
    try:
        got = _run(fused, x, grad, autocast=autocast)
    finally:
        _FusedChannelFirst.apply = apply
    assert calls, "the fused path was not taken"
    baseline = _run(plain, x, grad, autocast=autocast)
    slack = SLACK[autocast or dtype]
    worse = {}
    for name, want in expected.items():
        fused_error = _relative_error(got[name], want)
        plain_error = _relative_error(baseline[name], want)
        if fused_error > 2 * plain_error + slack:
            worse[name] = f"fused {fused_error:.1e} vs plain {plain_error:.1e}"
        assert got[name].dtype == baseline[name].dtype, name
    for name, p in fused.named_parameters():  # the layout contract DDP relies on
        assert p.grad.stride() == p.stride(), name
    assert not worse, f"fused path further from float64 than the plain code: {worse}"


@pytest.mark.parametrize("amp", [torch.float16, torch.bfloat16], ids=str)
def test_fused_matches_plain_under_autocast_on_the_cpu(amp):
    _compare("cpu", torch.float32, autocast=amp)


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_fused_matches_plain_in_each_dtype_on_cuda(dtype, channels_last):
    _compare("cuda", dtype, channels_last=channels_last)


@cuda
@pytest.mark.parametrize("amp", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_fused_matches_plain_under_autocast_on_cuda(amp, channels_last):
    _compare("cuda", torch.float32, channels_last=channels_last, autocast=amp)


@cuda
def test_fused_matches_plain_with_batch_norm_on_cuda():
    _compare("cuda", torch.float32, batch_norm=True)


@cuda
def test_inference_on_cuda_matches_the_cpu():
    torch.manual_seed(0)
    block = cbam.CBAM(64).eval()
    x = torch.randn(SHAPE)
    with torch.no_grad():
        on_cpu = block(x)
        on_gpu = block.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-4, atol=1e-5)


@cuda
def test_gradients_keep_their_parameters_strides_on_cuda():
    block = cbam.CBAM(64).cuda()
    block(torch.randn(SHAPE, device="cuda", requires_grad=True)).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad.stride() == p.stride(), name
