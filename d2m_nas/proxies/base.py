"""The scorer interface every proxy implements: zero-cost metrics, training-based proxies, ensembles.

A proxy scores one architecture of a search space: `score(arch, context) -> ProxyScore`. The
context carries what any proxy may need (space, dataset, device, seed, model options), so a
training-based proxy plugs into `d2m-nas rank` and the search loops without changes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from d2m_nas.data.base import ImageDataset
from d2m_nas.devices import synchronize
from search_spaces.base import SearchSpace


@dataclass
class ProxyScore:
    score: float  # higher = predicted better
    seconds: float  # wall-clock spent producing the score (device synchronised)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProxyContext:
    space: SearchSpace
    dataset: ImageDataset | None  # None for proxies that need no data (params, flops, synflow)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    batch_size: int = 64
    model_options: dict[str, Any] = field(default_factory=dict)  # passed to space.build
    # The training part of the train/validation split: proxies draw their images from it only, so
    # the validation images that training-based proxies score on stay unseen. None = all images.
    train_indices: torch.Tensor | None = None
    # The validation part (indices into the training arrays): what training-based proxies score on.
    val_indices: torch.Tensor | None = None
    _batch: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False)

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes if self.dataset is not None else 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        if self.dataset is None:
            return (3, 32, 32)
        return (self.dataset.channels, self.dataset.image_size, self.dataset.image_size)

    def with_model_options(self, overrides: dict[str, Any]) -> "ProxyContext":
        """This context with some build options replaced (a proxy's own network size), sharing the
        seeded minibatch; itself when nothing changes."""
        options = {**self.model_options, **overrides}
        if options == self.model_options:
            return self
        copy = replace(self, model_options=options)
        copy._batch = self._batch
        return copy

    def build(self, arch: str) -> nn.Module:
        """A freshly initialised model whose weights depend only on (seed, arch)."""
        torch.manual_seed(self.seed * 1_000_003 + self.space.index(arch))
        channels, size, _ = self.input_shape
        model = self.space.build(arch, num_classes=self.num_classes, image_size=size, in_channels=channels,
                                 **self.model_options)
        return model.to(self.device).train()

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One seeded minibatch of normalised training images and labels (the same for every
        architecture, so score differences come from the architectures, not the data)."""
        if self._batch is None:
            if self.dataset is None:
                raise ValueError("this proxy needs a dataset minibatch, but the context has no dataset")
            generator = torch.Generator().manual_seed(self.seed)
            pool = self.train_indices if self.train_indices is not None else torch.arange(len(self.dataset.y_train))
            n = len(pool)
            if self.batch_size > n:
                raise ValueError(f"batch size {self.batch_size} exceeds the {n} training images")
            picked = pool[torch.randperm(n, generator=generator)[: self.batch_size]].to(self.dataset.device)
            images = self.dataset.normalize(self.dataset.x_train[picked].to(self.device))
            self._batch = (images, self.dataset.y_train[picked].to(self.device))
        return self._batch


class Proxy(ABC):
    """Scores an architecture; subclasses set `name` and implement `score`."""

    name: str = ""
    needs_data: bool = True
    # Scored on the context's shared minibatch (zero-cost proxies), so its batch size is part of
    # the score's configuration; training-based proxies carry their own batch size instead.
    uses_context_batch: bool = True
    # Bumped when a change to the implementation changes its scores, so the score cache never
    # answers with a stale one. Version 1 adds nothing to the cache key (caches made before versions
    # existed stay valid).
    version: int = 1
    # Seconds to minutes per architecture (training): a process about to score one that another is
    # scoring waits for it through the shared cache's claims, which cost a few database writes.
    costly: bool = False
    # Build options this proxy sets for itself over the command's (`synflow[channels=16,cells=5]`
    # beside a training proxy at C8/N1); the score cache keys on the options in effect.
    model_options: dict[str, Any] = {}

    def context_for(self, context: ProxyContext) -> ProxyContext:
        """The context this proxy scores in: the command's, with its own build options over it
        (only those the space takes, as for --channels/--cells)."""
        own = {k: v for k, v in self.model_options.items() if k in context.space.size_options}
        return context.with_model_options(own) if own else context

    @abstractmethod
    def score(self, arch: str, context: ProxyContext) -> ProxyScore:
        """Score one architecture (higher is better)."""

    @property
    def registered_name(self) -> str:
        """The name the proxy is registered under, which the score cache keys on (a training proxy's
        display name may carry per-proxy settings, which its settings already hold)."""
        return self.name

    @property
    def label(self) -> str:
        """The name results are reported under (training proxies add their score rule: `d2m@tse_e`)."""
        return self.name

    def rescored(self, result: ProxyScore) -> ProxyScore:
        """A stored result scored the way this proxy scores now (training proxies apply their rule
        to the recorded trace; a result does not depend on the rule it was first stored under)."""
        return result


class Timer:
    """Wall-clock seconds of a block, waiting for the device's queued work first and last."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0

    def __enter__(self) -> "Timer":
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
