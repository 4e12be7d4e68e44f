"""Search spaces by name: one factory, as for datasets and models."""

from __future__ import annotations

from search_spaces.base import SearchSpace


def list_spaces() -> list[str]:
    return ["convnet720", "nasbench201"]


def create_space(name: str) -> SearchSpace:
    if name == "nasbench201":
        from search_spaces.nasbench201 import NASBench201Space

        return NASBench201Space()
    if name == "convnet720":
        from search_spaces.convnet_space import ConvNetSpace

        return ConvNetSpace()
    raise ValueError(f"unknown search space {name!r}; choose from {', '.join(list_spaces())}")
