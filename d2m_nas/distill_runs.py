"""Running distillation from the application: presets, run directories, resumption, progress.

A D2M run directory holds
    pretrain_state.pt        training state of the GAN pre-training (resumable)
    pretrain_losses.csv      its losses, one row per step
    generator_pretrained.pt  the EMA generator after pre-training (or the one given by --generator)
    d2m_state.pt             training state of D2M (resumable)
    losses.csv               D2M loss terms, one row per iteration
    generator.pt             the distilled generator
    summary.json             settings, steps and seconds of each phase
A DM run directory holds dm_state.pt, losses.csv, synthetic.pt and summary.json.

Re-running with the same run directory continues from the last checkpoint; a finished phase is
not repeated. Checkpoints are written atomically every `checkpoint_every` steps and at the end.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from d2m_nas.data import ImageDataset, split_train_val
from d2m_nas.errors import UserError
from d2m_nas.generator_files import DISTILLED_FILE, PRETRAINED_FILE, check_generator_fits, load_generator, save_generator
from d2m_nas.synthetic import SyntheticSet
from distill.atomic import atomic_write_text
from distill.checkpoint import (STATE_FORMAT, VERSION, check_same_settings, config_defaults, load_payload, save_atomic,
                               with_defaults)
from distill.d2m import D2MConfig, D2MTrainer
from distill.dm import DMConfig, DMTrainer
from distill.errors import CheckpointError, DivergenceError
from distill.gan import GANPretrainer, PretrainConfig
from distill.generator import GeneratorConfig
from distill.losses import DM_MATCHING, MatchingConfig



@dataclass(frozen=True)
class DistillSettings:
    """Everything a distillation run depends on (a preset, then any command-line overrides)."""

    generator_width: int = 64
    z_dim: int = 128
    embedding_dim: int = 128
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    d2m: D2MConfig = field(default_factory=D2MConfig)
    dm: DMConfig = field(default_factory=DMConfig)
    checkpoint_every: int = 200

    def to_dict(self) -> dict:
        return asdict(self)


# D2M's matching weights: the three terms differ by orders of magnitude under a random ConvNet-3
# (CIFAR-10, real against the cpu preset's pre-trained generator, summed over classes, mean of 5
# nets: attention 3.7, embedding 611, prediction 0.045; benchmarks/matching_loss_scale.py), so
# the weights bring each to a comparable size; Adam then sets the step size.
D2M_MATCHING = MatchingConfig(power=4.0, attention_weight=100.0, embedding_weight=1.0, lambda_pred=1000.0, tau=4.0)

# a real CIFAR-10 run within about 45 minutes on 2 CPU cores shared with other work (measured:
# ~1.6 s per pre-training step and ~2.5 s per D2M iteration on one free core, 3-4x that when
# four jobs share two cores); lengthen it by resuming with --pretrain-steps / --iterations
_CPU = DistillSettings(
    generator_width=16, z_dim=128, embedding_dim=128,
    pretrain=PretrainConfig(steps=400, batch_size=64, d_steps=1, ema_start=100, ema_decay=0.99,
                            discriminator_width=16),
    d2m=D2MConfig(iterations=100, real_per_class=32, syn_per_class=16, lr=1e-3, matching=D2M_MATCHING),
    dm=DMConfig(iterations=200, real_per_class=64),
    checkpoint_every=50)

PRESETS: dict[str, DistillSettings] = {
    # seconds on a CPU: for tests and demos (use with the `fake` dataset)
    "tiny": DistillSettings(
        generator_width=4, z_dim=16, embedding_dim=8,
        pretrain=PretrainConfig(steps=4, batch_size=20, d_steps=1, ema_start=2, discriminator_width=4),
        d2m=D2MConfig(iterations=3, real_per_class=8, syn_per_class=4, lr=1e-3, matching=D2M_MATCHING,
                      convnet="convnet-d3-w16-relu-instancenorm-avgpool"),
        dm=DMConfig(iterations=3, real_per_class=8, convnet="convnet-d3-w16-relu-instancenorm-avgpool"),
        checkpoint_every=2),
    "cpu": _CPU,
    # the cpu preset's generator with a pool of 50 latents a class started from inverted real images,
    # the weights tuned to them, then D2M on the latents alone, matching each class's first 10 as a set
    # too: IPC 10 and IPC 50 from one generator above random real images (benchmarks/README.md,
    # sessions 12-15). Measured from nothing on 2 idle CPU cores at 2 threads: 25 min (pre-training 7,
    # inversion 7, tuning 5, 100 iterations 6.5).
    "cpu-pool": replace(_CPU, d2m=replace(_CPU.d2m, syn_per_class=50, latent_pool=50, latent_init="real",
                                          tuning_steps=1000, tuning_batch=50, tuning_lr=1e-3, learn="latents",
                                          lr=0.01, match_first=10), checkpoint_every=10),
    # GPU scale: BigGAN's CIFAR widths, DM's iteration count and batch sizes
    "paper": DistillSettings(
        generator_width=64, z_dim=128, embedding_dim=128,
        pretrain=PretrainConfig(steps=40000, batch_size=64, d_steps=4, ema_start=1000, ema_decay=0.9999,
                                discriminator_width=64),
        d2m=D2MConfig(iterations=5000, real_per_class=64, syn_per_class=32, lr=1e-4, matching=D2M_MATCHING),
        dm=DMConfig(iterations=20000, real_per_class=256),
        checkpoint_every=500),
}


def preset(name: str) -> DistillSettings:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def with_overrides(settings: DistillSettings, *, pretrain: dict | None = None, d2m: dict | None = None,
                   matching: dict | None = None, dm: dict | None = None, dm_matching: dict | None = None,
                   **top) -> DistillSettings:
    """Replace fields (None values are ignored), with one-line errors for impossible values.
    `matching` / `dm_matching` replace single fields of D2M's / DM's MatchingConfig."""
    def clean(values):
        return {k: v for k, v in (values or {}).items() if v is not None}

    def with_matching(config, values):
        return replace(config, matching=replace(config.matching, **clean(values))) if clean(values) else config
    try:
        d2m_cfg = with_matching(replace(settings.d2m, **clean(d2m)), matching)
        return replace(settings, pretrain=replace(settings.pretrain, **clean(pretrain)), d2m=d2m_cfg,
                       dm=with_matching(replace(settings.dm, **clean(dm)), dm_matching), **clean(top))
    except ValueError as exc:
        raise UserError(str(exc)) from None


# ------------------------------------------------------------------ checkpoints and generators

def _user_error(exc: Exception) -> UserError:
    return UserError(str(exc).splitlines()[0])


def generator_config_for(settings: DistillSettings, dataset: ImageDataset) -> GeneratorConfig:
    try:
        return GeneratorConfig(image_size=dataset.image_size, num_classes=dataset.num_classes,
                               channels=dataset.channels, z_dim=settings.z_dim, width=settings.generator_width,
                               embedding_dim=settings.embedding_dim)
    except ValueError as exc:
        raise UserError(f"dataset {dataset.name!r}: {exc}") from None


# ------------------------------------------------------------------ the resumable training loop

# What a run may change when it resumes: the phase's length (train longer, or stop earlier) and
# how classes are batched (the same loss either way).
RESUMABLE_CHANGES = ("steps", "iterations", "batch_classes")


# The config behind each section of a phase's settings: a setting a run saved before it existed
# is compared as its default, so a run interrupted under an older version still resumes.
SETTING_SECTIONS = {"generator": GeneratorConfig, "pretrain": PretrainConfig, "d2m": D2MConfig, "dm": DMConfig}


def _without(values: dict, *keys: str) -> dict:
    return {k: v for k, v in values.items() if k not in keys}


def _read_state(path: Path, settings: dict) -> dict | None:
    if not path.exists():
        return None
    try:
        payload = load_payload(path, STATE_FORMAT)
        saved = payload.get("settings", {})
        saved = with_defaults(saved, {k: config_defaults(SETTING_SECTIONS[k]) for k in saved if k in SETTING_SECTIONS})
        saved = {k: (_without(v, *RESUMABLE_CHANGES) if isinstance(v, dict) else v) for k, v in saved.items()}
        check_same_settings(saved, settings, path)
    except CheckpointError as exc:
        raise _user_error(exc) from None
    return payload


def _truncate_csv(path: Path, last_step: int) -> None:
    """Drop rows logged after the checkpoint being resumed (they will be recomputed)."""
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_step]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)


SYNC_EVERY = 10  # steps between host synchronisations: loss logging and finiteness checks


def train_phase(name: str, trainer, total: int, state_path: Path, csv_path: Path, settings: dict,
                checkpoint_every: int, progress: bool = True, stop_after: int | None = None) -> dict:
    """Run `trainer.step()` until `total` steps, resuming from `state_path` when it exists. The
    step's losses (floats or device scalars) are written to `csv_path` and checked for divergence
    every SYNC_EVERY steps and before every checkpoint, so no checkpoint holds a diverged state.

    `stop_after` ends this call after that many steps of this phase *without* a final
    checkpoint, as a kill would (tests use it). Returns {"step", "elapsed_s", "finished"}.
    """
    payload = _read_state(state_path, settings)
    elapsed = 0.0
    if payload is not None:
        try:
            trainer.load_state_dict(payload["state"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"{state_path} does not fit this run ({str(exc).splitlines()[0][:120]}); "
                            "delete it or use a new output directory") from None
        elapsed = float(payload.get("elapsed_s", 0.0))
        _truncate_csv(csv_path, trainer.step_count)
    elif csv_path.exists():
        csv_path.unlink()

    def checkpoint(state: dict | None = None) -> None:
        save_atomic({"format": STATE_FORMAT, "version": VERSION, "phase": name, "settings": settings,
                     "state": trainer.state_dict() if state is None else state, "elapsed_s": elapsed}, state_path)

    bar = tqdm(total=total, initial=trainer.step_count, desc=name, unit="step", disable=not progress,
               dynamic_ncols=True)
    done_now = 0
    writer_file = csv_path.open("a", newline="")
    writer = None
    pending: list[dict] = []  # rows whose losses may still be on the device

    def diverged(step: int, why: str) -> UserError:
        kept = f"the last good checkpoint {state_path} is kept" if state_path.exists() else "no checkpoint yet"
        return UserError(f"{name} diverged at step {step} ({why}); {kept}; "
                         "lower the learning rate and start again in a new --out")

    try:
        clock = time.perf_counter()
        while trainer.step_count < total:
            if stop_after is not None and done_now >= stop_after:
                return {"step": trainer.step_count, "elapsed_s": elapsed, "finished": False}
            try:
                losses = trainer.step()
            except DivergenceError as exc:
                raise diverged(trainer.step_count + 1, str(exc)) from None
            pending.append({"step": trainer.step_count, **losses})
            due = trainer.step_count % checkpoint_every == 0 or trainer.step_count == total
            flushing = due or len(pending) >= SYNC_EVERY
            if flushing:  # the losses of SYNC_EVERY steps reach the host in one synchronisation
                keys = list(losses)
                cells = [row[k] for row in pending for k in keys]
                flat = (torch.stack([v.detach().double() for v in cells]).tolist()
                        if all(isinstance(v, torch.Tensor) for v in cells) else [float(v) for v in cells])
                values = [flat[i * len(keys):(i + 1) * len(keys)] for i in range(len(pending))]
            # a step's time runs from the end of the one before, so the rows add up to the wall
            # time; on a GPU the step that synchronises carries the work queued before it
            seconds, clock = time.perf_counter() - clock, time.perf_counter()
            pending[-1]["seconds"] = seconds
            elapsed += seconds
            done_now += 1
            bar.update(1)
            if not flushing:
                continue
            for row, row_values in zip(pending, values):
                row.update(zip(keys, row_values))
                if not all(map(math.isfinite, row_values)):
                    raise diverged(row["step"], ", ".join(f"{k}={v:.4g}" for k, v in zip(keys, row_values)))
            if not trainer.finite():
                raise diverged(trainer.step_count, "a weight became NaN/inf")
            if writer is None:
                writer = csv.DictWriter(writer_file, fieldnames=list(pending[0]))
                if csv_path.stat().st_size == 0:
                    writer.writeheader()
            writer.writerows(pending)
            writer_file.flush()
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(zip(keys, values[-1]))[:3]})
            pending.clear()
            if due:
                checkpoint()
        if payload is None and not state_path.exists():  # total == 0: record that the phase ran
            clock = time.perf_counter()
            state = trainer.state_dict()  # makes a trainer's one-off start (D2M's inverted pool): timed
            elapsed += time.perf_counter() - clock
            checkpoint(state)
    finally:
        writer_file.close()
        bar.close()
    return {"step": trainer.step_count, "elapsed_s": elapsed, "finished": True}


# ------------------------------------------------------------------ the pipelines

def distillation_images(dataset: ImageDataset, val_per_class: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images distillation may see: all of them, or the training part of the
    seeded train/validation split so a proxy's validation images stay unseen."""
    if val_per_class <= 0:
        return dataset.x_train, dataset.y_train
    train_idx, _ = split_train_val(dataset.y_train, val_per_class, seed=split_seed)
    index = train_idx.to(dataset.x_train.device)
    return dataset.x_train[index], dataset.y_train[index]


