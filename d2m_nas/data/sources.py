"""The dataset loaders registered by name (see registry.py), and where each looks for its files.

Every named dataset is looked for under `<data-root>/<name>/`, first as NumPy arrays
`<name>.npz` (x_train, y_train, x_test, y_test; NHWC uint8 images; optional class_names), then in
its native format (torchvision's files, see torchvision_sources.py; Tiny ImageNet's
`tiny-imagenet-200/` folder), and is downloaded there only when the caller allows it.
"""

from __future__ import annotations

import zipfile
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import torch

from d2m_nas.data.base import ImageDataset
from d2m_nas.data.catalog import CATALOG, CIFAR10_CLASSES
from d2m_nas.data.folders import download_tinyimagenet, read_imagefolder, read_tinyimagenet, tinyimagenet_folder
from d2m_nas.data.registry import register_dataset
from d2m_nas.data.torchvision_sources import FORMATS, describe_files, has_any_file, read_torchvision
from d2m_nas.errors import UserError
from d2m_nas.provenance import record_read
from d2m_nas.settings import DEFAULT_VAL_PER_CLASS, describe_data_root_choice

CIFAR10_MEAN = CATALOG["cifar10"].mean
CIFAR10_STD = CATALOG["cifar10"].std
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

__all__ = ["CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "dataset_from_arrays", "load_imagefolder",
           "load_npz", "make_fake_dataset", "npz_path"]


def npz_path(root: Path, name: str) -> Path:
    return root / name / f"{name}.npz"


