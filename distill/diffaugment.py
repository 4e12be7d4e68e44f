"""DiffAugment (Zhao et al., NeurIPS 2020): differentiable colour, translation and cutout applied
to every image the discriminator sees, real and generated, so a GAN trains on little data
without the discriminator memorising it. Parameters are drawn per image from a CPU
`torch.Generator`, which makes a resumed run draw exactly what an uninterrupted one would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.transfer import to_device

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> list[str]:
    ops = [op for op in policy.split(",") if op]
    unknown = [op for op in ops if op not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment op(s) {unknown}; choose from {', '.join(POLICIES)}")
    return ops


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """x in [-1, 1] (N, C, H, W)."""
    for op in parse_policy(policy):
        x = _OPS[op](x, generator)
    return x


def _rand(x: torch.Tensor, generator, *shape) -> torch.Tensor:
    return to_device(torch.rand(*shape, generator=generator), x.device).to(x.dtype)


def _color(x: torch.Tensor, generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(x, generator, n, 1, 1, 1) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, generator, n, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, generator, n, 1, 1, 1) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = to_device(torch.randint(-sy, sy + 1, (n, 1, 1), generator=generator), x.device)
    tx = to_device(torch.randint(-sx, sx + 1, (n, 1, 1), generator=generator), x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return padded.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = to_device(torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=generator), x.device)
    ox = to_device(torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=generator), x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}
