"""Where a training-based proxy's images come from: a fixed set, a real stream, a generator stream.

Every source hands out normalised float minibatches that are already on the device, with no
DataLoader and no host round trip per step:
- `FixedSet`: a small set (generated at IPC K, a random real subset, a DM file) normalised once
  and kept on the device; batches follow seeded epoch permutations.
- `RealStream`: the whole training part of the split as uint8 on the device, normalised per batch
  (a float copy of CIFAR-10 would cost four times the memory for no speed gain).
- `GeneratorStream`: fresh latents every step, generated under `torch.no_grad()`; the generation
  is part of the step and so of the proxy's seconds.
- `ReplayedStream`: a generator stream drawn once per seed and replayed to every architecture:
  every step still brings images no earlier step used, but the generation (on a CPU about three
  times a small candidate's training step) is paid once per seed instead of once per architecture,
  as a fixed set's is.

Real sources keep the dataset indices they draw from (`indices`), so tests and the proxy can
check that no validation image is ever trained on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from d2m_nas.data import ImageDataset, sample_per_class
from d2m_nas.synthetic import SyntheticSet
from distill.generator import Generator, generate_per_class, sample_latents, to_normalized
from distill.transfer import to_device


class IndexStream:
    """Batches of indices into 0..n-1 from seeded epoch permutations, on the device. Every batch
    has `batch_size` entries (at most n): an epoch's remainder is topped up from the next one."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> None:
        self.n, self.batch_size = n, min(batch_size, n)
        self.generator, self.device = generator, device
        self.order = torch.empty(0, dtype=torch.long, device=device)

    def next(self) -> torch.Tensor:
        if len(self.order) < self.batch_size:
            fresh = to_device(torch.randperm(self.n, generator=self.generator), self.device)
            self.order = torch.cat([self.order, fresh])
        batch, self.order = self.order[: self.batch_size], self.order[self.batch_size:]
        return batch


class ImageSource(ABC):
    distinct_images: int | None = None  # None for streams (every step brings new images)
    indices: torch.Tensor | None = None  # dataset training indices drawn from (real sources only)

    @abstractmethod
    def stream(self, batch_size: int, generator: torch.Generator):
        """An endless iterator of (normalised images, labels) on the device."""

    def batch_size(self, requested: int) -> int:
        return requested if self.distinct_images is None else min(requested, self.distinct_images)


class FixedSet(ImageSource):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor | None = None) -> None:
        self.images, self.labels, self.indices = images, labels, indices
        self.distinct_images = len(labels)

    def stream(self, batch_size: int, generator: torch.Generator):
        order = IndexStream(len(self.labels), batch_size, generator, self.images.device)
        while True:
            index = order.next()
            yield self.images[index], self.labels[index]


class RealStream(ImageSource):
    """Minibatches from a pool of real training images (uint8 on the device, normalised per batch)."""

    def __init__(self, dataset: ImageDataset, indices: torch.Tensor, device: torch.device) -> None:
        self.indices = indices.cpu()
        gather = self.indices.to(dataset.device)
        self.images = dataset.x_train[gather].to(device)
        self.labels = dataset.y_train[gather].to(device)
        self.normalize = dataset.normalize

    def stream(self, batch_size: int, generator: torch.Generator):
        order = IndexStream(len(self.labels), batch_size, generator, self.images.device)
        while True:
            index = order.next()
            yield self.normalize(self.images[index]), self.labels[index]


class GeneratorStream(ImageSource):
    """A new class-balanced batch from the generator at every step (labels cycle through the classes)."""

    def __init__(self, model: Generator, mean, std, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.mean, self.std, self.device = mean, std, device
        self.num_classes, self.z_dim = model.config.num_classes, model.config.z_dim

    def stream(self, batch_size: int, generator: torch.Generator):
        cycle = torch.arange(batch_size, device=self.device)
        start = 0
        while True:
            labels = (cycle + start) % self.num_classes
            start = (start + batch_size) % self.num_classes
            with torch.no_grad():
                z = sample_latents(batch_size, self.z_dim, generator, self.device)
                images = to_normalized(self.model(z, labels), self.mean, self.std)
            yield images, labels


class ReplayedStream(ImageSource):
    """Batches drawn once from a generator stream, handed out in the same order to every caller."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> None:
        self.images, self.labels, self.size = images, labels, batch_size

    def batch_size(self, requested: int) -> int:
        if requested != self.size:
            raise ValueError(f"this stream was drawn in batches of {self.size}, not {requested}")
        return requested

    def stream(self, batch_size: int, generator: torch.Generator):
        for start in range(0, len(self.labels), self.size):
            yield self.images[start:start + self.size], self.labels[start:start + self.size]
        raise RuntimeError("the replayed stream is exhausted: it was drawn for fewer steps")


def replayed_stream(live: GeneratorStream, steps: int, batch_size: int, seed: int) -> ReplayedStream:
    """The first `steps` batches of `live` drawn with `seed`, kept on the device."""
    batches = live.stream(batch_size, torch.Generator().manual_seed(seed))
    images, labels = zip(*(next(batches) for _ in range(steps)))
    return ReplayedStream(torch.cat(images), torch.cat(labels), batch_size)


def generated_set(model: Generator, mean, std, ipc: int, seed: int, device: torch.device) -> FixedSet:
    """IPC images per class from a generator, drawn with `seed` (as `d2m-nas generate` would)."""
    images, labels = generate_per_class(model.to(device), ipc, seed, device)
    return FixedSet(to_normalized(images.to(device), mean, std), labels.to(device))


def real_subset(dataset: ImageDataset, train_indices: torch.Tensor, ipc: int, seed: int,
                device: torch.device) -> FixedSet:
    """IPC real images per class, drawn with `seed` from the training part of the split only."""
    indices = sample_per_class(dataset.y_train, ipc, seed, among=train_indices)
    gather = indices.to(dataset.device)
    return FixedSet(dataset.normalize(dataset.x_train[gather].to(device)), dataset.y_train[gather].to(device),
                    indices=indices)


def synthetic_file_set(synthetic: SyntheticSet, device: torch.device) -> FixedSet:
    return FixedSet(synthetic.images.to(device, torch.float32), synthetic.labels.to(device, torch.long))
