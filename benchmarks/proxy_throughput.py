"""Throughput of the training proxy's loop against a bare forward/backward/SGD loop.

For a seeded sample of NAS-Bench-201 architectures at each (channels, cells) setting, measures
training images per second of
  bare          forward + backward + SGD step on one pre-made batch already on the device
  fixed-set     TrainingProxy.train on a random real subset (pre-normalised floats on the device)
  fixed-noaug   the same without the flip augmentation (isolates its cost)
  fixed-channels-last, fixed-bf16  the fixed-set loop with --proxy-memory-format channels_last, or
                under --proxy-precision bf16 autocast
  real-stream   TrainingProxy.train over the whole training part (uint8 on the device, normalised per batch)
  generator     TrainingProxy.train on a d2m-stream: fresh generated images every step, drawn once
                per seed and replayed to every architecture (the generation is outside the clock)
  generator-live  the same loop generating every batch as it trains (what one architecture costs
                when the stream cannot be kept: more than 1 GiB of images)
Measurements are interleaved (bare, fixed-set, ... then again) and the median of --repeats is
kept, so drifting load from other jobs hits every loop alike. Prints one JSON line per
(architecture, setting, loop) and a summary line per setting with the median ratio to bare.

The generator stream uses --generator RUN when given; otherwise an untrained generator with the
`cpu` distillation preset's shape (speed does not depend on the weights; the JSON says which).

    OMP_NUM_THREADS=1 python benchmarks/proxy_throughput.py --threads 1 --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from d2m_nas.data import load_dataset, split_train_val
from d2m_nas.devices import resolve_device, synchronize
from d2m_nas.distill_runs import PRESETS, generator_config_for
from d2m_nas.generator_files import save_generator
from d2m_nas.proxies import ProxyContext, TrainingProxy, TrainingProxyConfig
from d2m_nas.settings import resolve_data_root
from distill.generator import Generator
from search_spaces.registry import create_space


def parse_settings(text: str) -> list[tuple[int, int, int]]:
    """'8x1:40,16x5:8' -> [(channels, cells, steps), ...]"""
    out = []
    for part in text.split(","):
        shape, steps = part.split(":")
        channels, cells = shape.split("x")
        out.append((int(channels), int(cells), int(steps)))
    return out


def bare_loop(model, images, labels, steps: int, config: TrainingProxyConfig, device) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    model.train()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def proxy_loop(proxy: TrainingProxy, model, context: ProxyContext, device, live: bool = False) -> float:
    source = proxy.image_source(context)  # built before the clock starts (once per seed in a real run)
    if live:
        source = proxy.live_stream(device)
    synchronize(device)
    start = time.perf_counter()
    proxy.train(model, source, context.seed)
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--settings", default="8x1:40,16x5:6", help="CHANNELSxCELLS:STEPS,... (default: 8x1:40,16x5:6)")
    parser.add_argument("--archs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ipc", type=int, default=50)
    parser.add_argument("--val-per-class", type=int, default=200, help="held-out images per class (default: 200)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--generator", default=None, help="a distill run directory for the generator stream")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "proxy_throughput"))
    parser.add_argument("--loops", type=lambda text: text.split(","), metavar="A,B",
                        help="the loops to measure beside bare (default: all)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, resolve_data_root(args.data_root))
    train, val = split_train_val(dataset.y_train, args.val_per_class, 0)
    space = create_space("nasbench201")
    archs = space.sample(args.archs, args.seed)

    generator = args.generator
    generator_kind = "given"
    if generator is None:  # speed only: an untrained generator of the cpu preset's shape
        torch.manual_seed(0)
        model = Generator(generator_config_for(PRESETS["cpu"], dataset))
        generator = str(save_generator(model, Path(args.workdir) / "generator.pt",
                                       {"dataset": dataset.name, "mean": list(dataset.mean), "std": list(dataset.std)}))
        generator_kind = "untrained, cpu preset shape"

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
               "device": str(device), "torch": torch.__version__, "generator": generator_kind}
    for channels, cells, steps in parse_settings(args.settings):
        base = TrainingProxyConfig(steps=steps, batch_size=args.batch_size, ipc=args.ipc)
        proxies = {"fixed-set": TrainingProxy(base),
                   "fixed-noaug": TrainingProxy(TrainingProxyConfig(steps=steps, batch_size=args.batch_size,
                                                                    ipc=args.ipc, augment="none")),
                   "real-stream": TrainingProxy(TrainingProxyConfig(source="real-stream", steps=steps,
                                                                    batch_size=args.batch_size)),
                   "generator": TrainingProxy(TrainingProxyConfig(source="d2m-stream", steps=steps,
                                                                  batch_size=args.batch_size, generator=generator))}
        proxies["generator-live"] = proxies["generator"]
        proxies["fixed-channels-last"] = TrainingProxy(replace(base, memory_format="channels_last"))
        proxies["fixed-bf16"] = TrainingProxy(replace(base, precision="bf16"))
        proxies = {name: proxy for name, proxy in proxies.items() if args.loops is None or name in args.loops}
        context = ProxyContext(space=space, dataset=dataset, device=device, seed=args.seed,
                               model_options={"channels": channels, "cells_per_stage": cells},
                               train_indices=train, val_indices=val)
        fixed = TrainingProxy(base).image_source(context)
        x, y = fixed.images[:args.batch_size], fixed.labels[:args.batch_size]
        ratios: dict[str, list[float]] = {name: [] for name in proxies}
        for arch in archs:
            seconds: dict[str, list[float]] = {"bare": [], **{name: [] for name in proxies}}
            bare_loop(context.build(arch), x, y, 2, base, device)  # warm-up (allocator, kernels)
            for _ in range(args.repeats):
                seconds["bare"].append(bare_loop(context.build(arch), x, y, steps, base, device))
                for name, proxy in proxies.items():
                    seconds[name].append(proxy_loop(proxy, context.build(arch), context, device,
                                                    live=name == "generator-live"))
            # The fastest repeat estimates the loop's own cost best when other jobs share the cores
            # (contention only ever adds time); the median is printed too.
            bare_best = steps * args.batch_size / min(seconds["bare"])
            bare_median = steps * args.batch_size / statistics.median(seconds["bare"])
            for name, values in seconds.items():
                best = steps * args.batch_size / min(values)
                median = steps * args.batch_size / statistics.median(values)
                row = {"arch": arch, "channels": channels, "cells": cells, "loop": name, "steps": steps,
                       "batch_size": args.batch_size, "images_per_second_best": round(best, 2),
                       "images_per_second_median": round(median, 2), "ratio_to_bare_best": round(best / bare_best, 4),
                       "ratio_to_bare_median": round(median / bare_median, 4),
                       "seconds": [round(v, 4) for v in values], **machine}
                if name != "bare":
                    ratios[name].append(best / bare_best)
                print(json.dumps(row), flush=True)
        print(json.dumps({"summary": True, "channels": channels, "cells": cells, "steps": steps, "archs": len(archs),
                          "repeats": args.repeats,
                          "median_over_archs_of_best_ratio_to_bare": {k: round(statistics.median(v), 4)
                                                                      for k, v in ratios.items()},
                          **machine}), flush=True)


if __name__ == "__main__":
    main()
