"""Herding: which K of a pool of candidates per class form an IPC-K set.

An IPC-K set of random draws matches a class's real mean only up to the draws' variance / K; at
IPC 10 that variance is most of what keeps D2M's generated sets below random real images
(benchmarks/README.md). Herding (Welling 2009; the coreset baseline of dataset distillation)
removes most of it: greedily, per class, the candidate that brings the running mean of the chosen
embeddings closest to the real class mean, in the concatenated embeddings of random frozen
ConvNets (the distillation's own feature extractor, so no trained network is needed).
"""

from __future__ import annotations

import torch

from d2m_nas.data import ImageDataset, split_train_val
from d2m_nas.errors import UserError
from d2m_nas.random_subset import random_real_subset
from d2m_nas.synthetic import SyntheticSet
from distill.losses import random_frozen_convnet

REFERENCE_PER_CLASS = 300  # real images per class behind the target means
SELECTION_NETS = 8


def feature_nets(pool: SyntheticSet, count: int, seed: int, device) -> list:
    meta = pool.metadata
    return [random_frozen_convnet(None, meta["channels"], meta["num_classes"], meta["image_size"],
                                  seed * 1000 + i, device) for i in range(count)]


@torch.no_grad()
def embeddings(images: torch.Tensor, nets: list, device, batch: int = 500) -> torch.Tensor:
    """Every net's flattened final-block features, concatenated: (N, nets × features), on the CPU."""
    parts = []
    for net in nets:
        parts.append(torch.cat([net.embed(images[i:i + batch].to(device)).cpu()
                                for i in range(0, len(images), batch)]))
    return torch.cat(parts, dim=1)


def herd(features: torch.Tensor, target: torch.Tensor, k: int) -> list[int]:
    """Greedy herding: k distinct rows of `features` whose running mean tracks `target` most closely."""
    chosen: list[int] = []
    total = torch.zeros_like(target)
    taken = torch.zeros(len(features), dtype=torch.bool)
    for step in range(1, k + 1):
        error = ((total + features) / step - target).pow(2).sum(1)
        error[taken] = float("inf")
        pick = int(error.argmin())
        chosen.append(pick)
        taken[pick] = True
        total += features[pick]
    return chosen


def real_reference(dataset: ImageDataset, seed: int, val_per_class: int, split_seed: int = 0) -> SyntheticSet:
    """Real images per class (up to REFERENCE_PER_CLASS, training part of the split only) whose
    class means herding aims at; drawn apart from a real pool of the same seed."""
    train_idx, _ = split_train_val(dataset.y_train, val_per_class, seed=split_seed)
    smallest = int(torch.bincount(dataset.y_train[train_idx].long().cpu(), minlength=dataset.num_classes).min())
    return random_real_subset(dataset, min(REFERENCE_PER_CLASS, smallest), seed + 1, val_per_class, split_seed)


def herding_select(pool: SyntheticSet, ipc: int, reference: SyntheticSet, seed: int = 0, device="cpu",
                   nets: int = SELECTION_NETS) -> SyntheticSet:
    """`ipc` images per class chosen from `pool` so that their mean embedding tracks the class mean
    of the real `reference` images; the same inputs and seed give the same set."""
    per_class = torch.bincount(pool.labels, minlength=pool.metadata["num_classes"])
    if ipc > int(per_class.min()):
        raise UserError(f"herding needs a pool of at least --ipc {ipc} candidates per class, "
                        f"got {int(per_class.min())}")
    extractor = feature_nets(pool, nets, seed, device)
    keep = []
    for c in range(len(per_class)):
        target = embeddings(reference.images[reference.labels == c], extractor, device).mean(0)
        members = torch.nonzero(pool.labels == c).flatten()
        keep += members[herd(embeddings(pool.images[members], extractor, device), target, ipc)].tolist()
    keep = torch.tensor(keep)
    metadata = {**pool.metadata, "ipc": ipc, "selection": "herding", "pool_per_class": int(per_class.min()),
                "selection_nets": nets}
    if "source_indices" in pool.metadata:  # real images: which training images were kept
        metadata["source_indices"] = [pool.metadata["source_indices"][i] for i in keep.tolist()]
    return SyntheticSet(pool.images[keep], pool.labels[keep], metadata)
