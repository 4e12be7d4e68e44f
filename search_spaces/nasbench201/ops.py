"""The NAS-Bench-201 operations and residual reduction block, as in its reference code
(xautodl models/cell_operations.py): ReLU -> Conv -> BN, with the conv bias only when BN has
no affine parameters."""

from __future__ import annotations

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True, track_running_stats: bool = True, use_bn: bool = True) -> None:
        layers: list[nn.Module] = [nn.ReLU(inplace=False),
                                   nn.Conv2d(c_in, c_out, kernel_size, stride, padding, bias=not affine)]
        if use_bn:
            layers.append(nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats))
        super().__init__(*layers)


class Zero(nn.Module):
    """The `none` operation: multiplies by zero (keeps the graph, as NAS-Bench-201 does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int, affine: bool, track_running_stats: bool, use_bn: bool) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0, affine, track_running_stats, use_bn)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1, affine, track_running_stats, use_bn)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}")


class ResNetBasicBlock(nn.Module):
    """The reduction block between stages: two ReLU-Conv-BN (the first with stride 2) plus an
    avg-pool + 1x1-conv shortcut. Its BN is always affine with running stats, as in NAS-Bench-201."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                                        nn.Conv2d(c_in, c_out, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))
