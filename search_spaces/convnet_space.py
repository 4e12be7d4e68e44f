"""The 720-ConvNet space of the dataset-condensation NAS experiments (DC/DSA), as a SearchSpace.

Architectures are ConvNet strings (``convnet-d3-w128-relu-instancenorm-avgpool``); there is no
tabular ground truth: its full-data ranking comes from a results file d2m-nas produced.
"""

from __future__ import annotations

import functools

from torch import nn

from search_spaces.base import SearchSpace
from search_spaces.convnet import (ACTIVATIONS, DEPTHS, NORMS, POOLINGS, WIDTHS, ConvNetSpec, create_convnet,
                                   enumerate_convnet_space)


@functools.lru_cache(maxsize=1)
def _all() -> tuple[str, ...]:
    return tuple(str(spec) for spec in enumerate_convnet_space())


@functools.lru_cache(maxsize=1)
def _positions() -> dict[str, int]:
    return {arch: i for i, arch in enumerate(_all())}


class ConvNetSpace(SearchSpace):
    name = "convnet720"

    def enumerate(self) -> list[str]:
        return list(_all())

    def __len__(self) -> int:
        return len(_all())

    def parse(self, text: str) -> str:
        spec = ConvNetSpec.parse(text)
        if spec.depth not in DEPTHS or spec.width not in WIDTHS:
            raise ValueError(f"{text!r} is a valid ConvNet but not in the 720-network space "
                             f"(depth in {DEPTHS}, width in {WIDTHS})")
        return str(spec)

    def index(self, arch: str) -> int:
        return _positions()[self.parse(arch)]

    def build(self, arch: str, num_classes: int = 10, image_size: int = 32, in_channels: int = 3,
              **options) -> nn.Module:
        if options:
            raise ValueError(f"the ConvNet space takes no build options, got {', '.join(options)}")
        return create_convnet(self.parse(arch), channels=in_channels, num_classes=num_classes, image_size=image_size)

    def choices(self) -> dict[str, tuple]:
        return {"depth": DEPTHS, "width": WIDTHS, "activation": ACTIVATIONS, "norm": NORMS, "pooling": POOLINGS}

    def encode(self, arch: str) -> dict[str, str | int]:
        spec = ConvNetSpec.parse(self.parse(arch))
        return {"depth": spec.depth, "width": spec.width, "activation": spec.activation, "norm": spec.norm,
                "pooling": spec.pooling}

    def decode(self, params: dict[str, str | int]) -> str:
        missing = [name for name in self.choices() if name not in params]
        if missing:
            raise ValueError(f"ConvNet assignment lacks {', '.join(missing)}")
        return self.parse(str(ConvNetSpec(int(params["depth"]), int(params["width"]), str(params["activation"]),
                                          str(params["norm"]), str(params["pooling"]))))
