"""GAN inversion: the latents whose generated images reproduce given real images.

IT-GAN (Zhao & Bilen, "Synthesizing Informative Training Samples with GAN", 2022) and GLaD start
their learned latents from inverted real images rather than from N(0, I): distillation then
refines images that already carry a real image's layout, as DM does when it starts its pixels
from real images. `invert` moves only the latents; `tune` then moves the generator's weights with
the latents fixed (pivotal tuning, Roich et al., "Pivotal Tuning for Latent-based Editing of Real
Images", 2022), for a generator whose range is too small to reproduce the images from latents alone.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from distill.generator import Generator

INVERSION_LR = 0.1  # Adam on z ~ N(0, I); measured on the cpu preset's generator: PSNR 19.3 dB after 100 steps, 17.8 at lr 0.03
# Adam on the weights, PTI's rate; on the cpu preset's generator (100 images, 100 steps after the inversion's
# 19.3 dB): 22.6 dB, against 22.2 at 1e-3 and 20.5 at 3e-3
TUNING_LR = 3e-4


def invert(generator: Generator, targets: torch.Tensor, labels: torch.Tensor, z: torch.Tensor, steps: int,
           lr: float = INVERSION_LR, progress: bool | None = None) -> torch.Tensor:
    """Latents, from `z`, whose images G(z, label) match `targets` (in the generator's [-1, 1]
    range) in mean squared error after `steps` Adam steps; the generator runs in eval mode and
    its weights and gradients are left untouched. `progress`: a bar (None: on a terminal only)."""
    if not (len(targets) == len(labels) == len(z)):
        raise ValueError(f"inversion needs one latent and label per target, got {len(z)}, {len(labels)}, {len(targets)}")
    was_training = generator.training
    generator.eval()
    z = z.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    for _ in tqdm(range(steps), desc="inverting the latent pool", unit="step", disable=_hidden(progress),
                  leave=False):
        loss = torch.mean((generator(z, labels) - targets) ** 2)
        optimizer.zero_grad(set_to_none=True)
        (z.grad,) = torch.autograd.grad(loss, [z])  # the weights' .grad stays as it was
        optimizer.step()
    generator.train(was_training)
    return z.detach()


def tune(generator: Generator, targets: torch.Tensor, labels: torch.Tensor, z: torch.Tensor, steps: int,
         lr: float = TUNING_LR, batch_size: int = 0, cosine: bool = False, seed: int = 0,
         progress: bool | None = None) -> None:
    """Pivotal tuning, in place: `steps` Adam steps on the generator's weights (a latent pool
    excepted) so that G(z, label), with `z` fixed, matches `targets` (on [-1, 1]) in mean squared
    error; in eval mode, as D2M generates (BatchNorm on its running statistics, which stay as
    they are). Which weights D2M itself learns afterwards is untouched, and no gradient is left.
    `batch_size`: images a step, in a fresh order (drawn by `seed`) each pass over the targets
    (0: all of them every step); `cosine`: the rate decays from `lr` to 0 along a cosine.
    `progress` as in `invert`."""
    if not (len(targets) == len(labels) == len(z)):
        raise ValueError(f"tuning needs one latent and label per target, got {len(z)}, {len(labels)}, {len(targets)}")
    if batch_size < 0:
        raise ValueError(f"tuning batch_size must be >= 0 (0: all images), got {batch_size}")
    was_training = generator.training
    generator.eval()
    weights = [p for p in generator.parameters() if p is not generator.learned_z]
    frozen = [not p.requires_grad for p in weights]
    for p in weights:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(weights, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1)) if cosine else None
    z = z.detach()
    batches = _batches(len(targets), batch_size or len(targets), seed, targets.device)
    for _ in tqdm(range(steps), desc="tuning the generator to the pool's images", unit="step",
                  disable=_hidden(progress), leave=False):
        idx = next(batches)
        optimizer.zero_grad(set_to_none=True)
        torch.mean((generator(z[idx], labels[idx]) - targets[idx]) ** 2).backward()  # z is detached: weights only
        optimizer.step()
        if schedule is not None:
            schedule.step()
    for p, was_frozen in zip(weights, frozen):
        p.grad = None
        p.requires_grad_(not was_frozen)
    generator.train(was_training)


def _batches(n: int, batch_size: int, seed: int, device: torch.device):
    """Index batches of `batch_size` out of range(n), endlessly: each pass a fresh permutation by
    `seed`, split into whole batches (the remainder of a pass is dropped); all of range(n), in order, when
    batch_size >= n."""
    if batch_size >= n:
        everything = torch.arange(n, device=device)
        while True:
            yield everything
    rng = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=rng).to(device)
        yield from order[:n - n % batch_size].split(batch_size)


def _hidden(progress: bool | None) -> bool | None:
    """tqdm's `disable` for a `progress` setting; None stays None: tqdm's own test for a terminal."""
    return None if progress is None else not progress


def psnr(images: torch.Tensor, targets: torch.Tensor) -> float:
    """PSNR (dB, as images on [0, 1]) of images against targets, both on [-1, 1]."""
    return float(10 * torch.log10(1 / torch.mean(((images - targets) / 2) ** 2)))


def reconstruction_psnr(generator: Generator, targets: torch.Tensor, labels: torch.Tensor, z: torch.Tensor) -> float:
    """PSNR of G(z, label) against `targets` (on [-1, 1])."""
    with torch.no_grad():
        return psnr(generator(z, labels), targets)
