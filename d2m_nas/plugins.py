"""Plug-ins from installed packages: each entry-point group is loaded once, on first lookup, and
every class it names is registered as if the user had called the registry's `register_*`."""

from __future__ import annotations

from importlib import metadata
from typing import Callable, Mapping

_loaded: set[str] = set()


def load_entry_points(group: str, registered: Mapping, register: Callable) -> None:
    if group in _loaded:
        return
    _loaded.add(group)
    for entry in metadata.entry_points(group=group):
        if entry.name not in registered:
            register(entry.load())
