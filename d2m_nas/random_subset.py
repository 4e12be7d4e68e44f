"""The first baseline: a seeded, class-balanced random subset of real training images.

The subset is drawn only from the training part of the seeded train/validation split, so the
images a proxy trains on never include the validation images it is scored on (nor test images).
"""

from __future__ import annotations

from d2m_nas.data import ImageDataset, sample_per_class, split_train_val
from d2m_nas.errors import UserError
from d2m_nas.synthetic import SyntheticSet


def random_real_subset(dataset: ImageDataset, ipc: int, seed: int, val_per_class: int,
                       split_seed: int = 0) -> SyntheticSet:
    """`ipc` real images per class, normalised, as a SyntheticSet (method "random").

    `split_seed` and `val_per_class` fix the validation split (shared with the search, so keep
    them equal there); `seed` picks the subset within the training part.
    """
    if ipc < 1:
        raise UserError(f"--ipc must be at least 1, got {ipc}")
    train_idx, _ = split_train_val(dataset.y_train, val_per_class, seed=split_seed)
    chosen = sample_per_class(dataset.y_train, ipc, seed=seed, among=train_idx)
    images = dataset.normalize(dataset.x_train[chosen.to(dataset.device)]).cpu()
    labels = dataset.y_train[chosen.to(dataset.device)].long().cpu()
    metadata = {
        "dataset": dataset.name, "image_size": dataset.image_size, "channels": dataset.channels,
        "num_classes": dataset.num_classes, "mean": list(dataset.mean), "std": list(dataset.std),
        "ipc": ipc, "method": "random", "seed": seed,
        "split_seed": split_seed, "val_per_class": val_per_class,
        "source_split": "train part of the train/val split",
        "source_indices": chosen.tolist(),  # indices into the dataset's training images
    }
    return SyntheticSet(images, labels, metadata)
