"""The errors distill raises (d2m_nas turns them into one-line user errors) and the finiteness
check behind DivergenceError."""

import torch


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, of the wrong kind or for other settings."""


class DivergenceError(RuntimeError):
    """A loss or a weight became NaN/inf: training stops before the bad step is kept."""


def all_finite(tensors) -> bool:
    """Whether every tensor is free of NaN/inf, with one device-to-host sync instead of one per tensor."""
    flags = [torch.isfinite(t).all() for t in tensors if t is not None]
    return bool(torch.stack(flags).all()) if flags else True
