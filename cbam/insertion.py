"""Attention added to a trained network without changing what it computes at that moment.

A CBAM block multiplies its input by two maps in (0, 1): put into a trained network, it halves
every feature map at least and the network's accuracy falls to chance. ``Blended`` inserts it
as ``x + blend * (attention(x) - x)`` with ``blend`` a learned scalar that starts at 0 (the
zero-initialised residual of ReZero and LayerScale; the authors' zero-initialised BatchNorm
plays the same part for their spatial gate alone): right after insertion the network computes
exactly what it did, and fine-tuning moves ``blend`` away from 0 as far as attention helps.

``insert_attention(model)`` does it for every residual block of a ``cbam.resnet`` network.
``python -m cbam.insertion`` measures the recipe on the course's stored baseline networks: the
accuracy right after insertion, then fine-tuning with and without CBAM from the same weights
on the same batches (paired seeds), the difference with its 95 % interval.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from cbam.resnet import AttentionSpec, BasicBlock, Bottleneck, make_attention


class Blended(nn.Module):
    """``x + blend * (attention(x) - x)``, ``blend`` a learned scalar starting at ``initial``.

    With ``blend = 0`` the module is the identity, exactly; with ``blend = 1`` it is
    ``attention`` itself.
    """

    def __init__(self, attention: nn.Module, initial: float = 0.0) -> None:
        super().__init__()
        if not isinstance(attention, nn.Module):
            raise TypeError(f"attention must be an nn.Module, got {type(attention).__name__}")
        self.attention = attention
        reference = next(attention.parameters(), None)
        factory = {} if reference is None else {"device": reference.device}
        factory["dtype"] = torch.get_default_dtype() if reference is None else reference.dtype
        self.blend = nn.Parameter(torch.full((), float(initial), **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.lerp(x, self.attention(x), self.blend)


def insert_attention(
    model: nn.Module, attention: AttentionSpec = "cbam", *, initial: float = 0.0
) -> nn.Module:
    """Put ``Blended(attention)`` in every residual block of ``model`` that has none; in place.

    ``attention`` is what ``cbam.resnet`` builders take (``"cbam"``, ``"se"`` or a callable
    ``channels -> nn.Module``); the modules are made on the device and in the dtype of the block.
    Returns ``model``, which computes what it computed before (``initial`` = 0).
    """
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    if not blocks:
        raise ValueError(
            "insert_attention works on cbam.resnet networks (BasicBlock or Bottleneck blocks); "
            f"got a {type(model).__name__} with none"
        )
    if attention is None:
        raise ValueError("attention must name a module to insert (e.g. 'cbam'), got None")
    for block in blocks:
        if not isinstance(block.attention, nn.Identity):
            continue
        last_bn = block.bn2 if isinstance(block, BasicBlock) else block.bn3
        factory = {"device": last_bn.weight.device, "dtype": last_bn.weight.dtype}
        module = make_attention(attention, last_bn.num_features, **factory)
        block.attention = Blended(module, initial)
    return model


def _compare(seeds: list[int], epochs: int, lr: float) -> None:
    """Insertion and paired fine-tuning on the stored baseline networks of the attention
    experiment (the quick settings: the shapes task, ResNet-8 at width 16, r = 4)."""
    from functools import partial

    from cbam.attention import CBAM
    from cbam.data import make_loaders
    from cbam.experiments import stats, store
    from cbam.experiments.runner import datasets
    from cbam.experiments.settings import Settings
    from cbam.resnet import resnet_cifar
    from cbam.train import evaluate, fit

    result = store.load("attention")
    settings = Settings(
        **{**result["settings"], "object_size": tuple(result["settings"]["object_size"])}
    )
    stored = {r["seed"]: r["final_val_acc"] for r in result["runs"] if r["variant"] == "baseline"}
    train, val, _, num_classes = datasets(settings)
    print(
        f"{'seed':>4}  {'stored':>7}  {'loaded':>7}  {'+CBAM':>7}  {'tuned':>7}  {'tuned+CBAM':>10}"
    )
    differences = []
    for seed in seeds:
        baseline = resnet_cifar(settings.depth, num_classes, width=settings.width)
        baseline.load_state_dict(store.load_model_state("attention", "baseline", seed))
        train_loader, val_loader = make_loaders(train, val, settings.batch_size)
        loaded = evaluate(baseline, val_loader)[1]
        with_cbam = insert_attention(
            copy.deepcopy(baseline), partial(CBAM, reduction=settings.reduction)
        )
        inserted = evaluate(with_cbam, val_loader)[1]
        tuned = {}
        for name, model in (("plain", baseline), ("cbam", with_cbam)):
            start = time.perf_counter()
            history = fit(
                model,
                train_loader,
                val_loader,
                epochs=epochs,
                lr=lr,
                weight_decay=settings.weight_decay,
                seed=seed,
                progress=False,
            )
            tuned[name] = (history.val_acc[-1], time.perf_counter() - start)
        differences.append(100 * (tuned["cbam"][0] - tuned["plain"][0]))
        print(
            f"{seed:>4}  {stored[seed]:7.2%}  {loaded:7.2%}  {inserted:7.2%}  "
            f"{tuned['plain'][0]:7.2%}  {tuned['cbam'][0]:10.2%}"
        )
    if len(differences) > 1:
        interval = stats.mean_interval(differences)
        print(f"fine-tuned with CBAM - without, points: {interval} ({interval.verdict()})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=_compare.__doc__)
    parser.add_argument("--seeds", default="0,1,2,3,4", help="stored baselines to start from")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=0.01, help="peak learning rate of the tuning")
    args = parser.parse_args(argv)
    _compare([int(s) for s in args.seeds.split(",")], args.epochs, args.lr)


if __name__ == "__main__":
    main()
