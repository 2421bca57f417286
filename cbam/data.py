"""Data for the training lessons: an offline synthetic task with object masks, and CIFAR-10.

**Cluttered shapes** (``SyntheticShapes``): every image holds one *object* whose shape is the
class (disc, square, cross, triangle), at a random place and size, among *clutter* (thin bars
and dots) drawn in the same colours, over a noisy grey background. Colour says nothing about the
class and the object can be anywhere, so a network has to find the object before it can name it:
a task where *where* matters, with a ground-truth mask of the object in every image to score
attention maps against (lesson 06). Generated from a seed, vectorised, in a second or two.

**CIFAR-10** (``load_cifar10``) is read from the "python version" files
(``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``) with no torchvision needed;
``download_cifar10`` fetches them through torchvision when it is installed (e.g. on Colab). The
experiments look for them in ``data_root()``: ``CBAM_DATA`` in the environment, else ``data``.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

SHAPES = ("disc", "square", "cross", "triangle")

# Saturated colours shared by objects and clutter, so colour cannot give the object away.
PALETTE = torch.tensor(
    [
        [0.95, 0.25, 0.20],
        [0.20, 0.80, 0.30],
        [0.25, 0.45, 0.95],
        [0.95, 0.85, 0.20],
        [0.85, 0.30, 0.90],
        [0.20, 0.85, 0.90],
    ]
)

# Images are stored normalised with these (roughly the pixel mean and spread of the task).
SYNTHETIC_MEAN, SYNTHETIC_STD = 0.42, 0.19

# Rendering goes chunk by chunk, each chunk with a generator seeded from the dataset's seed, so
# memory stays bounded however many images are asked for, and the images still follow the seed.
_CHUNK = 2048


def _shape_masks(dx: torch.Tensor, dy: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """All class shapes at once: (K, N, H, W) booleans, for offsets (N, H, W) from the centres."""
    r = radius[:, None, None]
    ax, ay = dx.abs(), dy.abs()
    disc = dx.square() + dy.square() <= r.square()
    square = torch.maximum(ax, ay) <= 0.8 * r  # 0.8: about the disc's area
    cross = (torch.minimum(ax, ay) <= 0.3 * r) & (torch.maximum(ax, ay) <= r)
    # Apex up at dy = -r, base at dy = 0.7 r, widening downwards.
    triangle = (dy >= -r) & (dy <= 0.7 * r) & (ax <= (dy + r) / 1.7)
    return torch.stack([disc, square, cross, triangle])


def _render_chunk(
    labels: torch.Tensor,
    size: int,
    clutter: int,
    noise: float,
    object_size: tuple[float, float],
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] (n, 3, size, size) and object masks (n, size, size) for ``labels``."""
    g = torch.Generator().manual_seed(seed)
    n = labels.numel()

    def uniform(low: float | torch.Tensor, high: float | torch.Tensor, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape or (n,), generator=g)

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    xs, ys = coords[None, None, :], coords[None, :, None]  # broadcast to (n, H, W)

    background = uniform(0.25, 0.55)[:, None, None, None]
    images = (background + noise * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)

    # Clutter first, so the object is painted over it and its mask is exactly what is visible.
    for _ in range(clutter):
        cx, cy = uniform(0, size), uniform(0, size)
        length = uniform(0.12 * size, 0.3 * size)
        thickness = torch.where(torch.rand(n, generator=g) < 0.5, 0.5, 1.0)
        horizontal = torch.rand(n, generator=g) < 0.5
        dot = torch.rand(n, generator=g) < 0.3
        half_w = torch.where(dot, 1.0, torch.where(horizontal, length / 2, thickness))
        half_h = torch.where(dot, 1.0, torch.where(horizontal, thickness, length / 2))
        piece = ((xs - cx[:, None, None]).abs() <= half_w[:, None, None]) & (
            (ys - cy[:, None, None]).abs() <= half_h[:, None, None]
        )
        colour = PALETTE[torch.randint(len(PALETTE), (n,), generator=g)]
        images = torch.where(piece[:, None], colour[:, :, None, None], images)

    radius = uniform(object_size[0] * size, object_size[1] * size)
    # Keep the whole object inside the image, anywhere else is fair.
    cx = uniform(radius + 0.5, size - radius - 0.5)
    cy = uniform(radius + 0.5, size - radius - 0.5)
    shapes = _shape_masks(xs - cx[:, None, None], ys - cy[:, None, None], radius)
    masks = shapes[labels, torch.arange(n)]
    colour = PALETTE[torch.randint(len(PALETTE), (n,), generator=g)]
    images = torch.where(masks[:, None], colour[:, :, None, None], images)
    return images, masks


