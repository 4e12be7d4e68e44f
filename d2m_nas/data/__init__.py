"""Datasets as uint8 tensors, sources by name, device placement and the seeded validation split."""

from d2m_nas.data.base import ImageDataset
from d2m_nas.data.placement import place_dataset
from d2m_nas.data.registry import list_datasets, load_dataset, register_dataset
from d2m_nas.data.split import DEFAULT_VAL_PER_CLASS, sample_per_class, split_train_val

__all__ = ["DEFAULT_VAL_PER_CLASS", "ImageDataset", "list_datasets", "load_dataset", "place_dataset", "register_dataset",
           "sample_per_class", "split_train_val"]
