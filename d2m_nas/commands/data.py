"""`d2m-nas data`: find (or download) a dataset, load it, and describe it and its validation split."""

from __future__ import annotations

import argparse
import json

from d2m_nas.commands import add_download_option, add_split_options

HELP = "inspect, download and check datasets"
DESCRIPTION = """\
Find a dataset under the data root (downloading it only with --download), load it, and print
where it was found, its train/test sizes, image size, channels, classes, normalisation, and the
seeded class-balanced validation split that search and proxies score on (never the test set).

Where each dataset is looked for, in order (DIR = --data-root, else $D2M_NAS_DATA, else
~/.cache/d2m-nas/data):
  DIR/NAME/NAME.npz              x_train, y_train, x_test, y_test: NHWC uint8 (any dataset)
  cifar10, cifar100, svhn,       torchvision's files with root DIR/NAME, e.g.
  mnist, fashion-mnist           DIR/cifar10/cifar-10-batches-py/ (what --download writes)
  tinyimagenet                   DIR/tinyimagenet/tiny-imagenet-200/ (the official zip, unpacked;
                                 its val/ split is the test set)
  imagefolder:PATH               PATH/train/<class>/<image>, PATH/val/<class>/<image> (val is the
                                 test set; all images one square size; normalisation from train)
  fake                           generated: 10 classes, 32x32, for demos and tests

examples:
  d2m-nas data --dataset cifar10 --data-root ../shared/data
  d2m-nas data --dataset cifar100 --download --val-per-class 50 --json
  d2m-nas data --dataset imagefolder:~/pets --val-per-class 10
"""
WRITES_RUN_DIR = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="cifar10", metavar="NAME",
                        help="cifar10, cifar100, svhn, mnist, fashion-mnist, tinyimagenet, fake or "
                             "imagefolder:PATH (default: cifar10)")
    add_download_option(parser)
    add_split_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the readable block")


def describe(dataset, val_per_class: int, seed: int, device) -> dict:
    """The facts `d2m-nas data` prints, as a JSON-ready dict."""
    from d2m_nas.data.placement import fits_on_device, free_memory
    from d2m_nas.data.split import split_train_val

    train_idx, val_idx = split_train_val(dataset.y_train, val_per_class, seed)
    nbytes = dataset.nbytes()
    counts = dataset.y_train.bincount(minlength=dataset.num_classes)
    return {
        "dataset": dataset.name,
        "source": dataset.source,
        "train_images": len(dataset.y_train),
        "test_images": len(dataset.y_test),
        "image_size": dataset.image_size,
        "channels": dataset.channels,
        "num_classes": dataset.num_classes,
        "train_per_class_min": int(counts.min()),
        "train_per_class_max": int(counts.max()),
        "class_names": dataset.class_names,
        "mean": list(dataset.mean),
        "std": list(dataset.std),
        "split": {"seed": seed, "val_per_class": val_per_class,
                  "train_images": len(train_idx), "val_images": len(val_idx)},
        "uint8_bytes": nbytes,
        "device": str(device),
        "fits_on_device": fits_on_device(nbytes, device),
        "device_free_bytes": free_memory(device),
    }


def format_block(facts: dict) -> str:
    names = facts["class_names"]
    shown = ", ".join(names[:10]) + (f", ... ({len(names) - 10} more)" if len(names) > 10 else "")
    split = facts["split"]
    rows = [
        ("dataset", facts["dataset"]),
        ("found at", facts["source"]),
        ("train / test", f"{facts['train_images']:,} / {facts['test_images']:,} images"),
        ("image", f"{facts['image_size']}x{facts['image_size']}, {facts['channels']} channel"
                  + ("s" if facts["channels"] > 1 else "")),
        ("classes", f"{facts['num_classes']} ({facts['train_per_class_min']:,}-{facts['train_per_class_max']:,} "
                    f"train images each): {shown}"),
        ("normalisation", f"mean {_floats(facts['mean'])}, std {_floats(facts['std'])}"),
        ("validation", f"{split['val_per_class']} per class, seed {split['seed']}: {split['val_images']:,} val + "
                       f"{split['train_images']:,} train (carved from the training set)"),
        ("memory", f"{facts['uint8_bytes'] / 2**20:,.1f} MiB as uint8; "
                   + (f"fits on {facts['device']}" if facts["fits_on_device"] else
                      f"too large for {facts['device']} (kept on cpu)")),
    ]
    return "\n".join(f"{key:<14}{value}" for key, value in rows)


def _floats(values) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def run(args) -> int:
    from d2m_nas.data import load_dataset
    from d2m_nas.devices import resolve_device

    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, args.data_root, download=args.download)
    facts = describe(dataset, args.val_per_class, args.split_seed, device)
    print(json.dumps(facts) if args.json else format_block(facts))
    return 0
