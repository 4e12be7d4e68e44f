"""How well a generator reproduces real images through its latents alone: the PSNR of the
inversions `distill --latent-init real` starts its latent pool from, made exactly as D2M makes them
(--per-class training images a class outside the validation split, drawn by the pool's seed; the
pool's N(0, I) start), for each Adam learning rate. For scale, the PSNR of each image's own mean
colour (a flat image) and of the N(0, I) start. One JSON line per learning rate; with --tune-steps,
also one per tuning rate: the PSNR after pivotal tuning of the weights from those latents
(`distill --tuning-steps`). With --saved-pool, instead: the PSNR of a distill run's own latent pool
against the real images it was started from (what D2M's first iteration sees, or its last).

    python benchmarks/inversion_quality.py --data-root DIR --generator RUNS/s6/d2m/generator_pretrained.pt \\
        --per-class 10 --steps 100 --lrs 0.03 0.1 [--tune-steps 100 --tune-lrs 1e-4 3e-4 1e-3 [--tune-batches 0 100]]
    python benchmarks/inversion_quality.py --data-root DIR --generator RUNS/s13/start-inv-s0 --stage distilled \
        --per-class 50 --steps 0 --tune-steps 100 ...          # tuning from a run's saved inversion
    python benchmarks/inversion_quality.py --data-root DIR --generator RUN_DIR --stage distilled --saved-pool --seed S
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from pathlib import Path

import torch

from d2m_nas.data import DEFAULT_VAL_PER_CLASS, load_dataset
from d2m_nas.distill_runs import distillation_images
from d2m_nas.generator_files import load_generator
from distill.d2m import D2MConfig, RealSampler, inversion_targets, pool_seed
from distill.generator import with_latent_pool
from distill.inversion import INVERSION_LR, TUNING_LR, invert, psnr, reconstruction_psnr, tune


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--generator", type=Path, required=True, help="a generator file or distill run directory")
    p.add_argument("--stage", default="pretrained", choices=("pretrained", "distilled"))
    p.add_argument("--per-class", type=int, default=10, help="real images a class to invert")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lrs", type=float, nargs="+", default=[INVERSION_LR])
    p.add_argument("--tune-steps", type=int, default=0, help="pivotal-tuning steps after each inversion (0: none)")
    p.add_argument("--tune-lrs", type=float, nargs="+", default=[TUNING_LR])
    p.add_argument("--tune-batches", type=int, nargs="+", default=[0],
                   help="images a tuning step, each tried with each rate (0: all; default: 0)")
    p.add_argument("--tune-cosine", action="store_true", help="tuning rates decay to 0 along a cosine")
    p.add_argument("--val-per-class", type=int, default=DEFAULT_VAL_PER_CLASS)
    p.add_argument("--seed", type=int, default=0, help="the D2M seed whose pool draw is reproduced")
    p.add_argument("--saved-pool", action="store_true",
                   help="score the generator's own latent pool against its start's real images (--seed: the run's)")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, args.data_root)
    images, labels = distillation_images(dataset, args.val_per_class, 0)
    generator, _ = load_generator(args.generator, args.stage)
    seed = pool_seed(D2MConfig(seed=args.seed))
    real = RealSampler(images, labels, dataset.mean, dataset.std, torch.device("cpu"))
    if args.saved_pool:
        if generator.learned_z is None:
            raise SystemExit(f"{args.generator} ({args.stage}) has no latent pool")
        targets, pool_labels = inversion_targets(real, generator.config.latent_pool, seed)
        record = {"benchmark": "inversion_quality", "generator": str(args.generator), "stage": args.stage,
                  "images": len(targets), "seed": args.seed, "saved_pool_psnr":
                  reconstruction_psnr(generator, targets, pool_labels, generator.learned_z.detach().flatten(0, 1))}
        print(json.dumps(record), flush=True)
        return [record]
    start = with_latent_pool(generator, args.per_class, seed).learned_z.detach().flatten(0, 1)
    targets, pool_labels = inversion_targets(real, args.per_class, seed)
    flat = targets.mean(dim=(2, 3), keepdim=True).expand_as(targets)
    common = {"benchmark": "inversion_quality", "generator": str(args.generator), "stage": args.stage,
              "images": len(targets), "steps": args.steps, "seed": args.seed, "threads": args.threads,
              "start_psnr": reconstruction_psnr(generator, targets, pool_labels, start),
              "flat_psnr": psnr(flat, targets)}
    records = []
    for lr in args.lrs:
        clock = time.perf_counter()
        z = invert(generator, targets, pool_labels, start, args.steps, lr)
        seconds = time.perf_counter() - clock
        records.append(common | {"lr": lr, "psnr": reconstruction_psnr(generator, targets, pool_labels, z),
                                 "seconds": seconds, "seconds_per_step_per_100_images": seconds / max(args.steps, 1)
                                 / len(targets) * 100})
        print(json.dumps(records[-1]), flush=True)
        inverted = records[-1]
        for tune_lr, batch in itertools.product(args.tune_lrs, args.tune_batches) if args.tune_steps else []:
            tuned = copy.deepcopy(generator)
            clock = time.perf_counter()
            tune(tuned, targets, pool_labels, z, args.tune_steps, tune_lr, batch, args.tune_cosine, seed)
            records.append(inverted | {"tune_steps": args.tune_steps, "tune_lr": tune_lr, "tune_batch": batch,
                                       "tune_cosine": args.tune_cosine,
                                       "tuned_psnr": reconstruction_psnr(tuned, targets, pool_labels, z),
                                       "tune_seconds": time.perf_counter() - clock})
            print(json.dumps(records[-1]), flush=True)
    return records


if __name__ == "__main__":
    main()
