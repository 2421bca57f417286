"""How fast is ``cbam.CBAM``? Timed side by side with a naive version, a copy and torch.compile.

    python -m cbam.bench                      # or: cbam-course bench
    python -m cbam.bench --shape 8 64 56 56 --repeats 50 --block 10

CBAM does almost no arithmetic; its time goes into reading and writing the feature map. So it is
compared with:

* ``x.clone()``: one read and one write of the input. A CBAM forward reads the input for the
  global pooling, for the pooling over channels and for the final product, and writes it once:
  twice a clone when every read goes to memory. A cache holding k rows of an image (C * k * W
  floats, the reach of the k x k convolution) lets the last two reads share one trip to memory
  (1.5 clones); one holding a whole image, all three (1 clone). ``cache_sizes`` says what fits;
* ``NaiveCBAM``: CBAM written the straightforward way (adaptive pooling layers, two MLP calls,
  ``torch.max`` with its indices), holding the same weights;
* ``cbam.CBAM(fused=False)``: the same block as PyTorch operations only, without the C kernel
  (``cbam.fast.cpu_kernel``) that ``cbam.CBAM`` runs on a CPU;
* ``torch.compile(cbam.CBAM)``, where the kernel is one operator in the compiled graph.

Every candidate is timed for a block of calls per round, the candidates take turns within a
round, and the median over rounds is reported: on a shared machine a burst of load then hits all
of them alike.
By default one thread runs, timed by its own CPU time, and freed memory stays in the process
(see ``keep_freed_memory``); the ``faults`` columns count the page faults per call. Only the
ratios mean something; absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import ctypes.util
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cbam.attention import CBAM

try:  # page faults per call, where the platform reports them
    import resource
except ImportError:  # Windows
    resource = None

# ResNet-like maps: ResNet-18/34's first stage (ResNet-50's has 256 channels), a second stage.
DEFAULT_SHAPES = ((8, 64, 56, 56), (8, 512, 28, 28))
GOAL_FORWARD_SPEEDUP = 2.0  # cbam.CBAM forward at least this many times faster than naive
GOAL_TRAIN_RATIO = 1.0  # cbam.CBAM forward+backward at most this times naive's time
GOAL_COMPILED_VS_CLONE = 2.5  # compiled forward at most this many clones


class NaiveCBAM(nn.Module):
    """CBAM as a first implementation tends to write it: correct, but slow.

    Two MLP calls instead of one, pooling layers that keep indices nobody uses, a fresh tensor
    for every intermediate result. The kernel is 7 x 7 with its padding fixed at 3, like the
    code this course started from; ``from_cbam`` copies a ``cbam.CBAM``'s weights into it.
    """

    def __init__(self, channels: int, reduction: int = 16, *, bias: bool = True) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, bias=bias),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=bias),
        )
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.sigmoid = nn.Sigmoid()

    @classmethod
    def from_cbam(cls, block: CBAM) -> NaiveCBAM:
        """A naive copy of ``block``, which must have the paper's settings (k = 7, avg & max)."""
        channel, spatial = block.channel, block.spatial
        if spatial is None or spatial.kernel_size != 7 or channel.pool_types != ("avg", "max"):
            raise ValueError(
                "NaiveCBAM copies a CBAM with kernel_size=7, spatial=True and "
                f"pool_types=('avg', 'max'), got {block!r}"
            )
        naive = cls(channel.channels, bias=channel.mlp[0].bias is not None)
        if naive.mlp[0].out_features != channel.hidden_channels:
            raise ValueError(
                f"NaiveCBAM has a hidden width of C // 16 = "
                f"{naive.mlp[0].out_features}, the block {channel.hidden_channels}"
            )
        naive.mlp.load_state_dict(channel.mlp.state_dict())
        naive.conv.load_state_dict(spatial.conv.state_dict())
        return naive

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(self.avg_pool(x).squeeze(-1).squeeze(-1))
        mx = self.mlp(self.max_pool(x).squeeze(-1).squeeze(-1))
        x = x * self.sigmoid(avg + mx).unsqueeze(-1).unsqueeze(-1)
        mean = torch.mean(x, dim=1, keepdim=True)
        largest, _ = torch.max(x, dim=1, keepdim=True)
        return x * self.sigmoid(self.conv(torch.cat([mean, largest], dim=1)))


