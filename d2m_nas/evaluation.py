"""The dataset-distillation evaluation protocol: train a fresh ConvNet on a synthetic set, report
test accuracy, mean ± std over several runs. Cross-architecture evaluation swaps the ConvNet for
AlexNet, VGG-11, ResNet-18 (the DC code's CIFAR variants) or any timm model (`EvalConfig.model`).

The field's protocol (DC/DSA/DM/MTT code, docs/method.md §2), which `EvalConfig()` is at 32x32:
ConvNet-3 (width 128, instance norm, ReLU, avg-pool; depth 4 at 64x64, 5 at 128x128), SGD lr 0.01,
momentum 0.9, weight decay 5e-4, batch 256, DSA on every batch with per-image parameters (one op
group drawn per batch), 1000 epochs with lr x0.1 at half, accuracy on the test split, mean ± std
over runs (NumPy's population std, as the field reports it).

Two details differ from the reference `evaluate_synset`, deliberately and visibly: it runs
Epoch+1 epochs and decays after epoch Epoch//2+1; here exactly `epochs` epochs run and the decay
starts at epoch `epochs // 2` (0-based). Like the reference, the decay rebuilds the optimiser, so
momentum restarts.

Public API, stable (the D2M benchmarks reuse it):
    EvalConfig, field_protocol(image_size), protocol_differences(config, image_size),
    train_on_images(images, labels, num_classes, config, device, seed, progress=False) -> nn.Module,
    accuracy_on_test_split(model, dataset, device, batch_size) -> float (percent),
    evaluate_synthetic(synthetic, dataset, config, runs, device, seed, progress=True) -> EvalReport.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from d2m_nas.data import ImageDataset
from d2m_nas.devices import synchronize
from d2m_nas.errors import UserError
from d2m_nas.precision import MEMORY_FORMATS, PRECISIONS, autocast, in_memory_format
from d2m_nas.synthetic import SyntheticSet
from d2m_nas.torchvision_compat import ensure_torchvision_importable
from distill.dsa import DEFAULT_STRATEGY, DSA, DSAConfig
from distill.transfer import to_device
from search_spaces.cifar_nets import TIMM_PREFIX, canonical_eval_network, create_eval_network, describe_eval_network
from search_spaces.convnet import ConvNetSpec, default_depth_for

FIELD_MODEL = "convnet-d3-w128-relu-instancenorm-avgpool"


@dataclass(frozen=True)
class EvalConfig:
    """How to train the evaluation network. The defaults are the field's protocol at 32x32; the
    documented fields are `evaluate`'s options (`d2m_nas.commands.config_options`)."""

    model: str = field(default=FIELD_MODEL, metadata={"metavar": "SPEC", "help": (
        "evaluation network: a ConvNet spec, e.g. convnet-d3-w128-relu-instancenorm-avgpool (the protocol's: "
        "ConvNet-3 at 32x32, -4 at 64x64, -5 at 128x128); for cross-architecture evaluation alexnet, alexnet-bn, "
        "vgg11, vgg11-bn, resnet18, resnet18-bn (the DC code's CIFAR networks; without -bn: AlexNet no norm, "
        "VGG-11/ResNet-18 instance norm) or timm:NAME (any timm model, e.g. timm:resnet10t; needs timm)")})
    epochs: int = field(default=1000, metadata={"help": "training epochs", "minimum": 1})
    lr: float = field(default=0.01, metadata={"help": "SGD learning rate", "above": 0})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum", "minimum": 0})
    weight_decay: float = field(default=5e-4, metadata={"help": "weight decay", "minimum": 0})
    batch_size: int = field(default=256, metadata={"help": "training batch size", "minimum": 1})
    dsa: bool = field(default=True, metadata={"help": "train without DSA augmentation", "flag": "--no-dsa"})
    dsa_strategy: str = field(default=DEFAULT_STRATEGY, metadata={"help": "DSA op groups joined by '_'"})
    lr_decay_factor: float = 0.1  # applied once, at epoch `epochs // 2`
    test_batch_size: int = field(default=1000, metadata={  # speed and memory only, never the result
        "help": "test batch size; speed and memory only", "minimum": 1})
    precision: str = field(default="fp32", metadata={
        "help": "training and test arithmetic: fp32, or bf16 autocast (a protocol difference)", "choices": PRECISIONS})
    memory_format: str = field(default="contiguous", metadata={  # float summation order only
        "help": "tensor layout of the network and its batches", "choices": MEMORY_FORMATS})

    @property
    def lr_decay_epoch(self) -> int:
        return self.epochs // 2

    def model_name(self) -> str:
        """The evaluation network's canonical name (a ConvNet spec as `str(ConvNetSpec)`)."""
        if self.model.strip().lower().startswith(TIMM_PREFIX):
            ensure_torchvision_importable()  # timm imports torchvision
        try:
            return canonical_eval_network(self.model)
        except ValueError as exc:
            raise UserError(f"--model: {exc}") from None

    def spec(self) -> ConvNetSpec | None:
        """The ConvNet spec, or None when the model is another architecture."""
        name = self.model_name()
        return ConvNetSpec.parse(name) if name.startswith("convnet") else None

    def validate(self) -> None:
        """One-line UserError for values no training run can use."""
        self.model_name()
        for name in ("epochs", "batch_size", "test_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        for name, allowed in (("precision", PRECISIONS), ("memory_format", MEMORY_FORMATS)):
            if getattr(self, name) not in allowed:
                raise UserError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                                f"got {getattr(self, name)!r}")
        if self.dsa:
            try:
                DSAConfig(strategy=self.dsa_strategy).ops()
            except ValueError as exc:
                raise UserError(f"--dsa-strategy: {exc}") from None


