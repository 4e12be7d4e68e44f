"""Datasets as uint8 tensors, sources by name, and the seeded validation split."""

from d2m_nas.data.base import ImageDataset
from d2m_nas.data.registry import list_datasets, load_dataset, register_dataset
from d2m_nas.data.split import sample_per_class, split_train_val

__all__ = ["ImageDataset", "list_datasets", "load_dataset", "register_dataset", "sample_per_class", "split_train_val"]
