"""CBAM's inference forward on a CPU as one C function, ``cpu_kernel.c``, built on first use.

PyTorch runs a CBAM forward as a dozen operations, each a trip through the whole feature map.
The C function makes only the three trips a CBAM forward needs (see lesson 07), and makes them
one image at a time, so that the second and the third find the image still in the core's cache.

``cbam.CBAM`` uses it by itself where it applies (see ``refusal``): the paper's block, in
float32 on a CPU, when autograd records nothing and no hook watches the block. Under
``torch.compile`` it is one opaque operator, ``torch.ops.cbam.cpu_forward``. The tests hold it
to the plain code.

It is compiled with the system's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``: the
kind torch.compile needs on a CPU too) and cached in ``$CBAM_CACHE_DIR`` (default
``~/.cache/cbam``); a cached library is loaded without a compiler. Where that fails,
``unavailable_reason()`` says why, a ``CpuKernelWarning`` says it once per process, and
``cbam.CBAM`` keeps to PyTorch operations. ``CBAM_CPU_KERNEL=0`` turns it off (and the warning
with it); ``CBAM(..., fused=False)`` too.
"""

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from cbam.fast import hooks
from cbam.fast.spatial_conv import is_same_conv
from cbam.fast.tracing import compiling, exporting, transformed

SOURCE = Path(__file__).with_name("cpu_kernel.c")
# -march=native: the host's vector width. -fno-trapping-math: floating-point exceptions are never
# read, and GCC vectorises no loop with a float comparison while it must keep them.
PORTABLE_FLAGS = ("-O3", "-fno-trapping-math", "-shared", "-fPIC")
FLAGS = ("-march=native", *PORTABLE_FLAGS)

_reason: str | None = None  # why the library is unavailable, once a build was tried
_refusal: str | None = None  # set by refused()
_warned = False  # the fallback's warning is given once per process


class CpuKernelWarning(UserWarning):
    """The CPU kernel cannot be used here: cbam.CBAM computes the same values more slowly."""