def _page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process instead of returning it to the system.

    By default glibc gives large freed blocks back, so the next large tensor arrives as fresh
    pages, each zeroed by the kernel at its first write (a page fault per 4 KiB). Which
    candidate pays depends on who freed what before it: kept memory makes every candidate pay
    only for its own work. Returns False where this is not glibc.
    """
    path = ctypes.util.find_library("c")
    if sys.platform != "linux" or not path:
        return False
    libc = ctypes.CDLL(path)
    if not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**30))


_SIZE_SUFFIXES = {"K": 2**10, "M": 2**20, "G": 2**30}


def _parse_size(text: str) -> int:
    """'32K' -> 32768, '32768K' -> 33554432, '1M' -> 1048576 (sysfs and lscpu spell sizes so)."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in _SIZE_SUFFIXES:
        return int(float(text[:-1]) * _SIZE_SUFFIXES[text[-1]])
    return int(text)


def cache_sizes(sysfs: str = "/sys/devices/system/cpu/cpu0/cache") -> dict[str, int]:
    """Bytes of each data cache of the first core, e.g. {"L1d": 32768, "L2": 524288, ...}.

    Read from Linux's sysfs, else from macOS's ``sysctl``; empty where neither answers (a
    container without sysfs, Windows), so callers must do without.
    """
    from pathlib import Path

    sizes: dict[str, int] = {}
    for index in sorted(Path(sysfs).glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = (index / "level").read_text().strip()
            size = _parse_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified"):
            sizes[f"L{level}d" if kind == "Data" else f"L{level}"] = size
    if sizes or sys.platform != "darwin":
        return sizes
    import subprocess

    for name, key in (("L1d", "hw.l1dcachesize"), ("L2", "hw.l2cachesize"),
                      ("L3", "hw.l3cachesize")):
        try:
            value = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True,
                                   timeout=5).stdout.strip()
            if value and int(value) > 0:
                sizes[name] = int(value)
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    return sizes


CLOCKS = {
    # Wall time is what a user waits; this thread's CPU time leaves out the moments the thread
    # waited for a core held by another program, so on a busy machine it is the steadier one.
    # It sees only this thread's work, hence only for one torch thread.
    "wall": time.perf_counter,
    "cpu": time.thread_time,
}


