"""Is set-level variance what keeps D2M's IPC-10 set below random real images? A test of that
diagnosis (benchmarks/README.md, "Why D2M does not beat random real images here").

D2M matches class means of real and generated images under random frozen ConvNets, in
expectation over the generator's draws; an IPC-10 set is only ten draws, so its class means are
off by the draws' variance / 10. Herding (Welling 2009; the coreset baseline of dataset
distillation) removes most of that: from a pool of P candidates per class it greedily picks the
one that brings the running mean closest to the class's real mean, here in the concatenated
embeddings of `--nets` random frozen ConvNet-3s (the distillation's own feature extractor).

For each pool (real training images; images from the D2M generator) this prints, per IPC set:
the embedding-matching loss against a fresh real reference under *other* random nets (so the
selection cannot simply overfit its own yardstick) and, with --runs > 0, the evaluation accuracy
under distill_accuracy.py's protocol. Random draws from the same pools are the baselines.

    python benchmarks/herding_selection.py --data-root $D2M_NAS_DATA --d2m-run RUN --ipc 10 --pool 200 \
        --runs 3 --epochs 100 --test-per-class 200 --threads 1 --out herding.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from d2m_nas.data import DEFAULT_VAL_PER_CLASS, load_dataset, sample_per_class
from d2m_nas.generator_files import synthesize_from_generator
from d2m_nas.evaluation import evaluate_synthetic, field_protocol
from d2m_nas.random_subset import random_real_subset
from d2m_nas.selection import embeddings, feature_nets, herding_select, real_reference
from d2m_nas.synthetic import SyntheticSet


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--d2m-run", type=Path, required=True, help="finished D2M run directory")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--pool", type=int, default=200, help="candidates per class to select from")
    p.add_argument("--nets", type=int, default=8, help="random frozen ConvNets whose embeddings herding uses")
    p.add_argument("--runs", type=int, default=3, help="evaluation runs per set (0: matching loss only)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-per-class", type=int, default=DEFAULT_VAL_PER_CLASS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="append JSON lines here")
    return p.parse_args(argv)


def matching_loss(synthetic: SyntheticSet, reference: dict, nets: list) -> float:
    """Mean over nets and classes of |mean f(real) − mean f(set)|², f = final-block embedding."""
    loss = 0.0
    for c, real_means in reference.items():
        means = embeddings(synthetic.images[synthetic.labels == c], nets, "cpu").mean(0)
        loss += sum((r - m).pow(2).sum().item() for r, m in zip(real_means, means.chunk(len(nets))))
    return loss / (len(reference) * len(nets))


def first_per_class(pool: SyntheticSet, ipc: int) -> SyntheticSet:
    """The pool's first `ipc` members of every class: a random draw, since the pool is one."""
    keep = torch.cat([torch.nonzero(pool.labels == c).flatten()[:ipc] for c in pool.labels.unique()])
    return SyntheticSet(pool.images[keep], pool.labels[keep], {**pool.metadata, "ipc": ipc})


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, args.data_root)
    pools = {"real": random_real_subset(dataset, args.pool, args.seed, val_per_class=args.val_per_class),
             "d2m": synthesize_from_generator(args.d2m_run, args.pool, args.seed, "cpu", "distilled")}
    # herding aims at the class means of real images drawn apart from the real pool (seed + 1); the
    # judge uses other random nets (seeds 1000+) and another real draw (seed + 2)
    target_set = real_reference(dataset, args.seed, args.val_per_class)
    judge_nets = feature_nets(pools["real"], args.nets, args.seed + 1, "cpu")
    reference_per_class = len(target_set.labels) // dataset.num_classes
    judge_set = random_real_subset(dataset, reference_per_class, args.seed + 2, val_per_class=args.val_per_class)
    reference = {c: embeddings(judge_set.images[judge_set.labels == c], judge_nets, "cpu").mean(0).chunk(args.nets)
                 for c in range(dataset.num_classes)}

    test = dataset
    if args.test_per_class:
        keep = sample_per_class(dataset.y_test, args.test_per_class, seed=args.seed)
        test = dataclasses.replace(dataset, x_test=dataset.x_test[keep], y_test=dataset.y_test[keep])
    protocol = dataclasses.replace(field_protocol(dataset.image_size), epochs=args.epochs)
    for source, pool in pools.items():
        started = time.perf_counter()
        herded = herding_select(pool, args.ipc, target_set, args.seed, "cpu", nets=args.nets)
        selection_s = time.perf_counter() - started
        for kind, synthetic in (("random", first_per_class(pool, args.ipc)), ("herding", herded)):
            record = {"benchmark": "herding_selection", "source": source, "selection": kind, "ipc": args.ipc,
                      "pool_per_class": args.pool, "reference_per_class": reference_per_class, "nets": args.nets,
                      "matching_loss": round(matching_loss(synthetic, reference, judge_nets), 3),
                      "selection_seconds": round(selection_s, 2) if kind == "herding" else 0.0}
            if args.runs:
                report = evaluate_synthetic(synthetic, test, protocol, runs=args.runs, device=torch.device("cpu"),
                                            seed=args.seed, progress=False)
                record.update(mean=report.mean, std=report.std, accuracies=report.accuracies,
                              protocol=report.describe_setup(), eval_seconds=round(report.seconds, 1))
            record.update(d2m_run=str(args.d2m_run), seed=args.seed, threads=args.threads,
                          test_images=len(test.y_test))
            line = json.dumps(record)
            print(line, flush=True)
            if args.out is not None:
                with args.out.open("a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
