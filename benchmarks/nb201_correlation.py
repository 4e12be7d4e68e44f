"""Training-based proxies on NAS-Bench-201 CIFAR-10: does a short training run on D2M images rank
architectures better, per second, than real images, DM images and zero-cost proxies?

Everything runs through `d2m-nas rank` (the product's code path) on one seeded sample of K
architectures (the natural distribution: uniform over all 15,625 cells), against the 200-epoch
CIFAR-10 test accuracy of the NAS-Bench-201 table:

- main comparison, equal optimiser steps and batch, candidates scaled to --channels/--cells:
  d2m (fixed IPC set from the distilled generator), d2m-stream (fresh latents every step),
  pretrained-generator (the same run's generator before D2M, same IPC), random-subset (real
  images at the same count), real-stream (the whole training split), dm (a DM set);
- zero-cost proxies params, synflow, naswot at the networks' full size (C16, N5, as published);
- a budget sweep: d2m and random-subset at further (IPC, steps) points, so correlation can be
  read against cost;
- the free reference: the table's 12-epoch column on the same architectures, and a projection
  of what 12-epoch full-data training of one C16/N5 network costs on this machine (measured step
  time x steps; a projection, not a run).

Each group writes its own rank directory under --out (results.csv, summary.json), so rerunning
resumes, and `d2m-nas report OUT/*` / `d2m-nas plot OUT/*` read them. Prints one JSON line per
(group, proxy).

    OMP_NUM_THREADS=1 D2M_NAS_DATA=/path/to/data python benchmarks/nb201_correlation.py \
        --generator runs/distill/cpu --dm-set runs/distill/dm10/synthetic.pt --sample 50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRUTH_KEY = "cifar10:test:200"
TRAINING_PROXIES = ("d2m", "d2m-stream", "pretrained-generator", "random-subset", "real-stream", "dm")
ZERO_COST = ("params", "synflow", "naswot")


def _points(text: str) -> list[tuple[int, int]]:
    points = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        ipc, steps = item.split(":")
        points.append((int(ipc), int(steps)))
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", help="distill run directory (generator.pt and generator_pretrained.pt), "
                        "distilled on the same train/validation split; without it the generator proxies are skipped")
    parser.add_argument("--dm-set", help="DM synthetic set (synthetic.pt); without it the dm proxy is skipped")
    parser.add_argument("--sample", type=int, default=50, help="architectures (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="sample seed and first proxy seed (default: 0)")
    parser.add_argument("--proxy-seeds", type=int, default=1, help="proxy seeds per architecture (default: 1)")
    parser.add_argument("--ipc", type=int, default=10, help="images per class of fixed sets (default: 10)")
    parser.add_argument("--steps", type=int, default=100, help="optimiser steps of every training proxy (default: 100)")
    parser.add_argument("--channels", type=int, default=8, help="candidate channels C (default: 8)")
    parser.add_argument("--cells", type=int, default=1, help="candidate cells per stage N (default: 1)")
    parser.add_argument("--proxies", default=",".join(TRAINING_PROXIES), help="training proxies of the main comparison")
    parser.add_argument("--zero-cost", default=",".join(ZERO_COST), help="zero-cost proxies ('' for none)")
    parser.add_argument("--sweep", default="50:100,10:300", metavar="IPC:STEPS[,...]",
                        help="further budget points for --sweep-proxies ('' for none; default: 50:100,10:300)")
    parser.add_argument("--sweep-proxies", default="d2m,random-subset")
    parser.add_argument("--groups", default="main,zero-cost,sweep,reference",
                        help="which parts to run (default: all)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "nb201_correlation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    groups = {g.strip() for g in args.groups.split(",")}
    common = {"machine": f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cpus",
              "threads": args.threads, "device": args.device, "torch": torch.__version__,
              "command": " ".join(["python", "benchmarks/nb201_correlation.py"] + sys.argv[1:])}

    needs = {"dm": args.dm_set, "d2m": args.generator, "d2m-stream": args.generator,
             "pretrained-generator": args.generator}
    proxies = [p for p in args.proxies.split(",") if p and needs.get(p, True)]
    sweep_proxies = [p for p in args.sweep_proxies.split(",") if p and needs.get(p, True)]
    runs: list[tuple[str, list[str], dict]] = []
    if "main" in groups and proxies:
        runs.append((f"train-ipc{args.ipc}-steps{args.steps}", proxies, {"ipc": args.ipc, "steps": args.steps}))
    if "sweep" in groups:
        for ipc, steps in _points(args.sweep):
            if (ipc, steps) != (args.ipc, args.steps):
                runs.append((f"train-ipc{ipc}-steps{steps}", sweep_proxies, {"ipc": ipc, "steps": steps}))
    for name, names, budget in runs:
        if not names:
            continue
        argv = ["--channels", str(args.channels), "--cells", str(args.cells), "--ipc", str(budget["ipc"]),
                "--steps", str(budget["steps"]), "--proxy-seeds", str(args.proxy_seeds)]
        if args.generator:
            argv += ["--generator", args.generator]
        if args.dm_set and "dm" in names:
            argv += ["--dm-set", args.dm_set]
        status = _rank(args, name, names, argv, {**common, **budget, "channels": args.channels, "cells": args.cells})
        if status:
            return status
    zero_cost = [p for p in args.zero_cost.split(",") if p]
    if "zero-cost" in groups and zero_cost:
        status = _rank(args, "zero-cost", zero_cost, ["--channels", "16", "--cells", "5", "--batch-size", "64"],
                       {**common, "channels": 16, "cells": 5})
        if status:
            return status
    if "reference" in groups:
        print(json.dumps({"benchmark": "nb201_correlation", "group": "reference", **_reference(args), **common}),
              flush=True)
    return 0


def _rank(args, group: str, proxies: list[str], extra: list[str], settings: dict) -> int:
    from d2m_nas.cli import main as cli_main

    out = args.out / group
    argv = ["rank", "--space", "nasbench201", "--proxy", ",".join(proxies), "--sample", str(args.sample),
            "--ground-truth", TRUTH_KEY, "--dataset", "cifar10", "--seed", str(args.seed), "--device", args.device,
            "--out", str(out), *extra]
    if args.data_root:
        argv += ["--data-root", args.data_root]
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON lines
        status = cli_main(argv)
    if status:
        return status
    summary = json.loads((out / "summary.json").read_text())
    for name, entry in summary["proxies"].items():
        stats = entry["correlation"]
        rho, tau = stats["spearman"], stats["kendall"]
        print(json.dumps({
            "benchmark": "nb201_correlation", "group": group, "proxy": name, "n": stats["n"],
            "spearman": rho["value"], "spearman_ci95": [rho["ci_low"], rho["ci_high"]],
            "kendall_tau_b": tau["value"], "kendall_ci95": [tau["ci_low"], tau["ci_high"]],
            "top10pct_overlap": stats["top_k"].get("top10%", {}).get("overlap"),
            "regret": stats["regret"]["regret"], "seconds_per_arch": entry["seconds_per_arch"],
            "per_seed_spearman": entry["per_seed_spearman"], "ground_truth": summary["truth_column"],
            "sample_seed": args.seed, "proxy_seeds": args.proxy_seeds, "group_wall_s": round(time.perf_counter() - started, 1),
            **settings}), flush=True)
    return 0


def _reference(args) -> dict:
    """The 12-epoch column on the same sample, and the projected cost of producing it here."""

    from d2m_nas.correlation import correlation_summary
    from d2m_nas.ranking import sample_archs
    from d2m_nas.settings import resolve_data_root
    from search_spaces.ground_truth import GroundTruth
    from search_spaces.registry import create_space

    space = create_space("nasbench201")
    archs = sample_archs(space, args.sample, args.seed)
    table = GroundTruth.from_data_root(resolve_data_root(args.data_root))
    truth = table.column(TRUTH_KEY).reindex(archs)
    twelve = table.column("cifar10:test:12").reindex(archs)
    stats = correlation_summary(twelve.to_numpy(float), truth.to_numpy(float), top_k=(0.1, 10), seed=args.seed)
    step_s = _full_size_step_seconds(space, archs[:3], args.device)
    steps_12_epochs = 12 * 50_000 / 256  # NAS-Bench-201's 12-epoch schedule: batch 256 over the 50k training images
    rho = stats["spearman"]
    return {"proxy": "table-12-epoch", "n": stats["n"], "spearman": rho["value"],
            "spearman_ci95": [rho["ci_low"], rho["ci_high"]], "kendall_tau_b": stats["kendall"]["value"],
            "ground_truth": truth.name, "reference_column": twelve.name,
            "full_size_step_s_batch256": step_s, "projected_seconds_per_arch_12_epochs": step_s * steps_12_epochs,
            "projection": "measured mean step time (C16 N5, batch 256, SGD) x 2,344 steps; not a measured run"}


def _full_size_step_seconds(space, archs: list[str], device: str, steps: int = 3) -> float:
    """Mean seconds of one SGD step of full-size (C16, N5) networks at batch 256 (after a warm-up step)."""
    from d2m_nas.devices import synchronize

    device = torch.device(device)
    times = []
    for arch in archs:
        model = space.build(arch, num_classes=10, image_size=32, in_channels=3, channels=16,
                            cells_per_stage=5).to(device).train()
        optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = torch.randn(256, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (256,), device=device)
        for step in range(steps + 1):
            if step == 1:
                synchronize(device)
                start = time.perf_counter()
            optimiser.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()
        synchronize(device)
        times.append((time.perf_counter() - start) / steps)
    return sum(times) / len(times)


if __name__ == "__main__":
    raise SystemExit(main())
