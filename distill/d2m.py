"""D2M training: distill a dataset into a pre-trained conditional generator's weights.

Each iteration: a fresh randomly initialised ConvNet, frozen (or, with `trained_nets`, the next of
a queue of ConvNets trained on real images as distillation goes); for every class a real batch and a
generated batch G(z, c) with fresh z, both augmented with the same DSA draw; attention-map +
embedding matching and prediction matching (distill.losses); the gradient updates the chosen
subset of the generator's parameters.

The generator runs in eval mode (BatchNorm on its running statistics) during D2M, so what is
optimised is exactly the function `generate_per_class` samples from afterwards. With a latent
pool (`latent_pool` K), each class's generated batch is drawn from its K learned latents instead
of fresh z, and the latents are learned with the chosen parameters: the first K images of each
class become distilled images, through the generator's prior, while larger IPCs add fresh draws.
The pool starts at N(0, I), or (`latent_init="real"`) at the inversions of K random real images of
each class (distill.inversion), made before the first iteration; `tuning_steps` then fit the
generator's weights to those images from those latents (pivotal tuning). `match_first` K adds the
loss of each class's first K pool images as a set of their own: generation takes IPC K from the
pool's first K, so one generator is distilled for IPC K as well as for the whole pool. Several
prefixes (say 1 and 10) distill several budgets at once, each one's loss beside the others'.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from distill.dsa import DSA, DSAConfig
from distill.errors import DivergenceError, all_finite
from distill.generator import PARAMETER_GROUPS, Generator, sample_latents, to_normalized, with_latent_pool
from distill.inversion import TUNING_LR, invert, reconstruction_psnr, tune
from distill.losses import MatchingConfig, matching_terms, random_frozen_convnet
from distill.transfer import to_device
from distill.net_queue import NetQueue
from search_spaces.convnet import ConvNet, ConvNetSpec


LATENT_INITS = ("normal", "real")


@dataclass(frozen=True)
class D2MConfig:
    iterations: int = 5000
    real_per_class: int = 64
    syn_per_class: int = 32  # generated images per class per iteration
    lr: float = 1e-4
    optimizer: str = "adam"  # or "sgd"
    momentum: float = 0.9  # SGD only
    learn: str = "all"  # which generator parameters: all | conditional | embedding | latents
    latent_pool: int = 0  # learned latents per class, matched instead of fresh draws (0: fresh z only)
    latent_lr: float | None = None  # the pool's learning rate (None: lr); latents start at N(0, I), far from lr-sized steps
    latent_init: str = "normal"  # the pool's start: "normal" (N(0, I)) or "real" (inverted real images)
    inversion_steps: int = 100  # Adam steps of that inversion
    tuning_steps: int = 0  # then Adam steps of pivotal tuning: the weights fitted to those images from those latents
    tuning_lr: float = TUNING_LR  # its Adam rate
    tuning_batch: int = 0  # images a tuning step (0: the whole pool every step)
    # also match each class's first K pool images as a set of their own (IPC K's images), for each K
    # given (an int for one; 0 or () for none); kept as a sorted tuple
    match_first: int | tuple[int, ...] = 0
    trained_nets: int = 0  # matching ConvNets kept and trained on real images (distill.net_queue); 0: a fresh random one each iteration
    net_lr: float = 0.01  # their SGD learning rate
    net_max_steps: int = 0  # a kept net is re-initialised after this many training steps (0: never)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    convnet: str = ""  # ConvNet string of the feature extractor; "" = depth by resolution, w128, instancenorm
    dsa_strategy: str = DSAConfig().strategy
    batch_classes: bool | None = None  # every class in one generator and ConvNet pass; None: on a GPU only
    seed: int = 0

    def __post_init__(self) -> None:
        prefixes = (self.match_first,) if isinstance(self.match_first, int) else tuple(self.match_first)
        object.__setattr__(self, "match_first", tuple(sorted({int(k) for k in prefixes if k != 0})))
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.learn not in PARAMETER_GROUPS:
            raise ValueError(f"learn must be one of {', '.join(PARAMETER_GROUPS)}, got {self.learn!r}")
        if min(self.real_per_class, self.syn_per_class) < 1 or self.iterations < 0:
            raise ValueError("D2M needs real_per_class, syn_per_class >= 1 and iterations >= 0")
        if self.latent_pool < 0:
            raise ValueError(f"latent_pool must be >= 0, got {self.latent_pool}")
        if self.learn == "latents" and not self.latent_pool:
            raise ValueError("learning the latents alone needs a latent pool (latent_pool >= 1)")
        if self.latent_lr is not None and not (self.latent_pool and self.latent_lr > 0):
            raise ValueError(f"latent_lr needs a latent pool (latent_pool >= 1) and a value > 0, got {self.latent_lr}")
        if self.latent_init not in LATENT_INITS:
            raise ValueError(f"latent_init must be one of {', '.join(LATENT_INITS)}, got {self.latent_init!r}")
        if self.latent_init == "real" and not self.latent_pool:
            raise ValueError("starting the latents from real images needs a latent pool (latent_pool >= 1)")
        if self.inversion_steps < 0 or self.tuning_steps < 0:
            raise ValueError(f"inversion_steps and tuning_steps must be >= 0, got {self.inversion_steps}, "
                             f"{self.tuning_steps}")
        if self.tuning_steps and self.latent_init != "real":
            raise ValueError("tuning_steps tune the generator to the inverted real images: they need latent_init='real'")
        if self.tuning_batch < 0 or self.tuning_lr <= 0:
            raise ValueError(f"tuning_batch must be >= 0 (0: the whole pool) and tuning_lr > 0, got "
                             f"{self.tuning_batch}, {self.tuning_lr}")
        if self.match_first and not (0 < min(self.match_first) <= max(self.match_first) < self.latent_pool
                                     == self.syn_per_class):
            shown = ",".join(map(str, self.match_first))
            raise ValueError(f"match_first K matches the pool's first K images of each class beside the whole pool: it "
                             f"needs 0 < K < latent_pool and syn_per_class == latent_pool, got K={shown}, "
                             f"latent_pool={self.latent_pool}, syn_per_class={self.syn_per_class}")
        if self.trained_nets < 0 or self.net_lr <= 0 or self.net_max_steps < 0:
            raise ValueError("trained_nets and net_max_steps must be >= 0 and net_lr > 0, got "
                             f"{self.trained_nets}, {self.net_max_steps}, {self.net_lr}")
        if self.convnet:
            ConvNetSpec.parse(self.convnet)
        DSAConfig(strategy=self.dsa_strategy).ops()

    def to_dict(self) -> dict:
        values = asdict(self)
        # no prefix or one is written as the int it was before several were possible, so that runs
        # checkpointed then still resume under the same settings
        prefixes = self.match_first
        values["match_first"] = list(prefixes) if len(prefixes) > 1 else (prefixes[0] if prefixes else 0)
        return values


def pool_seed(config: D2MConfig) -> int:
    """The seed of the latent pool's N(0, I) start: its own, so drawing it does not shift the iterations' draws."""
    return config.seed + 4


def make_optimizer(params: list, name: str, lr: float, momentum: float) -> torch.optim.Optimizer:
    """`params`: parameters, or torch parameter groups (a group's own "lr" overrides `lr`)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.0, 0.999))
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


class ClassMatcher:
    """The part D2M and DM share: one iteration of class-wise matching through a fresh frozen
    ConvNet under shared DSA draws. Class by class (`batch_classes=False`: the gradients
    accumulate, less memory) or every class in one pass of the ConvNet and of whatever renders the
    synthetic images (`batch_classes=True`: fewer, larger kernels). `None` batches on CUDA only, as
    measured by benchmarks/class_batching.py: on an H200 at the paper preset's sizes batching is
    2.6x (D2M) and 1.4x (DM) as fast, on a 2-core CPU at the cpu preset's 0.67x and 0.71x. Both
    ways make the same random draws in the same order and compute the same loss: the frozen
    ConvNet is in eval mode, so each image's features do not depend on the rest of its batch.
    Each K of `match_first` adds the loss of each synthetic batch's first K images, matched as a set
    of their own against the same real batch (the terms are class means, so a prefix is a set too)."""

    def __init__(self, matching: MatchingConfig, convnet: str, dsa_strategy: str, channels: int,
                 num_classes: int, image_size: int, device: torch.device, batch_classes: bool | None = None,
                 match_first: tuple[int, ...] = ()) -> None:
        self.matching = matching
        self.match_first = tuple(match_first)
        self.spec = ConvNetSpec.parse(convnet) if convnet else None
        self.dsa = DSA(DSAConfig(strategy=dsa_strategy)) if dsa_strategy else None
        self.channels, self.num_classes, self.image_size = channels, num_classes, image_size
        self.device = device
        self.batch_classes = device.type == "cuda" if batch_classes is None else batch_classes

    def accumulate(self, rng: torch.Generator, real_of: Callable[[int], torch.Tensor],
                   syn_draw: Callable[[int], object],
                   syn_render: Callable[[list, list[int]], list[torch.Tensor]], net: ConvNet | None = None
                   ) -> dict[str, float]:
        """Backpropagate the iteration's loss; its terms summed over classes. `real_of(c)` is a real
        batch of class c, `syn_draw(c)` what its synthetic batch is made from (latents), and
        `syn_render(draws, classes)` the synthetic batches of those classes. Draws are made class by
        class, real then synthetic then DSA, before any image is rendered. The features are `net`'s
        (frozen), else a fresh random ConvNet's."""
        if net is None:
            net_seed = int(torch.randint(2 ** 31 - 1, (1,), generator=rng))
            net = random_frozen_convnet(self.spec, self.channels, self.num_classes, self.image_size, net_seed,
                                        self.device)
        draws = []
        for c in range(self.num_classes):
            real, syn = real_of(c), syn_draw(c)
            augment = self.dsa.sample(1, self.image_size, self.device, generator=rng, shared=True) if self.dsa else None
            draws.append((real, syn, augment))
        keys = ("attention", "embedding", "prediction", "total")
        if self.batch_classes:
            terms = self._all_classes(net, draws, syn_render)
            sum(t["total"] for t in terms).backward()  # a non-finite loss is caught below, before any step
        else:
            terms = []
            for c, (real, syn, augment) in enumerate(draws):
                [syn] = syn_render([syn], [c])
                with torch.no_grad():
                    real_blocks = net.block_outputs(self._augmented(real, augment))
                terms.append(self._terms(net, real_blocks, net.block_outputs(self._augmented(syn, augment))))
                terms[-1]["total"].backward()  # gradients accumulate class by class
                terms[-1] = {key: terms[-1][key].detach() for key in keys}
        rows = torch.stack([torch.stack([t[key].detach() for key in keys]) for t in terms]).tolist()  # one sync
        for c, row in enumerate(rows):
            if not math.isfinite(row[-1]):
                raise DivergenceError(f"loss became {row[-1]} at class {c}")
        return {key: sum(row[i] for row in rows) for i, key in enumerate(keys)}

    def _augmented(self, x: torch.Tensor, augment) -> torch.Tensor:
        return x if augment is None else self.dsa.apply(x, augment)

    def _all_classes(self, net, draws: list, syn_render) -> list[dict[str, torch.Tensor]]:
        syns = syn_render([syn for _, syn, _ in draws], list(range(len(draws))))
        reals = [self._augmented(real, augment) for real, _, augment in draws]
        syns = [self._augmented(syn, augment) for syn, (_, _, augment) in zip(syns, draws)]
        with torch.no_grad():
            real_blocks = [b.split([len(x) for x in reals]) for b in net.block_outputs(torch.cat(reals))]
        syn_blocks = [b.split([len(x) for x in syns]) for b in net.block_outputs(torch.cat(syns))]
        return [self._terms(net, [b[c] for b in real_blocks], [b[c] for b in syn_blocks]) for c in range(len(draws))]

    def _terms(self, net, real_blocks: list[torch.Tensor], syn_blocks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = matching_terms(net, real_blocks, syn_blocks, self.matching)
        for k in self.match_first:
            first = matching_terms(net, real_blocks, [b[:k] for b in syn_blocks], self.matching)
            terms = {key: terms[key] + first[key] for key in terms}
        return terms


class RealSampler:
    """Seeded per-class batches of real images, normalised on the fly from uint8."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, device: torch.device) -> None:
        if images.dtype != torch.uint8:
            raise ValueError("real images must be uint8 (N, C, H, W)")
        self.images, self.device = images, device
        self.by_class = [torch.nonzero(labels.cpu() == c).flatten() for c in range(int(labels.max()) + 1)]
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def batch(self, c: int, n: int, rng: torch.Generator) -> torch.Tensor:
        return (self.unnormalized(c, n, rng) - self.mean) / self.std

    def unnormalized(self, c: int, n: int, rng: torch.Generator) -> torch.Tensor:
        """n distinct images of class c (all it has when fewer), on [0, 1]."""
        members = self.by_class[c]
        idx = members[torch.randperm(len(members), generator=rng)[:n]]
        return to_device(self.images[to_device(idx, self.images.device)], self.device).float() / 255


def inversion_targets(real: RealSampler, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images on [-1, 1], labels): the real images a latent pool of `per_class` starts from,
    class after class, drawn by `seed` (the pool's own, so the iterations' draws are not shifted)."""
    rng = torch.Generator().manual_seed(seed)
    targets = torch.cat([real.unnormalized(c, per_class, rng) * 2 - 1 for c in range(len(real.by_class))])
    labels = torch.arange(len(real.by_class), device=targets.device).repeat_interleave(per_class)
    return targets, labels


class D2MTrainer:
    def __init__(self, generator: Generator, config: D2MConfig, images: torch.Tensor, labels: torch.Tensor,
                 mean, std, device: torch.device, progress: bool | None = None) -> None:
        self.config = config
        self.progress = progress  # bars for the pool's start (inversion, tuning); None: on a terminal only
        self.device = device
        generator = with_latent_pool(generator.to(device), config.latent_pool, pool_seed(config))
        self.generator = generator.eval()
        self.mean, self.std = tuple(mean), tuple(std)
        gcfg = generator.config
        self.real = RealSampler(images, labels, mean, std, device)
        if len(self.real.by_class) != gcfg.num_classes:
            raise ValueError(f"the data has {len(self.real.by_class)} classes, the generator {gcfg.num_classes}")
        self.matcher = ClassMatcher(config.matching, config.convnet, config.dsa_strategy, gcfg.channels,
                                    gcfg.num_classes, gcfg.image_size, device, config.batch_classes,
                                    config.match_first)
        learned = generator.parameter_groups()[config.learn]
        learned_ids = {id(p) for p in learned}
        for p in generator.parameters():
            p.requires_grad_(id(p) in learned_ids)  # no wasted gradients for frozen parts
        self.learned = learned
        groups = learned
        if config.latent_lr is not None:  # the pool in a group of its own (else one group, as before it existed)
            groups = [{"params": [p for p in learned if p is not generator.learned_z]},
                      {"params": [p for p in learned if p is generator.learned_z], "lr": config.latent_lr}]
            groups = [group for group in groups if group["params"]]
        self.optimizer = make_optimizer(groups, config.optimizer, config.lr, config.momentum)
        self.rng = torch.Generator().manual_seed(config.seed + 2)
        self.nets = (NetQueue(config.trained_nets, config.net_lr, config.net_max_steps, self.matcher.spec,
                              gcfg.channels, gcfg.num_classes, gcfg.image_size, device, self.rng, self.matcher.dsa)
                     if config.trained_nets else None)
        self.step_count = 0
        self.pool_pending = config.latent_init == "real"  # inverted on first use, not again on resume
        self.start_psnr: dict[str, float] = {}  # how closely the real start reproduces its images (dB), once made
        fewest = min(len(members) for members in self.real.by_class)
        if self.pool_pending and fewest < config.latent_pool:
            raise ValueError(f"a latent pool of {config.latent_pool} starts from as many real images of every class; "
                             f"a class has only {fewest}")

    def _start_pool(self) -> None:
        """The pool's start at the inversions of latent_pool real images of every class (and the
        weights tuned to them, with tuning_steps)."""
        self.pool_pending = False
        pool = self.generator.learned_z
        targets, labels = inversion_targets(self.real, pool.shape[1], pool_seed(self.config))
        z = invert(self.generator, targets, labels, pool.detach().flatten(0, 1), self.config.inversion_steps,
                   progress=self.progress)
        with torch.no_grad():
            pool.copy_(z.view_as(pool))
        self.start_psnr = {"inverted": reconstruction_psnr(self.generator, targets, labels, z)}
        if self.config.tuning_steps:
            tune(self.generator, targets, labels, z, self.config.tuning_steps, self.config.tuning_lr,
                 self.config.tuning_batch, seed=pool_seed(self.config), progress=self.progress)
            self.start_psnr["tuned"] = reconstruction_psnr(self.generator, targets, labels, z)

    def _latents(self, c: int) -> torch.Tensor:
        """Fresh z, or with a latent pool which of class c's learned latents to match (indices)."""
        if self.generator.learned_z is not None:
            chosen = torch.randperm(self.generator.config.latent_pool, generator=self.rng)[:self.config.syn_per_class]
            return chosen.sort().values if self.config.match_first else chosen  # the whole pool, first K first
        return sample_latents(self.config.syn_per_class, self.generator.config.z_dim, self.rng, self.device)

    def _generated(self, latents: list[torch.Tensor], classes: list[int]) -> list[torch.Tensor]:
        """The classes' images from their latents, in one generator pass (eval mode: BatchNorm on
        running statistics, so each image is what it would be alone)."""
        if self.generator.learned_z is not None:
            latents = [self.generator.learned_z[c][to_device(i, self.device)] for i, c in zip(latents, classes)]
        z = torch.cat(latents)
        y = torch.cat([torch.full((len(zc),), c, dtype=torch.long, device=self.device)
                       for zc, c in zip(latents, classes)])
        return list(to_normalized(self.generator(z, y), self.mean, self.std).split([len(zc) for zc in latents]))

    def step(self) -> dict[str, float]:
        if self.pool_pending:
            self._start_pool()  # timed with the first step
        self.generator.eval()
        self.optimizer.zero_grad(set_to_none=True)
        net, net_loss = self._trained_net() if self.nets is not None else (None, None)
        losses = self.matcher.accumulate(
            self.rng, lambda c: self.real.batch(c, self.config.real_per_class, self.rng), self._latents,
            self._generated, net)
        if not all_finite(p.grad for p in self.learned):
            raise DivergenceError("a generator gradient became NaN/inf")
        self.optimizer.step()
        self.step_count += 1
        return losses if net_loss is None else losses | {"net_loss": net_loss}  # synchronised with the others

    def _trained_net(self) -> tuple[ConvNet, torch.Tensor]:
        """The queue's next matching net, trained a step on real_per_class images of every class."""
        batches = [self.real.batch(c, self.config.real_per_class, self.rng) for c in range(len(self.real.by_class))]
        labels = torch.cat([torch.full((len(x),), c, dtype=torch.long, device=self.device) for c, x in enumerate(batches)])
        return self.nets.next(torch.cat(batches), labels)

    def state_dict(self) -> dict:
        if self.pool_pending:
            self._start_pool()  # a run of 0 iterations still saves its pool's start
        state = {"step": self.step_count, "generator": self.generator.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "rng": self.rng.get_state(), "start_psnr": self.start_psnr}
        return state if self.nets is None else state | {"nets": self.nets.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.set_state(state["rng"])
        self.step_count = int(state["step"])
        self.pool_pending = False
        self.start_psnr = dict(state.get("start_psnr", {}))  # absent from checkpoints older than it
        if self.nets is not None:
            self.nets.load_state_dict(state["nets"])

    def finite(self) -> bool:
        return all_finite(self.generator.parameters())
