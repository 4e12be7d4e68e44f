"""BigGAN-style class-conditional ResNet generator G(z, y) for 32x32, 64x64 and 128x128 images.

A shared class embedding e(y) is concatenated with z (BigGAN-deep style, the whole z rather than
chunks, so any resolution works with z dim 128); every residual block's BatchNorms take their
gain and bias from a linear map of [e(y), z] (class-conditional BatchNorm). Output is in [-1, 1].

D2M learns (some of) these weights, so `parameter_groups` names the conditional parts: the shared
embedding and the conditional-BN projections are a small, expressive subset to fine-tune.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from distill.transfer import to_device

# channel multipliers of width, from the 4x4 input of the first block to the output resolution
CHANNEL_MULTIPLIERS = {32: (4, 4, 4, 4), 64: (16, 8, 4, 2, 1), 128: (16, 16, 8, 4, 2, 1)}


@dataclass(frozen=True)
class GeneratorConfig:
    image_size: int = 32
    num_classes: int = 10
    channels: int = 3
    z_dim: int = 128
    width: int = 64  # BigGAN's "ch": 256 channels per block at 32x32 with width 64
    embedding_dim: int = 128  # the shared class embedding
    spectral_norm: bool = True  # BigGAN normalises G's weights too
    latent_pool: int = 0  # learned latents per class (D2M's --latent-pool): the first images of each class

    def __post_init__(self) -> None:
        if self.image_size not in CHANNEL_MULTIPLIERS:
            raise ValueError(f"generator image size must be one of {sorted(CHANNEL_MULTIPLIERS)}, got {self.image_size}")
        for name in ("num_classes", "channels", "z_dim", "width", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"generator {name} must be positive, got {getattr(self, name)}")
        if self.latent_pool < 0:
            raise ValueError(f"generator latent_pool must be >= 0, got {self.latent_pool}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GeneratorConfig":
        return cls(**values)


def tiny_generator_config(image_size: int = 32, num_classes: int = 10) -> GeneratorConfig:
    """A generator that runs in milliseconds, for tests."""
    return GeneratorConfig(image_size=image_size, num_classes=num_classes, z_dim=16, width=4, embedding_dim=8)


def _sn(module: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(module, eps=1e-6) if enabled else module


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine; gain and bias are linear in the conditioning vector."""

    def __init__(self, channels: int, cond_dim: int, sn: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False, eps=1e-4, momentum=0.1)
        self.gain = _sn(nn.Linear(cond_dim, channels, bias=False), sn)
        self.bias = _sn(nn.Linear(cond_dim, channels, bias=False), sn)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(cond).view(cond.shape[0], -1, 1, 1)
        bias = self.bias(cond).view(cond.shape[0], -1, 1, 1)
        return self.bn(x) * gain + bias


class GeneratorBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, sn: bool) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm(in_ch, cond_dim, sn)
        self.conv1 = _sn(nn.Conv2d(in_ch, out_ch, 3, padding=1), sn)
        self.bn2 = ConditionalBatchNorm(out_ch, cond_dim, sn)
        self.conv2 = _sn(nn.Conv2d(out_ch, out_ch, 3, padding=1), sn)
        self.shortcut = _sn(nn.Conv2d(in_ch, out_ch, 1), sn)
        self.activation = nn.ReLU()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.upsample(self.activation(self.bn1(x, cond)))
        h = self.conv2(self.activation(self.bn2(self.conv1(h), cond)))
        return h + self.shortcut(self.upsample(x))


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.config = config
        mults = CHANNEL_MULTIPLIERS[config.image_size]
        sn = config.spectral_norm
        cond_dim = config.embedding_dim + config.z_dim
        self.shared = nn.Embedding(config.num_classes, config.embedding_dim)
        self.linear = _sn(nn.Linear(config.z_dim, mults[0] * config.width * 16), sn)
        self.blocks = nn.ModuleList(
            GeneratorBlock(mults[i] * config.width, mults[i + 1] * config.width, cond_dim, sn)
            for i in range(len(mults) - 1))
        out_ch = mults[-1] * config.width
        self.output = nn.Sequential(nn.BatchNorm2d(out_ch, eps=1e-4), nn.ReLU(),
                                    _sn(nn.Conv2d(out_ch, config.channels, 3, padding=1), sn), nn.Tanh())
        for module in self.modules():  # BigGAN's orthogonal initialisation
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
                nn.init.orthogonal_(weight)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=1.0)
        # K learned latents per class (GLaD's idea, with the weights kept): generation takes them
        # first, then random draws, so any IPC still comes from one generator without optimisation
        self.learned_z = nn.Parameter(torch.randn(config.num_classes, config.latent_pool, config.z_dim)) \
            if config.latent_pool else None
        if not sn:  # start the conditional gains near 1 and biases near 0 (spectral norm would undo this)
            for block in self.blocks:
                for cbn in (block.bn1, block.bn2):
                    for lin in (cbn.gain, cbn.bias):
                        with torch.no_grad():
                            lin.weight.mul_(0.1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.shared(y), z], dim=1)
        h = self.linear(z).view(z.shape[0], -1, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        return self.output(h)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named subsets D2M can learn: 'all' (the learned latents too), 'conditional' (shared
        embedding + conditional-BN projections), 'embedding' (the shared class embedding only),
        'latents' (the learned latents only; empty without a pool)."""
        conditional = list(self.shared.parameters())
        for block in self.blocks:
            conditional += list(block.bn1.parameters()) + list(block.bn2.parameters())
        return {"all": list(self.parameters()), "conditional": conditional,
                "embedding": list(self.shared.parameters()),
                "latents": [] if self.learned_z is None else [self.learned_z]}


PARAMETER_GROUPS = ("all", "conditional", "embedding", "latents")


def with_latent_pool(model: Generator, pool: int, seed: int) -> Generator:
    """`model` with `pool` learned latents per class: itself when it has that many, else a copy of
    its weights with a fresh pool drawn from N(0, I) by `seed` (none when pool is 0)."""
    if model.config.latent_pool == pool:
        return model
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):  # building it draws initial weights: leave the caller's RNG alone
        pooled = Generator(replace(model.config, latent_pool=pool)).to(device)
    weights = {k: v for k, v in model.state_dict().items() if k != "learned_z"}
    pooled.load_state_dict(weights, strict=pool == 0)  # all but the pool: it is drawn below
    if pool:
        with torch.no_grad():
            z = torch.randn(pooled.learned_z.shape, generator=torch.Generator().manual_seed(seed))
            pooled.learned_z.copy_(z)
    return pooled.train(model.training)


def to_normalized(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Generator output in [-1, 1] -> the dataset's normalised space (what the networks see)."""
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return ((images + 1) / 2 - mean_t) / std_t


def sample_latents(num: int, z_dim: int, generator: torch.Generator, device) -> torch.Tensor:
    """z ~ N(0, I), drawn on the CPU from `generator` so a seed gives the same z on any device."""
    return to_device(torch.randn(num, z_dim, generator=generator), device)


@torch.no_grad()
def generate_per_class(model: Generator, ipc: int, seed: int, device, batch_size: int = 500
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """`ipc` images of every class in [-1, 1], ordered by class; the same seed gives the same
    images whatever the batch size. BatchNorm uses its running statistics (eval mode), so a batch
    does not affect its neighbours. z is drawn in class order, so an IPC-K set is not a prefix of
    an IPC-2K set of the same seed. A generator with learned latents takes them first: the
    first min(ipc, pool) images of each class are its learned ones, whatever the seed."""
    was_training = model.training
    model.eval()
    rng = torch.Generator().manual_seed(seed)
    num_classes = model.config.num_classes
    labels = torch.arange(num_classes).repeat_interleave(ipc)
    z = sample_latents(len(labels), model.config.z_dim, rng, "cpu")
    learned = min(ipc, model.config.latent_pool)
    if learned:
        z.view(num_classes, ipc, -1)[:, :learned] = model.learned_z[:, :learned].detach().cpu()
    parts = []
    for start in range(0, len(labels), batch_size):
        parts.append(model(z[start:start + batch_size].to(device), labels[start:start + batch_size].to(device)).cpu())
    model.train(was_training)
    images = torch.cat(parts) if parts else torch.empty(0, model.config.channels, model.config.image_size,
                                                        model.config.image_size)
    return images, labels
