"""Dataset sources by name, timm-style: a decorator registers a loader, one factory loads."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from d2m_nas.data.base import ImageDataset
from d2m_nas.errors import UserError
from d2m_nas.settings import resolve_data_root

Loader = Callable[[Path, bool], ImageDataset]  # (data_root, download) -> dataset
_SOURCES: dict[str, Loader] = {}


def register_dataset(name: str):
    def decorate(loader: Loader) -> Loader:
        _SOURCES[name] = loader
        return loader

    return decorate


def list_datasets() -> list[str]:
    _import_sources()
    return sorted(_SOURCES) + ["imagefolder:PATH"]


def load_dataset(name: str, data_root=None, download: bool = False) -> ImageDataset:
    """Load a dataset by name into uint8 tensors on the CPU (move it with `.to(device)`, or with
    `d2m_nas.data.placement.place_dataset` when it should only move if it fits).

    `imagefolder:PATH` reads PATH/train and PATH/val class folders.
    """
    _import_sources()
    root = resolve_data_root(data_root)
    if name.startswith("imagefolder:"):
        from d2m_nas.data.sources import load_imagefolder

        return load_imagefolder(Path(name.split(":", 1)[1]).expanduser())
    if name not in _SOURCES:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(list_datasets())}")
    return _SOURCES[name](root, download)


def _import_sources() -> None:
    import d2m_nas.data.sources  # noqa: F401 - registers the loaders
