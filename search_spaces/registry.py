"""Search spaces by name: one factory, as for datasets and models, open to spaces from outside.

A user's own space subclasses `SearchSpace` and is registered with `register_space(name, factory)`
from their code, or from a package through the entry-point group `d2m_nas.spaces` (name = a
factory, loaded when a space is first looked up); every command then takes `--space NAME`.
"""

from __future__ import annotations

from importlib import metadata
from typing import Callable

from search_spaces.base import SearchSpace

ENTRY_POINT_GROUP = "d2m_nas.spaces"


def _nasbench201() -> SearchSpace:
    from search_spaces.nasbench201 import NASBench201Space

    return NASBench201Space()


def _convnet720() -> SearchSpace:
    from search_spaces.convnet_space import ConvNetSpace

    return ConvNetSpace()


_SPACES: dict[str, Callable[[], SearchSpace]] = {"convnet720": _convnet720, "nasbench201": _nasbench201}
_entry_points_loaded = False


def register_space(name: str, factory: Callable[[], SearchSpace]) -> None:
    """Make `factory()` (a SearchSpace) available as `--space NAME`; a name is registered once."""
    if name in _SPACES:
        raise ValueError(f"search space {name!r} is registered already")
    _SPACES[name] = factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry.name not in _SPACES:
                _SPACES[entry.name] = entry.load()


def list_spaces() -> list[str]:
    _load_entry_points()
    return sorted(_SPACES)


def create_space(name: str) -> SearchSpace:
    _load_entry_points()
    if name not in _SPACES:
        raise ValueError(f"unknown search space {name!r}; choose from {', '.join(list_spaces())}")
    space = _SPACES[name]()
    if not isinstance(space, SearchSpace):
        raise ValueError(f"search space {name!r}: its factory made a {type(space).__name__}, not a SearchSpace")
    return space
