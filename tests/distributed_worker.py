"""One process of tests/test_distributed.py's torchrun: ``fit`` on a gloo process group.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed_worker.py OUT

Each rank writes its history to OUT/history-<rank>.json and its stderr to OUT/stderr-<rank>.txt;
rank 0 also saves the trained model's state to OUT/model.pt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from cbam.resnet import resnet_cifar
from cbam.train import fit, seed_everything

# Per-rank batches of 8 images of 32 channels at 32 x 32 in the first stage: 2**18 elements, so
# the CBAM blocks there take the fused training path (cbam.fast.fused_backward.FUSED_MIN_ELEMENTS).
BATCH = 8
EPOCHS = 2
LR = 0.05
SEED = 0


def datasets() -> tuple[TensorDataset, TensorDataset]:
    """48 training and 20 validation images of random noise with random labels."""
    g = torch.Generator().manual_seed(1)

    def noise(n: int) -> TensorDataset:
        images = torch.randn(n, 3, 32, 32, generator=g)
        return TensorDataset(images, torch.randint(10, (n,), generator=g))

    return noise(48), noise(20)


def build() -> torch.nn.Module:
    seed_everything(SEED)
    return resnet_cifar(8, attention="cbam", width=32)


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    sys.stderr = open(out / f"stderr-{rank}.txt", "w")  # noqa: SIM115 - open until the process ends
    train, val = datasets()
    model = build()
    history = fit(
        model,
        DataLoader(train, batch_size=BATCH, shuffle=True),
        DataLoader(val, batch_size=BATCH),
        epochs=EPOCHS,
        lr=LR,
        seed=SEED,
        device="cpu",
    )
    (out / f"history-{rank}.json").write_text(json.dumps(history.as_dict()))
    if rank == 0:
        torch.save(model.state_dict(), out / "model.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
