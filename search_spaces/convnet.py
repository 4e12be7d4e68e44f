"""The ConvNet family of the dataset-condensation literature.

Block = 3x3 conv (width channels) -> normalisation -> activation -> 2x2 pooling; a linear
classifier on the flattened features. ConvNet-3 (width 128, instance norm, ReLU, avg-pool) is
the field's evaluation network and D2M's feature extractor. Varying depth (1-4), width
(32/64/128/256), activation (3), normalisation (5) and pooling (3) gives the 720-network space
of the DC/DSA NAS experiments; depth 5 exists for 128x128 inputs.

A network is named by a readable string, e.g. ``convnet-d3-w128-relu-instancenorm-avgpool``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import torch
from torch import nn

DEPTHS = (1, 2, 3, 4)
WIDTHS = (32, 64, 128, 256)
ACTIVATIONS = ("sigmoid", "relu", "leakyrelu")
NORMS = ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm")
POOLINGS = ("none", "maxpool", "avgpool")
MAX_DEPTH = 5

_PATTERN = re.compile(r"^convnet-d(\d+)-w(\d+)-([a-z]+)-([a-z]+)-([a-z]+)$")


@dataclass(frozen=True)
class ConvNetSpec:
    depth: int = 3
    width: int = 128
    activation: str = "relu"
    norm: str = "instancenorm"
    pooling: str = "avgpool"

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= MAX_DEPTH:
            raise ValueError(f"ConvNet depth must be 1..{MAX_DEPTH}, got {self.depth}")
        if self.width < 1:
            raise ValueError(f"ConvNet width must be positive, got {self.width}")
        for value, allowed, what in ((self.activation, ACTIVATIONS, "activation"), (self.norm, NORMS, "norm"),
                                     (self.pooling, POOLINGS, "pooling")):
            if value not in allowed:
                raise ValueError(f"unknown ConvNet {what} {value!r}; choose from {', '.join(allowed)}")

    def __str__(self) -> str:
        return f"convnet-d{self.depth}-w{self.width}-{self.activation}-{self.norm}-{self.pooling}"

    @classmethod
    def parse(cls, text: str) -> "ConvNetSpec":
        match = _PATTERN.match(text.strip().lower())
        if not match:
            raise ValueError(f"malformed ConvNet string {text!r}; expected e.g. "
                             "'convnet-d3-w128-relu-instancenorm-avgpool'")
        depth, width, activation, norm, pooling = match.groups()
        return cls(int(depth), int(width), activation, norm, pooling)


def enumerate_convnet_space() -> list[ConvNetSpec]:
    """The 720 networks of the DC/DSA NAS space, in a fixed order."""
    return [ConvNetSpec(*combo) for combo in itertools.product(DEPTHS, WIDTHS, ACTIVATIONS, NORMS, POOLINGS)]


def default_depth_for(image_size: int) -> int:
    """The field's convention: depth 3 at 32x32, 4 at 64x64, 5 at 128x128."""
    return {32: 3, 28: 3, 64: 4, 128: 5}.get(image_size, 3)


def _activation(name: str) -> nn.Module:
    return {"sigmoid": nn.Sigmoid(), "relu": nn.ReLU(inplace=True), "leakyrelu": nn.LeakyReLU(0.01)}[name]


def _norm(name: str, channels: int, size: int) -> nn.Module:
    if name == "batchnorm":
        return nn.BatchNorm2d(channels)
    if name == "layernorm":
        return nn.LayerNorm([channels, size, size])
    if name == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)  # instance norm with affine, as in the DC code
    if name == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    return nn.Identity()


class ConvNet(nn.Module):
    def __init__(self, spec: ConvNetSpec | str = ConvNetSpec(), channels: int = 3, num_classes: int = 10,
                 image_size: int = 32) -> None:
        super().__init__()
        self.spec = ConvNetSpec.parse(spec) if isinstance(spec, str) else spec
        self.blocks = nn.ModuleList()
        size, in_ch = image_size, channels
        for d in range(self.spec.depth):
            # 28x28 inputs (MNIST, Fashion-MNIST) are padded to 32x32 by the first conv, as in the DC
            # code, so their feature maps and embedding sizes match the 32x32 networks.
            padding = 3 if d == 0 and image_size == 28 else 1
            size += 2 * (padding - 1)
            layers: list[nn.Module] = [nn.Conv2d(in_ch, self.spec.width, 3, padding=padding),
                                       _norm(self.spec.norm, self.spec.width, size),
                                       _activation(self.spec.activation)]
            if self.spec.pooling != "none":
                if size < 2:
                    raise ValueError(f"{self.spec} pools {self.spec.depth} times: too deep for {image_size}x{image_size} inputs")
                layers.append(nn.AvgPool2d(2) if self.spec.pooling == "avgpool" else nn.MaxPool2d(2))
                size //= 2
            self.blocks.append(nn.Sequential(*layers))
            in_ch = self.spec.width
        self.embedding_dim = self.spec.width * size * size
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activation after every block (what attention-map matching compares)."""
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features before the classifier."""
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def create_convnet(spec: ConvNetSpec | str = "convnet-d3-w128-relu-instancenorm-avgpool", channels: int = 3,
                   num_classes: int = 10, image_size: int = 32) -> ConvNet:
    return ConvNet(spec, channels, num_classes, image_size)
