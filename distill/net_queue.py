"""A queue of matching networks trained on real images as distillation goes (IDM's model queue:
Zhao et al., "Improved Distribution Matching for Dataset Condensation", CVPR 2023).

A fresh random ConvNet's features match colour and texture statistics; a trained one's also
separate the classes. The queue keeps `size` ConvNets across iterations; each iteration takes the
next in turn, trains it one SGD step on a real batch of every class, and hands it over frozen for
matching. A net is re-initialised once it has had `max_steps` steps (0: never), so the matching
sees networks at many stages of training. Everything is drawn from the caller's generator and
kept in `state_dict`, so a resumed run continues exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.dsa import DSA
from distill.losses import random_frozen_convnet
from search_spaces.convnet import ConvNet, ConvNetSpec

MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4  # the evaluation protocol's SGD


class NetQueue:
    def __init__(self, size: int, lr: float, max_steps: int, spec: ConvNetSpec | None, channels: int,
                 num_classes: int, image_size: int, device: torch.device, rng: torch.Generator,
                 dsa: DSA | None = None) -> None:
        if size < 1 or lr <= 0 or max_steps < 0:
            raise ValueError(f"a net queue needs size >= 1, lr > 0 and max_steps >= 0, got {size}, {lr}, {max_steps}")
        self.lr, self.max_steps, self.rng, self.dsa = lr, max_steps, rng, dsa
        self.shape = (spec, channels, num_classes, image_size, device)
        fresh = [self._fresh() for _ in range(size)]
        self.nets: list[ConvNet] = [net for net, _ in fresh]
        self.optimizers: list[torch.optim.Optimizer] = [optimizer for _, optimizer in fresh]
        self.steps, self.turn = [0] * size, 0

    def _fresh(self) -> tuple[ConvNet, torch.optim.Optimizer]:
        spec, channels, num_classes, image_size, device = self.shape
        seed = int(torch.randint(2 ** 31 - 1, (1,), generator=self.rng))
        net = random_frozen_convnet(spec, channels, num_classes, image_size, seed, device)
        return net, torch.optim.SGD(net.parameters(), lr=self.lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)

    def next(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[ConvNet, torch.Tensor]:
        """The next net, trained one step on (`images`, `labels`), frozen; and that step's loss."""
        i = self.turn % len(self.nets)
        self.turn += 1
        if self.max_steps and self.steps[i] >= self.max_steps:
            (self.nets[i], self.optimizers[i]), self.steps[i] = self._fresh(), 0
        net, optimizer = self.nets[i], self.optimizers[i]
        if self.dsa is not None:  # a draw per image, as the protocol trains its networks
            images = self.dsa.apply(images, self.dsa.sample(len(images), images.shape[-1], images.device,
                                                            generator=self.rng))
        net.requires_grad_(True)
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        net.requires_grad_(False)  # matching's gradient goes to the synthetic images only
        self.steps[i] += 1
        return net, loss.detach()

    def state_dict(self) -> dict:
        return {"nets": [net.state_dict() for net in self.nets],
                "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
                "steps": list(self.steps), "turn": self.turn}

    def load_state_dict(self, state: dict) -> None:
        if len(state["nets"]) != len(self.nets):
            raise ValueError(f"the checkpoint holds {len(state['nets'])} matching nets, this run {len(self.nets)}")
        for net, optimizer, net_state, optimizer_state in zip(self.nets, self.optimizers, state["nets"],
                                                              state["optimizers"]):
            net.load_state_dict(net_state)
            optimizer.load_state_dict(optimizer_state)
        self.steps, self.turn = [int(s) for s in state["steps"]], int(state["turn"])
