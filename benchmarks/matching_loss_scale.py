"""How large is each D2M matching term at the start of distillation? The figures behind the `cpu`
preset's weights (D2M_MATCHING in d2m_nas/distill_runs.py): the weights bring the three terms to a
comparable size, so their raw magnitudes have to be measured, not guessed.

For each of `--nets` random frozen ConvNet-3s (the distillation's own feature extractor), the
attention, embedding and prediction terms of `distill.losses.matching_losses` are summed over the
classes, between a real batch per class and the generated batch D2M starts from (the pre-trained
generator of `--generator RUN`), and between two disjoint real batches (the floor a perfect
generator would sit at). Prints one JSON line per (pair, net) and one summary line per pair with
the mean of every term and its size after the preset's weights.

    python benchmarks/matching_loss_scale.py --data-root DATA_ROOT --generator RUN --out scale.jsonl
    python benchmarks/matching_loss_scale.py --tiny          # fake data, seconds: checks the script only
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from d2m_nas.data import load_dataset, sample_per_class
from d2m_nas.distill_runs import D2M_MATCHING
from d2m_nas.generator_files import synthesize_from_generator
from distill.losses import TERMS, matching_losses, random_frozen_convnet


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--generator", type=Path, help="a `d2m-nas distill` run: its pre-trained generator is "
                   "what D2M starts from (without it, only the real-vs-real floor is measured)")
    p.add_argument("--per-class", type=int, default=32, help="images per class on each side (the cpu preset's "
                   "real batch: 32)")
    p.add_argument("--nets", type=int, default=5, help="random frozen ConvNet-3s (seeds 0..N-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="the fake dataset and 2 images per class")
    p.add_argument("--out", type=Path, help="also write the JSON lines here")
    return p.parse_args(argv)


def class_batches(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    return [images[labels == c] for c in range(num_classes)]


def summed_terms(net, real: list[torch.Tensor], other: list[torch.Tensor]) -> dict[str, float]:
    """Every matching term, unweighted, summed over the classes (as one D2M iteration sums them)."""
    totals = dict.fromkeys(TERMS, 0.0)
    with torch.no_grad():
        for r, o in zip(real, other):
            terms = matching_losses(net, r, o, D2M_MATCHING)
            for name in TERMS:
                totals[name] += float(terms[name])
    return totals


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    dataset = load_dataset("fake" if args.tiny else args.dataset, args.data_root)
    per_class = 2 if args.tiny else args.per_class
    # two disjoint seeded draws of real training images, normalised as distillation sees them
    drawn = sample_per_class(dataset.y_train, 2 * per_class, args.seed).view(-1, 2 * per_class)  # by class
    first, second = drawn[:, :per_class].flatten(), drawn[:, per_class:].flatten()
    real = class_batches(dataset.normalize(dataset.x_train[first]), dataset.y_train[first], dataset.num_classes)
    pairs = {"real vs real": class_batches(dataset.normalize(dataset.x_train[second]), dataset.y_train[second],
                                          dataset.num_classes)}
    if args.generator is not None:
        generated = synthesize_from_generator(args.generator, per_class, args.seed, torch.device("cpu"),
                                              stage="pretrained")
        pairs["real vs pre-trained generator"] = class_batches(generated.images, generated.labels,
                                                               dataset.num_classes)
    weights = {"attention": D2M_MATCHING.attention_weight, "embedding": D2M_MATCHING.embedding_weight,
               "prediction": D2M_MATCHING.lambda_pred}
    lines = []
    for pair, other in pairs.items():
        rows = []
        for seed in range(args.nets):
            net = random_frozen_convnet(None, dataset.channels, dataset.num_classes, dataset.image_size, seed, "cpu")
            rows.append(summed_terms(net, real, other))
            lines.append({"benchmark": "matching_loss_scale", "pair": pair, "net_seed": seed, **rows[-1]})
        mean = {name: sum(r[name] for r in rows) / len(rows) for name in TERMS}
        lines.append({"benchmark": "matching_loss_scale", "pair": pair, "nets": args.nets, "per_class": per_class,
                      "dataset": dataset.name, "mean": mean,
                      "log10_mean": {n: round(math.log10(v), 2) if v > 0 else None for n, v in mean.items()},
                      "weighted_mean": {n: mean[n] * weights[n] for n in TERMS}, "weights": weights})
    for line in lines:
        print(json.dumps(line))
    if args.out is not None:
        args.out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
