"""The in-memory dataset every other part of d2m-nas consumes.

Images are held once as uint8 tensors (N, C, H, W); normalisation happens on the fly on the
device, so a dataset costs a quarter of its float32 size and moves to the GPU whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageDataset:
    name: str
    x_train: torch.Tensor  # uint8 (N, C, H, W)
    y_train: torch.Tensor  # int64 (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    class_names: list[str] = field(default_factory=list)
    source: str = ""  # where the arrays were read from, for run records

    def __post_init__(self) -> None:
        for key in ("x_train", "x_test"):
            value = getattr(self, key)
            if value.dtype != torch.uint8 or value.dim() != 4:
                raise ValueError(f"{self.name}: {key} must be uint8 (N, C, H, W), got {value.dtype} {tuple(value.shape)}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.name}: mean/std need one value per channel ({self.channels})")
        if not self.class_names:
            self.class_names = [str(c) for c in range(self.num_classes)]

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 normalised with this dataset's statistics, on their device."""
        x = images_uint8.float().div_(255.0)
        mean, std = self._mean_std(x.device)
        return (x - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float images -> [0, 1] floats (for saving and plotting)."""
        mean, std = self._mean_std(images.device)
        return (images * std + mean).clamp(0, 1)

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel statistics as (1, C, 1, 1) tensors on `device`."""
        return (torch.tensor(self.mean, device=device).view(1, -1, 1, 1),
                torch.tensor(self.std, device=device).view(1, -1, 1, 1))

    def to(self, device: torch.device | str) -> "ImageDataset":
        """Move the uint8 arrays to a device (in place) and return self."""
        for key in ("x_train", "y_train", "x_test", "y_test"):
            setattr(self, key, getattr(self, key).to(device))
        return self

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.x_train, self.y_train, self.x_test, self.y_test))
