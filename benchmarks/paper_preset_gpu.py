"""The `paper` preset on one GPU, bounded: pre-train and distill at the paper's scale for a fixed
number of steps, generate IPC 10 from the pre-trained and the distilled generator, evaluate them
beside random real images under one reduced protocol, and print one JSON object: steps per
second of each phase, the projected time of the full preset (40,000 pre-training steps, 5,000 D2M
iterations) at those rates, and the accuracies.

    python benchmarks/paper_preset_gpu.py --device cuda --data-root DIR --out OUT/paper   # ~8 min, one GPU
    python benchmarks/paper_preset_gpu.py --tiny --out OUT/paper-tiny                      # CPU check, seconds

`--tiny` runs the same code path on the `fake` dataset with the `tiny` preset's sizes: it checks
the script, its numbers mean nothing. The accuracies after a few hundred steps are not the
paper's (that needs the full preset); what this measures is the throughput, the projection, and
that the preset runs end to end on the device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from d2m_nas.commands.option_types import WHOLE, Numbers
from d2m_nas.data import DEFAULT_VAL_PER_CLASS, load_dataset
from d2m_nas.devices import resolve_device
from d2m_nas.distill_runs import PRESETS, run_d2m
from d2m_nas.generator_files import synthesize_from_generator
from d2m_nas.evaluation import evaluate_synthetic, field_protocol
from d2m_nas.random_subset import random_real_subset
from distill.generator import PARAMETER_GROUPS
from search_spaces.cifar_nets import canonical_eval_network


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--data-root", type=Path)
    p.add_argument("--pretrain-steps", type=int, default=1000, help="GAN pre-training steps run (paper: 40000)")
    p.add_argument("--iterations", type=int, default=200, help="D2M iterations run (paper: 5000)")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--epochs", type=int, default=300, help="evaluation epochs (protocol: 1000)")
    p.add_argument("--runs", type=int, default=2, help="evaluation runs per set")
    p.add_argument("--latent-pool", type=int, default=0, metavar="K",
                   help="learned latents per class (distill --latent-pool; default 0: none)")
    p.add_argument("--latent-init", default="normal", choices=("normal", "real"),
                   help="the pool's start: N(0, I) or inverted real images (distill --latent-init; default normal)")
    p.add_argument("--tuning-steps", type=int, default=0, metavar="N",
                   help="pivotal tuning after the real start's inversion (distill --tuning-steps; default 0)")
    p.add_argument("--tuning-batch", type=int, default=0, metavar="N",
                   help="images a tuning step (distill --tuning-batch; default 0: the whole pool)")
    p.add_argument("--tuning-lr", type=float, default=None, metavar="LR",
                   help="the tuning's Adam rate (distill --tuning-lr; default: PTI's 3e-4)")
    p.add_argument("--syn-per-class", type=int, default=None, metavar="N",
                   help="generated images per class per iteration (distill --syn-per-class; default: the preset's)")
    p.add_argument("--match-first", type=Numbers(WHOLE), default=0, metavar="K[,K...]",
                   help="also match each class's first K pool images as a set, for each K (distill --match-first; "
                        "default 0, none)")
    p.add_argument("--learn", default=None, choices=PARAMETER_GROUPS,
                   help="generator parameters D2M learns (distill --learn; default: the preset's, all)")
    p.add_argument("--lr", type=float, default=None, help="D2M's learning rate (distill --lr; default: the preset's)")
    p.add_argument("--trained-nets", type=int, default=0, metavar="Q",
                   help="match through Q ConvNets trained on real images as D2M goes (distill --trained-nets; default 0)")
    p.add_argument("--cross-arch", nargs="*", default=[], metavar="SPEC",
                   help="evaluation networks besides the protocol's ConvNet (alexnet, vgg11, resnet18, timm:NAME): "
                        "the sets' accuracies on each go to `by_model`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="fake data and the tiny preset's sizes: a CPU check")
    p.add_argument("--out", type=Path, required=True, help="scratch run directory (replaced)")
    args = p.parse_args(argv)
    try:  # before minutes of distillation, not after
        args.cross_arch = [canonical_eval_network(name) for name in args.cross_arch]
    except ValueError as exc:
        p.error(f"--cross-arch: {exc}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = resolve_device("cpu" if args.tiny else args.device)
    full = PRESETS["paper"]
    base = PRESETS["tiny"] if args.tiny else full
    settings = dataclasses.replace(
        base, pretrain=dataclasses.replace(base.pretrain, steps=args.pretrain_steps),
        d2m=dataclasses.replace(base.d2m, iterations=args.iterations, latent_pool=args.latent_pool,
                                latent_init=args.latent_init, tuning_steps=args.tuning_steps,
                                tuning_batch=args.tuning_batch, tuning_lr=args.tuning_lr or base.d2m.tuning_lr,
                                syn_per_class=args.syn_per_class or base.d2m.syn_per_class, match_first=args.match_first,
                                learn=args.learn or base.d2m.learn, lr=args.lr or base.d2m.lr,
                                trained_nets=args.trained_nets),
        checkpoint_every=max(args.pretrain_steps, args.iterations))  # one checkpoint per phase: time the steps
    dataset = load_dataset("fake" if args.tiny else "cifar10", args.data_root)
    val_per_class = 5 if args.tiny else DEFAULT_VAL_PER_CLASS
    dataset.to(device)  # CIFAR-10 is 180 MB: the whole set lives on the accelerator
    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    run_d2m(dataset, settings, args.out, device, val_per_class=val_per_class, progress=False)
    distill_s = time.perf_counter() - started
    phases = json.loads((args.out / "summary.json").read_text())
    pretrain_rate = phases["pretrain"]["step"] / phases["pretrain"]["elapsed_s"]
    d2m_rate = phases["d2m"]["step"] / phases["d2m"]["elapsed_s"]

    protocol = dataclasses.replace(field_protocol(dataset.image_size), epochs=args.epochs)
    sets = {"random": random_real_subset(dataset, args.ipc, args.seed, val_per_class),
            "pretrained": synthesize_from_generator(args.out, args.ipc, args.seed, device, stage="pretrained"),
            "d2m": synthesize_from_generator(args.out, args.ipc, args.seed, device)}
    by_model = {}  # the protocol's ConvNet first
    for model in [protocol.model, *args.cross_arch]:
        config = dataclasses.replace(protocol, model=model)
        by_model[config.model] = {}
        for name, synthetic in sets.items():
            report = evaluate_synthetic(synthetic, dataset, config, runs=args.runs, device=device, seed=args.seed,
                                        progress=False)
            by_model[config.model][name] = {"mean": report.mean, "std": report.std, "runs": args.runs}
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "tiny": args.tiny, "dataset": dataset.name, "ipc": args.ipc, "latent_pool": args.latent_pool,
        "latent_init": args.latent_init, "tuning_steps": args.tuning_steps, "tuning_batch": args.tuning_batch,
        "tuning_lr": settings.d2m.tuning_lr, "syn_per_class": settings.d2m.syn_per_class,
        "match_first": settings.d2m.to_dict()["match_first"], "learn": settings.d2m.learn,
        "lr": settings.d2m.lr, "trained_nets": args.trained_nets,
        "pretrain": {"steps": phases["pretrain"]["step"], "seconds": phases["pretrain"]["elapsed_s"],
                     "steps_per_s": pretrain_rate},
        "d2m": {"iterations": phases["d2m"]["step"], "seconds": phases["d2m"]["elapsed_s"],
                "iterations_per_s": d2m_rate},
        "distill_wall_s": distill_s,
        # the full preset at the measured rates (the sizes are the paper preset's unless --tiny)
        "projected_full_preset_h": (full.pretrain.steps / pretrain_rate + full.d2m.iterations / d2m_rate) / 3600,
        "evaluation": {"epochs": args.epochs, "protocol_epochs": field_protocol(dataset.image_size).epochs,
                       "test_images": int(len(dataset.y_test)), "accuracy": by_model[protocol.model],
                       **({"by_model": by_model} if args.cross_arch else {})},
        "wall_s": time.perf_counter() - started,
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
