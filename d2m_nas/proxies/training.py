"""The training-based proxy: train the candidate briefly on some images, score it on the real
validation split.

One class, `TrainingProxy`, whose registered name is its image source (docs/method.md §3):
    d2m                   a fixed IPC-K set from a distilled generator (`--generator RUN`)
    d2m-stream            fresh latents every step from the same generator
    pretrained-generator  a fixed IPC-K set from the same run's generator before D2M
    random-subset         K real images per class from the training part of the split
    real-stream           minibatches over the whole training part of the split
    dm                    a SyntheticSet file (`--dm-set FILE`); its IPC is the file's
The image count (IPC) and the step budget are separate knobs, because on a small fixed set longer
training inverts the ranking while more distinct images at the same steps do not.

Every run records a trace (the training loss of every step; the validation accuracy and loss at
a few checkpoints, `checkpoints`, fractions of the steps), and the score is one rule of
`score_rules` applied to it (`rule`, default top-1 validation accuracy; all rules are in the
result's `extra["scores"]`). Validation is on `context.val_indices` of the dataset's training
arrays: never the test split, and never an image any source trains on (checked). Fixed sets are
drawn once per proxy seed and reused for every architecture, so within a seed the architectures
see the same data in the same order; the weight initialisation depends on (seed, arch) through
`context.build`. Everything is seeded from the proxy seed: on the CPU a seed gives the same score.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from d2m_nas.data import ImageDataset
from d2m_nas.generator_files import STAGES, load_generator, resolve_generator_path
from d2m_nas.errors import UserError
from d2m_nas.devices import synchronize
from d2m_nas.precision import MEMORY_FORMATS, PRECISIONS, autocast, in_memory_format
from d2m_nas.proxies import score_rules
from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore, Timer
from d2m_nas.proxies.image_sources import (GeneratorStream, ImageSource, RealStream, generated_set, real_subset,
                                           replayed_stream, synthetic_file_set)
from d2m_nas.synthetic import SyntheticSet
from distill.dsa import DSA, DSAConfig
from distill.transfer import to_device

GENERATOR_SOURCES = {"d2m": "distilled", "d2m-stream": "distilled", "pretrained-generator": "pretrained"}
SOURCES = ("d2m", "d2m-stream", "pretrained-generator", "random-subset", "real-stream", "dm")
IPC_SOURCES = ("d2m", "pretrained-generator", "random-subset")  # --ipc applies to these only
AUGMENTATIONS = ("flip", "dsa", "none")
SEEDED_SOURCES = (*IPC_SOURCES, "d2m-stream")  # their images depend on the proxy seed
REPLAY_LIMIT_BYTES = 1 << 30  # d2m-stream keeps its images for replay up to this size, else generates live
DEFAULT_CHECKPOINTS = (0.125, 0.25, 0.5, 1.0)
UNKEYED_DEFAULTS = {"precision": "fp32", "memory_format": "contiguous"}  # see TrainingProxyConfig
# Called at every checkpoint before the last with (step, the rules there); True stops the run there.
CheckpointCallback = Callable[[int, dict], bool]


class Stopped(Exception):
    """A run stopped at a checkpoint by its callback; `result` is the partial record (its cost so far)."""

    def __init__(self, result: ProxyScore) -> None:
        super().__init__(f"stopped at step {result.extra['steps']}")
        self.result = result


@dataclass(frozen=True)
class TrainingProxyConfig:
    """A training-based proxy's settings; the documented fields are `rank`'s and `search`'s options
    (`d2m_nas.commands.config_options`) and the keys of per-proxy settings (`random-subset[steps=400]`)."""

    source: str = "random-subset"
    ipc: int | None = field(default=10, metadata={  # None where it does not apply
        "help": "images per class of the fixed sets (d2m, pretrained-generator, random-subset)", "minimum": 1,
        "metavar": "K"})
    steps: int = field(default=200, metadata={"help": "optimiser steps per architecture", "minimum": 1,
                                              "metavar": "N"})
    batch_size: int = field(default=64, metadata={
        "help": "training minibatch size (at most the fixed set's size)", "flag": "--proxy-batch-size",
        "minimum": 1, "metavar": "N"})
    lr: float = field(default=0.05, metadata={"help": "SGD learning rate (Nesterov, cosine to 0 over the steps)",
                                              "flag": "--proxy-lr", "above": 0, "metavar": "LR"})
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    augment: str = field(default="flip", metadata={"help": "training augmentation", "choices": AUGMENTATIONS})
    eval_batch_size: int = 500  # speed and memory only, never the score
    # The last checkpoint is always 1. Evaluation never changes the training.
    checkpoints: tuple[float, ...] = field(default=DEFAULT_CHECKPOINTS, metadata={
        "help": "fractions of --steps after which the validation split is scored: the learning curve, and the "
                "intermediate scores a pruner sees", "metavar": "F[,F...]"})
    generator: str | None = field(default=None, metadata={  # the checkpoint file, resolved from a run directory
        "help": "a `d2m-nas distill` run directory (or generator checkpoint) for d2m, d2m-stream and "
                "pretrained-generator", "metavar": "RUN"})
    generator_sha256: str | None = None  # first 16 hex digits: a re-distilled generator is another config
    dm_set: str | None = field(default=None, metadata={
        "help": "a synthetic-set file (or a run directory holding synthetic.pt) for the dm proxy; its IPC is the "
                "file's", "metavar": "FILE"})
    dm_set_sha256: str | None = None
    # Added after scores were cached: keyed only when set, so the default keeps the earlier keys.
    precision: str = field(default="fp32", metadata={
        "help": "training and validation arithmetic: fp32, or bf16 autocast (other scores, cached apart)",
        "flag": "--proxy-precision", "choices": PRECISIONS})
    memory_format: str = field(default="contiguous", metadata={
        "help": "tensor layout of the candidate and its batches", "flag": "--proxy-memory-format",
        "choices": MEMORY_FORMATS})

    def validate(self) -> None:
        """One-line UserError for values no proxy run can use (named as the CLI options)."""
        if self.source not in SOURCES:
            raise UserError(f"unknown training proxy source {self.source!r}; choose from {', '.join(SOURCES)}")
        if self.source in IPC_SOURCES and (self.ipc is None or self.ipc < 1):
            raise UserError(f"--ipc must be at least 1, got {self.ipc}")
        for name, flag in (("steps", "--steps"), ("batch_size", "--proxy-batch-size"),
                           ("eval_batch_size", "eval batch size")):
            if getattr(self, name) < 1:
                raise UserError(f"{flag} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UserError(f"--proxy-lr must be positive, got {self.lr}")
        if self.augment not in AUGMENTATIONS:
            raise UserError(f"--augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        for name, allowed in (("precision", PRECISIONS), ("memory_format", MEMORY_FORMATS)):
            if getattr(self, name) not in allowed:
                raise UserError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        points = tuple(self.checkpoints)
        if not points or list(points) != sorted(set(points)) or not 0 < points[0] or points[-1] != 1:
            raise UserError(f"--checkpoints must be increasing fractions in (0, 1] ending at 1, got {points}")

    def checkpoint_steps(self) -> list[int]:
        """The distinct steps (1..steps) after which the validation split is scored."""
        return sorted({max(1, round(f * self.steps)) for f in self.checkpoints})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _fingerprint(indices: torch.Tensor) -> str:
    return hashlib.sha256(indices.detach().cpu().long().numpy().tobytes()).hexdigest()[:16]


def _reset_peak_memory(device: torch.device) -> bool:
    """Start a run's peak-memory measurement; False where only the process-lifetime peak exists."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:  # Linux: "5" resets the process's peak resident size (VmHWM, and getrusage's maxrss) to now
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_memory_mb(device: torch.device, reset: bool) -> tuple[float, str]:
    """(MiB, what it measures) since `_reset_peak_memory`: on CUDA the peak allocated by this run;
    on a Linux CPU the process's peak resident size during this run (its data and libraries
    included); elsewhere the process-lifetime peak, which never falls."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    if reset:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10, "run_peak_rss"
        except OSError:
            pass
    try:
        import resource  # POSIX only
    except ImportError:
        return float("nan"), "unavailable"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process_max_rss"


class TrainingProxy(Proxy):
    needs_data = True
    uses_context_batch = False  # --proxy-batch-size is in its settings
    costly = True

    def __init__(self, config: TrainingProxyConfig, rule: str = score_rules.DEFAULT_RULE) -> None:
        config.validate()
        self.name = config.source
        self.rule = score_rules.check_rule(rule)
        self._generator = None
        self._generator_meta: dict = {}
        self._synthetic: SyntheticSet | None = None
        source = config.source
        if source in GENERATOR_SOURCES:
            if not config.generator:
                raise UserError(f"--proxy {source} needs --generator RUN (a `d2m-nas distill` run directory or a "
                                "generator checkpoint)")
            stage = GENERATOR_SOURCES[source]
            path = resolve_generator_path(Path(config.generator), stage)
            self._generator, self._generator_meta = load_generator(path, stage)
            found = self._generator_meta.get("stage", stage)
            if found != stage:  # a checkpoint file given directly must be the stage this proxy names
                raise UserError(f"--proxy {source} needs the {stage} generator, but {path} is the {found} one; pass "
                                f"the distill run directory or its {STAGES[stage]}")
            config = replace(config, generator=str(path.resolve()), generator_sha256=file_sha256(path))
        else:
            config = replace(config, generator=None, generator_sha256=None)
        if source == "dm":
            if not config.dm_set:
                raise UserError("--proxy dm needs --dm-set FILE (a synthetic set, e.g. synthetic.pt of "
                                "`d2m-nas distill --method dm`)")
            path = Path(config.dm_set)
            path = path / "synthetic.pt" if path.is_dir() else path
            self._synthetic = SyntheticSet.load(path)
            config = replace(config, dm_set=str(path.resolve()), dm_set_sha256=file_sha256(path))
        else:
            config = replace(config, dm_set=None, dm_set_sha256=None)
        if source not in IPC_SOURCES:
            config = replace(config, ipc=None)  # streams and files: --ipc does not change the score
        config = replace(config, checkpoints=tuple(float(f) for f in config.checkpoints))
        self.settings = config
        self._sources: dict[tuple, ImageSource] = {}  # (data key, seed) -> fixed set or stream
        self._validation: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # data key -> (images, labels)

    @property
    def registered_name(self) -> str:
        return self.settings.source

    @property
    def label(self) -> str:
        return f"{self.name}@{self.rule}"

    def config(self) -> dict:
        """The settings that determine the recorded trace (the score cache's key). The eval batch
        size and the score rule are left out: neither changes what is recorded. Files count by their
        content (sha256), not their path, so a moved run directory or another machine hits the cache."""
        settings = {k: v for k, v in asdict(self.settings).items() if k != "eval_batch_size"}
        for name, default in UNKEYED_DEFAULTS.items():
            if settings[name] == default:
                del settings[name]
        for path, digest in (("generator", "generator_sha256"), ("dm_set", "dm_set_sha256")):
            if settings[digest] is not None:
                settings[path] = None
        return settings

    def rescored(self, result: ProxyScore) -> ProxyScore:
        """`result` (perhaps recorded under another rule) scored by this proxy's rule."""
        return replace(result, score=score_rules.final_rules(result.extra["trace"])[self.rule])

    # ------------------------------------------------------------------ checks against the data

    def check(self, dataset: ImageDataset, train_indices: torch.Tensor | None) -> None:
        """One-line UserError when this proxy cannot train on `dataset` (wrong generator or DM set,
        an IPC larger than the training part of the split holds)."""
        source = self.settings.source
        if train_indices is None or len(train_indices) >= len(dataset.y_train):
            raise UserError(f"the {source} proxy scores on the validation split, but it is empty; set "
                            "--val-per-class to at least 1")
        if self._generator is not None:
            cfg, meta = self._generator.config, self._generator_meta
            have = (cfg.image_size, cfg.num_classes, cfg.channels)
            want = (dataset.image_size, dataset.num_classes, dataset.channels)
            if have != want or meta.get("dataset") != dataset.name:
                raise UserError(f"{self.settings.generator} is a generator for {meta.get('dataset')!r} (size, classes, "
                                f"channels {have}), not for {dataset.name!r} {want}; pass one distilled from "
                                "this dataset")
        if self._synthetic is not None:
            from d2m_nas.evaluation import check_matches
            check_matches(self._synthetic, dataset)
        if source == "random-subset":
            labels = dataset.y_train.cpu()
            pool = labels[train_indices.cpu()]
            fewest = int(torch.bincount(pool, minlength=dataset.num_classes).min())
            if self.settings.ipc > fewest:
                raise UserError(f"--ipc {self.settings.ipc} exceeds the {fewest} training images per class of "
                                f"{dataset.name} left after the validation split; lower --ipc or --val-per-class")

    # ------------------------------------------------------------------ data (built once, reused)

    def _data_key(self, context: ProxyContext) -> tuple:
        if context.dataset is None or context.val_indices is None:
            raise ValueError(f"the {self.name} proxy needs a context with a dataset and val_indices (the "
                             "validation split it scores on)")
        train = context.train_indices
        return (id(context.dataset), str(context.device), _fingerprint(context.val_indices),
                None if train is None else _fingerprint(train))

    def _train_pool(self, context: ProxyContext) -> torch.Tensor:
        """The dataset indices real sources may draw from: the training part, minus validation."""
        dataset, val = context.dataset, context.val_indices.cpu()
        pool = context.train_indices.cpu() if context.train_indices is not None else torch.arange(len(dataset.y_train))
        if bool(torch.isin(pool, val).any()):
            raise ValueError("context.train_indices and context.val_indices overlap; a proxy would train on the "
                             "images it is scored on")
        return pool

    def validation_data(self, context: ProxyContext) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised validation images and labels on the device (from the training arrays)."""
        key = self._data_key(context)
        if key not in self._validation:
            self._train_pool(context)  # refuses overlapping splits before anything trains
            dataset = context.dataset
            gather = context.val_indices.to(dataset.device)
            self._validation[key] = (dataset.normalize(dataset.x_train[gather].to(context.device)),
                                     dataset.y_train[gather].to(context.device))
        return self._validation[key]

    def image_source(self, context: ProxyContext) -> ImageSource:
        """The training images for `context.seed`, built on first use and reused for every architecture.
        Fixed draws and the generator stream depend on the seed; the real stream and files are shared
        (the seed orders their batches)."""
        key = (*self._data_key(context), context.seed if self.settings.source in SEEDED_SOURCES else None)
        if key not in self._sources:
            self._sources[key] = self._make_source(context)
        return self._sources[key]

    def live_stream(self, device: torch.device) -> GeneratorStream:
        """The generator stream generating every batch as it trains (what d2m-stream replays)."""
        meta = self._generator_meta
        return GeneratorStream(self._generator, meta["mean"], meta["std"], device)

    def _make_source(self, context: ProxyContext) -> ImageSource:
        cfg, dataset, device, seed = self.settings, context.dataset, context.device, context.seed
        pool = self._train_pool(context)
        if cfg.source in ("d2m", "pretrained-generator"):
            meta = self._generator_meta
            return generated_set(self._generator, meta["mean"], meta["std"], cfg.ipc, seed, device)
        if cfg.source == "d2m-stream":
            live = self.live_stream(device)
            size = cfg.steps * cfg.batch_size * dataset.channels * dataset.image_size ** 2 * 4
            return replayed_stream(live, cfg.steps, cfg.batch_size, seed) if size <= REPLAY_LIMIT_BYTES else live
        if cfg.source == "random-subset":
            return real_subset(dataset, pool, cfg.ipc, seed, device)
        if cfg.source == "real-stream":
            return RealStream(dataset, pool, device)
        return synthetic_file_set(self._synthetic, device)

    # ------------------------------------------------------------------ scoring

    def score(self, arch: str, context: ProxyContext, on_checkpoint: CheckpointCallback | None = None) -> ProxyScore:
        """Train `arch` and score it; `on_checkpoint` may stop the run at a checkpoint (raises
        `Stopped` carrying the partial record and its cost)."""
        device = context.device
        peak_reset = _reset_peak_memory(device)
        started = time.perf_counter()
        with Timer(device) as data_time:
            source = self.image_source(context)
            val_images, val_labels = self.validation_data(context)
        model = context.build(arch)
        events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if device.type == "cuda" else None
        if events:
            events[0].record()
        trace, batch_size, stopped = self.train(model, source, context.seed, (val_images, val_labels), on_checkpoint)
        if events:
            events[1].record()
            events[1].synchronize()
            device_seconds = events[0].elapsed_time(events[1]) / 1000
        else:  # on the CPU the device is the host: its time is the synchronised train + eval wall-clock
            device_seconds = trace["train_seconds"] + trace["eval_seconds"]
        peak, kind = _peak_memory_mb(device, peak_reset)
        last = trace["checkpoints"][-1]
        steps = last["step"]
        rules = score_rules.final_rules(trace)
        result = ProxyScore(rules[self.rule], time.perf_counter() - started, {
            "steps": steps, "batch_size": batch_size, "train_images": source.distinct_images,
            "data_seconds": data_time.seconds, "train_seconds": trace["train_seconds"],
            "eval_seconds": trace["eval_seconds"], "device_seconds": device_seconds, "peak_memory_mb": peak,
            "peak_memory_kind": kind, "val_loss": last["val_loss"], "final_train_loss": -rules["tse_e"],
            "images_per_second": steps * batch_size / max(trace["train_seconds"], 1e-12),
            "scores": rules, "trace": trace})
        if stopped:
            raise Stopped(result)
        return result

    def train(self, model: nn.Module, source: ImageSource, seed: int,
              validation: tuple[torch.Tensor, torch.Tensor] | None = None,
              on_checkpoint: CheckpointCallback | None = None) -> tuple[dict, int, bool]:
        """SGD (Nesterov, cosine to 0) for `steps` steps, scoring `validation` at the checkpoints.

        Returns (trace, batch size, stopped early). The trace holds every step's training loss
        and, per checkpoint, the validation accuracy and loss with the seconds spent so far. Losses
        stay on the device between checkpoints, the only host synchronisations."""
        cfg = self.settings
        device = next(model.parameters()).device
        model = in_memory_format(model, cfg.memory_format)
        # The batch order and augmentation draw from their own stream, so they do not depend on how
        # the fixed set was drawn with the same seed.
        rng = torch.Generator().manual_seed(seed + 0x5EED)
        batch_size = source.batch_size(cfg.batch_size)
        batches = source.stream(batch_size, rng)
        augment = _augmentation(cfg.augment, rng)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                    weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps, eta_min=0.0)
        losses = torch.zeros(cfg.steps, device=device)
        checkpoints = set(cfg.checkpoint_steps())
        trace: dict = {"train_losses": [], "checkpoints": [], "train_seconds": 0.0, "eval_seconds": 0.0}
        synchronize(device)
        clock = time.perf_counter()
        model.train()
        for step in range(1, cfg.steps + 1):
            images, labels = next(batches)
            with autocast(device, cfg.precision):
                loss = F.cross_entropy(model(in_memory_format(augment(images), cfg.memory_format)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses[step - 1] = loss.detach()
            if step not in checkpoints:
                continue
            synchronize(device)
            trace["train_seconds"] += time.perf_counter() - clock
            with Timer(device) as eval_time:
                with autocast(device, cfg.precision):
                    accuracy, val_loss = (evaluate(model, *validation, cfg.eval_batch_size) if validation is not None
                                          else (float("nan"), float("nan")))
            model.train()
            trace["eval_seconds"] += eval_time.seconds
            trace["train_losses"] = losses[:step].tolist()
            point = {"step": step, "val_acc": accuracy, "val_loss": val_loss,
                     "train_seconds": trace["train_seconds"], "eval_seconds": eval_time.seconds}
            trace["checkpoints"].append(point)
            if on_checkpoint is not None and step < cfg.steps and on_checkpoint(
                    step, score_rules.checkpoint_rules(trace, point)):
                return trace, batch_size, True
            clock = time.perf_counter()
        return trace, batch_size, False


def _augmentation(kind: str, rng: torch.Generator):
    if kind == "none":
        return lambda x: x
    if kind == "dsa":
        dsa = DSA(DSAConfig())
        return lambda x: dsa(x, generator=rng)

    def flip(x: torch.Tensor) -> torch.Tensor:  # horizontal flip of a random half, as one tensor op
        mask = to_device(torch.rand(x.shape[0], generator=rng) < 0.5, x.device).view(-1, 1, 1, 1)
        return torch.where(mask, x.flip(3), x)
    return flip


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """(top-1 accuracy in percent, mean cross-entropy) in eval mode; one host sync at the end."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    loss = torch.zeros((), device=images.device)
    for start in range(0, len(labels), batch_size):
        logits = model(images[start:start + batch_size])
        target = labels[start:start + batch_size]
        loss += F.cross_entropy(logits.float(), target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    n = max(1, len(labels))
    return 100.0 * int(correct) / n, float(loss) / n


__all__ = ["AUGMENTATIONS", "DEFAULT_CHECKPOINTS", "GENERATOR_SOURCES", "IPC_SOURCES", "SOURCES", "Stopped",
           "TrainingProxy", "TrainingProxyConfig", "evaluate", "file_sha256"]