def cache_dir() -> Path:
    if os.environ.get("CBAM_CACHE_DIR"):
        return Path(os.environ["CBAM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cbam"


def _compiler() -> str | None:
    candidates = [os.environ.get("CC"), "cc", "gcc", "clang"]
    return next((found for c in candidates if c and (found := shutil.which(c))), None)


def _host() -> str:
    """What a library built with -march=native depends on: one built elsewhere may not run here."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line for line in info if line.startswith(("flags", "Features"))), cpu)
    except OSError:
        pass
    return f"{sys.platform} {platform.machine()} {cpu}"


def cached_library() -> Path:
    """Where the library built from SOURCE for this host is cached, built or not.

    The compiler is not part of the key: any compiler's build of the same source runs the same,
    and a library built once is then found on a machine that has no compiler left.
    """
    key = hashlib.sha256("\0".join([SOURCE.read_text(), _host(), *FLAGS]).encode()).hexdigest()
    return cache_dir() / f"cpu_kernel-{key[:16]}.so"


def _build(compiler: str | None) -> Path:
    """Compile SOURCE into the cache (once per source and host); return its path."""
    target = cached_library()
    if target.exists():
        return target
    if compiler is None:
        raise OSError("no C compiler found (set $CC, or install cc, gcc or clang)")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Built under a temporary name and renamed: a process that loads the library at the same
        # moment sees either nothing or the whole file.
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".so")
    except OSError as error:
        raise OSError(
            f"its cache {folder} is not writable ({error.strerror}); set CBAM_CACHE_DIR to a "
            "writable folder"
        ) from error
    os.close(handle)
    try:
        errors = ""
        for flags in (FLAGS, PORTABLE_FLAGS):  # some compilers know no -march=native
            run = subprocess.run(
                [compiler, *flags, "-o", temporary, str(SOURCE), "-lm"],
                capture_output=True,
                text=True,
                check=False,
            )
            if run.returncode == 0:
                os.replace(temporary, target)
                return target
            errors = run.stderr.strip()
        raise OSError(
            f"{compiler} could not compile {SOURCE.name} (set $CC to another C compiler): "
            f"{errors[-500:]}"
        )
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _unavailable(reason: str) -> None:
    """Record why the kernel is not used, and say so once per process."""
    global _reason, _warned
    _reason = reason
    if not _warned:
        _warned = True
        warnings.warn(
            f"cbam's CPU kernel is not used: {reason}. cbam.CBAM computes the same values with "
            "PyTorch operations, more slowly; CBAM_CPU_KERNEL=0 turns the kernel and this "
            "warning off.",
            CpuKernelWarning,
            stacklevel=2,
        )


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, built (or found in the cache) on the first call; None where it cannot
    be (see the reason)."""
    global _reason
    if os.environ.get("CBAM_CPU_KERNEL", "1") == "0":
        _reason = "turned off by CBAM_CPU_KERNEL=0"  # asked for: no warning
        return None
    if sys.platform == "win32":
        _unavailable("it is not built on Windows")
        return None
    try:
        lib = ctypes.CDLL(str(_build(_compiler())))
    except OSError as error:
        _unavailable(str(error))
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    lib.cbam_forward.restype = ctypes.c_int
    lib.cbam_forward.argtypes = [pointer, pointer, size, size, size, size, size]
    lib.cbam_forward.argtypes += [pointer, pointer, size, pointer, pointer, pointer, size, pointer]
    return lib


@contextmanager
def refused(reason: str) -> Iterator[None]:
    """Within the block the kernel refuses to run, with ``RuntimeError(reason)``, and cbam.CBAM
    keeps to its plain code: for checking code that must compute CBAM by itself."""
    global _refusal
    before, _refusal = _refusal, reason
    try:
        yield
    finally:
        _refusal = before


def available() -> bool:
    return library() is not None


# Dynamo does not trace the build: it asks once, while compiling, and keeps the answer.
_constant = getattr(torch.compiler, "assume_constant_result", None)
available = _constant(available) if _constant else available


def unavailable_reason() -> str | None:
    """Why the kernel cannot be used here, or None if it can."""
    return None if available() else _reason


@functools.cache
def _workers(threads: int, process: int) -> ThreadPoolExecutor:
    """A pool per thread count and process: a forked child has none of its parent's threads."""
    return ThreadPoolExecutor(threads, thread_name_prefix="cbam-cpu-kernel")


def _address(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _problem(x: torch.Tensor, *weights: torch.Tensor | None) -> str | None:
    """What keeps these tensors (``_run``'s arguments) from the kernel, which reads them as raw
    memory; None if nothing."""
    w1, b1, w2, b2, kernel, conv_bias = weights
    tensors = [t for t in (x, *weights) if t is not None]
    for t in tensors:
        if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
            return "contiguous float32 CPU tensors (NCHW for the input), got " + ", ".join(
                f"{t.dtype} on {t.device} with strides {t.stride()}" for t in tensors
            )
    if x.dim() != 4 or w1.dim() != 2 or kernel.dim() != 4:
        return (
            "x (N, C, H, W), w1 (hidden, C) and kernel (1, 2, k, k), got shapes "
            f"{tuple(x.shape)}, {tuple(w1.shape)} and {tuple(kernel.shape)}"
        )
    channels, hidden, k = x.shape[1], w1.shape[0], kernel.shape[-1]
    expected = {
        "w1": (w1, (hidden, channels)),
        "b1": (b1, (hidden,)),
        "w2": (w2, (channels, hidden)),
        "b2": (b2, (channels,)),
        "kernel": (kernel, (1, 2, k, k)),
        "conv_bias": (conv_bias, (1,)),
    }
    wrong = [
        f"{name} of shape {shape}, got {tuple(t.shape)}"
        for name, (t, shape) in expected.items()
        if t is not None and t.shape != shape
    ]
    if k % 2 == 0:
        wrong.append(f"an odd kernel size, got {k}")
    return f"for x of shape {tuple(x.shape)}: " + "; ".join(wrong) if wrong else None


def _run(
    x: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    kernel: torch.Tensor,
    conv_bias: torch.Tensor | None,
) -> torch.Tensor:
    """The paper's block with these weights on x: M_s(F') * F', F' = M_c(x) * x (Eq. 1-3)."""
    lib = library()  # built, or found in the cache, on the first call
    if lib is None:
        raise RuntimeError(f"cbam's CPU kernel is unavailable: {_reason}")
    problem = _problem(x, w1, b1, w2, b2, kernel, conv_bias)
    if problem is not None:
        raise ValueError(f"cbam's CPU kernel expects {problem}")
    return _launch(lib, x, w1, b1, w2, b2, kernel, conv_bias)


def _launch(lib: ctypes.CDLL, x: torch.Tensor, *weights: torch.Tensor | None) -> torch.Tensor:
    """Run the checked tensors through the kernel, images split among torch's threads."""
    if _refusal is not None:
        raise RuntimeError(_refusal)
    w1, b1, w2, b2, kernel, conv_bias = weights
    n, c, h, w = x.shape
    out = torch.empty_like(x)
    model = (_address(w1), _address(b1), w1.shape[0], _address(w2), _address(b2))
    model += (_address(kernel), kernel.shape[-1], _address(conv_bias))

    def images(first: int, last: int) -> int:
        # ctypes lets go of the GIL during the call, so threads run images side by side.
        return lib.cbam_forward(x.data_ptr(), out.data_ptr(), first, last, c, h, w, *model)

    threads = min(torch.get_num_threads(), n)
    if threads <= 1:
        failed = images(0, n)
    else:
        bounds = [n * i // threads for i in range(threads + 1)]
        pool = _workers(threads, os.getpid())
        failed = any(pool.map(images, bounds[:-1], bounds[1:]))
    if failed:
        raise MemoryError("cbam's CPU kernel could not allocate its scratch memory")
    return out


def _register() -> Callable[..., torch.Tensor] | None:
    """``torch.ops.cbam.cpu_forward``, an operator torch.compile can call; None before torch 2.2.

    Registered by hand, not with torch.library.custom_op, whose wrapper costs more per call
    than this block's smaller inputs take to compute.
    """
    register_fake = getattr(torch.library, "register_fake", None)  # torch >= 2.4
    register_fake = register_fake or getattr(torch.library, "impl_abstract", None)
    if register_fake is None:
        return None
    library = torch.library.Library("cbam", "DEF")
    library.define(
        "cpu_forward(Tensor x, Tensor w1, Tensor? b1, Tensor w2, Tensor? b2, Tensor kernel, "
        "Tensor? conv_bias) -> Tensor"
    )
    library.impl("cpu_forward", _run, "CPU")
    register_fake("cbam::cpu_forward")(lambda x, *weights: torch.empty_like(x))
    _registrations.append(library)  # the registration lasts as long as this object
    return torch.ops.cbam.cpu_forward.default


_registrations: list[torch.library.Library] = []
cpu_forward = _register()


def block_weights(block: nn.Module) -> tuple[torch.Tensor | None, ...]:
    """The tensors with which ``forward`` computes a paper's cbam.CBAM ``block``: the MLP's
    weights and biases, then the spatial convolution's."""
    first, _, second = tuple(block.channel.mlp)  # indexing an nn.Sequential is slower
    conv = block.spatial.conv
    return (first.weight, first.bias, second.weight, second.bias, conv.weight, conv.bias)


def weights_or_refusal(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor | None, ...] | str:
    """``block_weights(block)`` where the kernel computes ``block(x)``; otherwise why not.

    ``block`` is already known to be the paper's block (see ``cbam.fast.route``); the kernel
    also needs its MLP to be Linear, ReLU, Linear, its gates sigmoids, no BatchNorm and a plain
    "same" convolution; float32 NCHW tensors on the CPU, nothing for autograd to record, and no
    torch.func transform, jit trace or export. (Hooks are ``route``'s and ``refusal``'s to
    check.) Called on every forward, so the checks read attributes directly and build nothing
    they can avoid.
    """
    if x.device.type != "cpu":
        return "the kernel is for CPUs; the input is on " + x.device.type
    spatial, channel = block.spatial, block.channel
    mlp = channel.mlp
    layers = tuple(mlp)
    if type(mlp) is not nn.Sequential or [type(m) for m in layers] != [
        nn.Linear,
        nn.ReLU,
        nn.Linear,
    ]:
        return "the channel MLP is not nn.Sequential(Linear, ReLU, Linear)"
    gates, bn, conv = (channel.gate, spatial.gate), spatial.bn, spatial.conv
    if any(type(m) is not nn.Sigmoid for m in gates):
        return "a gate is not nn.Sigmoid"
    if type(bn) is not nn.Identity:
        return "the spatial module has a BatchNorm"
    if not is_same_conv(conv):
        return "the spatial convolution is not a plain 'same' nn.Conv2d to one map"
    first, second = layers[0], layers[2]
    weights = (first.weight, first.bias, second.weight, second.bias, conv.weight, conv.bias)
    if torch.is_grad_enabled() and (
        x.requires_grad or any(w is not None and w.requires_grad for w in weights)
    ):
        return "autograd records the call (a tensor requires a gradient and grad mode is on)"
    if transformed() or exporting():
        return "a torch.func transform, jit trace or export is tracing the call"
    if _refusal is not None:
        return _refusal
    problem = _problem(x, *weights)
    if problem is not None:
        return f"the kernel expects {problem}"
    if not available():
        return f"the kernel is unavailable: {_reason}"
    if cpu_forward is None and compiling():
        return "torch.compile needs torch.ops.cbam.cpu_forward, which this torch cannot register"
    return weights


def refusal(block: nn.Module, x: torch.Tensor) -> str | None:
    """Why the kernel does not compute ``block(x)`` now, or None where it does."""
    if hooks.watched(block):
        return "a hook watches the block or one of its modules"
    answer = weights_or_refusal(block, x)
    return answer if isinstance(answer, str) else None


def forward(x: torch.Tensor, weights: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
    """The kernel on ``x`` with ``weights_or_refusal``'s weights."""
    if compiling():
        return cpu_forward(x, *weights)
    # In eager mode the operator's dispatch would only add time, and refusal has checked.
    if _profiling():  # the profiler still sees the call, under the operator's name
        with torch.profiler.record_function("cbam::cpu_forward"):
            return _launch(library(), x, *weights)
    return _launch(library(), x, *weights)


# record_function costs about as much as a small image takes; it is skipped unless a profiler
# is recording.
_profiling = getattr(torch.autograd, "_profiler_enabled", lambda: True)


def cbam_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` through the kernel for a paper's cbam.CBAM ``block``, checks or not: an
    error says what the kernel cannot take."""
    return _run(x, *block_weights(block))
