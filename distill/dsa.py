"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021).

Every transform is differentiable with respect to the images, so gradients reach whatever made
them (learnable pixels or a generator). A draw of random parameters can be applied to several
batches: with `shared=True` one parameter set is broadcast over every image, which is how the
field augments a real batch and a synthetic batch identically even when their sizes differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distill.transfer import to_device

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"


@dataclass(frozen=True)
class DSAConfig:
    """The standard parameters of the DSA/DM/MTT code bases."""

    strategy: str = DEFAULT_STRATEGY
    mode: str = "single"  # "single": one op group drawn per call (the field's default 'S'); "all": every op
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0  # degrees
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    prob_flip: float = 0.5

    def ops(self) -> list[str]:
        """The op groups of `strategy`; "" or "none" means no augmentation (as in the reference code)."""
        if self.strategy.lower() in ("", "none"):
            return []
        ops = [op for op in self.strategy.split("_") if op]
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ValueError(f"unknown DSA op(s) {unknown}; choose from {', '.join(OPS)}")
        if self.mode not in ("single", "all"):
            raise ValueError(f"DSA mode must be 'single' or 'all', got {self.mode!r}")
        return ops


@dataclass
class AugmentationDraw:
    """Random parameters for one augmentation call. Tensors have a leading dimension of 1
    (shared by every image) or of the batch size."""

    ops: list[str]
    params: dict[str, torch.Tensor]
    shared: bool


class DSA:
    def __init__(self, config: DSAConfig | None = None) -> None:
        self.config = config or DSAConfig()
        self._ops = self.config.ops()

    def sample(self, batch_size: int, image_size: int, device, generator: torch.Generator | None = None,
               shared: bool = False) -> AugmentationDraw:
        """Draw parameters; `generator` (on the CPU) makes the draw reproducible."""
        cfg = self.config
        n = 1 if shared else batch_size

        def rand(*shape):
            return torch.rand(*shape, generator=generator)

        if not self._ops:
            ops: list[str] = []
        elif cfg.mode == "single":
            ops = [self._ops[int(torch.randint(len(self._ops), (1,), generator=generator))]]
        else:
            ops = list(self._ops)
        params: dict[str, torch.Tensor] = {}
        for op in ops:
            if op == "color":
                params["brightness"] = (rand(n, 1, 1, 1) - 0.5) * cfg.brightness
                params["saturation"] = rand(n, 1, 1, 1) * cfg.saturation
                params["contrast"] = rand(n, 1, 1, 1) + cfg.contrast
            elif op == "crop":
                shift = int(image_size * cfg.ratio_crop_pad + 0.5)
                params["crop"] = torch.randint(-shift, shift + 1, (n, 2), generator=generator)
            elif op == "cutout":
                size = int(image_size * cfg.ratio_cutout + 0.5)
                params["cutout"] = torch.randint(0, image_size + (1 - size % 2), (n, 2), generator=generator)
            elif op == "flip":
                params["flip"] = rand(n) < cfg.prob_flip
            elif op == "scale":
                params["scale"] = rand(n, 2) * (cfg.ratio_scale - 1.0 / cfg.ratio_scale) + 1.0 / cfg.ratio_scale
            elif op == "rotate":
                params["rotate"] = (rand(n) - 0.5) * 2 * cfg.ratio_rotate / 180 * math.pi
        params = {k: to_device(v, device) for k, v in params.items()}
        return AugmentationDraw(ops=ops, params=params, shared=shared)

    def apply(self, x: torch.Tensor, draw: AugmentationDraw) -> torch.Tensor:
        p = {k: _expand(v, x.shape[0]) for k, v in draw.params.items()}
        for op in draw.ops:
            if op == "color":
                x = x + p["brightness"]
                x_mean = x.mean(dim=1, keepdim=True)
                x = (x - x_mean) * p["saturation"] + x_mean
                x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
                x = (x - x_mean) * p["contrast"] + x_mean
            elif op == "crop":
                x = _translate(x, p["crop"])
            elif op == "cutout":
                x = _cutout(x, p["cutout"], int(x.shape[-1] * self.config.ratio_cutout + 0.5))
            elif op == "flip":
                x = torch.where(p["flip"].view(-1, 1, 1, 1), x.flip(3), x)
            elif op == "scale":
                s = p["scale"]
                zeros = torch.zeros_like(s[:, 0])
                theta = torch.stack([torch.stack([s[:, 0], zeros, zeros], 1),
                                     torch.stack([zeros, s[:, 1], zeros], 1)], 1)
                x = _affine(x, theta)
            elif op == "rotate":
                a = p["rotate"]
                zeros = torch.zeros_like(a)
                theta = torch.stack([torch.stack([torch.cos(a), torch.sin(-a), zeros], 1),
                                     torch.stack([torch.sin(a), torch.cos(a), zeros], 1)], 1)
                x = _affine(x, theta)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, shared: bool = False) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], x.shape[-1], x.device, generator, shared))


def _expand(value: torch.Tensor, batch: int) -> torch.Tensor:
    return value.expand(batch, *value.shape[1:]) if value.shape[0] == 1 else value


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Integer translation with a one-pixel zero border, as in the reference DSA code."""
    b, _, h, w = x.shape
    device = x.device
    grid_b, grid_y, grid_x = torch.meshgrid(torch.arange(b, device=device), torch.arange(h, device=device),
                                            torch.arange(w, device=device), indexing="ij")
    grid_y = torch.clamp(grid_y + shift[:, 0].view(-1, 1, 1) + 1, 0, h + 1)
    grid_x = torch.clamp(grid_x + shift[:, 1].view(-1, 1, 1) + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[grid_b, grid_y, grid_x].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, offset: torch.Tensor, size: int) -> torch.Tensor:
    b, _, h, w = x.shape
    device = x.device
    grid_b, grid_y, grid_x = torch.meshgrid(torch.arange(b, device=device), torch.arange(size, device=device),
                                            torch.arange(size, device=device), indexing="ij")
    grid_y = torch.clamp(grid_y + offset[:, 0].view(-1, 1, 1) - size // 2, 0, h - 1)
    grid_x = torch.clamp(grid_x + offset[:, 1].view(-1, 1, 1) - size // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=device)
    mask[grid_b, grid_y, grid_x] = 0
    return x * mask.unsqueeze(1)
