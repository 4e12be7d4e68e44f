"""The synthetic training-set file: one format for every method (random subset, DM, D2M, ...).

A `.pt` file written by `torch.save` holding plain tensors and a metadata dict, so it loads with
`torch.load(weights_only=True)` (no pickled code):

    {"format": "d2m-nas-synthetic", "version": 1,
     "images": float32 (N, C, H, W), normalised with metadata["mean"] / metadata["std"],
     "labels": int64 (N,),
     "metadata": {"dataset", "image_size", "channels", "num_classes", "mean", "std",
                  "ipc", "method", "seed", ...method-specific extras}}

Images are stored normalised (as the networks see them) in float32 because learned pixels (DM)
and generator outputs are not 8-bit images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from d2m_nas.errors import UserError
from d2m_nas.provenance import record_read
from distill.atomic import atomic_write

FORMAT = "d2m-nas-synthetic"
VERSION = 1
REQUIRED_METADATA = ("dataset", "image_size", "channels", "num_classes", "mean", "std", "ipc", "method", "seed")


@dataclass
class SyntheticSet:
    images: torch.Tensor  # float32 (N, C, H, W), normalised
    labels: torch.Tensor  # int64 (N,)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, dict):
            raise ValueError(f"synthetic set metadata must be a dict, got {type(self.metadata).__name__}")
        missing = [k for k in REQUIRED_METADATA if k not in self.metadata]
        if missing:
            raise ValueError(f"synthetic set metadata lacks {', '.join(missing)}")
        if not isinstance(self.images, torch.Tensor) or not isinstance(self.labels, torch.Tensor):
            raise ValueError("synthetic set images and labels must be tensors")
        if (self.images.dim() != 4 or self.labels.dim() != 1 or self.images.shape[0] != self.labels.shape[0]
                or not self.images.is_floating_point() or self.labels.is_floating_point()):
            raise ValueError(f"images {self.images.dtype} {tuple(self.images.shape)} and labels {self.labels.dtype} "
                             f"{tuple(self.labels.shape)} do not pair up (want float (N, C, H, W) and integer (N,))")
        meta = self.metadata
        want = (int(meta["channels"]), int(meta["image_size"]), int(meta["image_size"]))
        if tuple(self.images.shape[1:]) != want:
            raise ValueError(f"images are {tuple(self.images.shape[1:])} (C, H, W) but the metadata says {want}")
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < int(meta["num_classes"]):
            raise ValueError(f"labels must lie in 0..{int(meta['num_classes']) - 1}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "version": VERSION, "images": self.images.detach().float().cpu().contiguous(),
                   "labels": self.labels.detach().long().cpu(), "metadata": _plain(self.metadata)}
        return atomic_write(path, lambda handle: torch.save(payload, handle))  # never a half-written file

    @classmethod
    def load(cls, path: str | Path) -> "SyntheticSet":
        path = Path(path)
        if path.is_dir():
            path = path / "synthetic.pt"
        if not path.is_file():
            raise UserError(f"synthetic set not found: {path}")
        record_read(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
            raise UserError(f"{path} is not a readable synthetic-set file ({type(exc).__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise UserError(f"{path} is not a d2m-nas synthetic set (no '{FORMAT}' format tag)")
        if payload.get("version") != VERSION:
            raise UserError(f"{path} has synthetic-set format version {payload.get('version')}; this d2m-nas reads {VERSION}")
        try:
            return cls(payload["images"], payload["labels"], payload["metadata"])
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"{path} is a damaged synthetic set: {exc}") from None


def _plain(value):
    """Metadata as the types `torch.load(weights_only=True)` accepts (paths and NumPy scalars become
    str and Python numbers or lists), so every file this writes can be read back."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value
