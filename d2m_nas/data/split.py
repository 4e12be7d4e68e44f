"""Seeded, class-balanced validation split carved from the training set.

The search and the proxies score on this split; the test set is only for final reporting.
"""

from __future__ import annotations

import torch

from d2m_nas.errors import UserError
from d2m_nas.settings import DEFAULT_VAL_PER_CLASS  # noqa: F401 - re-exported by d2m_nas.data


def split_train_val(labels: torch.Tensor, val_per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (train_idx, val_idx), disjoint, with exactly `val_per_class` per class in val.

    The same labels and seed always give the same split, whatever device the labels are on.
    """
    labels = labels.detach().cpu().long()
    generator = torch.Generator().manual_seed(seed)
    num_classes = int(labels.max()) + 1 if labels.numel() else 0
    val_parts = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        if len(members) <= val_per_class:
            raise UserError(f"class {c} has {len(members)} training images; cannot hold out "
                            f"{val_per_class} per class for validation (lower --val-per-class)")
        chosen = members[torch.randperm(len(members), generator=generator)[:val_per_class]]
        val_parts.append(chosen)
    val_idx = torch.sort(torch.cat(val_parts)).values if val_parts else torch.empty(0, dtype=torch.long)
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[val_idx] = True
    train_idx = torch.nonzero(~is_val).flatten()
    return train_idx, val_idx


def sample_per_class(labels: torch.Tensor, per_class: int, seed: int,
                     among: torch.Tensor | None = None) -> torch.Tensor:
    """Seeded class-balanced sample of indices (e.g. a random real subset at IPC `per_class`),
    drawn from `among` (default: all), ordered by class."""
    labels = labels.detach().cpu().long()
    pool = torch.arange(len(labels)) if among is None else among.detach().cpu().long()
    generator = torch.Generator().manual_seed(seed)
    num_classes = int(labels.max()) + 1
    parts = []
    for c in range(num_classes):
        members = pool[labels[pool] == c]
        if len(members) < per_class:
            raise UserError(f"class {c} has only {len(members)} images; cannot sample {per_class} per class")
        parts.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(parts)
