"""A data root small enough to travel to a lent GPU machine (its working tree is capped at 64 MiB;
CIFAR-10 is 170 MB): the first N training and M test images of each class, in file order, and the
NAS-Bench-201 table. Figures measured on it say so: fewer training images (so a shorter real-image
pool for the GAN and for random-real baselines) and a smaller test set.

    python benchmarks/device_data.py --data-root DATA_ROOT --out .devdata     # 1,200 + 200 per class, 47 MB
    python benchmarks/device_check.py --device cuda --data-root .devdata ...   # on the device
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np


def first_per_class(labels: np.ndarray, count: int) -> np.ndarray:
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:count] for c in np.unique(labels)]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, required=True, help="the full data root (cifar10/, nb201/)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--train-per-class", type=int, default=1200)
    p.add_argument("--test-per-class", type=int, default=200)
    args = p.parse_args(argv)
    full = np.load(args.data_root / "cifar10" / "cifar10.npz")
    train = first_per_class(full["y_train"], args.train_per_class)
    test = first_per_class(full["y_test"], args.test_per_class)
    (args.out / "cifar10").mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "cifar10" / "cifar10.npz", x_train=full["x_train"][train], y_train=full["y_train"][train],
             x_test=full["x_test"][test], y_test=full["y_test"][test])
    (args.out / "nb201").mkdir(exist_ok=True)
    shutil.copy(args.data_root / "nb201" / "nb201_ground_truth.csv", args.out / "nb201")
    print(f"{args.out}: {len(train)} training and {len(test)} test images, the NAS-Bench-201 table")


if __name__ == "__main__":
    main()
