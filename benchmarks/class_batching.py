"""D2M and DM iterations per second, class by class against every class in one pass
(`--batch-classes`), at a preset's sizes, on fake images (speed only: the values do not matter,
but both ways must agree, and the script checks that they do).

Each mode runs the same seeded iterations from the same generator (or pixels); the modes alternate
in blocks so that a busy machine slows both alike. Prints one JSON line per (method, mode) and a
summary line with the speed-up and the largest relative difference of the iteration losses.

    python benchmarks/class_batching.py --preset cpu --iterations 6 --device cpu --threads 1
    python benchmarks/class_batching.py --preset paper --iterations 20 --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d2m_nas.data.sources import make_fake_dataset  # noqa: E402
from d2m_nas.devices import resolve_device  # noqa: E402
from d2m_nas.distill_runs import generator_config_for, preset  # noqa: E402
from distill.d2m import D2MTrainer  # noqa: E402
from distill.dm import DMTrainer  # noqa: E402
from distill.generator import Generator  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", help="tiny | cpu | paper (default: cpu)")
    p.add_argument("--methods", nargs="+", default=["d2m", "dm"], choices=("d2m", "dm"))
    p.add_argument("--iterations", type=int, default=6, help="timed iterations per mode (default: 6)")
    p.add_argument("--blocks", type=int, default=2, help="alternating blocks the iterations are split into")
    p.add_argument("--per-class", type=int, default=0,
                   help="fake training images per class (default: enough for the preset's real batches)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def trainers(method: str, settings, dataset, device) -> list:
    """The same trainer twice, class by class and all classes at once, from identical starts."""
    images, labels = dataset.x_train, dataset.y_train
    made = []
    if method == "d2m":
        start = Generator(generator_config_for(settings, dataset)).eval()
        for batch_classes in (False, True):
            generator = Generator(start.config)
            generator.load_state_dict(start.state_dict())
            made.append(D2MTrainer(generator, replace(settings.d2m, batch_classes=batch_classes), images, labels,
                                   dataset.mean, dataset.std, device))
    else:
        for batch_classes in (False, True):
            made.append(DMTrainer(replace(settings.dm, batch_classes=batch_classes), images, labels, dataset.mean,
                                  dataset.std, device))
    return made


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = preset(args.preset)
    per_class = args.per_class or max(settings.d2m.real_per_class, settings.dm.real_per_class, settings.dm.ipc)
    dataset = make_fake_dataset(train_per_class=per_class, test_per_class=1)
    for method in args.methods:
        pair = trainers(method, settings, dataset, device)
        for trainer in pair:  # warm-up: allocator, kernels
            trainer.step()
        seconds, losses = [0.0, 0.0], [[], []]
        block = max(1, args.iterations // args.blocks)
        done = 0
        while done < args.iterations:
            n = min(block, args.iterations - done)
            for mode, trainer in enumerate(pair):
                synchronize(device)
                start = time.perf_counter()
                for _ in range(n):
                    losses[mode].append(trainer.step()["total"])
                synchronize(device)
                seconds[mode] += time.perf_counter() - start
            done += n
        rows = []
        for mode, name in enumerate(("class by class", "all classes at once")):
            rows.append({"benchmark": "class_batching", "method": method, "mode": name, "preset": args.preset,
                         "iterations": args.iterations, "iterations_per_s": args.iterations / seconds[mode],
                         "device": str(device), "threads": args.threads})
            print(json.dumps(rows[-1]), flush=True)
        difference = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(*losses))
        print(json.dumps({"benchmark": "class_batching", "method": method, "summary": True, "preset": args.preset,
                          "speedup": rows[1]["iterations_per_s"] / rows[0]["iterations_per_s"],
                          "max_relative_loss_difference": difference, "device": str(device),
                          "threads": args.threads}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
