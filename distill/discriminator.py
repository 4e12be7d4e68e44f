"""BigGAN-style spectral-norm projection discriminator D(x, y) (Miyato & Koyama 2018).

D(x, y) = psi(phi(x)) + <embed(y), phi(x)>: an unconditional score plus the projection of the
class embedding on the pooled features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# channel multipliers of width from the input to the last block; one block per halving (the
# last block keeps the resolution at 32x32, as in BigGAN's CIFAR discriminator)
CHANNEL_MULTIPLIERS = {32: (4, 4, 4, 4), 64: (1, 2, 4, 8, 16), 128: (1, 2, 4, 8, 16, 16)}


@dataclass(frozen=True)
class DiscriminatorConfig:
    image_size: int = 32
    num_classes: int = 10
    channels: int = 3
    width: int = 64

    def __post_init__(self) -> None:
        if self.image_size not in CHANNEL_MULTIPLIERS:
            raise ValueError(f"discriminator image size must be one of {sorted(CHANNEL_MULTIPLIERS)}, got {self.image_size}")

    def to_dict(self) -> dict:
        return asdict(self)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, downsample: bool, preactivation: bool) -> None:
        super().__init__()
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.learnable_shortcut = in_ch != out_ch or downsample
        if self.learnable_shortcut:
            self.shortcut = spectral_norm(nn.Conv2d(in_ch, out_ch, 1))
        self.downsample = nn.AvgPool2d(2) if downsample else nn.Identity()
        self.preactivation = preactivation
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation(x) if self.preactivation else x
        h = self.downsample(self.conv2(self.activation(self.conv1(h))))
        if not self.learnable_shortcut:
            return h + x
        if self.preactivation:
            shortcut = self.downsample(self.shortcut(x))
        else:  # the first block: pool before the 1x1 conv, as in BigGAN
            shortcut = self.shortcut(self.downsample(x))
        return h + shortcut


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        self.config = config
        mults = CHANNEL_MULTIPLIERS[config.image_size]
        chans = [config.channels] + [m * config.width for m in mults]
        blocks = []
        for i in range(len(mults)):
            downsample = i < len(mults) - 2 if config.image_size == 32 else i < len(mults) - 1
            blocks.append(DiscriminatorBlock(chans[i], chans[i + 1], downsample, preactivation=i > 0))
        self.blocks = nn.Sequential(*blocks)
        self.activation = nn.ReLU()
        self.linear = spectral_norm(nn.Linear(chans[-1], 1))
        self.embed = spectral_norm(nn.Embedding(config.num_classes, chans[-1]))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
                nn.init.orthogonal_(module.parametrizations.weight.original)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.activation(self.blocks(x)).sum(dim=[2, 3])  # global sum pooling
        return self.linear(h).flatten() + (self.embed(y) * h).sum(dim=1)
