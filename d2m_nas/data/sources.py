"""The dataset loaders registered by name (see registry.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from d2m_nas.data.base import ImageDataset
from d2m_nas.data.registry import register_dataset
from d2m_nas.errors import UserError
from d2m_nas.settings import describe_data_root_choice

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _nhwc_to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def load_npz(path: Path, name: str, mean, std, class_names) -> ImageDataset:
    """NumPy arrays x_train, y_train, x_test, y_test with NHWC uint8 images."""
    try:
        with np.load(path) as arrays:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
            if missing:
                raise UserError(f"{path} lacks the arrays {', '.join(sorted(missing))} "
                                "(expected x_train, y_train, x_test, y_test)")
            x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable .npz file ({exc})") from None
    if x_train.dtype != np.uint8 or x_train.ndim != 4 or x_train.shape[-1] not in (1, 3):
        raise UserError(f"{path}: x_train must be uint8 NHWC images, got {x_train.dtype} {x_train.shape}")
    return ImageDataset(
        name=name,
        x_train=_nhwc_to_tensor(x_train), y_train=torch.from_numpy(y_train.astype(np.int64)),
        x_test=_nhwc_to_tensor(x_test), y_test=torch.from_numpy(y_test.astype(np.int64)),
        num_classes=len(class_names), mean=tuple(mean), std=tuple(std),
        class_names=list(class_names), source=str(path),
    )


@register_dataset("cifar10")
def load_cifar10(root: Path, download: bool) -> ImageDataset:
    npz = root / "cifar10" / "cifar10.npz"
    if npz.is_file():
        return load_npz(npz, "cifar10", CIFAR10_MEAN, CIFAR10_STD, CIFAR10_CLASSES)
    raise UserError(f"cifar10 not found: looked for {npz}; {describe_data_root_choice()}")


@register_dataset("fake")
def load_fake(root: Path, download: bool) -> ImageDataset:
    """Deterministic 10-class 32x32 RGB data for demos and tests: each class is a distinct colour
    and stripe pattern plus seeded noise, so a small network can learn it in a few steps."""
    return make_fake_dataset()


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
