"""Running an experiment: every (variant, seed) of the grid, paired, resumable, in parallel.

**Paired seeds.** For a seed, every variant starts from the same backbone weights and sees the
same batches in the same order, so a paired difference compares the modules and nothing else.
Building an attention module draws random numbers, which would shift the global stream and give
each variant other backbone weights; so each attention module draws its weights from a
generator of its own (``_own_stream``), and the global one is left exactly as a plain network's
construction leaves it. ``fit(seed=...)`` then re-seeds before training, which fixes the order
of the batches.

**Resumable.** The result file is rewritten after every finished run; a (variant, seed)
already in it is not run again, and a file made with other settings is refused.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import sys
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import torch
from tqdm.auto import tqdm

from cbam.data import data_root, has_cifar10, has_torchvision, make_loaders, synthetic_splits
from cbam.device import pick_device
from cbam.experiments import store
from cbam.experiments.settings import Settings
from cbam.experiments.variants import Experiment, Factory, get_experiment
from cbam.resnet import resnet_cifar
from cbam.train import class_accuracies, evaluate, fit, seed_everything

# Attention generators are seeded from this, the run's seed and the module's place in the net.
_ATTENTION_SEED = 7919


def _own_stream(factory: Factory, seed: int) -> Factory:
    """``factory`` whose modules take their initial weights from a generator of their own."""
    if factory is None:
        return None
    count = itertools.count()

    def build(channels: int) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_ATTENTION_SEED + 1000 * seed + next(count))
            return factory(channels)

    return build


def build_model(
    experiment: Experiment, variant: str, seed: int, settings: Settings, num_classes: int
) -> torch.nn.Module:
    """The network of ``variant`` for ``seed``: backbone weights depend on the seed alone."""
    factory = _own_stream(experiment.factory(variant, settings.reduction), seed)
    seed_everything(seed)
    return resnet_cifar(
        settings.depth,
        num_classes,
        attention=factory,
        width=settings.width,
        head_pool=experiment.head_pool(variant),
    )


@lru_cache(maxsize=2)
def datasets(settings: Settings) -> tuple[object, object, object | None, int]:
    """(train, validation, test or None, number of classes); the same for every run.

    CIFAR-10 keeps its test split apart: validation is the last ``n_val`` training images. It
    is read from ``cbam.data.data_root()``, fetched there first when torchvision can; with
    neither its files nor torchvision, the synthetic task stands in at the same sizes.
    """
    root = data_root()
    if settings.task == "cifar10" and (has_cifar10(root) or has_torchvision()):
        from torch.utils.data import Subset

        from cbam.data import download_cifar10, load_cifar10

        folder = download_cifar10(root)
        train_all = load_cifar10(folder, train=True)
        val_all = load_cifar10(folder, train=True, augment=False)
        order = torch.randperm(len(train_all), generator=torch.Generator().manual_seed(0))
        train = Subset(train_all, order[: settings.n_train].tolist())
        val = Subset(val_all, order[len(order) - settings.n_val :].tolist())
        return train, val, load_cifar10(folder, train=False), 10
    train, val = synthetic_splits(
        settings.n_train,
        settings.n_val,
        seed=settings.data_seed,
        size=settings.size,
        clutter=settings.clutter,
        noise=settings.noise,
        object_size=settings.object_size,
    )
    return train, val, None, len(train.classes)


def run_one(
    name: str,
    variant: str,
    seed: int,
    settings: Settings,
    *,
    device: str | torch.device | None = None,
    keep_model: str | Path | None = None,
    progress: bool = False,
    step=None,
) -> dict:
    """Train one (variant, seed) of experiment ``name`` and return its record.

    ``keep_model``: a path to save the trained model's state dict to. ``step``: passed to
    ``cbam.train.fit`` (lesson 05 runs the learner's own training step through it).
    """
    experiment = get_experiment(name)
    device = pick_device(device)
    train, val, test, num_classes = datasets(settings)
    on_gpu = device.type == "cuda"
    train_loader, val_loader = make_loaders(
        train, val, settings.batch_size, num_workers=4 if on_gpu else 0, pin_memory=on_gpu
    )
    start = time.perf_counter()
    model = build_model(experiment, variant, seed, settings, num_classes)
    history = fit(
        model,
        train_loader,
        val_loader,
        epochs=settings.epochs,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        device=device,
        seed=seed,
        progress=progress,
        step=step,
    )
    record = {
        "variant": variant,
        "seed": seed,
        "val_acc": history.val_acc,
        "train_loss": history.train_loss,
        "final_val_acc": history.val_acc[-1],
        # Which classes the network gets right: where a variant's gain comes from.
        "final_class_acc": class_accuracies(model, val_loader, num_classes, device=device),
    }
    if test is not None:
        _, test_loader = make_loaders(train, test, settings.batch_size)
        record["test_acc"] = evaluate(model, test_loader, device=device)[1]
    record["seconds"] = round(time.perf_counter() - start, 1)
    if keep_model is not None:
        Path(keep_model).parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, keep_model)
    return record


def _worker(args: tuple) -> dict:
    """One run of a grid; on the CPU with one thread, as the stored runs were made."""
    name, variant, seed, settings, device, keep_model = args
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        return run_one(name, variant, seed, settings, device=device, keep_model=keep_model)
    finally:
        torch.set_num_threads(threads)


def parse_seeds(text: str) -> list[int]:
    """ "0-9" -> [0, ..., 9]; "0,3,5-6" -> [0, 3, 5, 6]."""
    seeds: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            seeds += list(range(int(low), int(high) + 1)) if dash else [int(low)]
        except ValueError:
            raise ValueError(f"seeds must look like 0-9 or 0,3,5-6, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds must be non-negative ints, got {text!r}")
    return sorted(set(seeds))


def run_experiment(
    name: str,
    *,
    variants: Sequence[str] | None = None,
    seeds: Iterable[int] = range(10),
    mode: str = "quick",
    out: str | Path | None = None,
    jobs: int = 1,
    keep_models: Iterable[int] = (),
    device: str | torch.device | None = None,
    progress: bool = True,
    command: list[str] | None = None,
) -> dict:
    """Run the grid ``variants`` x ``seeds`` of experiment ``name`` and return the result.

    With ``out``, runs already in that file are kept and skipped, and the file is rewritten
    after every finished run. ``jobs`` processes run at once, one thread each (on the CPU).
    ``keep_models``: the seeds whose trained models are saved beside ``out``.
    """
    experiment = get_experiment(name)
    settings = experiment.settings(mode)
    variants = list(experiment.variants) if variants is None else list(variants)
    for variant in variants:
        experiment.factory(variant, settings.reduction)  # names a known variant, or says which
    seeds = sorted(set(seeds))
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    device = pick_device(device)
    threads = 1 if device.type == "cpu" else torch.get_num_threads()
    command = command or ["python", *sys.argv]
    result = _start(name, mode, settings, out)
    # The invocation that adds runs signs the file; "seconds" adds up every run's own time.
    earlier = result["provenance"]
    result["provenance"] = store.provenance(command, device, threads) | {
        "seconds": earlier.get("seconds", 0.0)
    }
    if "copied" in earlier:
        result["provenance"]["copied"] = earlier["copied"]
    keep = set(keep_models)
    done = {(run["variant"], run["seed"]) for run in result["runs"]}
    todo = [(v, s) for s in seeds for v in variants if (v, s) not in done]
    copies = _shared_runs(experiment, mode, settings, todo)
    if copies:
        result["provenance"]["copied"] = result["provenance"].get("copied", {}) | {
            variant: copied_from for variant, copied_from, _ in copies.values()
        }

    def model_path(variant: str, seed: int) -> Path | None:
        if seed not in keep or out is None:
            return None
        return store.models_folder(out) / f"{variant}-seed{seed}.pt"

    def finished(record: dict) -> None:
        result["runs"].append(record)
        # By seed, then in the experiment's order of variants, however the runs finished.
        order = list(experiment.variants)
        result["runs"].sort(key=lambda r: (r["seed"], order.index(r["variant"])))
        result["provenance"]["seconds"] = round(
            result["provenance"]["seconds"] + record["seconds"], 1
        )
        if out is not None:
            store.save(result, out)

    for _, _, record in copies.values():
        finished(record)
    todo = [task for task in todo if task not in copies]
    tasks = [(name, v, s, settings, str(device), model_path(v, s)) for v, s in todo]
    bar = tqdm(total=len(tasks), disable=not progress, unit="run", desc=name)
    try:
        if jobs == 1 or len(tasks) <= 1:
            for task in tasks:
                finished(_worker(task))
                bar.update()
        else:
            # spawn: a fresh interpreter per worker, no copy of this process's threads or state.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
                for future in concurrent.futures.as_completed(
                    [pool.submit(_worker, task) for task in tasks]
                ):
                    finished(future.result())
                    bar.update()
    finally:
        bar.close()
    return result


def _shared_runs(
    experiment: Experiment, mode: str, settings: Settings, todo: list[tuple[str, int]]
) -> dict[tuple[str, int], tuple[str, dict, dict]]:
    """The runs of ``todo`` another experiment's stored file already holds: the same network
    under the same settings (``Experiment.shared``). (variant, seed) -> (variant, where the run
    was copied from, the record). A missing file or run, other settings or another machine
    copies nothing."""
    copies = {}
    for variant, seed in todo:
        if variant not in experiment.shared:
            continue
        source, source_variant = experiment.shared[variant]
        try:
            stored = store.load(source)
        except FileNotFoundError:
            continue
        # Only runs made where this one runs: elsewhere float rounding alone moves a run's final
        # accuracy by points (training amplifies a 1e-5 difference in the first loss), so a
        # copied run would be paired with a run of another machine, not the same computation.
        same = (
            stored["mode"] == mode
            and stored["settings"] == store.normalise(settings.as_dict())
            and store.same_machine(stored)
        )
        runs = [r for r in stored["runs"] if (r["variant"], r["seed"]) == (source_variant, seed)]
        if same and runs:
            record = dict(runs[0], variant=variant)
            copied_from = {
                "experiment": source,
                "variant": source_variant,
                "commit": stored["provenance"].get("commit", "unknown"),
            }
            copies[(variant, seed)] = (variant, copied_from, record)
    return copies


def _start(name: str, mode: str, settings: Settings, out: str | Path | None) -> dict:
    """The result to add runs to: what ``out`` holds already, or a new one."""
    fresh = {
        "experiment": name,
        "mode": mode,
        "settings": settings.as_dict(),
        "provenance": {},
        "runs": [],
    }
    if out is None or not Path(out).is_file():
        return fresh
    stored = store.load(out)
    wanted = store.normalise(fresh)
    if (stored["experiment"], stored["mode"]) != (name, mode) or stored["settings"] != wanted[
        "settings"
    ]:
        raise ValueError(
            f"{out} holds runs of experiment {stored['experiment']!r} in mode "
            f"{stored['mode']!r} with other settings than {name!r} in mode {mode!r} has now; "
            f"write to another --out, or delete the file to start again"
        )
    return stored
