"""The NAS-Bench-201 network (xautodl TinyNetwork with InferCell), with C and N configurable.

stem (3x3 conv + BN) -> N cells at C -> reduction block -> N cells at 2C -> reduction block ->
N cells at 4C -> BN + ReLU -> global average pool -> linear classifier. NAS-Bench-201 trained
C=16, N=5. Only the operations present on the cell's edges are instantiated, so parameter
counts equal NAS-Bench-201's (all-nor_conv_3x3 at C=16, N=5, 10 classes: 1,531,546).
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.nasbench201.arch import EDGES, parse_arch
from search_spaces.nasbench201.ops import ResNetBasicBlock, make_op


class Cell(nn.Module):
    def __init__(self, ops: tuple[str, ...], channels: int, affine: bool, track_running_stats: bool,
                 use_bn: bool) -> None:
        super().__init__()
        self.edges = EDGES
        self.ops = nn.ModuleList(make_op(op, channels, affine, track_running_stats, use_bn) for op in ops)
        # `none` edges add exact zeros: skip them instead of computing x * 0 and summing it, which at
        # small widths is a large share of a training step. A node whose inputs are all `none` is
        # x * 0, which keeps the output in x's graph (input gradients, as jacob_cov takes, exist).
        self.inputs = tuple(tuple(k for k, (i, _) in enumerate(EDGES) if i == node and ops[k] != "none")
                            for node in (1, 2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for inputs in self.inputs:
            terms = [self.ops[k](nodes[self.edges[k][1]]) for k in inputs]
            nodes.append(torch.stack(terms).sum(0) if len(terms) > 2 else
                         terms[0] + terms[1] if len(terms) == 2 else terms[0] if terms else x.mul(0.0))
        return nodes[3]


class NB201Network(nn.Module):
    """`bn_affine`/`bn_track_running_stats` apply to the cells' BN (NAS-Bench-201's trained
    networks: both True; the zero-cost reference code: both False). `use_bn=False` drops BN from
    stem, cells and the last activation but keeps the reduction blocks' BN, which is the network
    the zero-cost reference code scores with synflow."""

    def __init__(self, arch: str, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10,
                 in_channels: int = 3, bn_affine: bool = True, bn_track_running_stats: bool = True,
                 use_bn: bool = True) -> None:
        super().__init__()
        if channels < 1 or cells_per_stage < 0 or num_classes < 1:
            raise ValueError(f"NAS-Bench-201 network needs channels >= 1, cells_per_stage >= 0 and "
                             f"num_classes >= 1; got C={channels}, N={cells_per_stage}, classes={num_classes}")
        self.arch = arch
        self.options = dict(channels=channels, cells_per_stage=cells_per_stage, num_classes=num_classes,
                            in_channels=in_channels, bn_affine=bn_affine,
                            bn_track_running_stats=bn_track_running_stats, use_bn=use_bn)
        ops = parse_arch(arch)
        stem: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
        if use_bn:
            stem.append(nn.BatchNorm2d(channels))
        self.stem = nn.Sequential(*stem)
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, 2 * c))
                c *= 2
            layers.extend(Cell(ops, c, bn_affine, bn_track_running_stats, use_bn) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True)) if use_bn else nn.ReLU(inplace=True)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        self.feature_dim = c

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        return self.global_pooling(self.lastact(self.cells(self.stem(x)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
