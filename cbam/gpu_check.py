"""``make gpu-check``: what only a CUDA GPU can check, in one run of a few minutes, one report.

    python -m cbam.gpu_check                  # writes gpu-check-report.md
    python -m cbam.gpu_check --report r.md

1. **CUDA tests** (``tests/test_precision.py``, with ``CBAM_REQUIRE_CUDA=1`` so that they cannot
   skip): the fused training path (``_FusedChannelFirst``, the hand-written backward) against
   the plain code, values and gradients, in float32, float16 and bfloat16, under autocast, in
   channels_last.
2. **torchrun with SyncBatchNorm**: ``cbam.train.fit`` on every GPU of the machine over NCCL,
   a CBAM-ResNet whose BatchNorms are ``nn.SyncBatchNorm``, with mixed precision.
3. **The training lessons in full mode** (05-07, ``CBAM_MODE=full``), each stopped at its time
   cap: how many cells ran, and the first error if any.
4. **The benchmark on CUDA**: CBAM's forward and forward+backward as ratios of ``x.clone()`` and
   of the plain code (``CBAM(fused=False)``), eager and compiled.

Without a CUDA GPU it stops at once with exit status 2 and says why. Each part is timed, and the
report keeps whatever ran even when a later part fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
# The whole check fits in 8 minutes on one modern GPU: the lessons get what the other parts
# leave (each at most its own cap), and the benchmark keeps BENCH_RESERVE_S for itself.
BUDGET_S = 480
BENCH_RESERVE_S = 100
TRAINING_LESSONS = {"05": 120, "06": 75, "07": 75}  # lesson -> time cap in seconds
BENCH_SHAPES = ((8, 64, 56, 56), (8, 512, 28, 28), (64, 256, 56, 56))


class NoCuda(RuntimeError):
    """This machine cannot run the check."""


def require_cuda() -> str:
    """The GPU's name, or NoCuda saying why there is none."""
    if not torch.cuda.is_available():
        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = f"; CUDA_VISIBLE_DEVICES={hidden!r} hides the GPUs" if hidden is not None else ""
        raise NoCuda(
            "make gpu-check needs a CUDA GPU, and torch.cuda.is_available() is False here "
            f"(torch {torch.__version__}, {build}{why}). Run it on a machine with an NVIDIA GPU "
            "and a CUDA build of torch; everything else is covered by make test."
        )
    return torch.cuda.get_device_name()


# 1. The CUDA tests -------------------------------------------------------------------------


def run_cuda_tests() -> tuple[bool, str]:
    """pytest on tests/test_cuda.py, skips turned into failures; (passed, its closing lines)."""
    env = {**os.environ, "CBAM_REQUIRE_CUDA": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_precision.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    lines = (run.stdout + run.stderr).strip().splitlines()
    return run.returncode == 0, "\n".join(lines[-15:])


# 2. torchrun with SyncBatchNorm -------------------------------------------------------------


def sync_batch_norm_worker(out: Path) -> None:
    """One process of the torchrun: fit a CBAM-ResNet with SyncBatchNorm over NCCL."""
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset

    from cbam.resnet import resnet_cifar
    from cbam.train import fit, seed_everything

    dist.init_process_group("nccl")
    rank = dist.get_rank()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(512, 3, 32, 32, generator=g)
    labels = torch.randint(10, (512,), generator=g)
    seed_everything(0)
    model = nn.SyncBatchNorm.convert_sync_batchnorm(resnet_cifar(8, attention="cbam", width=32))
    history = fit(
        model,
        DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True),
        DataLoader(TensorDataset(images[:128], labels[:128]), batch_size=64),
        epochs=2,
        lr=0.05,
        seed=0,
        progress=False,
    )
    sync = sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    result = {
        "world_size": dist.get_world_size(),
        "sync_batch_norms": sync,
        "history": history.as_dict(),
    }
    (out / f"rank-{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def run_sync_batch_norm() -> tuple[bool, str]:
    gpus = torch.cuda.device_count()
    with tempfile.TemporaryDirectory() as folder:
        run = subprocess.run(
            [
                sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(gpus), "-m", "cbam.gpu_check", "--sync-bn-worker", folder,
            ],  # fmt: skip
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        results = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("rank-*.json"))]
    if run.returncode != 0 or len(results) != gpus:
        return False, f"torchrun exited with {run.returncode}:\n{run.stderr[-3000:]}"
    histories = [r["history"] for r in results]
    same = all(h["train_loss"] == histories[0]["train_loss"] for h in histories)
    first = histories[0]
    finite = all(map(_finite, first["train_loss"] + first["val_loss"]))
    lines = [
        f"{gpus} process(es), one per GPU, NCCL; {results[0]['sync_batch_norms']} SyncBatchNorm "
        "layers; mixed precision",
        f"train loss per epoch: {', '.join(f'{v:.3f}' for v in first['train_loss'])}; "
        f"val accuracy: {', '.join(f'{v:.3f}' for v in first['val_acc'])}",
        f"every rank reports the same metrics: {same}; losses finite: {finite}",
    ]
    return same and finite and results[0]["sync_batch_norms"] > 0, "\n".join(lines)


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


