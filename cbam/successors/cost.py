"""What each attention module costs: parameters, multiply-accumulates and measured time.

Parameters and MACs are counted as the CBAM paper's Table 4 counts them (``cbam.counting``:
convolutions, linear layers and matrix products; pooling, sigmoids and elementwise products
are free by that convention, which is why a parameter-free SimAM counts zero). Time is measured:
each network's forward, and its forward + backward, timed in interleaved rounds beside the plain
network on the same machine (``cbam.bench.interleaved_times``), and reported as a ratio to it,
the median over rounds with its spread. Counting and timing disagree on purpose: lesson 07
shows why the light operations cost time they do not count.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cbam.attention import CBAM, SqueezeExcitation
from cbam.bench import interleaved_times
from cbam.counting import count_macs, count_params
from cbam.successors.coordinate import CoordinateAttention
from cbam.successors.eca import EfficientChannelAttention
from cbam.successors.global_context import GlobalContext
from cbam.successors.simam import SimAM

Factory = Callable[[int], nn.Module] | None

# Each module with its own paper's settings on ResNet-50 (ImageNet).
PAPER_SETTINGS: dict[str, Factory] = {
    "baseline": None,
    "se": partial(SqueezeExcitation, reduction=16),
    "cbam": partial(CBAM, reduction=16),
    "eca": EfficientChannelAttention,
    "eca-max": partial(EfficientChannelAttention, pool_types=("avg", "max")),
    "coordinate": partial(CoordinateAttention, reduction=32),
    "simam": SimAM,
    "gc": partial(GlobalContext, reduction=16),
}


@dataclass(frozen=True)
class Cost:
    """One network's cost; time ratios are to the plain network: the median over rounds and the
    quartiles around it (a round that the machine's other work slowed moves the extremes)."""

    name: str
    params: int
    macs: int
    forward: tuple[float, float, float] | None = None
    training: tuple[float, float, float] | None = None


def _median_spread(values: list[float]) -> tuple[float, float, float]:
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return median, low, high


def _ratios(candidates: dict[str, Callable[[], object]], rounds: int) -> dict[str, tuple]:
    """Per round, each candidate's time over the plain network's; median and range."""
    per_round: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(rounds):
        times, _ = interleaved_times(candidates, 1, block=2, warmup=1 if round_ == 0 else 0)
        for name, seconds in times.items():
            per_round[name].append(seconds / times["baseline"])
    return {name: _median_spread(values) for name, values in per_round.items()}


def costs(
    build: Callable[[Factory], nn.Module],
    factories: dict[str, Factory],
    input_size: Sequence[int],
    *,
    rounds: int = 0,
    seed: int = 0,
) -> list[Cost]:
    """The cost of ``build(factory)`` for each named factory (one must be "baseline", the plain
    network); ``rounds`` > 0 also times them, forward and forward + backward, on a batch of
    ``input_size``."""
    if "baseline" not in factories:
        raise ValueError(
            f"factories must include 'baseline', the plain network; got {list(factories)}"
        )
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
        torch.manual_seed(seed)
        models = {name: build(factory) for name, factory in factories.items()}
        x = torch.randn(*input_size)
    counted = {
        name: (count_params(m), count_macs(m.eval(), input_size)) for name, m in models.items()
    }
    forward = training = {}
    if rounds > 0:

        def infer(model: nn.Module) -> Callable[[], object]:
            def run() -> object:
                with torch.no_grad():
                    return model(x)

            return run

        def step(model: nn.Module) -> Callable[[], None]:
            def run() -> None:
                model.zero_grad(set_to_none=True)
                model(x).sum().backward()

            return run

        forward = _ratios({n: infer(m.eval()) for n, m in models.items()}, rounds)
        training = _ratios({n: step(m.train()) for n, m in models.items()}, rounds)
    return [Cost(name, *counted[name], forward.get(name), training.get(name)) for name in factories]


def format_costs(rows: list[Cost]) -> str:
    """A plain-text table: parameters and MACs added to the plain network, and time ratios."""
    base = next(row for row in rows if row.name == "baseline")

    def ratio(value: tuple[float, float, float] | None) -> str:
        return "-" if value is None else f"{value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]"

    lines = [f"{'module':<12}{'+params':>10}{'+params %':>11}{'+MACs %':>9}"
             f"{'forward x [IQR]':>20}{'fwd+bwd x [IQR]':>20}"]  # fmt: skip
    for row in rows:
        extra = row.params - base.params
        lines.append(
            f"{row.name:<12}{extra:>10,}{100 * extra / base.params:>10.2f}%"
            f"{100 * (row.macs - base.macs) / base.macs:>8.2f}%"
            f"{ratio(row.forward):>20}{ratio(row.training):>20}"
        )
    return "\n".join(lines)
