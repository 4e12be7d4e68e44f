"""Put a whole dataset on the accelerator when it fits, so training indexes batches there
without host-to-device copies; otherwise keep it on the CPU and move batches."""

from __future__ import annotations

import torch

from d2m_nas.data.base import ImageDataset


def free_memory(device: torch.device) -> int | None:
    """Free bytes on an accelerator, or None where torch cannot tell (CPU: no limit we check)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        except (AttributeError, RuntimeError):
            return None
    return None


def fits_on_device(nbytes: int, device: torch.device | str, max_fraction: float = 0.5) -> bool:
    """Whether `nbytes` take at most `max_fraction` of the device's free memory (always on CPU);
    the rest stays free for the models and activations."""
    free = free_memory(torch.device(device))
    return free is None or nbytes <= max_fraction * free


def place_dataset(dataset: ImageDataset, device: torch.device | str, max_fraction: float = 0.5) -> ImageDataset:
    """Move the dataset's uint8 arrays to `device` when they fit (see fits_on_device), else to the
    CPU. Returns the dataset (moved in place); `dataset.device` says where it ended up."""
    device = torch.device(device)
    target = device if fits_on_device(dataset.nbytes(), device, max_fraction) else torch.device("cpu")
    return dataset.to(target)
