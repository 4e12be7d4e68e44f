"""Read (and, when allowed, download) the torchvision datasets into NumPy arrays.

Layout: torchvision's own files with its `root` = `<data-root>/<name>`, i.e. exactly what
`torchvision.datasets.X(root=<data-root>/<name>, download=True)` writes:

    <data-root>/cifar10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <data-root>/cifar100/cifar-100-python/{train, test, meta}
    <data-root>/svhn/{train_32x32.mat, test_32x32.mat}
    <data-root>/mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    <data-root>/fashion-mnist/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte

torchvision's readers (and its MD5 checks of the CIFAR and SVHN files) do the parsing; we only
take their arrays, so nothing is decoded image by image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d2m_nas.errors import UserError
from d2m_nas.torchvision_compat import import_torchvision

_MNIST_RAW = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class TorchvisionFormat:
    class_name: str  # in torchvision.datasets
    files: tuple[str, ...]  # relative to <data-root>/<name>; what the reader needs
    split_by_name: bool = False  # SVHN takes split="train"/"test" instead of train=True/False


FORMATS: dict[str, TorchvisionFormat] = {
    "cifar10": TorchvisionFormat("CIFAR10", tuple(
        f"cifar-10-batches-py/{f}" for f in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"])),
    "cifar100": TorchvisionFormat("CIFAR100", tuple(f"cifar-100-python/{f}" for f in ("train", "test", "meta"))),
    "svhn": TorchvisionFormat("SVHN", ("train_32x32.mat", "test_32x32.mat"), split_by_name=True),
    "mnist": TorchvisionFormat("MNIST", tuple(f"MNIST/raw/{f}" for f in _MNIST_RAW)),
    "fashion-mnist": TorchvisionFormat("FashionMNIST", tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_RAW)),
}


def describe_files(name: str, folder: Path) -> str:
    """The files torchvision needs, compactly, for 'not found' messages."""
    files = FORMATS[name].files
    parent = Path(files[0]).parent
    if all(Path(f).parent == parent for f in files):
        return f"{folder / parent}/{{{','.join(Path(f).name for f in files)}}}"
    return ", ".join(str(folder / f) for f in files)


def has_any_file(name: str, folder: Path) -> bool:
    return any((folder / f).exists() for f in FORMATS[name].files)


def read_torchvision(name: str, folder: Path, download: bool):
    """Return (x_train NHWC, y_train, x_test NHWC, y_test, source) as NumPy arrays."""
    fmt = FORMATS[name]
    datasets = import_torchvision().datasets
    cls = getattr(datasets, fmt.class_name)
    arrays = []
    for train in (True, False):
        split = {"split": "train" if train else "test"} if fmt.split_by_name else {"train": train}
        try:
            ds = cls(root=str(folder), download=download, **split)
        except Exception as exc:  # noqa: BLE001 - torchvision raises RuntimeError, pickle/scipy/URL errors
            detail = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            expected = f"expected {describe_files(name, folder)}"
            if download:
                raise UserError(f"downloading {name} into {folder} failed ({detail}); check the network, "
                                f"or put the files there yourself ({expected})") from None
            raise UserError(f"torchvision could not read {name} in {folder} ({detail}); {expected}; replace "
                            "the damaged files, or delete them and add --download") from None
        arrays += list(_images_and_labels(ds))
    parent = Path(fmt.files[0]).parent
    return (*arrays, str(folder / parent))


def _images_and_labels(ds) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(ds.data)
    labels = np.asarray(ds.labels if hasattr(ds, "labels") else ds.targets, dtype=np.int64)
    if images.ndim == 3:  # MNIST-style (N, H, W) grayscale
        images = images[..., None]
    elif images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):  # SVHN keeps NCHW
        images = images.transpose(0, 2, 3, 1)
    return images, labels
