"""The DM baseline (Zhao & Bilen, WACV 2023): learnable pixels, initialised from real images,
matched class by class through the same code as D2M (distill.d2m.ClassMatcher). The standard DM
matches only the final embedding (`distill.losses.DM_MATCHING`); attention and prediction terms
can be switched on for a like-for-like comparison. One run yields one IPC: a new budget needs a
new run, which is the cost D2M's generator avoids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from distill.d2m import ClassMatcher, RealSampler, make_optimizer
from distill.dsa import DSAConfig
from distill.errors import DivergenceError
from distill.losses import DM_MATCHING, MatchingConfig


@dataclass(frozen=True)
class DMConfig:
    ipc: int = 10
    iterations: int = 20000
    real_per_class: int = 256
    lr: float = 1.0  # DM's image learning rate (SGD, momentum 0.5)
    optimizer: str = "sgd"
    momentum: float = 0.5
    matching: MatchingConfig = field(default_factory=lambda: DM_MATCHING)
    convnet: str = ""
    dsa_strategy: str = DSAConfig().strategy
    batch_classes: bool | None = None  # every class in one ConvNet pass; None: on a GPU only
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ipc < 1 or self.iterations < 0 or self.real_per_class < 1:
            raise ValueError("DM needs ipc >= 1, iterations >= 0 and real_per_class >= 1")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class DMTrainer:
    def __init__(self, config: DMConfig, images: torch.Tensor, labels: torch.Tensor, mean, std,
                 device: torch.device) -> None:
        self.config = config
        self.device = device
        self.real = RealSampler(images, labels, mean, std, device)
        num_classes = len(self.real.by_class)
        self.rng = torch.Generator().manual_seed(config.seed + 3)
        init = torch.cat([self.real.batch(c, config.ipc, self.rng) for c in range(num_classes)])  # real init
        self.images = init.clone().requires_grad_(True)
        self.labels = torch.arange(num_classes).repeat_interleave(config.ipc)
        self.matcher = ClassMatcher(config.matching, config.convnet, config.dsa_strategy, images.shape[1],
                                    num_classes, images.shape[-1], device, config.batch_classes)
        self.optimizer = make_optimizer([self.images], config.optimizer, config.lr, config.momentum)
        self.step_count = 0

    def step(self) -> dict[str, float]:
        ipc = self.config.ipc
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.matcher.accumulate(
            self.rng, lambda c: self.real.batch(c, self.config.real_per_class, self.rng), lambda c: c,
            lambda classes, _: [self.images[c * ipc:(c + 1) * ipc] for c in classes])
        if not torch.isfinite(self.images.grad).all():
            raise DivergenceError("an image gradient became NaN/inf")
        self.optimizer.step()
        self.step_count += 1
        return losses

    def state_dict(self) -> dict:
        return {"step": self.step_count, "images": self.images.detach().cpu(),
                "optimizer": self.optimizer.state_dict(), "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.set_state(state["rng"])
        self.step_count = int(state["step"])

    def finite(self) -> bool:
        return bool(torch.isfinite(self.images).all())
