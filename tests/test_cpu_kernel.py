"""The C kernel behind cbam.CBAM's CPU inference (cbam/fast/cpu_kernel.c), held to the plain code.

Without a C compiler these tests skip and say why; CBAM_REQUIRE_CPU_KERNEL=1 (set by CI) turns
that skip into a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from cbam import CBAM, record_attention
from cbam.fast import cpu_kernel

if not cpu_kernel.available():
    reason = f"cbam's CPU kernel is unavailable: {cpu_kernel.unavailable_reason()}"
    if os.environ.get("CBAM_REQUIRE_CPU_KERNEL") == "1":
        raise RuntimeError(f"CBAM_REQUIRE_CPU_KERNEL=1 but {reason}")
    pytest.skip(reason, allow_module_level=True)


def randomize(block: nn.Module, seed: int = 0) -> nn.Module:
    """Weights far from the initial ones, so that every term of the computation shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return block.eval()


def plain(block: CBAM, x: torch.Tensor) -> torch.Tensor:
    """The block's plain PyTorch code (fused=False never takes the kernel)."""
    fused, block.fused = block.fused, False
    try:
        with torch.no_grad():
            return block(x)
    finally:
        block.fused = fused


@pytest.fixture
def launches(monkeypatch):
    """Counts the kernel's runs in eager mode."""
    calls = []
    launch = cpu_kernel._launch

    def counted(*args):
        calls.append(args[1].shape)
        return launch(*args)

    monkeypatch.setattr(cpu_kernel, "_launch", counted)
    return calls


SHAPES = [
    (2, 32, 56, 56),  # whole vectors of 16 along every row
    (3, 20, 13, 9),  # ragged rows, channels not a multiple of the pooling group
    (1, 64, 7, 7),
    (4, 16, 1, 1),  # a 1 x 1 map: the convolution sees only its centre tap
    (2, 8, 2, 33),  # fewer rows than the convolution computes at once
    (1, 1, 5, 6),  # one channel, hidden width 1
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_the_plain_code(shape, launches):
    torch.manual_seed(1)
    block = randomize(CBAM(shape[1], reduction=4))
    x = torch.randn(shape)
    with torch.no_grad():
        out = block(x)
    assert launches == [x.shape]
    torch.testing.assert_close(out, plain(block, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 9])
@pytest.mark.parametrize("bias", [True, False])
def test_kernel_sizes_and_biases(kernel_size, bias, launches):
    torch.manual_seed(2)
    block = CBAM(24, reduction=3, kernel_size=kernel_size, bias=bias)
    # CBAM's spatial convolution has no bias; the kernel supports one all the same.
    block.spatial.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=bias)
    randomize(block, seed=kernel_size)
    x = torch.randn(2, 24, 11, 19)
    with torch.no_grad():
        out = block(x)
    assert len(launches) == 1
    torch.testing.assert_close(out, plain(block, x), rtol=1e-5, atol=1e-6)