# Fields that change the result; the test batch size does not.
PROTOCOL_FIELDS = ("model", "epochs", "lr", "momentum", "weight_decay", "batch_size", "dsa", "dsa_strategy",
                   "lr_decay_factor", "precision")


def field_protocol(image_size: int = 32) -> EvalConfig:
    """The field's protocol for images of this size (the ConvNet's depth follows the size)."""
    return EvalConfig(model=str(ConvNetSpec(depth=default_depth_for(image_size))))


def protocol_differences(config: EvalConfig, image_size: int = 32) -> dict[str, dict]:
    """{field: {"used": ..., "protocol": ...}} for every result-changing field that differs."""
    reference = field_protocol(image_size)
    diffs = {}
    for name in PROTOCOL_FIELDS:
        if name == "dsa_strategy" and not config.dsa:
            continue  # no augmentation at all is already reported under "dsa"
        used, wanted = getattr(config, name), getattr(reference, name)
        if name == "model":
            used = config.model_name()
        if used != wanted:
            diffs[name] = {"used": used, "protocol": wanted}
    return diffs


def _build_model(config: EvalConfig, channels: int, num_classes: int, image_size: int, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        try:
            return create_eval_network(config.model_name(), channels, num_classes, image_size)
        except ValueError as exc:
            raise UserError(f"--model: {exc}") from None


def train_on_images(images: torch.Tensor, labels: torch.Tensor, num_classes: int, config: EvalConfig,
                    device: torch.device | str, seed: int, progress: bool = False, desc: str = "train") -> nn.Module:
    """Train a fresh network of `config.model` on normalised float images (N, C, H, W) and integer
    labels, and return it (in eval mode, on `device`).

    The whole set stays on the device; each epoch is one randperm, each step an index, one DSA
    draw with per-image parameters, forward, backward, SGD step: no DataLoader, no host syncs.
    `seed` fixes the initialisation, the batch order and the augmentation.
    """
    config.validate()
    if images.dim() != 4 or labels.dim() != 1 or len(images) != len(labels) or len(images) == 0:
        raise UserError(f"need images (N, C, H, W) and labels (N,) with N > 0, got {tuple(images.shape)} "
                        f"and {tuple(labels.shape)}")
    device = torch.device(device)
    x_all = images.detach().to(device, torch.float32)
    y_all = labels.detach().to(device, torch.long)
    model = in_memory_format(_build_model(config, x_all.shape[1], num_classes, x_all.shape[-1], seed).to(device),
                             config.memory_format)
    model.train()
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on every device
    augment = DSA(DSAConfig(strategy=config.dsa_strategy)) if config.dsa else None

    def sgd(lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)

    optimizer = sgd(config.lr)
    n = len(x_all)
    bar = tqdm(range(config.epochs), desc=desc, unit="epoch", leave=False, disable=not progress,
               dynamic_ncols=True)
    loss = None
    for epoch in bar:
        if epoch == config.lr_decay_epoch and epoch > 0:
            optimizer = sgd(config.lr * config.lr_decay_factor)
        order = to_device(torch.randperm(n, generator=generator), device)
        for start in range(0, n, config.batch_size):
            index = order[start:start + config.batch_size]
            x, y = x_all[index], y_all[index]
            if augment is not None:
                x = augment(x, generator=generator)
            with autocast(device, config.precision):
                loss = F.cross_entropy(model(in_memory_format(x, config.memory_format)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if progress and (epoch % 25 == 0 or epoch == config.epochs - 1):
            bar.set_postfix(loss=f"{loss.item():.3f}")  # the only host sync, and only for the display
    bar.close()
    model.eval()
    return model


@torch.inference_mode()
def accuracy_on_test_split(model: nn.Module, dataset: ImageDataset, device: torch.device | str,
                           batch_size: int = 1000, precision: str = "fp32", memory_format: str = "contiguous"
                           ) -> float:
    """Top-1 accuracy (percent) on the dataset's test split, normalising uint8 batches on the fly."""
    device = torch.device(device)
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, len(dataset.y_test), batch_size):
        x = dataset.normalize(dataset.x_test[start:start + batch_size].to(device))
        y = dataset.y_test[start:start + batch_size].to(device)
        with autocast(device, precision):
            correct += (model(in_memory_format(x, memory_format)).argmax(1) == y).sum()
    return 100.0 * int(correct) / max(1, len(dataset.y_test))


@dataclass
class EvalReport:
    accuracies: list[float]  # test accuracy (%) of each run
    mean: float
    std: float  # population std over runs (NumPy's default), as the field reports
    seconds: float  # wall-clock of the whole evaluation
    train_seconds: list[float]
    test_seconds: list[float]
    config: dict
    protocol: str  # "full" or "reduced"
    differences: dict  # field -> {"used", "protocol"}; empty when full
    dataset: str
    split: str
    num_images: int
    ipc: int | None
    method: str | None
    seeds: list[int]
    device: str
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)

    def describe_setup(self) -> str:
        """`ConvNet-3, 300 epochs [reduced from 1000], DSA` (what differs from the protocol in brackets)."""
        cfg, diffs = self.config, self.differences
        model = _describe_model(cfg["model"])
        if "model" in diffs:
            model += f" [protocol {diffs['model']['protocol']}]"
        epochs = f"{cfg['epochs']} epochs"
        if "epochs" in diffs:
            wanted = diffs["epochs"]["protocol"]
            epochs += f" [reduced from {wanted}]" if cfg["epochs"] < wanted else f" [protocol {wanted}]"
        parts = [model, epochs]
        parts.append("DSA" if cfg["dsa"] else "no DSA [protocol: DSA]")
        for name in ("lr", "momentum", "weight_decay", "batch_size", "dsa_strategy", "lr_decay_factor"):
            if name in diffs:
                parts.append(f"{name.replace('_', ' ')} {diffs[name]['used']} [protocol {diffs[name]['protocol']}]")
        return ", ".join(parts)

    def summary(self) -> str:
        runs = len(self.accuracies)
        return (f"test accuracy {self.mean:.1f} ± {self.std:.1f} % over {runs} run{'s' if runs != 1 else ''} "
                f"({self.describe_setup()}) on {self.dataset} {self.split}")


def _describe_model(name: str) -> str:
    """'ConvNet-3' for the protocol's ConvNets, the spec for other ConvNets, a title for the rest."""
    if not name.strip().lower().startswith("convnet"):
        return describe_eval_network(name)
    spec = ConvNetSpec.parse(name)
    return f"ConvNet-{spec.depth}" if str(spec) == str(ConvNetSpec(depth=spec.depth)) else str(spec)


def check_matches(synthetic: SyntheticSet, dataset: ImageDataset) -> None:
    """UserError unless the synthetic set was made for this dataset (name, shape, classes, normalisation)."""
    meta = synthetic.metadata
    wrong = []
    for key, have in (("dataset", dataset.name), ("image_size", dataset.image_size),
                      ("channels", dataset.channels), ("num_classes", dataset.num_classes)):
        if meta.get(key) != have:
            wrong.append(f"{key} {meta.get(key)!r} vs {have!r}")
    for key, have in (("mean", dataset.mean), ("std", dataset.std)):
        given = meta.get(key)
        if given is None or len(given) != len(have) or not all(math.isclose(a, b, abs_tol=1e-6)
                                                               for a, b in zip(given, have)):
            wrong.append(f"{key} {given!r} vs {list(have)!r}")
    if wrong:
        raise UserError(f"the synthetic set does not match dataset {dataset.name!r} "
                        f"(synthetic vs dataset: {'; '.join(wrong)}); evaluate it on the dataset it was made from")


def evaluate_synthetic(synthetic: SyntheticSet, dataset: ImageDataset, config: EvalConfig | None = None,
                       runs: int = 3, device: torch.device | str = "cpu", seed: int = 0,
                       progress: bool = True) -> EvalReport:
    """Train `runs` fresh networks (seeds seed, seed+1, ...) on the synthetic set and report their
    test accuracy on the dataset's test split. `config` defaults to the field's protocol for the
    dataset's image size; the report says whether the protocol was full or reduced and how."""
    config = config or field_protocol(dataset.image_size)
    config.validate()
    if runs < 1:
        raise UserError(f"--runs must be at least 1, got {runs}")
    check_matches(synthetic, dataset)
    device = torch.device(device)
    images, labels = synthetic.images.to(device), synthetic.labels.to(device)
    accuracies, train_seconds, test_seconds, seeds = [], [], [], []
    started = time.perf_counter()
    bar = tqdm(range(runs), desc="runs", unit="run", disable=not progress, dynamic_ncols=True)
    try:
        for run in bar:
            run_seed = seed + run
            t0 = time.perf_counter()
            model = train_on_images(images, labels, dataset.num_classes, config, device, run_seed,
                                    progress=progress, desc=f"run {run + 1}/{runs}")
            synchronize(device)
            t1 = time.perf_counter()
            accuracies.append(accuracy_on_test_split(model, dataset, device, config.test_batch_size, config.precision,
                                                     config.memory_format))
            t2 = time.perf_counter()
            train_seconds.append(t1 - t0)
            test_seconds.append(t2 - t1)
            seeds.append(run_seed)
            bar.set_postfix(acc=f"{accuracies[-1]:.1f}%")
    finally:
        bar.close()
    diffs = protocol_differences(config, dataset.image_size)
    meta = synthetic.metadata
    return EvalReport(
        accuracies=accuracies, mean=float(np.mean(accuracies)), std=float(np.std(accuracies)),
        seconds=time.perf_counter() - started, train_seconds=train_seconds, test_seconds=test_seconds,
        config={f.name: getattr(config, f.name) for f in fields(config)} | {"lr_decay_epoch": config.lr_decay_epoch},
        protocol="reduced" if diffs else "full", differences=diffs, dataset=dataset.name, split="test",
        num_images=len(synthetic), ipc=meta.get("ipc"), method=meta.get("method"), seeds=seeds,
        device=str(device), threads=torch.get_num_threads(),
    )
