"""NAS-Bench-201 as a SearchSpace: 15,625 cell strings in the official index order."""

from __future__ import annotations

from torch import nn

from search_spaces.base import SearchSpace
from search_spaces.nasbench201.arch import (EDGES, NUM_ARCHS, OPS, all_archs, arch_index, format_arch,
                                            isomorphism_str, parse_arch)
from search_spaces.nasbench201.model import NB201Network

EDGE_NAMES = tuple(f"edge_{j}_{i}" for i, j in EDGES)  # edge_<from>_<to>, in string order


class NASBench201Space(SearchSpace):
    """Build options: channels (C, default 16), cells_per_stage (N, default 5), bn_affine,
    bn_track_running_stats, use_bn (see NB201Network)."""

    name = "nasbench201"
    size_options = ("channels", "cells_per_stage")

    def enumerate(self) -> list[str]:
        return list(all_archs())

    def __len__(self) -> int:
        return NUM_ARCHS

    def parse(self, text: str) -> str:
        return format_arch(parse_arch(text))

    def index(self, arch: str) -> int:
        return arch_index(arch)

    def isomorphism_key(self, arch: str) -> str:
        return isomorphism_str(arch)

    def build(self, arch: str, num_classes: int = 10, image_size: int = 32, in_channels: int = 3,
              **options) -> NB201Network:
        # The network is fully convolutional with global pooling: any image size >= 4 works.
        return NB201Network(arch, num_classes=num_classes, in_channels=in_channels, **options)

    def without_batchnorm(self, model: nn.Module, arch: str) -> nn.Module:
        """The zero-cost reference's "prunable copy": the same network rebuilt with use_bn=False
        (reduction blocks keep their BN) and the weights loaded non-strictly."""
        if not isinstance(model, NB201Network):
            return super().without_batchnorm(model, arch)
        clone = NB201Network(arch, **{**model.options, "use_bn": False})
        clone.load_state_dict(model.state_dict(), strict=False)
        return clone.to(next(model.parameters()).device).train()

    def choices(self) -> dict[str, tuple[str, ...]]:
        return {name: OPS for name in EDGE_NAMES}

    def encode(self, arch: str) -> dict[str, str]:
        return dict(zip(EDGE_NAMES, parse_arch(arch)))

    def decode(self, params: dict[str, str]) -> str:
        missing = [name for name in EDGE_NAMES if name not in params]
        if missing:
            raise ValueError(f"NAS-Bench-201 assignment lacks {', '.join(missing)}")
        return format_arch(tuple(str(params[name]) for name in EDGE_NAMES))

