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

import torch

from d2m_nas.errors import UserError

FORMAT = "d2m-nas-synthetic"
VERSION = 1
REQUIRED_METADATA = ("dataset", "image_size", "channels", "num_classes", "mean", "std", "ipc", "method", "seed")


@dataclass
class SyntheticSet:
    images: torch.Tensor  # float32 (N, C, H, W), normalised
    labels: torch.Tensor  # int64 (N,)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [k for k in REQUIRED_METADATA if k not in self.metadata]
        if missing:
            raise ValueError(f"synthetic set metadata lacks {', '.join(missing)}")
        if self.images.dim() != 4 or self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(f"images {tuple(self.images.shape)} and labels {tuple(self.labels.shape)} do not pair up")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save({"format": FORMAT, "version": VERSION, "images": self.images.detach().float().cpu().contiguous(),
                    "labels": self.labels.detach().long().cpu(), "metadata": dict(self.metadata)}, tmp)
        tmp.replace(path)  # never leave a half-written file under the real name
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SyntheticSet":
        path = Path(path)
        if path.is_dir():
            path = path / "synthetic.pt"
        if not path.is_file():
            raise UserError(f"synthetic set not found: {path}")
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
        except (KeyError, ValueError) as exc:
            raise UserError(f"{path} is a damaged synthetic set: {exc}") from None
