"""Stored results: one JSON file per experiment, with the provenance that re-makes it.

The files of the course's runs are package data (``cbam/results/NAME.json``), so that a lesson
opened in Colab from ``pip install`` finds them without the repository. Each holds::

    {"experiment": "attention", "mode": "quick", "settings": {...},
     "provenance": {"commit": ..., "command": ..., "torch": ..., "python": ..., "device": "cpu",
                    "cpu": ..., "threads": 1, "date": ..., "seconds": ...},
     "runs": [{"variant": "cbam", "seed": 0, "val_acc": [...], "train_loss": [...],
               "final_val_acc": 0.873, "seconds": 41.2}, ...]}

The provenance is that of the last command that added runs to the file (a resumed grid checks
that the settings are unchanged); its ``seconds`` are the runs' own times added up. Models kept
for lesson 06 sit beside it, as ``NAME-models/VARIANT-seedS.pt`` (state dicts).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from importlib import resources
from pathlib import Path

import torch

RESULTS_PACKAGE = "cbam.results"


def packaged_path(name: str) -> Path:
    """Where the course's stored result of experiment ``name`` lives inside the package."""
    return Path(str(resources.files(RESULTS_PACKAGE))) / f"{name}.json"


def models_folder(result_path: str | Path) -> Path:
    path = Path(result_path)
    return path.with_name(f"{path.stem}-models")


def load(name_or_path: str | Path) -> dict:
    """A stored result: the course's own by experiment name (``load("attention")``), or a file
    ``cbam-course experiment ... --out FILE`` wrote."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = packaged_path(str(name_or_path))
    if not path.is_file():
        raise FileNotFoundError(
            f"no stored result at {path}; `cbam-course experiment NAME --out FILE` makes one"
        )
    result = json.loads(path.read_text())
    for key in ("experiment", "mode", "settings", "provenance", "runs"):
        if key not in result:
            raise ValueError(f"{path} is not an experiment result: it has no {key!r}")
    return result


def save(result: dict, path: str | Path) -> None:
    """Write ``result`` whole under a temporary name, then rename: a run cut off mid-write
    leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(result, indent=1) + "\n")
    temporary.replace(path)


def _git_commit() -> str:
    """The checkout's commit, "+modified" when tracked files differ from it; "unknown" outside
    a git checkout (e.g. an installed package)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+modified" if dirty else "")


def cpu_name() -> str:
    """The processor's model name (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(command: list[str], device: torch.device, threads: int) -> dict:
    return {
        "commit": _git_commit(),
        "command": " ".join(command),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu": cpu_name(),
        # The kernels torch picked for this processor (AVX2, AVX512, ...): one model name can
        # cover processors whose float rounding differs.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": 0.0,
    }


def same_machine(result: dict) -> bool:
    """Whether this process runs where ``result`` was made: same CPU and the same kernels picked
    for it, same torch and Python, so a re-run on the CPU with one thread must give the same
    numbers to the bit. A result that does not say which kernels were picked is not known to."""
    made = result["provenance"]
    return (
        made.get("device") == "cpu"
        and made.get("cpu") == cpu_name()
        and made.get("cpu_capability") == torch.backends.cpu.get_cpu_capability()
        and made.get("torch") == torch.__version__
        and made.get("python") == platform.python_version()
    )


def normalise(result: dict) -> dict:
    """``result`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(result))


def load_model_state(name: str, variant: str, seed: int) -> dict:
    """The state dict of a model the course's stored run of ``name`` kept (lesson 06)."""
    path = models_folder(packaged_path(name)) / f"{variant}-seed{seed}.pt"
    if not path.is_file():
        kept = sorted(p.stem for p in path.parent.glob("*.pt"))
        raise FileNotFoundError(f"no stored model {path.name} for {name!r}; kept: {kept}")
    return torch.load(path, map_location="cpu", weights_only=True)
