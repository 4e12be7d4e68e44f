"""The matching losses D2M and DM share: one class's real batch against its synthetic batch, seen
through a frozen, randomly initialised ConvNet.

- attention: at every block, a(h) = normalise(sum over channels of |h|^p), flattened; squared
  distance between the class means of a over the real and the synthetic images (DataDAM / D2M);
- embedding: squared distance between the class means of the final flattened features (DM);
- prediction: KL(real || synthetic) between the class-wise softened predictions
  mean_i softmax(logits_i / tau), times tau^2 (D2M's prediction matching).

total = attention_weight * attention + embedding_weight * embedding + lambda_pred * prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from search_spaces.convnet import ConvNet, ConvNetSpec, default_depth_for

TERMS = ("attention", "embedding", "prediction")


@dataclass(frozen=True)
class MatchingConfig:
    """The matching loss's weights; the documented fields are `distill`'s options."""

    power: float = field(default=4.0, metadata={"help": "power p of the attention maps", "above": 0})
    attention_weight: float = field(default=1.0, metadata={"help": "weight of attention-map matching",
                                                            "minimum": 0})
    embedding_weight: float = field(default=1.0, metadata={"help": "weight of final-embedding matching",
                                                            "minimum": 0})
    lambda_pred: float = field(default=1.0, metadata={  # D2M's task balance
        "help": "weight of prediction matching (lambda)", "minimum": 0})
    tau: float = field(default=4.0, metadata={"help": "temperature of prediction matching", "above": 0})

    def __post_init__(self) -> None:
        if self.tau <= 0 or self.power <= 0:
            raise ValueError(f"tau and power must be positive, got tau={self.tau}, power={self.power}")
        if min(self.attention_weight, self.embedding_weight, self.lambda_pred) < 0:
            raise ValueError("loss weights must be non-negative")

    def to_dict(self) -> dict:
        return asdict(self)


DM_MATCHING = MatchingConfig(attention_weight=0.0, embedding_weight=1.0, lambda_pred=0.0)  # the standard DM


def attention_map(h: torch.Tensor, power: float = 4.0) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W): channel-pooled |h|^p, L2-normalised per image."""
    return F.normalize(h.abs().pow(power).sum(dim=1).flatten(1), dim=1)


def attention_loss(real_blocks: list[torch.Tensor], syn_blocks: list[torch.Tensor], power: float) -> torch.Tensor:
    loss = real_blocks[0].new_zeros(())
    for real, syn in zip(real_blocks, syn_blocks, strict=True):
        loss = loss + (attention_map(real, power).mean(0) - attention_map(syn, power).mean(0)).pow(2).sum()
    return loss


def embedding_loss(real_embedding: torch.Tensor, syn_embedding: torch.Tensor) -> torch.Tensor:
    return (real_embedding.mean(0) - syn_embedding.mean(0)).pow(2).sum()


def prediction_loss(real_logits: torch.Tensor, syn_logits: torch.Tensor, tau: float) -> torch.Tensor:
    p_real = F.softmax(real_logits / tau, dim=1).mean(0)
    log_p_syn = F.softmax(syn_logits / tau, dim=1).mean(0).clamp_min(1e-12).log()
    return (p_real * (p_real.clamp_min(1e-12).log() - log_p_syn)).sum() * tau ** 2


def matching_losses(net: ConvNet, real: torch.Tensor, syn: torch.Tensor, config: MatchingConfig
                    ) -> dict[str, torch.Tensor]:
    """Every term for one class, and their weighted total. `real` needs no gradient; gradients
    flow to `syn` (and whatever produced it) only, as `net` is expected frozen."""
    with torch.no_grad():
        real_blocks = net.block_outputs(real)
    return matching_terms(net, real_blocks, net.block_outputs(syn), config)


def matching_terms(net: ConvNet, real_blocks: list[torch.Tensor], syn_blocks: list[torch.Tensor],
                   config: MatchingConfig) -> dict[str, torch.Tensor]:
    """The terms of one class from its block outputs (so a caller may run several classes
    through `net` at once and split the outputs: the terms are class means, per image before)."""
    need_blocks = config.attention_weight > 0
    need_logits = config.lambda_pred > 0
    terms: dict[str, torch.Tensor] = {}
    real_emb, syn_emb = real_blocks[-1].flatten(1), syn_blocks[-1].flatten(1)
    zero = syn_emb.new_zeros(())
    terms["attention"] = attention_loss(real_blocks, syn_blocks, config.power) if need_blocks else zero
    terms["embedding"] = embedding_loss(real_emb, syn_emb) if config.embedding_weight > 0 else zero
    if need_logits:
        with torch.no_grad():
            real_logits = net.classifier(real_emb)
        terms["prediction"] = prediction_loss(real_logits, net.classifier(syn_emb), config.tau)
    else:
        terms["prediction"] = zero
    terms["total"] = (config.attention_weight * terms["attention"] + config.embedding_weight * terms["embedding"]
                      + config.lambda_pred * terms["prediction"])
    return terms


def random_frozen_convnet(spec: ConvNetSpec | None, channels: int, num_classes: int, image_size: int,
                          seed: int, device) -> ConvNet:
    """A freshly initialised ConvNet (default: depth by resolution, width 128, instance norm,
    ReLU, avg-pool) whose weights get no gradient. Seeded without touching the global RNG."""
    spec = spec or ConvNetSpec(depth=default_depth_for(image_size))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ConvNet(spec, channels, num_classes, image_size)
    net = net.to(device).eval()
    net.requires_grad_(False)
    return net
