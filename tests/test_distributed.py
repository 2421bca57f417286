"""Training on several processes: gradients laid out as DDP expects, and ``fit`` under torchrun.

The torchrun test starts two real processes on the gloo backend (CPU) and compares what they
train with one process that averages the two ranks' gradients itself.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import distributed_worker as worker
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.data.dataloader import default_collate

import cbam
from cbam import distributed
from cbam.attention import ChannelAttention, SpatialAttention
from cbam.fast.fused_backward import FUSED_MIN_ELEMENTS
from cbam.train import evaluate, fit

MODULES = {
    "channel": lambda: ChannelAttention(64),
    "se": lambda: cbam.SqueezeExcitation(64),
    "spatial": lambda: SpatialAttention(),
    "spatial k=3, BN, bias": lambda: SpatialAttention(3, batch_norm=True, bias=True),
    "cbam": lambda: cbam.CBAM(64),
    "cbam with BN": lambda: cbam.CBAM(64, batch_norm=True),
    "cbam spatial-first": lambda: cbam.CBAM(64, arrangement="spatial-first"),
    "cbam parallel": lambda: cbam.CBAM(64, arrangement="parallel"),
}
SMALL = (2, 64, 8, 8)  # the plain code, with the spatial conv's own backward (_SameConv)
LARGE = (4, 64, 32, 32)  # CBAM's fused training path (_FusedChannelFirst)


@pytest.mark.parametrize("shape", [SMALL, LARGE], ids=["plain", "fused"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("name", MODULES)
def test_every_gradient_is_laid_out_like_its_parameter(name, shape, channels_last):
    """DDP copies, and warns about, every gradient whose strides differ from its parameter's."""
    assert math.prod(LARGE) >= FUSED_MIN_ELEMENTS > math.prod(SMALL)
    torch.manual_seed(0)
    module = MODULES[name]()
    x = torch.randn(shape, requires_grad=True)
    if channels_last:
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    module(x).square().sum().backward()
    wrong = {
        n: (p.grad.stride(), p.stride())
        for n, p in module.named_parameters()
        if p.grad.stride() != p.stride()
    }
    assert not wrong, f"gradient strides vs parameter strides: {wrong}"


def test_the_large_input_takes_the_fused_path(monkeypatch):
    """Otherwise the test above would not cover _FusedChannelFirst."""
    calls = []
    fused = cbam.fast.fused_backward._FusedChannelFirst
    original = fused.apply
    monkeypatch.setattr(fused, "apply", staticmethod(lambda *a: calls.append(1) or original(*a)))
    cbam.CBAM(64)(torch.randn(LARGE, requires_grad=True)).sum().backward()
    assert calls == [1]


class _Halves(nn.Module):
    """In training, the model on each rank's half of a batch apart (BatchNorm statistics per
    half, as on each rank), their logits side by side: the mean loss over the whole batch then
    averages the halves' gradients, as DDP does."""

    def __init__(self, model: nn.Module, parts: int) -> None:
        super().__init__()
        self.model, self.parts = model, parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.model(x)
        return torch.cat([self.model(part) for part in x.chunk(self.parts)])


class _UnionOfShares:
    """Batches made of every rank's batch at the same step, in rank order."""

    def __init__(self, dataset, world: int) -> None:
        self.dataset, self.epoch = dataset, 0
        self.samplers = [
            DistributedSampler(dataset, num_replicas=world, rank=r, shuffle=True, seed=worker.SEED)
            for r in range(world)
        ]

    def __len__(self) -> int:
        return math.ceil(len(self.samplers[0]) / worker.BATCH)

    def __iter__(self):
        for sampler in self.samplers:
            sampler.set_epoch(self.epoch)
        shares = [list(sampler) for sampler in self.samplers]
        self.epoch += 1
        for start in range(0, len(shares[0]), worker.BATCH):
            indices = [i for share in shares for i in share[start : start + worker.BATCH]]
            yield default_collate([self.dataset[i] for i in indices])


def _torchrun(out: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(Path(worker.__file__)), str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # torchrun's default, without its notice
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def test_fit_under_torchrun_trains_as_one_process_averaging_the_ranks(tmp_path, figures):
    run = _torchrun(tmp_path)
    stderr = [(tmp_path / f"stderr-{rank}.txt") for rank in (0, 1)]
    logs = "\n".join(p.read_text() for p in stderr if p.exists())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + logs[-3000:]
    assert "Grad strides do not match" not in run.stderr + logs
    # Only rank 0 shows progress; rank 1 says nothing at all.
    assert "epoch 2/2" in stderr[0].read_text()
    assert stderr[1].read_text() == ""

    histories = [json.loads((tmp_path / f"history-{rank}.json").read_text()) for rank in (0, 1)]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert histories[0][key] == histories[1][key], f"{key} differs between ranks"

    train, val = worker.datasets()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: the same kernels, the same rounding
    try:
        reference = worker.build()
        history = fit(
            _Halves(reference, 2), _UnionOfShares(train, 2), epochs=worker.EPOCHS, lr=worker.LR,
            seed=worker.SEED, device="cpu", progress=False,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    trained = worker.build()
    trained.load_state_dict(torch.load(tmp_path / "model.pt"))
    worst = max(
        (a - b).abs().max().item()
        for a, b in zip(trained.parameters(), reference.parameters(), strict=True)
    )
    figures("torchrun vs one process, largest weight difference", f"{worst:.1e}")
    for (name, a), b in zip(trained.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    # Training metrics are the whole batch's, summed over ranks.
    assert histories[0]["train_loss"] == pytest.approx(history.train_loss, rel=1e-5)
    assert histories[0]["train_acc"] == history.train_acc
    # Validation, sharded across ranks, counts each sample once: as one pass over all of it.
    val_loss, val_acc = evaluate(trained, DataLoader(val, batch_size=worker.BATCH))
    assert histories[0]["val_loss"][-1] == pytest.approx(val_loss, rel=1e-5)
    assert histories[0]["val_acc"][-1] == val_acc


def test_sharding_refuses_what_it_cannot_split():
    with pytest.raises(TypeError, match="needs the training loader as a torch DataLoader"):
        distributed.shard_training([(torch.zeros(1), torch.zeros(1))], seed=0)


def test_without_a_process_group_fit_is_one_process():
    assert not distributed.active()
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main()
