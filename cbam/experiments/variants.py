"""The four experiments: which attention module each variant puts in every residual block.

Each experiment asks one of the paper's questions, changes one thing between its variants, and
compares every variant with its *reference* (the first one listed):

=============  ==========================================  =====================================
experiment     variants (reference first)                  the paper's question
=============  ==========================================  =====================================
attention      baseline, se, channel, cbam                 does each part add something? (Tab. 4)
pooling        avg, max, avg+max                           which pooling for channel attention?
                                                           (Tab. 1)
spatial        pool-k7, pool-k3, conv1x1-k7, conv1x1-k3    how to reduce channels, which k?
                                                           (Tab. 2)
arrangement    channel-first, spatial-first, parallel      in which order? (Tab. 3)
controls       baseline, max-head, spatial, cbam           is the gain the head's? does the
                                                           spatial module alone help?
budget         baseline, se, channel, cbam, at twice the   does the ranking hold when the
               epochs                                      networks train longer?
successors     baseline, se, cbam, eca, eca-max,           CBAM against the modules that came
               coordinate, simam, gc                       after it (``cbam.successors``)
=============  ==========================================  =====================================

``channel`` is CBAM's channel module alone (avg & max pooling); ``se`` is the same module with
average pooling only, so se -> channel adds max pooling and channel -> cbam adds the spatial
module, one change each. ``eca-max`` is ECA given CBAM's max-pooled descriptor beside the
average (one shared convolution, summed before the sigmoid): eca -> eca-max asks whether max
pooling helps there as it does in CBAM's channel module. ``spatial`` is CBAM's spatial module
alone; ``max-head`` is the plain network with a global max pooling before its classifier
instead of the average. Every module uses the experiment's reduction ratio where it has one.

**Shared configurations.** Some variants are the same network under the same settings in two
experiments, so the same seed gives the same run: ``attention``'s cbam = ``spatial``'s pool-k7 =
``arrangement``'s channel-first; ``attention``'s se = ``pooling``'s avg; ``attention``'s
channel = ``pooling``'s avg+max. The first four experiments hold ten distinct configurations,
not fourteen (they were trained again in each). ``controls`` and ``successors`` copy their shared
runs (``Experiment.shared``) from ``attention``'s stored file where that file was made on the
same kind of machine, and train them again where it was not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from torch import nn

from cbam.attention import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation
from cbam.experiments.settings import Settings, settings_for
from cbam.successors import CoordinateAttention, EfficientChannelAttention, GlobalContext, SimAM

# channels -> attention module (None: the plain network).
Factory = Callable[[int], nn.Module] | None


@dataclass(frozen=True)
class Experiment:
    name: str
    question: str
    # variant name -> (reduction ratio -> factory); the first variant is the reference.
    variants: dict[str, Callable[[int], Factory]]
    # The paper's top-1 error (%, ImageNet-1K, ResNet-50, one run each) for each variant.
    paper_top1_error: dict[str, float]
    # The mode's epochs (cbam.experiments.settings) are multiplied by this.
    epoch_factor: int = 1
    # How many paired seeds its stored runs hold, fixed before they were run.
    seeds: int = 10
    # variant -> the network's head pooling where it is not "avg" (cbam.resnet.HEAD_POOLS).
    head_pools: Mapping[str, str] = field(default_factory=dict)
    # variant -> (experiment, variant): the same network under the same settings, whose stored
    # runs are copied instead of trained again (a seed gives the same run in both).
    shared: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return next(iter(self.variants))

    def factory(self, variant: str, reduction: int) -> Factory:
        if variant not in self.variants:
            raise ValueError(
                f"experiment {self.name!r} has the variants {tuple(self.variants)}, got {variant!r}"
            )
        return self.variants[variant](reduction)

    def settings(self, mode: str) -> Settings:
        """The settings every run of this experiment shares in ``mode``."""
        settings = settings_for(mode)
        return dataclasses.replace(settings, epochs=settings.epochs * self.epoch_factor)

    def head_pool(self, variant: str) -> str:
        return self.head_pools.get(variant, "avg")


def _spatial(channel_reduction: str, kernel_size: int) -> Callable[[int], Factory]:
    return lambda r: partial(
        CBAM, reduction=r, kernel_size=kernel_size, channel_reduction=channel_reduction
    )


def _pooling(*pool_types: str) -> Callable[[int], Factory]:
    return lambda r: partial(ChannelAttention, reduction=r, pool_types=pool_types)


def _arrangement(arrangement: str) -> Callable[[int], Factory]:
    return lambda r: partial(CBAM, reduction=r, arrangement=arrangement)


def _spatial_only(r: int) -> Factory:
    # The spatial module has no channel MLP, so r does not reach it; its map does not depend
    # on the number of channels either.
    return lambda channels: SpatialAttention(7)


# Table 4's rows, the attention experiment's variants.
_TABLE4 = {
    "baseline": lambda r: None,
    "se": lambda r: partial(SqueezeExcitation, reduction=r),
    "channel": _pooling("avg", "max"),
    "cbam": lambda r: partial(CBAM, reduction=r),
}


# The paper's plain ResNet-50, the reference for Table 4 (and the starting point of Tables 1-3).
PAPER_BASELINE_TOP1_ERROR = 24.56

EXPERIMENTS = {
    experiment.name: experiment
    for experiment in (
        Experiment(
            "attention",
            "does each part of CBAM add something over the plain network?",
            dict(_TABLE4),
            # Table 4 has no row for the channel module alone; Table 1's avg & max is that.
            {"baseline": 24.56, "se": 23.14, "channel": 22.80, "cbam": 22.66},
        ),
        Experiment(
            "pooling",
            "which global pooling should channel attention use?",
            {"avg": _pooling("avg"), "max": _pooling("max"), "avg+max": _pooling("avg", "max")},
            {"avg": 23.14, "max": 23.20, "avg+max": 22.80},
        ),
        Experiment(
            "spatial",
            "pool over channels or learn a 1x1 convolution, and which kernel size?",
            {
                "pool-k7": _spatial("pool", 7),
                "pool-k3": _spatial("pool", 3),
                "conv1x1-k7": _spatial("conv1x1", 7),
                "conv1x1-k3": _spatial("conv1x1", 3),
            },
            {"pool-k7": 22.66, "pool-k3": 22.68, "conv1x1-k7": 22.90, "conv1x1-k3": 22.96},
        ),
        Experiment(
            "arrangement",
            "channel attention first, spatial first, or both in parallel?",
            {
                "channel-first": _arrangement("channel-first"),
                "spatial-first": _arrangement("spatial-first"),
                "parallel": _arrangement("parallel"),
            },
            {"channel-first": 22.66, "spatial-first": 22.78, "parallel": 22.95},
        ),
        Experiment(
            "controls",
            "is the gain the classifier head's, and does the spatial module alone help?",
            {
                "baseline": _TABLE4["baseline"],
                "max-head": lambda r: None,
                "spatial": _spatial_only,
                "cbam": _TABLE4["cbam"],
            },
            # The paper has no row for these; Table 4's plain network and CBAM are the two ends.
            {"baseline": 24.56, "cbam": 22.66},
            head_pools={"max-head": "max"},
            shared={"baseline": ("attention", "baseline"), "cbam": ("attention", "cbam")},
        ),
        Experiment(
            "budget",
            "does the ranking of the attention experiment hold at twice the epochs?",
            dict(_TABLE4),
            {"baseline": 24.56, "se": 23.14, "channel": 22.80, "cbam": 22.66},
            epoch_factor=2,
            # Each run costs two: five seeds show whether the ranking holds, not small gaps.
            seeds=5,
        ),
        Experiment(
            "successors",
            "does a later module do better than CBAM, here, under the same rules?",
            {
                "baseline": _TABLE4["baseline"],
                "se": _TABLE4["se"],
                "cbam": _TABLE4["cbam"],
                "eca": lambda r: EfficientChannelAttention,
                "eca-max": lambda r: partial(EfficientChannelAttention, pool_types=("avg", "max")),
                # The experiment's r sets their bottlenecks as it sets SE's and CBAM's.
                "coordinate": lambda r: partial(CoordinateAttention, reduction=r),
                "simam": lambda r: SimAM,
                "gc": lambda r: partial(GlobalContext, reduction=r),
            },
            # Only CBAM's Table 4 has one baseline for all; the successors' own papers each
            # trained their own, so their numbers are in lesson 08, not here.
            {"baseline": 24.56, "se": 23.14, "cbam": 22.66},
            shared={v: ("attention", v) for v in ("baseline", "se", "cbam")},
        ),
    )
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {tuple(EXPERIMENTS)}, got {name!r}")
    return EXPERIMENTS[name]
