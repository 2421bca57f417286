"""Training on several processes with ``torchrun``: what ``cbam.train.fit`` does differently there.

When a process group is initialised (``torch.distributed.init_process_group``, which a script
started by ``torchrun`` calls first), ``fit`` wraps the model in ``DistributedDataParallel``, gives
each process its share of the data, adds the metrics up across processes, and lets only rank 0
show progress. Each process keeps a full copy of the model; DDP averages the gradients, so every
step is the step one process would take on the union of the processes' batches (BatchNorm
excepted: each process normalises with its own batch's statistics, unless the model was
converted with ``nn.SyncBatchNorm.convert_sync_batchnorm``, which needs GPUs).

>>> torch.distributed.init_process_group("nccl")   # "gloo" on CPUs
>>> history = fit(model, train_loader, val_loader)  # the same call as on one process
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, Subset

from cbam.device import pick_device


def active() -> bool:
    """A process group is initialised: this process is one of several."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, the one process that prints and saves (also True without a process group)."""
    return rank() == 0


def device_for_rank(preferred: str | torch.device | None = None) -> torch.device:
    """``pick_device``, except that without a preference each process takes its own GPU: the one
    ``LOCAL_RANK`` (set by torchrun) names."""
    if preferred is None and torch.cuda.is_available():
        index = int(os.environ.get("LOCAL_RANK", rank() % torch.cuda.device_count()))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return pick_device(preferred)


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """``model`` (already on ``device``) in DistributedDataParallel; it shares its parameters."""
    on_one_device = [device.index] if device.index is not None else None
    return DistributedDataParallel(model, device_ids=on_one_device)


def _loader_options(loader: DataLoader) -> dict:
    """What a DataLoader was built with, less its dataset and sampler."""
    options = {
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": loader.drop_last,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "persistent_workers": loader.persistent_workers,
    }
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
    return options


def _check_shardable(loader: object, role: str) -> None:
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"under torchrun, fit() needs the {role} loader as a torch DataLoader, so that it can "
            f"give each process its share; got {type(loader).__name__}"
        )
    if isinstance(loader.dataset, IterableDataset) or loader.batch_size is None:
        raise ValueError(
            f"under torchrun, fit() shards a {role} DataLoader by its sampler; this one has "
            + ("an IterableDataset" if loader.batch_size else "a batch_sampler")
            + ": give it a DistributedSampler yourself"
        )


def shard_training(loader: DataLoader, seed: int) -> DataLoader:
    """The loader with a ``DistributedSampler``: each epoch, each rank gets a disjoint share
    (padded by a few repeats to equal sizes), shuffled as the loader was, by ``seed`` and the
    epoch (``fit`` calls ``set_epoch``). A loader that has one already is returned as it is."""
    if isinstance(getattr(loader, "sampler", None), DistributedSampler):
        return loader
    _check_shardable(loader, "training")
    shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = DistributedSampler(loader.dataset, shuffle=shuffle, seed=seed)
    return DataLoader(loader.dataset, sampler=sampler, **_loader_options(loader))


def shard_evaluation(loader: DataLoader) -> DataLoader:
    """Every ``world_size``-th sample, from this rank's index on: each sample counted exactly
    once across ranks (a DistributedSampler would pad with repeats, and count them)."""
    if isinstance(getattr(loader, "sampler", None), DistributedSampler):
        return loader
    _check_shardable(loader, "validation")
    share = Subset(loader.dataset, range(rank(), len(loader.dataset), world_size()))
    return DataLoader(share, **_loader_options(loader))


def set_epoch(loader: object, epoch: int) -> None:
    """A DistributedSampler shuffles by seed and epoch: a new order each epoch needs this."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


def sum_across_ranks(*tensors: torch.Tensor) -> None:
    """Each tensor becomes its sum over the ranks, in place."""
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def share_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank.

    DDP sends them before each forward, yet the last training step leaves each rank with its own;
    after this, every rank evaluates, and holds, rank 0's model.
    """
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
