"""Random real subsets of CIFAR-10 under the evaluation protocol: the first baseline's accuracy
and the protocol's cost.

For each IPC: one seeded, class-balanced random subset of the training part of the train/val
split (`d2m-nas generate --method random`), then `--runs` ConvNet-3 trainings (seeds 0, 1, ...)
with the field's protocol except for the number of epochs, which is given per IPC (the CPU
cannot afford 1000 epochs at IPC 50 here); test accuracy on the 10,000 CIFAR-10 test images.
Published full-protocol figures (1000 epochs) for random real subsets: IPC 1 14.4, IPC 10 26.0,
IPC 50 43.4 (DC/DM papers' "Random" row).

Each line of output is JSON: one "result" line per IPC (accuracies, mean, std, protocol and its
differences, seconds per epoch, and the projected cost of one full-protocol run from the
measured epoch time), then one "machine" line.

    OMP_NUM_THREADS=1 python benchmarks/eval_random_subset.py --data-root DIR \
        --ipcs 1 10 50 --epochs 1000 100 40 --runs 3 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import torch

from d2m_nas.data import DEFAULT_VAL_PER_CLASS, load_dataset
from d2m_nas.evaluation import evaluate_synthetic, field_protocol
from d2m_nas.random_subset import random_real_subset

PUBLISHED_RANDOM = {1: 14.4, 10: 26.0, 50: 43.4}  # CIFAR-10, ConvNet-3, full protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="data root holding cifar10/ (default: $D2M_NAS_DATA)")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--ipcs", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1000, 100, 40],
                        help="epochs per IPC, in the order of --ipcs (protocol: 1000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="subset seed; network seeds are seed, seed+1, ...")
    parser.add_argument("--val-per-class", type=int, default=DEFAULT_VAL_PER_CLASS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if len(args.epochs) != len(args.ipcs):
        parser.error("--epochs needs one value per --ipcs value")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = load_dataset(args.dataset, args.data_root)
    started = time.time()
    for ipc, epochs in zip(args.ipcs, args.epochs):
        synthetic = random_real_subset(dataset, ipc, args.seed, args.val_per_class)
        protocol = field_protocol(dataset.image_size)
        config = dataclasses.replace(protocol, epochs=epochs)
        report = evaluate_synthetic(synthetic, dataset, config, runs=args.runs, device=device, seed=0, progress=False)
        per_epoch = [t / epochs for t in report.train_seconds]
        mean_epoch = sum(per_epoch) / len(per_epoch)
        mean_test = sum(report.test_seconds) / len(report.test_seconds)
        print(json.dumps({
            "kind": "result", "dataset": args.dataset, "method": "random", "ipc": ipc, "subset_seed": args.seed,
            "runs": args.runs, "accuracies": [round(a, 2) for a in report.accuracies],
            "mean": round(report.mean, 2), "std": round(report.std, 2),
            "published_full_protocol": PUBLISHED_RANDOM.get(ipc) if args.dataset == "cifar10" else None,
            "protocol": report.protocol, "differences": report.differences, "summary": report.summary(),
            "seconds_per_epoch": round(mean_epoch, 4), "test_seconds": round(mean_test, 2),
            "full_protocol_seconds_per_run_projected": round(protocol.epochs * mean_epoch + mean_test, 1),
            "seconds": round(report.seconds, 1), "threads": torch.get_num_threads(), "device": str(device),
        }), flush=True)
    print(json.dumps({"kind": "machine", "platform": platform.platform(), "processor": platform.processor(),
                      "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "total_seconds": round(time.time() - started, 1),
                      "note": "other jobs shared the machine unless stated otherwise"}), flush=True)


if __name__ == "__main__":
    main()
