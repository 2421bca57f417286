"""Where to run and how much to run: one switch shared by the training lessons.

A CPU gets the *quick* settings (small data, few epochs: a lesson runs in a minute or two); a
CUDA GPU gets the *full* ones. ``CBAM_MODE=quick`` or ``CBAM_MODE=full`` in the environment
overrides the guess, e.g. to run the quick version on a GPU machine.

``CBAM_SMOKE=1`` keeps the mode's code but shrinks what it costs (the full settings train one
epoch on a few hundred images, lesson 07 times small tensors), so that a test runs the full
mode's every path on a CPU in minutes. What such a run prints measures nothing.

>>> device = pick_device()        # cuda if there is one, else cpu
>>> epochs = 4 if QUICK else 30   # each lesson keeps its two sets of settings in one cell
"""

from __future__ import annotations

import logging
import os

import torch

MODES = ("quick", "full")


class _NoCudaRuntimeNotice(logging.Filter):
    """Drops torch's "No CUDA runtime is found, using CUDA_HOME=..." notice.

    A CUDA build of torch on a machine with a CUDA toolkit and no GPU (Colab's CPU runtime, a
    laptop with nvcc) logs it to stderr the first time anything imports
    torch.utils.cpp_extension, as torch.utils.benchmark and torch.compile's C++ backend do. It
    only says where CUDA extensions would be built from; the lessons build none, and a learner
    should not see a warning they can do nothing about. Any other message of that logger passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


logging.getLogger("torch.utils.cpp_extension").addFilter(_NoCudaRuntimeNotice())


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``preferred`` if given, else CUDA when available, else the CPU.

    Apple's MPS is not picked automatically: some of the operations the lessons time or
    profile run there through slower fallbacks, so it must be asked for by name.
    """
    if preferred is not None:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {str(device)!r} was asked for, but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}); use 'cpu' or leave the device out"
            )
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_mode() -> str:
    """``"full"`` on a CUDA machine, ``"quick"`` elsewhere, unless ``CBAM_MODE`` says otherwise."""
    mode = os.environ.get("CBAM_MODE", "").strip().lower()
    if mode and mode not in MODES:
        raise ValueError(f"CBAM_MODE must be one of {MODES} (or unset), got {mode!r}")
    return mode or ("full" if torch.cuda.is_available() else "quick")


def smoke_run() -> bool:
    """Whether ``CBAM_SMOKE`` asks for the mode's code at toy sizes (see the module docstring)."""
    value = os.environ.get("CBAM_SMOKE", "").strip().lower()
    if value not in ("", "0", "1"):
        raise ValueError(f"CBAM_SMOKE must be 1 or 0 (or unset), got {value!r}")
    return value == "1"


QUICK = run_mode() == "quick"
SMOKE = smoke_run()