def _dataset_metadata(dataset: ImageDataset, val_per_class: int, split_seed: int) -> dict:
    return {"dataset": dataset.name, "mean": list(dataset.mean), "std": list(dataset.std),
            "class_names": list(dataset.class_names), "val_per_class": val_per_class, "split_seed": split_seed}


def _write_summary(out: Path, update: dict) -> None:
    path = out / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    summary.update(update)
    atomic_write_text(path, json.dumps(summary, indent=2, default=str) + "\n")


def run_d2m(dataset: ImageDataset, settings: DistillSettings, out: Path, device: torch.device,
            generator_path: Path | None = None, val_per_class: int = 0, split_seed: int = 0,
            progress: bool = True, stop_after: int | None = None) -> dict:
    """Pre-train (unless `generator_path`), then D2M. Resumes from `out`. Returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = distillation_images(dataset, val_per_class, split_seed)
    meta = _dataset_metadata(dataset, val_per_class, split_seed)
    pretrained = out / PRETRAINED_FILE
    data_settings = {"dataset": dataset.name, "num_train": len(labels), "val_per_class": val_per_class,
                     "split_seed": split_seed}

    if generator_path is not None:
        model, given_meta = load_generator(Path(generator_path), "distilled" if Path(generator_path).is_file()
                                           else _stage_in(Path(generator_path)), device)
        check_generator_fits(given_meta, model, dataset, Path(generator_path))
        if not pretrained.exists():
            save_generator(model, pretrained, given_meta | {"stage": "pretrained", "source": str(generator_path)})
        _write_summary(out, {"pretrain": {"source": str(generator_path)}})
    elif not pretrained.exists():
        g_config = generator_config_for(settings, dataset)
        pre_settings = {"generator": g_config.to_dict(),
                        "pretrain": _without(settings.pretrain.to_dict(), *RESUMABLE_CHANGES),
                        **data_settings}
        trainer = GANPretrainer(g_config, settings.pretrain, images, labels, device)
        result = train_phase("pre-train", trainer, settings.pretrain.steps, out / "pretrain_state.pt",
                             out / "pretrain_losses.csv", pre_settings, settings.checkpoint_every, progress, stop_after)
        _write_summary(out, {"pretrain": result | {"settings": pre_settings}})
        if not result["finished"]:
            return {"finished": False, "phase": "pre-train", **result}
        save_generator(trainer.ema, pretrained, meta | {"stage": "pretrained", "pretrain_steps": result["step"]})

    model, pre_meta = load_generator(pretrained, "pretrained", device)
    check_generator_fits(pre_meta, model, dataset, pretrained)
    d2m_settings = {"generator": model.config.to_dict(),
                    "d2m": _without(settings.d2m.to_dict(), *RESUMABLE_CHANGES),
                    **data_settings}
    try:
        trainer = D2MTrainer(model, settings.d2m, images, labels, dataset.mean, dataset.std, device,
                             progress=progress)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    result = train_phase("D2M", trainer, settings.d2m.iterations, out / "d2m_state.pt", out / "losses.csv",
                         d2m_settings, settings.checkpoint_every, progress, stop_after)
    start = {"start_psnr": trainer.start_psnr} if trainer.start_psnr else {}  # a real start's reconstruction
    _write_summary(out, {"d2m": result | start | {"settings": d2m_settings}})
    if not result["finished"]:
        return {"finished": False, "phase": "D2M", **result}
    save_generator(trainer.generator, out / DISTILLED_FILE,
                   meta | {"stage": "distilled", "d2m_iterations": result["step"]})
    return {"finished": True, "phase": "done", **result, **start}


def _stage_in(run_dir: Path) -> str:
    return "distilled" if (run_dir / DISTILLED_FILE).is_file() else "pretrained"


def run_dm(dataset: ImageDataset, settings: DistillSettings, out: Path, device: torch.device,
           val_per_class: int = 0, split_seed: int = 0, progress: bool = True,
           stop_after: int | None = None) -> dict:
    """DM on learnable pixels at `settings.dm.ipc`; writes synthetic.pt when finished."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = distillation_images(dataset, val_per_class, split_seed)
    dm_settings = {"dm": _without(settings.dm.to_dict(), *RESUMABLE_CHANGES), "dataset": dataset.name,
                   "num_train": len(labels), "val_per_class": val_per_class, "split_seed": split_seed}
    try:
        trainer = DMTrainer(settings.dm, images, labels, dataset.mean, dataset.std, device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    result = train_phase("DM", trainer, settings.dm.iterations, out / "dm_state.pt", out / "losses.csv",
                         dm_settings, settings.checkpoint_every, progress, stop_after)
    _write_summary(out, {"dm": result | {"settings": dm_settings}})
    if not result["finished"]:
        return {"finished": False, "phase": "DM", **result}
    synthetic = SyntheticSet(trainer.images.detach().cpu(), trainer.labels.clone(), {
        "dataset": dataset.name, "image_size": dataset.image_size, "channels": dataset.channels,
        "num_classes": dataset.num_classes, "mean": list(dataset.mean), "std": list(dataset.std),
        "ipc": settings.dm.ipc, "method": "dm", "seed": settings.dm.seed, "iterations": result["step"],
        "distill_seconds": result["elapsed_s"], "val_per_class": val_per_class, "split_seed": split_seed})
    synthetic.save(out / "synthetic.pt")
    return {"finished": True, "phase": "done", **result}


__all__ = ["DM_MATCHING", "D2M_MATCHING", "DistillSettings", "PRESETS", "preset", "run_d2m", "run_dm", "train_phase",
           "with_overrides"]