def test_saturated_gates_and_extreme_values():
    """Logits far beyond the sigmoid's range, where the kernel's exponential clamps."""
    block = randomize(CBAM(16, reduction=2), seed=3)
    x = torch.randn(2, 16, 9, 9) * 300
    with torch.no_grad():
        torch.testing.assert_close(block(x), plain(block, x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_spread_as_in_the_plain_code(value):
    block = randomize(CBAM(16, reduction=2), seed=4)
    x = torch.randn(3, 16, 6, 6)
    x[1, 5, 2, 3] = value
    with torch.no_grad():
        out = block(x)
    torch.testing.assert_close(out, plain(block, x), rtol=1e-5, atol=1e-6, equal_nan=True)
    # Images without the value stay finite.
    assert torch.isfinite(out[[0, 2]]).all()


def test_threads_split_the_batch_without_changing_a_bit():
    block = randomize(CBAM(32, reduction=4), seed=5)
    x = torch.randn(5, 32, 10, 12)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            one = block(x)
        torch.set_num_threads(3)
        with torch.no_grad():
            three = block(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_threads_work_in_a_forked_child():
    """A child forked after the parent used the thread pool (as DataLoader workers are)."""
    block = randomize(CBAM(16, reduction=4), seed=10)
    x = torch.randn(4, 16, 6, 6)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            expected = block(x)
            pid = os.fork()
            if pid == 0:  # the child: exit status 0 only if the pool runs and agrees
                torch.set_num_threads(2)  # torch drops a forked child to one thread
                os._exit(0 if torch.equal(block(x), expected) else 1)
        deadline = time.monotonic() + 60  # a pool without threads would wait forever
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in the kernel's thread pool")
    finally:
        torch.set_num_threads(threads)
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_an_empty_batch():
    block = CBAM(16).eval()
    with torch.no_grad():
        assert block(torch.randn(0, 16, 4, 4)).shape == (0, 16, 4, 4)


def test_input_is_not_modified():
    block = randomize(CBAM(16, reduction=2), seed=6)
    x = torch.randn(2, 16, 8, 8)
    before = x.clone()
    with torch.no_grad():
        block(x)
    assert torch.equal(x, before)


# When the kernel steps aside: everything it cannot do runs the plain code.


def _no_grad(block, x):
    with torch.no_grad():
        return block(x)


PLAIN_CASES = {
    "fused=False": (lambda: CBAM(16, fused=False), torch.float32, None),
    "spatial-first": (lambda: CBAM(16, arrangement="spatial-first"), torch.float32, None),
    "parallel": (lambda: CBAM(16, arrangement="parallel"), torch.float32, None),
    "lp pooling": (lambda: CBAM(16, pool_types=("avg", "lp")), torch.float32, None),
    "batch norm": (lambda: CBAM(16, batch_norm=True), torch.float32, None),
    "no spatial": (lambda: CBAM(16, spatial=False), torch.float32, None),
    "float64": (lambda: CBAM(16).double(), torch.float64, None),
    "channels_last": (lambda: CBAM(16), torch.float32, torch.channels_last),
}


@pytest.mark.parametrize("case", PLAIN_CASES)
def test_what_the_kernel_cannot_do_runs_the_plain_code(case, launches):
    make, dtype, memory_format = PLAIN_CASES[case]
    block = make().eval()
    x = torch.randn(2, 16, 5, 6, dtype=dtype)
    if memory_format is not None:
        x = x.contiguous(memory_format=memory_format)
    _no_grad(block, x)
    assert launches == []


def test_training_runs_the_plain_code_but_inference_in_eval_mode_does_not(launches):
    block = CBAM(16)
    x = torch.randn(2, 16, 5, 6)
    block(x).sum().backward()  # parameters require gradients: autograd records
    assert launches == []
    _no_grad(block, x)
    with torch.inference_mode():
        block(x)
    assert len(launches) == 2


def test_a_replaced_layer_runs_the_plain_code(launches):
    block = CBAM(16).eval()
    block.channel.mlp[1] = nn.GELU()
    _no_grad(block, torch.randn(2, 16, 5, 6))
    block = CBAM(16).eval()
    block.spatial.conv = nn.Conv2d(2, 1, 7, padding=3, padding_mode="reflect", bias=False)
    _no_grad(block, torch.randn(2, 16, 5, 6))
    assert launches == []


def test_hooks_see_the_plain_code(launches):
    block = CBAM(16).eval()
    x = torch.randn(2, 16, 5, 6)
    with record_attention(block) as maps:
        _no_grad(block, x)
    assert launches == [] and len(maps["channel"]) == len(maps["spatial"]) == 1
    handle = nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        _no_grad(block, x)
    finally:
        handle.remove()
    assert launches == []
    _no_grad(block, x)
    assert len(launches) == 1


def test_a_jit_trace_records_the_plain_code():
    """A trace records PyTorch operations only: through the kernel it would record a constant."""
    block = randomize(CBAM(16, reduction=4), seed=8)
    x, other = torch.randn(2, 16, 5, 6), torch.randn(2, 16, 5, 6)
    with torch.no_grad():
        traced = torch.jit.trace(block, x, check_trace=False)
        torch.testing.assert_close(traced(other), block(other), rtol=1e-5, atol=1e-6)


def test_torch_export_records_the_plain_code():
    block = randomize(CBAM(16, reduction=4), seed=9)
    x = torch.randn(2, 16, 5, 6)
    if not hasattr(torch.compiler, "is_exporting"):
        pytest.skip("torch.compiler.is_exporting arrived in torch 2.4")
    with torch.no_grad():  # where the kernel would otherwise apply
        exported = torch.export.export(block, (x,))
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert not any("cbam" in target for target in targets)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), block(x), rtol=1e-5, atol=1e-6)


# The operator, as torch.compile calls it.


def test_torch_compile_calls_the_operator():
    block = randomize(CBAM(16, reduction=4), seed=7)
    x = torch.randn(2, 16, 9, 10)
    with torch.no_grad():
        explanation = torch._dynamo.explain(block)(x)
        assert explanation.graph_count == 1 and explanation.graph_break_count == 0
        assert "cbam.cpu_forward" in explanation.graphs[0].code
        compiled = torch.compile(block, dynamic=False)
        assert torch.equal(compiled(x), block(x))


def _weights(block: CBAM) -> list[torch.Tensor | None]:
    first, second, conv = block.channel.mlp[0], block.channel.mlp[2], block.spatial.conv
    return [first.weight, first.bias, second.weight, second.bias, conv.weight, conv.bias]


def test_the_operator_rejects_what_it_cannot_read():
    block = CBAM(16, reduction=4).eval()
    x = torch.randn(2, 16, 5, 6)
    weights = _weights(block)
    bad = {
        "float64 input": ([x.double(), *weights], "float32"),
        "channels_last input": (
            [x.contiguous(memory_format=torch.channels_last), *weights],
            "contiguous",
        ),
        "3-D input": ([x[0], *weights], r"x \(N, C, H, W\)"),
        "wrong channel count": ([torch.randn(2, 8, 5, 6), *weights], r"w1 of shape \(4, 8\)"),
        "w2 of another width": (
            [x, weights[0], weights[1], torch.randn(16, 5), *weights[3:]],
            r"w2 of shape \(16, 4\), got \(16, 5\)",
        ),
        "even kernel": ([x, *weights[:4], torch.randn(1, 2, 4, 4), None], "odd kernel size, got 4"),
    }
    for case, (args, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            torch.ops.cbam.cpu_forward(*args)
        assert case  # the case names the failure in pytest's report


# Building the kernel.


def test_the_library_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CBAM_CACHE_DIR", str(tmp_path))
    compiler = cpu_kernel._compiler()
    first = cpu_kernel._build(compiler)
    built = first.stat().st_mtime_ns
    assert cpu_kernel._build(compiler) == first and first.stat().st_mtime_ns == built
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left behind


def test_a_compile_error_is_reported(tmp_path, monkeypatch):
    broken = tmp_path / "broken.c"
    broken.write_text("int cbam_forward(void) { return }\n")
    monkeypatch.setattr(cpu_kernel, "SOURCE", broken)
    monkeypatch.setenv("CBAM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(OSError, match="could not compile broken.c"):
        cpu_kernel._build(cpu_kernel._compiler())
    assert list((tmp_path / "cache").iterdir()) == []


def _run_python(code: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


CHECK_FALLBACK = """
import torch, cbam
block = cbam.CBAM(16).eval()
x = torch.randn(2, 16, 5, 6)
with torch.no_grad():
    same = torch.equal(block(x), (setattr(block, "fused", False), block(x))[1])
print(cbam.fast.cpu_kernel.unavailable_reason(), "| same output:", same)
"""


def test_without_a_compiler_cbam_keeps_to_pytorch(tmp_path):
    out = _run_python(
        CHECK_FALLBACK, PATH=str(tmp_path), CC="", CBAM_CACHE_DIR=str(tmp_path / "cache")
    )
    assert out == "no C compiler found (set $CC, or install cc, gcc or clang) | same output: True"


def test_the_kernel_can_be_turned_off():
    out = _run_python(CHECK_FALLBACK, CBAM_CPU_KERNEL="0")
    assert out == "turned off by CBAM_CPU_KERNEL=0 | same output: True"


CHECK_WARNINGS = """
import warnings, torch, cbam
warnings.simplefilter("always")  # every warning given is seen: the kernel itself gives one
with warnings.catch_warnings(record=True) as caught:
    block = cbam.CBAM(16).eval()
    with torch.no_grad():
        for _ in range(3):
            block(torch.randn(2, 16, 5, 6))
            cbam.CBAM(8).eval()(torch.randn(1, 8, 3, 3))
kernel = [w for w in caught if issubclass(w.category, cbam.fast.cpu_kernel.CpuKernelWarning)]
print(len(kernel), "|", *(str(w.message) for w in kernel))
"""


def test_a_fallback_warns_once_per_process_with_why_and_how_to_enable(tmp_path):
    out = _run_python(
        CHECK_WARNINGS, PATH=str(tmp_path), CC="", CBAM_CACHE_DIR=str(tmp_path / "cache")
    )
    count, message = out.split(" | ")
    assert count == "1"
    assert "not used: no C compiler found (set $CC, or install cc, gcc or clang)" in message
    assert "CBAM_CPU_KERNEL=0" in message


def test_an_unwritable_cache_warns_and_names_the_variable_to_set(tmp_path):
    (tmp_path / "a-file").write_text("")  # a folder cannot be made under a file
    out = _run_python(CHECK_WARNINGS, CBAM_CACHE_DIR=str(tmp_path / "a-file" / "cache"))
    count, message = out.split(" | ")
    assert count == "1"
    assert "is not writable" in message and "set CBAM_CACHE_DIR to a writable folder" in message


def test_turning_the_kernel_off_gives_no_warning():
    assert _run_python(CHECK_WARNINGS, CBAM_CPU_KERNEL="0") == "0 |"


def test_a_cached_kernel_is_used_without_a_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("CBAM_CACHE_DIR", str(tmp_path / "cache"))
    built = cpu_kernel._build(cpu_kernel._compiler())
    assert built == cpu_kernel.cached_library()
    check = """
import torch, cbam
block = cbam.CBAM(16).eval().requires_grad_(False)
x = torch.randn(2, 16, 5, 6)
print(cbam.fast.cpu_kernel.unavailable_reason(), cbam.fast.why_not(block, x)["cpu_kernel"])
"""
    out = _run_python(check, PATH=str(tmp_path), CC="", CBAM_CACHE_DIR=str(tmp_path / "cache"))
    assert out == "None None"
