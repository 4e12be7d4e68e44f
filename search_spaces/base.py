"""The search-space contract every space implements (Optuna/Archai style: a small abstract base).

An architecture is identified by its canonical string; the space parses and validates strings,
enumerates or samples architectures, builds a PyTorch model and encodes an architecture as the
categorical choices the Optuna and NNI loops sample.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Sequence

from torch import nn


class SearchSpace(ABC):
    """A finite space of architectures named by canonical strings."""

    name: str = ""
    # build() keywords that scale every candidate alike (the CLI's --channels and --cells)
    size_options: tuple[str, ...] = ()

    @abstractmethod
    def enumerate(self) -> list[str]:
        """Every architecture, as canonical strings, in the space's fixed order."""

    def __len__(self) -> int:
        return len(self.enumerate())

    def sample(self, k: int, seed: int) -> list[str]:
        """`k` distinct architectures drawn uniformly (without replacement) from `enumerate()`."""
        archs = self.enumerate()
        if not 0 < k <= len(archs):
            raise ValueError(f"cannot sample {k} architectures from the {len(archs)} of {self.name}")
        return random.Random(seed).sample(archs, k)

    @abstractmethod
    def parse(self, text: str) -> str:
        """Validate a string and return its canonical form; ValueError naming what is wrong."""

    def index(self, arch: str) -> int:
        """Position of an architecture in `enumerate()`."""
        return self.enumerate().index(self.parse(arch))

    def isomorphism_key(self, arch: str) -> str:
        """Architectures with the same key compute the same function (default: the string itself)."""
        return self.parse(arch)

    @abstractmethod
    def build(self, arch: str, num_classes: int = 10, image_size: int = 32, in_channels: int = 3,
              **options) -> nn.Module:
        """A freshly initialised PyTorch model for `arch`."""

    def without_batchnorm(self, model: nn.Module, arch: str) -> nn.Module:
        """A copy of `model` with batch norm removed and the same weights (what synflow scores).

        The default replaces every BatchNorm layer by Identity; a space may override this to
        follow its reference implementation."""
        import copy

        clone = copy.deepcopy(model)
        for module in list(clone.modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.modules.batchnorm._BatchNorm):
                    setattr(module, child_name, nn.Identity())
        return clone

    @abstractmethod
    def choices(self) -> dict[str, Sequence[str | int]]:
        """The categorical parameters an optimiser samples: name -> allowed values."""

    @abstractmethod
    def encode(self, arch: str) -> dict[str, str | int]:
        """An architecture as one value per entry of `choices()`."""

    @abstractmethod
    def decode(self, params: dict[str, str | int]) -> str:
        """The canonical string for a full assignment of `choices()`."""
