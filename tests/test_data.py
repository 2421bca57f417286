"""The synthetic cluttered-shapes task and the CIFAR-10 reader (on small files written here)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cbam.data import (
    CIFAR10_TEST_FILES,
    CIFAR10_TRAIN_FILES,
    SHAPES,
    SyntheticShapes,
    download_cifar10,
    has_torchvision,
    load_cifar10,
    make_loaders,
    read_cifar_batch,
    synthetic_splits,
)

# --- synthetic task -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes() -> SyntheticShapes:
    return SyntheticShapes(400, seed=3)


def test_items_are_image_label_mask(shapes):
    image, label, mask = shapes[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label.dtype == torch.int64 and 0 <= int(label) < len(SHAPES)
    assert mask.shape == (32, 32) and mask.dtype == torch.bool
    assert len(shapes) == 400


def test_same_seed_same_data_other_seed_other_data(shapes):
    again = SyntheticShapes(400, seed=3)
    assert torch.equal(again.images, shapes.images)
    assert torch.equal(again.labels, shapes.labels)
    assert torch.equal(again.masks, shapes.masks)
    other = SyntheticShapes(400, seed=4)
    assert not torch.equal(other.images, shapes.images)
    assert not torch.equal(other.masks, shapes.masks)


def test_labels_are_balanced(shapes):
    counts = torch.bincount(shapes.labels, minlength=len(SHAPES))
    assert counts.tolist() == [100] * len(SHAPES)
    odd = SyntheticShapes(10, seed=0)
    assert torch.bincount(odd.labels, minlength=4).tolist() in ([3, 3, 2, 2],)


def test_every_mask_covers_an_object_drawn_in_one_palette_colour(shapes):
    area = shapes.masks.flatten(1).float().mean(1)
    assert (area > 0.02).all() and (area < 0.3).all()
    raw = shapes.unnormalized()
    for i in range(20):
        pixels = raw[i][:, shapes.masks[i]]  # (3, pixels on the object)
        # The object is painted last in one solid colour, so its pixels are all alike ...
        assert (pixels - pixels[:, :1]).abs().max() < 1e-5
        # ... and the background just outside differs from it somewhere.
        assert (raw[i][:, ~shapes.masks[i]] - pixels[:, :1]).abs().amax(0).max() > 0.1


def test_mask_shape_matches_its_class():
    # Rendered without noise or clutter: each class has a recognisable fill ratio of its box.
    data = SyntheticShapes(200, seed=1, clutter=0, noise=0.0)
    ratios = {name: [] for name in SHAPES}
    for mask, label in zip(data.masks, data.labels, strict=True):
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        ratios[SHAPES[label]].append(mask.sum().item() / box.item())
    mean = {name: float(np.mean(values)) for name, values in ratios.items()}
    assert mean["square"] > 0.95  # a filled box
    assert 0.7 < mean["disc"] < 0.85  # pi / 4 ~ 0.785
    assert mean["triangle"] < 0.6 and mean["cross"] < 0.6


def test_object_position_varies(shapes):
    ys = torch.arange(32, dtype=torch.float32)
    weights = shapes.masks.float()
    centre_y = (weights.sum(2) * ys).sum(1) / weights.sum((1, 2))
    centre_x = (weights.sum(1) * ys).sum(1) / weights.sum((1, 2))
    assert centre_x.std() > 4 and centre_y.std() > 4
    assert centre_x.min() < 10 and centre_x.max() > 22


def test_clutter_shares_the_object_colours():
    data = SyntheticShapes(50, seed=2, noise=0.0)
    raw = data.unnormalized()
    palette_outside = 0
    for i in range(50):
        colour = raw[i][:, data.masks[i]][:, 0]
        outside = raw[i][:, ~data.masks[i]]
        palette_outside += int(((outside - colour[:, None]).abs().amax(0) < 1e-5).any())
    assert palette_outside > 10  # the object's colour also appears on clutter in many images


def test_splits_differ_and_loaders_batch_triples():
    train, val = synthetic_splits(64, 32, seed=0)
    assert len(train) == 64 and len(val) == 32
    assert not torch.equal(train.images[:32], val.images)
    train_loader, val_loader = make_loaders(train, val, batch_size=16)
    images, labels, masks = next(iter(train_loader))
    assert images.shape == (16, 3, 32, 32) and labels.shape == (16,) and masks.shape == (16, 32, 32)
    assert len(val_loader) == 2


def test_options_and_bad_arguments():
    small = SyntheticShapes(8, seed=0, size=24, clutter=2)
    assert small.images.shape == (8, 3, 24, 24)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        SyntheticShapes(0)
    with pytest.raises(ValueError, match="size must be an int >= 16"):
        SyntheticShapes(4, size=8)
    with pytest.raises(TypeError, match="seed must be an int"):
        SyntheticShapes(4, seed=1.5)
    for bad in ((0.2, 0.1), (0.0, 0.1), (0.1, 0.5), (0.1,), "small", (0.1, True)):
        with pytest.raises(ValueError, match="object_size must") as info:
            SyntheticShapes(4, object_size=bad)
        assert repr(bad) in str(info.value)
    with pytest.raises(ValueError, match="under one pixel"):
        SyntheticShapes(4, size=16, object_size=(0.01, 0.05))


def test_object_size_sets_the_objects_area():
    """Objects drawn at half the radius cover about a quarter of the pixels."""
    options = dict(clutter=0, noise=0.0)
    large = SyntheticShapes(400, seed=5, object_size=(0.2, 0.2), **options)
    small = SyntheticShapes(400, seed=5, object_size=(0.1, 0.1), **options)
    ratio = small.masks.float().mean() / large.masks.float().mean()
    assert 0.2 < ratio < 0.3
    assert "object_size=(0.1, 0.1)" in repr(small)


# --- CIFAR-10 python-pickle format ----------------------------------------------------------


def _write_batch(
    path, n: int, seed: int, overrides: dict | None = None
) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    batch = {
        b"batch_label": b"testing",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    batch.update(overrides or {})
    with open(path, "wb") as file:
        pickle.dump(batch, file, protocol=2)
    return data, labels


@pytest.fixture
def cifar_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = {}
    for i, name in enumerate(CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES):
        written[name] = _write_batch(folder / name, n=6, seed=i)
    return tmp_path, written


def test_read_batch_unpacks_planes(cifar_root):
    root, written = cifar_root
    images, labels = read_cifar_batch(root / "cifar-10-batches-py" / "data_batch_1")
    data, expected = written["data_batch_1"]
    assert images.shape == (6, 3, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == expected
    # Row-major planes: the first 1024 values are the red channel, row by row.
    assert np.array_equal(images[2, 0, 1], data[2, 32:64])
    assert np.array_equal(images[2, 2, 31], data[2, 3072 - 32 :])


def test_load_train_and_test_splits(cifar_root):
    root, written = cifar_root
    train = load_cifar10(root, train=True)
    test = load_cifar10(root / "cifar-10-batches-py", train=False)
    assert len(train) == 30 and len(test) == 6
    assert train.labels.tolist() == sum((written[n][1] for n in CIFAR10_TRAIN_FILES), [])
    assert test.labels.tolist() == written["test_batch"][1]
    assert train.augment and not test.augment
    image, label = test[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label.dtype == torch.int64
    # Normalised per channel: the raw bytes come back after undoing it.
    raw = image * torch.tensor((0.2470, 0.2435, 0.2616))[:, None, None]
    raw += torch.tensor((0.4914, 0.4822, 0.4465))[:, None, None]
    expected = written["test_batch"][0][0].reshape(3, 32, 32)
    assert torch.allclose(raw * 255, torch.from_numpy(expected).float(), atol=1e-3)


def test_augmented_items_keep_shape(cifar_root):
    root, _ = cifar_root
    train = load_cifar10(root, train=True)
    torch.manual_seed(0)
    crops = torch.stack([train[0][0] for _ in range(8)])
    assert crops.shape == (8, 3, 32, 32)
    assert not all(torch.equal(crops[0], crop) for crop in crops[1:])  # random crops and flips


def test_missing_files_name_what_is_expected(tmp_path, cifar_root):
    with pytest.raises(FileNotFoundError, match="data_batch_1.*not found"):
        load_cifar10(tmp_path / "nowhere")
    root, _ = cifar_root
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(root, train=True)
    assert len(load_cifar10(root, train=False)) == 6  # the test split is still there


def test_corrupt_files_get_clear_errors(tmp_path):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        read_cifar_batch(garbage)

    truncated = tmp_path / "truncated"
    _write_batch(truncated, 4, seed=0)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        read_cifar_batch(truncated)

    no_labels = tmp_path / "no_labels"
    with open(no_labels, "wb") as file:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, file)
    with pytest.raises(ValueError, match="lacks the key"):
        read_cifar_batch(no_labels)

    wrong_width = tmp_path / "wrong_width"
    _write_batch(wrong_width, 2, seed=0, overrides={b"data": np.zeros((2, 100), np.uint8)})
    with pytest.raises(ValueError, match="3072 columns"):
        read_cifar_batch(wrong_width)

    wrong_dtype = tmp_path / "wrong_dtype"
    _write_batch(wrong_dtype, 2, seed=0, overrides={b"data": np.zeros((2, 3072), np.float32)})
    with pytest.raises(ValueError, match="uint8"):
        read_cifar_batch(wrong_dtype)

    bad_labels = tmp_path / "bad_labels"
    _write_batch(bad_labels, 2, seed=0, overrides={b"labels": [3, 12]})
    with pytest.raises(ValueError, match="0..9"):
        read_cifar_batch(bad_labels)


def test_pickles_naming_other_classes_are_refused(tmp_path):
    # A pickle can name any callable; loading must not run it.
    evil = tmp_path / "evil"
    with open(evil, "wb") as file:
        pickle.dump({b"data": print, b"labels": []}, file)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        read_cifar_batch(evil)


def test_str_keys_are_accepted(tmp_path):
    path = tmp_path / "str_keys"
    _write_batch(path, 3, seed=0)
    batch = pickle.loads(path.read_bytes())
    with open(path, "wb") as file:
        pickle.dump({key.decode(): value for key, value in batch.items()}, file)
    images, labels = read_cifar_batch(path)
    assert images.shape == (3, 3, 32, 32) and labels.shape == (3,)


def test_download_returns_present_files_without_network(cifar_root):
    root, _ = cifar_root
    assert download_cifar10(root) == root / "cifar-10-batches-py"


@pytest.mark.skipif(has_torchvision(), reason="the error shown when torchvision is missing")
def test_download_without_torchvision_says_what_to_install(tmp_path):
    with pytest.raises(ImportError, match="needs torchvision"):
        download_cifar10(tmp_path)
