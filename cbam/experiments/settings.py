"""The settings every variant of an experiment shares, fixed before any comparison was run.

``docs/experiments.md`` says how they were chosen and what was tried first. In short, for the
quick mode (a CPU, about a minute per run):

* the task is the cluttered-shapes task made hard enough to leave room above the plain network:
  16x16 images, objects 1.9-2.9 pixels in radius among eight distractors in the same colours,
  6,000 training and 2,000 validation images drawn once (the plain network plateaus near 86 %);
* the network is the CIFAR ResNet of depth 8 (one basic block per stage) at width 16, so the
  blocks have 16, 32 and 64 channels;
* the reduction ratio is r = 4, not the paper's 16: with 16 channels r = 16 would leave the
  channel MLP one hidden unit; r = 4 gives 4, 8 and 16 (the paper's ResNet-50 has 16 to 128);
* training runs to a plateau: the one-cycle schedule anneals the learning rate to almost zero,
  and the last epochs change the validation accuracy by well under a point.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cbam.device import smoke_run

MODES = ("quick", "full")


@dataclass(frozen=True)
class Settings:
    """One experiment's task, network and training, identical for all its variants and seeds."""

    task: str  # "shapes" (the synthetic task) or "cifar10"
    n_train: int
    n_val: int
    # The synthetic task (ignored for CIFAR-10); its images are drawn once, from data_seed.
    size: int
    clutter: int
    noise: float
    object_size: tuple[float, float]
    data_seed: int
    # The network: resnet_cifar(depth, width=width), attention with reduction ratio r.
    depth: int
    width: int
    reduction: int
    # Training (cbam.train.fit): SGD with Nesterov momentum under a one-cycle schedule.
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @property
    def smallest_hidden_width(self) -> int:
        """The narrowest channel MLP of the network: the first stage's width // r."""
        return self.width // self.reduction


QUICK = Settings(
    task="shapes",
    n_train=6000,
    n_val=2000,
    size=16,
    clutter=8,
    noise=0.15,
    object_size=(0.12, 0.18),
    data_seed=0,
    depth=8,
    width=16,
    reduction=4,
    epochs=16,
    batch_size=64,
    lr=0.1,
    weight_decay=5e-4,
)

# On a GPU: CIFAR-10 when torchvision is there to fetch it (the synthetic task at these sizes
# otherwise), a ResNet-20 at width 32 with r = 8 (hidden widths 4, 8, 16), longer training.
FULL = dataclasses.replace(
    QUICK,
    task="cifar10",
    n_train=45_000,
    n_val=5_000,
    size=32,
    depth=20,
    width=32,
    reduction=8,
    epochs=30,
    batch_size=128,
)

if smoke_run():
    # CBAM_SMOKE=1 (cbam.device): the full task and network, one epoch over a few batches.
    FULL = dataclasses.replace(FULL, n_train=256, n_val=64, epochs=1, batch_size=32)

SETTINGS = {"quick": QUICK, "full": FULL}


def settings_for(mode: str) -> Settings:
    if mode not in SETTINGS:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return SETTINGS[mode]