def interleaved_times(
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    *,
    block: int = 5,
    warmup: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per call and mean page faults per call of each candidate.

    Each round times a block of ``block`` calls of every candidate in turn; the order rotates
    from round to round so that no candidate always runs right after the same neighbour. Within
    a block a candidate finds the caches as its own previous call left them, as it would in a
    loop of its own: a single call right after another candidate would also pay for refilling
    what that one evicted.
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    faults = dict.fromkeys(names, 0)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            call = candidates[name]
            faults_before = _page_faults()
            start = clock()
            for _ in range(block):
                call()
            times[name].append((clock() - start) / block)
            faults[name] += _page_faults() - faults_before
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians, {name: faults[name] / (rounds * block) for name in names}


def _inference(fn: Callable[[torch.Tensor], object], x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return fn(x)

    return run


def _training_step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).backward(grad)

    return run


def bench_shape(
    shape: Sequence[int],
    rounds: int,
    *,
    block_calls: int = 5,
    compile_: bool = True,
    clock: Callable[[], float] = time.perf_counter,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Seconds per call for one input shape, and page faults per call.

    Three groups, each timed in rounds of its own: "forward" (x.clone(), the naive version and
    cbam.CBAM with and without its C kernel), "floor" (x.clone(), cbam.CBAM and cbam.CBAM under
    torch.compile; empty without ``compile_``) and "train" (forward+backward of the naive version
    and cbam.CBAM). The compiled module is kept away from the naive version: the many large
    temporaries that one allocates and frees leave the caches and the allocator in a state that
    slows whoever runs next, and a compiled call, with more fixed work per call, most of all.
    """
    torch.manual_seed(seed)
    n, c, h, w = shape
    block = CBAM(c).eval()
    naive = NaiveCBAM.from_cbam(block).eval()
    torch_ops = copy.deepcopy(block)
    torch_ops.fused = False  # no C kernel: what PyTorch's own operations make of the same block
    x = torch.randn(n, c, h, w)
    with torch.no_grad():  # the comparison is only fair if both compute the same thing
        torch.testing.assert_close(block(x), naive(x), rtol=1e-4, atol=1e-5)

    forward = {
        "x.clone()": lambda: x.clone(),
        "naive": _inference(naive, x),
        "cbam.CBAM": _inference(block, x),
        "  fused=False": _inference(torch_ops, x),
    }
    forward_times, forward_faults = interleaved_times(
        forward, rounds, block=block_calls, clock=clock
    )
    floor_times, floor_faults = {}, {}
    if compile_:
        compiled = torch.compile(block, dynamic=False)
        start = time.perf_counter()
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), block(x), rtol=1e-4, atol=1e-5)
        print(f"  (torch.compile took {time.perf_counter() - start:.0f} s)", flush=True)
        floor = {
            "x.clone()": forward["x.clone()"],
            "cbam.CBAM": forward["cbam.CBAM"],
            "cbam.CBAM compiled": _inference(compiled, x),
        }
        floor_times, floor_faults = interleaved_times(floor, rounds, block=block_calls, clock=clock)

    x_train = x.clone().requires_grad_()
    grad = torch.randn_like(x)
    train = {
        "naive": _training_step(naive.train(), x_train, grad),
        "cbam.CBAM": _training_step(block.train(), x_train, grad),
    }
    train_times, train_faults = interleaved_times(train, rounds, block=block_calls, clock=clock)
    return {
        "forward": forward_times,
        "floor": floor_times,
        "train": train_times,
        "forward_faults": forward_faults,
        "floor_faults": floor_faults,
        "train_faults": train_faults,
    }


def goals(result: dict[str, dict[str, float]]) -> list[tuple[str, float, bool]]:
    """(description, measured ratio, met) for each speed goal the result can decide."""
    fwd, train = result["forward"], result["train"]
    speedup = fwd["naive"] / fwd["cbam.CBAM"]
    train_ratio = train["cbam.CBAM"] / train["naive"]
    rows = [
        (
            f"forward >= {GOAL_FORWARD_SPEEDUP:g}x faster than naive",
            speedup,
            speedup >= GOAL_FORWARD_SPEEDUP,
        ),
        (
            f"forward+backward <= {GOAL_TRAIN_RATIO:g}x naive's time",
            train_ratio,
            train_ratio <= GOAL_TRAIN_RATIO,
        ),
    ]
    floor = result["floor"]
    if floor:
        compiled = floor["cbam.CBAM compiled"] / floor["x.clone()"]
        rows.append(
            (
                f"compiled forward <= {GOAL_COMPILED_VS_CLONE:g}x x.clone()",
                compiled,
                compiled <= GOAL_COMPILED_VS_CLONE,
            )
        )
    return rows


def format_result(result: dict[str, dict[str, float]]) -> str:
    fwd, train = result["forward"], result["train"]
    clone, naive_fwd, naive_train = fwd["x.clone()"], fwd["naive"], train["naive"]
    lines = [
        f"  {'':<20}{'forward ms':>11}{'x clone':>9}{'x naive':>9}{'faults':>8}"
        f"{'fwd+bwd ms':>12}{'x naive':>9}{'faults':>8}"
    ]
    for name, seconds in fwd.items():
        line = (
            f"  {name:<20}{seconds * 1e3:>11.3f}{seconds / clone:>9.2f}"
            f"{seconds / naive_fwd:>9.2f}{result['forward_faults'][name]:>8.0f}"
        )
        if name in train:
            line += (
                f"{train[name] * 1e3:>12.3f}{train[name] / naive_train:>9.2f}"
                f"{result['train_faults'][name]:>8.0f}"
            )
        lines.append(line)
    if result["floor"]:
        lines.append("  against the memory floor, in rounds of their own:")
        floor_clone = result["floor"]["x.clone()"]
        for name, seconds in result["floor"].items():
            lines.append(
                f"  {name:<20}{seconds * 1e3:>11.3f}{seconds / floor_clone:>9.2f}{'':>9}"
                f"{result['floor_faults'][name]:>8.0f}"
            )
    lines.append("  goals:")
    for description, ratio, met in goals(result):
        lines.append(f"    {description:<44} {ratio:6.2f}x  {'met' if met else 'NOT MET'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cbam-course bench",
        description="Time cbam.CBAM (forward; forward+backward) against a naive version, "
        "x.clone() and torch.compile, side by side in one run on the CPU.",
    )
    parser.add_argument(
        "--shape",
        nargs=4,
        type=int,
        action="append",
        metavar=("N", "C", "H", "W"),
        help="input shape; repeat the option for several (default: "
        + ", ".join(" ".join(map(str, s)) for s in DEFAULT_SHAPES)
        + ")",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=30,
        help="rounds; each times every candidate for a block of calls (default: 30)",
    )
    parser.add_argument(
        "--block", type=int, default=5, help="calls per candidate per round (default: 5)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default: 1, whose ratios are steadiest on a machine "
        "shared with other work; 0: torch's own choice)",
    )
    parser.add_argument(
        "--clock",
        choices=("auto", *CLOCKS),
        default="auto",
        help="wall time, or this thread's CPU time (steadier under load, for "
        "one thread only); auto: cpu with one thread, else wall",
    )
    parser.add_argument(
        "--return-memory",
        action="store_true",
        help="leave glibc's default, which returns freed large blocks to the "
        "system: new tensors then cost page faults, charged to whichever "
        "candidate allocates next (default: keep freed memory)",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="skip torch.compile (slow to build)"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a goal is not met"
    )
    args = parser.parse_args(argv)
    shapes = [tuple(s) for s in args.shape] if args.shape else list(DEFAULT_SHAPES)
    for shape in shapes:
        if any(v <= 0 for v in shape):
            parser.error(f"--shape needs four positive ints, got {' '.join(map(str, shape))}")
        if shape[1] < 16:
            parser.error(
                f"--shape needs C >= 16 (the naive version's hidden width is C // 16), "
                f"got C = {shape[1]}"
            )
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.block < 1:
        parser.error(f"--block must be >= 1, got {args.block}")
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args.clock == "cpu" and threads > 1:
        parser.error(f"--clock cpu measures one thread's work; it needs --threads 1, got {threads}")
    clock_name = args.clock if args.clock != "auto" else "cpu" if threads == 1 else "wall"

    kept = not args.return_memory and keep_freed_memory()
    memory = "freed memory kept" if kept else "freed memory returned to the system"
    print(
        f"torch {torch.__version__}, {threads} thread(s), {clock_name} clock, {memory}, median "
        f"of {args.repeats} interleaved rounds of {args.block} calls each; faults = page faults "
        "per call"
    )
    all_met = True
    for shape in shapes:
        print(f"\nshape {tuple(shape)}, float32", flush=True)
        result = bench_shape(
            shape,
            args.repeats,
            block_calls=args.block,
            compile_=not args.no_compile,
            clock=CLOCKS[clock_name],
        )
        print(format_result(result), flush=True)
        all_met &= all(met for _, _, met in goals(result))
    return 1 if args.check and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
