"""Generator pre-training: hinge-loss GAN with a projection discriminator, DiffAugment on every
image D sees, Adam with beta1 = 0, and an exponential moving average (EMA) of G's weights,
which is the generator that is kept.

All randomness (real batches, z, labels, DiffAugment) comes from one CPU `torch.Generator` whose
state is checkpointed, so a run resumed from a checkpoint continues with the same draws.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from distill.diffaugment import diff_augment, parse_policy
from distill.discriminator import Discriminator, DiscriminatorConfig
from distill.errors import all_finite
from distill.generator import Generator, GeneratorConfig, sample_latents
from distill.transfer import to_device


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 20000  # generator updates
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta2: float = 0.999
    d_steps: int = 2  # discriminator updates per generator update
    ema_decay: float = 0.999
    ema_start: int = 100  # before this step the EMA generator just copies G
    diffaugment: str = "color,translation,cutout"
    discriminator_width: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        parse_policy(self.diffaugment)
        if self.steps < 0 or self.batch_size < 1 or self.d_steps < 1:
            raise ValueError("pre-training needs steps >= 0, batch_size >= 1 and d_steps >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def hinge_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


@torch.no_grad()
def ema_update(target: torch.nn.Module, source: torch.nn.Module, decay: float) -> None:
    """Average parameters and BatchNorm statistics; copy spectral-norm vectors and counters."""
    src = source.state_dict()
    for key, value in target.state_dict().items():
        if value.dtype.is_floating_point and not key.endswith(("._u", "._v")):
            value.mul_(decay).add_(src[key], alpha=1 - decay)
        else:
            value.copy_(src[key])


class GANPretrainer:
    """One `step()` = `d_steps` discriminator updates and one generator update."""

    def __init__(self, generator_config: GeneratorConfig, config: PretrainConfig, images: torch.Tensor,
                 labels: torch.Tensor, device: torch.device) -> None:
        if images.dtype != torch.uint8:
            raise ValueError("pre-training takes uint8 images (N, C, H, W)")
        self.config = config
        self.device = device
        self.images = images  # uint8, on any device; batches are moved as drawn
        self.labels = labels
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, caller's RNG untouched
            torch.manual_seed(config.seed)
            self.generator = Generator(generator_config).to(device)
            self.discriminator = Discriminator(DiscriminatorConfig(
                generator_config.image_size, generator_config.num_classes, generator_config.channels,
                config.discriminator_width)).to(device)
        self.ema = copy.deepcopy(self.generator).eval()
        self.ema.requires_grad_(False)
        betas = (0.0, config.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=betas)
        self.rng = torch.Generator().manual_seed(config.seed + 1)
        self.step_count = 0

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.labels), (self.config.batch_size,), generator=self.rng)
        x = to_device(self.images[to_device(idx, self.images.device)], self.device).float() / 127.5 - 1
        return x, to_device(self.labels[to_device(idx, self.labels.device)], self.device)

    def _fake_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        n, cfg = self.config.batch_size, self.generator.config
        z = sample_latents(n, cfg.z_dim, self.rng, self.device)
        y = to_device(torch.randint(cfg.num_classes, (n,), generator=self.rng), self.device)
        return z, y

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.config.diffaugment, self.rng) if self.config.diffaugment else x

    def step(self) -> dict[str, torch.Tensor]:
        g, d = self.generator, self.discriminator
        g.train()
        d.train()
        d.requires_grad_(True)
        for _ in range(self.config.d_steps):
            real, y_real = self._real_batch()
            z, y_fake = self._fake_inputs()
            with torch.no_grad():
                fake = g(z, y_fake)
            d_real = d(self._augment(real), y_real)
            d_fake = d(self._augment(fake), y_fake)
            loss_d = hinge_d_loss(d_real, d_fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        d.requires_grad_(False)  # G's update needs gradients through D, not into it
        z, y_fake = self._fake_inputs()
        loss_g = hinge_g_loss(d(self._augment(g(z, y_fake)), y_fake))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.step_count += 1
        ema_update(self.ema, g, 0.0 if self.step_count <= self.config.ema_start else self.config.ema_decay)
        # device scalars: the caller brings them to the host every few steps, not every step
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "d_real": d_real.detach().mean(),
                "d_fake": d_fake.detach().mean()}

    def state_dict(self) -> dict:
        return {"step": self.step_count, "generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(), "ema": self.ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"])
        self.step_count = int(state["step"])

    def finite(self) -> bool:
        return all_finite(self.generator.parameters())
