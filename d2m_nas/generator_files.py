"""Generator files: where a distill run keeps its generators, and reading, writing and sampling them.

What `generate`, the training proxies and the plots need of a distilled generator, without the
distillation orchestrator (`d2m_nas.distill_runs`) and its trainers. A run directory holds
`generator_pretrained.pt` (the GAN before D2M) and `generator.pt` (after D2M); a command takes the
directory or either file.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from d2m_nas.data import ImageDataset
from d2m_nas.errors import UserError
from d2m_nas.provenance import record_read
from d2m_nas.synthetic import SyntheticSet
from distill.checkpoint import GENERATOR_FORMAT, generator_payload, load_model_state, load_payload, save_atomic
from distill.errors import CheckpointError
from distill.generator import Generator, GeneratorConfig, generate_per_class, to_normalized

PRETRAINED_FILE = "generator_pretrained.pt"
DISTILLED_FILE = "generator.pt"
STAGES = {"distilled": DISTILLED_FILE, "pretrained": PRETRAINED_FILE}


def save_generator(model: Generator, path: Path, metadata: dict) -> Path:
    return save_atomic(generator_payload(model.config.to_dict(), model.state_dict(), metadata), path)


def resolve_generator_path(path: Path, stage: str = "distilled") -> Path:
    """A generator checkpoint file, or a run directory holding one for `stage`."""
    if stage not in STAGES:
        raise UserError(f"unknown generator stage {stage!r}; choose from {', '.join(STAGES)}")
    path = Path(path)
    if path.is_dir():
        candidate = path / STAGES[stage]
        if not candidate.is_file():
            raise UserError(f"{path} holds no {STAGES[stage]} (the {stage} generator); "
                            "is it a finished `d2m-nas distill` run directory?")
        return candidate
    if not path.exists():
        raise UserError(f"generator checkpoint not found: {path}")
    return path


def load_generator(path: Path, stage: str = "distilled", device: torch.device | str = "cpu"
                   ) -> tuple[Generator, dict]:
    """(generator in eval mode, metadata) from a checkpoint file or run directory."""
    path = resolve_generator_path(path, stage)
    record_read(path)
    try:
        payload = load_payload(path, GENERATOR_FORMAT)
        try:
            config = GeneratorConfig.from_dict(payload["config"])
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path} holds an invalid generator config ({exc})") from None
        model = Generator(config)
        load_model_state(model, payload.get("state_dict", {}), path)
    except CheckpointError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    metadata = dict(payload.get("metadata", {}))
    missing = [k for k in ("dataset", "mean", "std") if k not in metadata]
    if missing:
        raise UserError(f"{path} lacks the metadata {', '.join(missing)}; it was not written by d2m-nas")
    return model.to(device).eval(), metadata


def check_generator_fits(metadata: dict, model: Generator, dataset: ImageDataset, path: Path) -> None:
    cfg = model.config
    have = (cfg.image_size, cfg.num_classes, cfg.channels)
    want = (dataset.image_size, dataset.num_classes, dataset.channels)
    if have != want or metadata.get("dataset") != dataset.name:
        raise UserError(f"{path} is a generator for {metadata.get('dataset')!r} (size, classes, channels {have}), "
                        f"not for {dataset.name!r} {want}; pass a generator trained on this dataset")


def synthesize_from_generator(run_dir: Path, ipc: int, seed: int, device: torch.device,
                              stage: str = "distilled") -> SyntheticSet:
    """`ipc` images per class from a run's generator ("distilled", or "pretrained": before D2M),
    normalised like the dataset; the same seed gives the same set."""
    if ipc < 1:
        raise UserError(f"--ipc must be at least 1, got {ipc}")
    path = resolve_generator_path(Path(run_dir), stage)
    model, meta = load_generator(path, stage, device)
    started = time.perf_counter()
    images, labels = generate_per_class(model, ipc, seed, device)
    cfg = model.config
    return SyntheticSet(to_normalized(images, meta["mean"], meta["std"]), labels, {
        "dataset": meta["dataset"], "image_size": cfg.image_size, "channels": cfg.channels,
        "num_classes": cfg.num_classes, "mean": list(meta["mean"]), "std": list(meta["std"]),
        "ipc": ipc, "method": "d2m" if stage == "distilled" else "gan-pretrained", "seed": seed,
        "generator": str(path), "stage": stage, "generation_seconds": time.perf_counter() - started,
    })
