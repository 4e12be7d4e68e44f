"""Numeric precision and memory layout of a training loop: bf16 autocast and channels_last, both
off by default. Neither is assumed harmless: a training proxy keys its cached scores on them, the
evaluation protocol reports bf16 as a difference, and benchmarks/README.md holds what was measured
(speed on a CPU; channels_last's effect on a ranking)."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")
MEMORY_FORMATS = ("contiguous", "channels_last")


def autocast(device: torch.device, precision: str):
    """The forward passes' context: bf16 autocast (matmuls and convolutions in bfloat16, losses
    and reductions in float32), or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def in_memory_format(x, memory_format: str):
    """A module (in place) or a 4-D batch in the layout; unchanged for "contiguous"."""
    if memory_format == "contiguous":
        return x
    if isinstance(x, torch.nn.Module):
        return x.to(memory_format=torch.channels_last)
    return x.contiguous(memory_format=torch.channels_last)