def _check_object_size(object_size: object) -> tuple[float, float]:
    """``(low, high)`` radius fractions with 0 < low <= high < 0.5 (the object must fit)."""
    if not (
        isinstance(object_size, (tuple, list))
        and len(object_size) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in object_size)
    ):
        raise ValueError(f"object_size must be a pair (low, high) of numbers, got {object_size!r}")
    low, high = float(object_size[0]), float(object_size[1])
    if not 0 < low <= high < 0.5:
        raise ValueError(f"object_size must satisfy 0 < low <= high < 0.5, got {object_size!r}")
    return low, high


class SyntheticShapes(Dataset):
    """The cluttered-shapes task: ``dataset[i]`` is ``(image, label, mask)``.

    Args:
        n: the number of images.
        seed: the same seed always gives the same images, labels and masks.
        size: images are ``size x size`` (32 like CIFAR-10; at least 16).
        clutter: the number of distracting bars and dots per image.
        noise: the standard deviation of the background's pixel noise (images are in [0, 1]
            before normalisation).
        object_size: the smallest and largest radius of the object, as fractions of ``size``
            (a disc's radius; the other shapes are scaled to about its area).

    Attributes:
        images: (n, 3, size, size) float32, normalised with ``SYNTHETIC_MEAN``/``SYNTHETIC_STD``.
        labels: (n,) int64 in ``range(len(SHAPES))``, balanced (counts differ by at most one).
        masks: (n, size, size) bool, True on the object's visible pixels.
        classes: the class names, ``SHAPES``.
    """

    classes = SHAPES

    def __init__(
        self,
        n: int,
        seed: int = 0,
        *,
        size: int = 32,
        clutter: int = 6,
        noise: float = 0.12,
        object_size: tuple[float, float] = (0.13, 0.22),
    ) -> None:
        for name, value, low in (("n", n, 1), ("size", size, 16), ("clutter", clutter, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        if not 0 <= noise <= 1:
            raise ValueError(f"noise must be in [0, 1], got {noise!r}")
        low, high = _check_object_size(object_size)
        if high * size < 1:
            raise ValueError(
                f"object_size {object_size!r} at size {size} gives objects under one pixel"
            )
        self.seed, self.size, self.clutter, self.noise = seed, size, clutter, noise
        self.object_size = (low, high)

        g = torch.Generator().manual_seed(seed)
        # Equal class counts, in a random order.
        self.labels = (torch.arange(n) % len(SHAPES))[torch.randperm(n, generator=g)]
        chunk_seeds = torch.randint(2**62, (math.ceil(n / _CHUNK),), generator=g).tolist()
        images, masks = [], []
        for start, chunk_seed in zip(range(0, n, _CHUNK), chunk_seeds, strict=True):
            chunk = self.labels[start : start + _CHUNK]
            image, mask = _render_chunk(chunk, size, clutter, noise, self.object_size, chunk_seed)
            images.append(image)
            masks.append(mask)
        self.images = (torch.cat(images) - SYNTHETIC_MEAN) / SYNTHETIC_STD
        self.masks = torch.cat(masks)

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index], self.masks[index]

    def unnormalized(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """Images back in [0, 1] for display (all of them when ``images`` is None)."""
        images = self.images if images is None else images
        return (images * SYNTHETIC_STD + SYNTHETIC_MEAN).clamp(0, 1)

    def __repr__(self) -> str:
        return (
            f"SyntheticShapes(n={len(self)}, seed={self.seed}, size={self.size}, "
            f"clutter={self.clutter}, noise={self.noise}, object_size={self.object_size})"
        )


# The validation split of seed s is drawn with seed s + VAL_SEED_OFFSET: never the same images.
VAL_SEED_OFFSET = 1_000_003


def synthetic_splits(
    n_train: int, n_val: int, seed: int = 0, **options: object
) -> tuple[SyntheticShapes, SyntheticShapes]:
    """A training and a validation set of the cluttered-shapes task, drawn independently."""
    return (
        SyntheticShapes(n_train, seed, **options),
        SyntheticShapes(n_val, seed + VAL_SEED_OFFSET, **options),
    )


def make_loaders(
    train: Dataset,
    val: Dataset,
    batch_size: int = 128,
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> tuple[DataLoader, DataLoader]:
    """A shuffling training loader and an in-order validation loader.

    The training order is drawn from torch's global generator at the start of every epoch, so
    seeding (``cbam.train.fit(..., seed=...)`` does it) fixes the order of a whole run.
    """
    common = dict(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
    return DataLoader(train, shuffle=True, **common), DataLoader(val, shuffle=False, **common)


# --------------------------------------------------------------------------------------------
# CIFAR-10

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else.

    Pickle can run arbitrary code through the classes a file names; CIFAR's files need only
    numpy's array reconstruction, so every other class is refused.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1").
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch file: images uint8 (N, 3, 32, 32) and labels int64 (N,).

    The file is a pickled dict with ``b"data"``, a uint8 array (N, 3072) holding each image's
    red, green and blue planes row by row, and ``b"labels"``, N ints in 0..9.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch file not found: {path}")
    try:
        with path.open("rb") as file:
            # The files were written by Python 2: bytes keys, latin1-compatible payloads.
            batch = _ArrayUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch (a pickled dict with b'data' and b'labels'): "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(batch, dict):
        raise ValueError(f"{path} should hold a dict, got {type(batch).__name__}")
    # Some re-saved copies use str keys; accept both.
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {missing}; found {sorted(map(str, batch))}")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(
            f"{path}: 'data' should be a uint8 array of shape (N, 3072), got "
            f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
        )
    if data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' should have 3072 columns (3x32x32), got {data.shape[1]}")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: 'labels' should be {data.shape[0]} ints, got shape {labels.shape} "
            f"dtype {labels.dtype}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise ValueError(f"{path}: labels should be in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_folder(root: str | Path) -> Path:
    """``root`` itself if it holds the batch files, else ``root / "cifar-10-batches-py"``."""
    root = Path(root)
    return root if (root / "test_batch").exists() else root / CIFAR10_FOLDER


class CIFAR10(Dataset):
    """CIFAR-10 held in memory as uint8: ``dataset[i]`` is ``(image, label)``.

    Images come out float32, normalised per channel; ``augment=True`` adds the usual training
    augmentation (a random 32x32 crop of the image padded by 4, and a random horizontal flip).
    """

    classes = CIFAR10_CLASSES

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, augment: bool = False) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(labels)
        self.augment = augment
        self._mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
        self._std = torch.tensor(CIFAR10_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float().div_(255)
        if self.augment:
            padded = torch.nn.functional.pad(image, (4, 4, 4, 4), mode="reflect")
            top, left = torch.randint(9, (2,)).tolist()
            image = padded[:, top : top + 32, left : left + 32]
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
        return (image - self._mean) / self._std, self.labels[index]


def load_cifar10(root: str | Path, *, train: bool = True, augment: bool | None = None) -> CIFAR10:
    """The CIFAR-10 training (50,000 images) or test (10,000) split, read from ``root``.

    ``root`` is the ``cifar-10-batches-py`` folder or the folder that holds it. Nothing is
    downloaded here; see ``download_cifar10``. ``augment`` defaults to ``train``.
    """
    folder = _cifar_folder(root)
    names = CIFAR10_TRAIN_FILES if train else CIFAR10_TEST_FILES
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 files {missing} not found in {folder}; expected the python version "
            f"({', '.join(CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES)}). "
            f"download_cifar10({str(root)!r}) fetches them when torchvision is installed."
        )
    parts = [read_cifar_batch(folder / name) for name in names]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return CIFAR10(images, labels, augment=train if augment is None else augment)


def download_cifar10(root: str | Path) -> Path:
    """Download and unpack CIFAR-10 (~170 MB) into ``root`` with torchvision; returns the folder.

    Does nothing when the files are already there. Needs torchvision and a network connection.
    """
    folder = _cifar_folder(root)
    if has_cifar10(root):
        return folder
    try:
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10
    except ImportError as error:
        raise ImportError(
            "downloading CIFAR-10 needs torchvision (pip install torchvision, matching your "
            "torch); "
            f"or put the python-version files in {folder} yourself"
        ) from error
    TorchvisionCIFAR10(str(root), train=True, download=True)
    return Path(root) / CIFAR10_FOLDER


def data_root() -> Path:
    """The folder CIFAR-10 is read from and downloaded to: ``CBAM_DATA``, else ``data`` (in the
    current folder, which on Colab is the session's /content)."""
    return Path(os.environ.get("CBAM_DATA") or "data")


def has_cifar10(root: str | Path) -> bool:
    """Whether ``root`` (or its ``cifar-10-batches-py``) holds every CIFAR-10 batch file."""
    folder = _cifar_folder(root)
    return all((folder / name).is_file() for name in CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES)


def has_torchvision() -> bool:
    """Whether torchvision can be imported (it is on Colab; the course does not need it)."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return False
    return True
