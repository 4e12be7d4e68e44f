"""Host-to-accelerator copies that do not stall the host.

Random draws stay on the CPU generator (so a seed gives the same values on every device), but a
plain `.to("cuda")` of a pageable tensor waits for the device to finish its queued work: once per
training step that serialises host and GPU. Pinned memory and `non_blocking=True` let the copy
queue behind the work like any kernel; the values are the same.
"""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`tensor` (on the host) on `device`, queued without a host synchronisation on CUDA."""
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
