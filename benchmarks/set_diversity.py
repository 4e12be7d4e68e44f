"""How varied is a distilled set, and how close are its class means? In the feature space that D2M and
DM match (randomly initialised ConvNet-3s, instance norm, width 128), for each set and class:

- spread_ratio: the set's within-class spread (mean squared distance of an image's embedding to
  its class's mean) over the real class's spread; 1 is as varied as real images, 0 is one image;
- mean_gap: the squared distance between the set's class mean and the real class mean, over the
  real spread: what embedding matching minimises (a random sample of n real images gives ~1/n);
- pixel_spread_ratio: the spread ratio in normalised pixel space.

Averaged over classes and --nets networks; the real reference is --reference-per-class training
images a class outside the validation split. One JSON line per (set, IPC).

    python benchmarks/set_diversity.py --data-root DIR --ipcs 10 50 --set real=random \\
        --set d2m-pool50=d2m:RUNS/s10/d2m-pool50-s0 --set dm=dm:RUNS/s7/dm10 --out diversity.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from d2m_nas.data import DEFAULT_VAL_PER_CLASS, load_dataset
from d2m_nas.random_subset import random_real_subset
from distill.losses import random_frozen_convnet

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling modules, also when a test loads it by path
from image_sets import METHODS, image_set  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--set", action="append", required=True, metavar="LABEL=KIND[:RUN]", dest="sets",
                   help=f"a set to measure; KIND one of {', '.join(METHODS)} (random: real images; dm: a DM run, "
                        "measured at its own IPC only; d2m / pretrained: a distill run's generator)")
    p.add_argument("--ipcs", type=int, nargs="+", default=[10, 50])
    p.add_argument("--nets", type=int, default=3, help="randomly initialised ConvNets averaged over")
    p.add_argument("--reference-per-class", type=int, default=500, help="real images a class in the reference")
    p.add_argument("--val-per-class", type=int, default=DEFAULT_VAL_PER_CLASS)
    p.add_argument("--seed", type=int, default=0, help="seed of the random subset, the generation and the networks")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="append the JSON lines here too")
    args = p.parse_args(argv)
    try:
        args.sets = [parse_set(item) for item in args.sets]
    except ValueError as exc:
        p.error(str(exc))
    return args


def parse_set(item: str) -> tuple[str, str, Path | None]:
    """LABEL=KIND[:RUN] -> (label, kind, run)."""
    label, _, spec = item.partition("=")
    kind, _, run = spec.partition(":")
    if not label or kind not in METHODS or (kind == "random") != (not run):
        raise ValueError(f"--set {item!r}: expected LABEL=random or LABEL=KIND:RUN with KIND one of "
                         f"{', '.join(METHODS[1:])}")
    return label, kind, Path(run) if run else None


def class_statistics(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(class means, class spreads): a spread is the mean squared distance to the class mean."""
    means = torch.stack([features[labels == c].mean(0) for c in range(num_classes)])
    spreads = torch.stack([(features[labels == c] - means[c]).pow(2).sum(1).mean() for c in range(num_classes)])
    return means, spreads


def compare(features: torch.Tensor, labels: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor]
            ) -> tuple[float, float]:
    """(spread ratio, mean gap) of a set against the reference's class statistics, averaged over classes."""
    real_means, real_spreads = reference
    means, spreads = class_statistics(features, labels, len(real_means))
    gaps = (means - real_means).pow(2).sum(1)
    return float((spreads / real_spreads).mean()), float((gaps / real_spreads).mean())


@torch.no_grad()
def embeddings(images: torch.Tensor, nets: list, batch: int = 500) -> list[torch.Tensor]:
    return [torch.cat([net.embed(images[i:i + batch]) for i in range(0, len(images), batch)]) for net in nets]


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, args.data_root)
    real = random_real_subset(dataset, args.reference_per_class, args.seed + 1, val_per_class=args.val_per_class)
    nets = [random_frozen_convnet(None, dataset.channels, dataset.num_classes, dataset.image_size, args.seed + i, "cpu")
            for i in range(args.nets)]
    num_classes = dataset.num_classes
    references = [class_statistics(f, real.labels, num_classes) for f in embeddings(real.images, nets)]
    pixel_reference = class_statistics(real.images.flatten(1), real.labels, num_classes)
    records = []
    for label, kind, run in args.sets:
        for ipc in args.ipcs:
            synthetic = image_set(kind, run, dataset, ipc, args.seed, args.val_per_class)
            if synthetic is None:
                continue
            per_net = [compare(f, synthetic.labels, ref) for f, ref in zip(embeddings(synthetic.images, nets), references)]
            spreads, gaps = zip(*per_net)
            record = {"benchmark": "set_diversity", "set": label, "kind": kind, "run": str(run) if run else None,
                      "ipc": ipc, "spread_ratio": sum(spreads) / len(spreads), "mean_gap": sum(gaps) / len(gaps),
                      "pixel_spread_ratio": compare(synthetic.images.flatten(1), synthetic.labels, pixel_reference)[0],
                      "nets": args.nets, "reference_per_class": args.reference_per_class, "seed": args.seed,
                      "dataset": args.dataset}
            print(json.dumps(record), flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            records.append(record)
    return records


if __name__ == "__main__":
    main()