# 3. The training lessons in full mode -------------------------------------------------------


def run_lesson(lesson: str, cap: float, mode: str = "full") -> tuple[str, str]:
    """Execute a lesson's reference notebook in ``mode``, stopping at ``cap`` seconds.

    Returns (verdict, detail): "passed", "capped" (ran out of time, no error so far) or
    "failed".
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = next((ROOT / "solutions").glob(f"{lesson}_*.ipynb"))
    notebook = nbformat.read(path, as_version=4)
    cells = [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    client = NotebookClient(
        notebook, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    env = {**os.environ, "CBAM_MODE": mode, "MPLBACKEND": "agg"}
    start = time.perf_counter()
    done = 0
    with client.setup_kernel(env=env):
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            left = cap - (time.perf_counter() - start)
            if left <= 0:
                break
            client.timeout = max(1, int(left))
            try:
                client.execute_cell(cell, index)
            except TimeoutError:
                break
            except CellExecutionError as error:
                seconds = time.perf_counter() - start
                name = f"{path.name} cell {index}"
                return "failed", f"{name} raised {error.ename}: {error.evalue} ({seconds:.0f} s)"
            done += 1
    seconds = time.perf_counter() - start
    verdict = "passed" if done == len(cells) else "capped"
    return verdict, f"{done} of {len(cells)} code cells in {seconds:.0f} s (cap {cap:.0f} s)"


# 4. The benchmark on CUDA -------------------------------------------------------------------


def median_seconds(fn: Callable[[], object], min_run_time: float) -> float:
    """Median time per call, the GPU synchronised (torch.utils.benchmark does it)."""
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="fn()", globals={"fn": fn})
    return timer.blocked_autorange(min_run_time=min_run_time).median


def bench(
    shape: Sequence[int],
    *,
    device: str = "cuda",
    channels_last: bool = False,
    amp: torch.dtype | None = None,
    compile_: bool = False,
    min_run_time: float = 0.3,
) -> dict[str, float]:
    """Seconds per call of CBAM forward and forward+backward, fused and plain, and x.clone()."""
    from cbam.attention import CBAM
    from cbam.bench import NaiveCBAM

    torch.manual_seed(0)
    fused = CBAM(shape[1]).to(device)
    plain = CBAM(shape[1], fused=False).to(device)
    plain.load_state_dict(fused.state_dict())
    naive = NaiveCBAM.from_cbam(fused).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(*shape, device=device).contiguous(memory_format=memory_format)
    grad = torch.randn_like(x)
    autocast = torch.autocast(device, dtype=amp or torch.float32, enabled=amp is not None)

    def forward(module: nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad(), autocast:
                return module(x)

        return run

    def train(module: nn.Module) -> Callable[[], object]:
        leaf = x.detach().requires_grad_()

        def run() -> None:
            module.zero_grad(set_to_none=True)
            with autocast:
                out = module(leaf)
            out.backward(grad.to(out.dtype))

        return run

    candidates = {
        "clone": lambda: x.clone(),
        "forward": forward(fused),
        "forward plain": forward(plain),
        "forward naive": forward(naive),
        "train": train(fused),
        "train plain": train(plain),
        "train naive": train(naive),
    }
    if compile_:
        compiled = torch.compile(fused)
        candidates["forward compiled"] = forward(compiled)
        candidates["train compiled"] = train(compiled)
    return {name: median_seconds(fn, min_run_time) for name, fn in candidates.items()}


def bench_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    """Markdown: ratios of the same run only."""
    lines = [
        "| input | forward × clone | forward vs plain | forward vs naive | compiled fwd × clone "
        "| fwd+bwd × clone | fwd+bwd vs plain | fwd+bwd vs naive | compiled fwd+bwd vs plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, t in rows:
        compiled = "forward compiled" in t
        compiled_fwd = f"{t['forward compiled'] / t['clone']:.2f}" if compiled else ""
        compiled_train = f"{t['train compiled'] / t['train plain']:.2f}" if compiled else ""
        lines.append(
            f"| {label} | {t['forward'] / t['clone']:.2f} "
            f"| {t['forward'] / t['forward plain']:.2f} "
            f"| {t['forward'] / t['forward naive']:.2f} | {compiled_fwd} "
            f"| {t['train'] / t['clone']:.2f} | {t['train'] / t['train plain']:.2f} "
            f"| {t['train'] / t['train naive']:.2f} | {compiled_train} |"
        )
    return "\n".join(lines)


def run_bench() -> tuple[bool, str]:
    rows = []
    for index, shape in enumerate(BENCH_SHAPES):
        label = "×".join(map(str, shape))
        # torch.compile costs tens of seconds per shape: the largest shape only.
        rows.append((f"{label} float32", bench(shape, compile_=index == len(BENCH_SHAPES) - 1)))
        rows.append((f"{label} channels_last", bench(shape, channels_last=True)))
        rows.append((f"{label} autocast bfloat16", bench(shape, amp=torch.bfloat16)))
    note = (
        "Ratios of median times from this run (torch.utils.benchmark, the GPU synchronised). "
        "`plain`: CBAM(fused=False); `naive`: cbam.bench.NaiveCBAM; below 1 vs plain or naive "
        "means faster. CBAM's inference on CUDA runs the plain code (the C kernel is CPU-only), "
        "so the forward ratio vs plain is about 1; training takes the fused backward."
    )
    return True, note + "\n\n" + bench_table(rows)


# The whole check ----------------------------------------------------------------------------


def environment() -> str:
    import numpy

    gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return (
        f"{gpus}; torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
        f"{torch.backends.cudnn.version()}); Python {platform.python_version()}; "
        f"numpy {numpy.__version__}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cbam.gpu_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--report", type=Path, default=ROOT / "gpu-check-report.md")
    parser.add_argument("--sync-bn-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sync_bn_worker is not None:
        sync_batch_norm_worker(args.sync_bn_worker)
        return 0
    try:
        gpu = require_cuda()
    except NoCuda as error:
        print(f"gpu-check: {error}", file=sys.stderr)
        return 2
    print(f"gpu-check on {gpu}; report: {args.report}", flush=True)
    sections = [f"# gpu-check\n\n{environment()}\n"]
    start = time.perf_counter()
    parts: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("CUDA tests", run_cuda_tests),
        ("torchrun, SyncBatchNorm", run_sync_batch_norm),
        *[
            (f"lesson {n}, full mode", _lesson_part(n, cap, start))
            for n, cap in TRAINING_LESSONS.items()
        ],
        ("benchmark on CUDA", run_bench),
    ]
    all_passed = True
    for title, part in parts:
        print(f"- {title} ...", flush=True)
        began = time.perf_counter()
        try:
            passed, detail = part()
        except Exception as error:  # a part that crashes is reported; the others still run
            passed, detail = False, f"{type(error).__name__}: {error}"
        seconds = time.perf_counter() - began
        all_passed &= passed
        verdict = "passed" if passed else "FAILED"
        print(f"  {verdict} ({seconds:.0f} s)", flush=True)
        body = detail if "\n|---" in detail else f"```\n{detail}\n```"  # tables stay tables
        sections.append(f"## {title}: {verdict} ({seconds:.0f} s)\n\n{body}\n")
        args.report.write_text("\n".join(sections))  # what ran so far survives a later crash
    total = time.perf_counter() - start
    sections.append(f"Total: {total:.0f} s.\n")
    args.report.write_text("\n".join(sections))
    print(f"gpu-check {'passed' if all_passed else 'FAILED'} in {total:.0f} s: {args.report}")
    return 0 if all_passed else 1


def _lesson_part(lesson: str, cap: float, start: float) -> Callable[[], tuple[bool, str]]:
    def part() -> tuple[bool, str]:
        left = BUDGET_S - BENCH_RESERVE_S - (time.perf_counter() - start)
        verdict, detail = run_lesson(lesson, max(10.0, min(cap, left)))
        return verdict != "failed", f"{verdict}: {detail}"

    return part


if __name__ == "__main__":
    sys.exit(main())
