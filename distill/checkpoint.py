"""Checkpoint files: atomic writes, and loads that fail with one line saying what is wrong.

Two kinds, both plain tensors and dicts (loadable with `weights_only=True`):
- a *generator* checkpoint: what `generate` needs (config, weights, dataset statistics);
- a *training state*: everything a killed run needs to continue exactly (models, optimisers,
  random-number state, step, the settings it was started with).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path

import torch

from distill.atomic import atomic_write
from distill.errors import CheckpointError

GENERATOR_FORMAT = "d2m-nas-generator"
STATE_FORMAT = "d2m-nas-training-state"
VERSION = 1


def save_atomic(payload: dict, path: str | Path) -> Path:
    """Write to a temporary name and rename, so a kill never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def load_payload(path: str | Path, expected_format: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}); "
                              "it may be truncated or corrupt: delete it or point to another file") from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a {expected_format} checkpoint (found {found!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; this d2m-nas reads {VERSION}")
    return payload


def generator_payload(config: dict, state_dict: dict, metadata: dict) -> dict:
    return {"format": GENERATOR_FORMAT, "version": VERSION, "config": dict(config),
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "metadata": dict(metadata)}


def load_model_state(model: torch.nn.Module, state_dict: dict, source: str | Path) -> None:
    """Load weights, turning a shape/key mismatch into one line."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise CheckpointError(f"{source} does not fit this model ({detail[:160]}); "
                              "was it written for another architecture or width?") from None


def config_defaults(config_class) -> dict:
    """The default of each field of a config dataclass that has one (nested configs as dicts, as
    `to_dict` writes them)."""
    defaults = {}
    for f in fields(config_class):
        if f.default is not MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not MISSING:
            value = f.default_factory()
            defaults[f.name] = asdict(value) if is_dataclass(value) else value
    return defaults


def with_defaults(saved: dict, defaults: dict) -> dict:
    """`saved` with the settings it lacks taken from `defaults` (nested alike). A setting added after
    a run was saved is read as its default, which by convention keeps the behaviour the run had."""
    filled = dict(saved)
    for key, default in defaults.items():
        if key not in filled:
            filled[key] = default
        elif isinstance(filled[key], dict) and isinstance(default, dict):
            filled[key] = with_defaults(filled[key], default)
    return filled


def check_same_settings(saved: dict, current: dict, source: str | Path) -> None:
    """A resumed run must use the settings it was started with."""
    differing = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differing:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differing[:3])
        raise CheckpointError(f"{source} was started with other settings ({shown}); "
                              "rerun with the original settings or use a new output directory")