def dataset_from_arrays(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                        y_test: np.ndarray, mean, std, class_names, source: str) -> ImageDataset:
    """Check NHWC uint8 images and integer labels (one-line UserError naming `source` if not) and
    hold them as uint8 NCHW tensors."""
    images, labels = [], []
    for key, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim == 3:  # (N, H, W) grayscale
            x = x[..., None]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[1] != x.shape[2]:
            raise UserError(f"{source}: x_{key} must be uint8 (N, H, W, C) square images with 1 or 3 channels, "
                            f"got {x.dtype} {x.shape}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{source}: y_{key} must hold one integer label per image ({len(x)}), "
                            f"got {y.dtype} {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= len(class_names)):
            raise UserError(f"{source}: y_{key} labels must lie in 0..{len(class_names) - 1}, "
                            f"found {y.min()}..{y.max()}")
        images.append(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
        labels.append(torch.from_numpy(y.astype(np.int64)))
    if images[0].shape[1:] != images[1].shape[1:]:
        raise UserError(f"{source}: train images are {tuple(images[0].shape[1:])} (C, H, W) "
                        f"but test images are {tuple(images[1].shape[1:])}")
    return ImageDataset(name=name, x_train=images[0], y_train=labels[0], x_test=images[1], y_test=labels[1],
                        num_classes=len(class_names), mean=tuple(mean), std=tuple(std),
                        class_names=[str(c) for c in class_names], source=source)


def load_npz(path: Path, name: str, mean, std, class_names) -> ImageDataset:
    """NumPy arrays x_train, y_train, x_test, y_test with NHWC uint8 images; an optional
    `class_names` array replaces the given names."""
    record_read(path)
    try:
        with np.load(path) as arrays:
            missing = set(NPZ_KEYS) - set(arrays.files)
            if missing:
                raise UserError(f"{path} lacks the arrays {', '.join(sorted(missing))} "
                                "(expected x_train, y_train, x_test, y_test)")
            loaded = [arrays[k] for k in NPZ_KEYS]
            if "class_names" in arrays.files:
                class_names = [str(c) for c in arrays["class_names"]]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"{path} is not a readable .npz file ({detail}); replace it") from None
    return dataset_from_arrays(name, *loaded, mean, std, class_names, source=str(path))


def _not_found(name: str, looked_for: list[str]) -> UserError:
    return UserError(f"{name} not found: looked for {' and '.join(looked_for)}; {describe_data_root_choice()} "
                     f"(a directory holding {name}/), or add --download to fetch it")


def _load_torchvision_dataset(name: str, root: Path, download: bool) -> ImageDataset:
    info, folder, npz = CATALOG[name], root / name, npz_path(root, name)
    if npz.is_file():
        return load_npz(npz, name, info.mean, info.std, info.class_names)
    if download or has_any_file(name, folder):
        *arrays, source = read_torchvision(name, folder, download)
        return dataset_from_arrays(name, *arrays, info.mean, info.std, info.class_names, source)
    raise _not_found(name, [str(npz), describe_files(name, folder)])


for _name in FORMATS:  # cifar10, cifar100, svhn, mnist, fashion-mnist
    register_dataset(_name)(partial(_load_torchvision_dataset, _name))


@register_dataset("tinyimagenet")
def load_tinyimagenet(root: Path, download: bool) -> ImageDataset:
    info, npz, folder = CATALOG["tinyimagenet"], npz_path(root, "tinyimagenet"), tinyimagenet_folder(root)
    if npz.is_file():
        return load_npz(npz, "tinyimagenet", info.mean, info.std, [str(c) for c in range(info.num_classes)])
    if not folder.exists() and download:
        download_tinyimagenet(root)
    if folder.exists():
        *arrays, class_names = read_tinyimagenet(folder)
        return dataset_from_arrays("tinyimagenet", *arrays, info.mean, info.std, class_names, str(folder))
    raise _not_found("tinyimagenet", [str(npz), f"{folder}/{{train,val}}"])


def load_imagefolder(path: Path) -> ImageDataset:
    """PATH/train/<class>/* and PATH/val/<class>/* (val is the test set); the normalisation is
    the per-channel mean and std of the training images."""
    x_train, y_train, x_test, y_test, class_names = read_imagefolder(path)
    mean, std = channel_mean_std(x_train)
    return dataset_from_arrays(f"imagefolder:{path}", x_train, y_train, x_test, y_test,
                               mean, std, class_names, str(path))


def channel_mean_std(x: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of NHWC uint8 images on the [0, 1] scale, rounded to 4 places;
    exact, from pixel-value histograms, so no float copy of a large set is made."""
    counts = np.zeros((x.shape[-1], 256), dtype=np.int64)
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk]
        for c in range(x.shape[-1]):
            counts[c] += np.bincount(block[..., c].ravel(), minlength=256)
    values = np.arange(256) / 255
    total = counts.sum(axis=1)
    mean = counts @ values / total
    std = np.sqrt(np.maximum(counts @ values**2 / total - mean**2, 0))
    std = np.maximum(std, 1e-3)  # a constant-colour set must not divide by zero
    return tuple(mean.round(4).tolist()), tuple(std.round(4).tolist())


@register_dataset("fake")
def load_fake(root: Path, download: bool) -> ImageDataset:
    """Deterministic 10-class 32x32 RGB data for demos and tests: each class is a distinct colour
    and stripe pattern plus seeded noise, so a small network can learn it in a few steps. 260 training
    images per class: the default validation split holds out 200 and leaves 60 to train on."""
    return make_fake_dataset(train_per_class=DEFAULT_VAL_PER_CLASS + 60)


def make_fake_dataset(num_classes: int = 10, train_per_class: int = 60, test_per_class: int = 20,
                      image_size: int = 32, channels: int = 3, seed: int = 0) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)

    def make(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(num_classes).repeat_interleave(per_class)
        coords = torch.arange(image_size, dtype=torch.float32)
        images = []
        for c in labels.tolist():
            colour = torch.tensor([(c * 37 % 255), (c * 91 % 255), (c * 53 % 255)][:channels], dtype=torch.float32)
            stripes = 40 * torch.sin(coords * (c + 1) * 0.35).view(1, 1, -1)
            noise = 30 * torch.randn(channels, image_size, image_size, generator=generator)
            images.append((colour.view(-1, 1, 1) + stripes + noise).clamp(0, 255))
        return torch.stack(images).round().to(torch.uint8), labels

    x_train, y_train = make(train_per_class)
    x_test, y_test = make(test_per_class)
    return ImageDataset(name="fake", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                        num_classes=num_classes, mean=(0.5,) * channels, std=(0.25,) * channels,
                        source="generated (fake)")
