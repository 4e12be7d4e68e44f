"""Does D2M help? Random real subset vs DM vs the pre-trained generator vs the D2M generator at
IPC 1/10/50 under ONE evaluation protocol, on one or several evaluation networks (--models: the
cross-architecture table), plus the cost of re-distilling each IPC.

Needs a finished `d2m-nas distill` run (generator_pretrained.pt and generator.pt) and, for DM, one
`d2m-nas distill --method dm --ipc K` run per IPC. Prints one JSON line per (method, IPC) and one
per IPC for the re-distillation cost; with --out, appends them to a file and skips pairs already
there, so a long benchmark can be run in pieces.

    python benchmarks/distill_accuracy.py --data-root DIR --d2m-run RUN --dm-run 10=RUN10 \
        --ipcs 10 --epochs 300 --runs 3 --test-per-class 200 --threads 1 --out results.jsonl

The protocol is d2m_nas.evaluation's (ConvNet-3, SGD 0.01, momentum 0.9, wd 5e-4, batch 256, DSA),
reduced by --epochs and a seeded class-balanced subset of the test split (--test-per-class); every
line records exactly what differs from the field's protocol.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from d2m_nas.data import DEFAULT_VAL_PER_CLASS, load_dataset, sample_per_class
from d2m_nas.generator_files import synthesize_from_generator
from d2m_nas.evaluation import evaluate_synthetic, field_protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling modules, also when a test loads it by path
from image_sets import METHODS, image_set  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--d2m-run", type=Path, help="finished D2M run directory")
    p.add_argument("--dm-run", action="append", default=[], metavar="IPC=DIR", help="DM run directory per IPC")
    p.add_argument("--ipcs", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS,
                   help="methods to evaluate (none: only the re-distillation cost)")
    p.add_argument("--models", nargs="+", default=[None], metavar="SPEC",
                   help="evaluation networks (cross-architecture: convnet, alexnet, vgg11, resnet18, their -bn "
                        "variants, timm:NAME; default: the protocol's ConvNet)")
    p.add_argument("--runs", type=int, default=3, help="evaluation runs (network seeds) per set")
    p.add_argument("--epochs", type=int, default=300, help="training epochs of the evaluation network")
    p.add_argument("--test-per-class", type=int, default=0, help="test images per class (0: the whole test split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random subset, generation and evaluation")
    p.add_argument("--val-per-class", type=int, default=DEFAULT_VAL_PER_CLASS,
                   help="validation images per class the random subset may not use; match the distillation runs' "
                        f"(default: {DEFAULT_VAL_PER_CLASS})")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="append JSON lines here; (method, ipc) pairs already there are skipped")
    return p.parse_args(argv)


def _emit(record: dict, out: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        with out.open("a") as f:
            f.write(line + "\n")


def _done(out: Path | None) -> set[tuple]:
    if out is None or not out.exists():
        return set()
    done = set()
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        done.add((rec["benchmark"], rec.get("method"), rec["ipc"], rec.get("model")))
    return done


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = load_dataset(args.dataset, args.data_root)
    if args.test_per_class:
        keep = sample_per_class(dataset.y_test, args.test_per_class, seed=args.seed)
        dataset = dataclasses.replace(dataset, x_test=dataset.x_test[keep], y_test=dataset.y_test[keep])
    config = dataclasses.replace(field_protocol(dataset.image_size), epochs=args.epochs)
    dm_runs = {int(k): Path(v) for k, v in (item.split("=", 1) for item in args.dm_run)}
    done = _done(args.out)
    common = {"dataset": args.dataset, "test_images": len(dataset.y_test), "threads": args.threads,
              "device": str(device), "seed": args.seed}

    configs = {model: dataclasses.replace(config, model=model) if model else config for model in args.models}
    for ipc in args.ipcs:
        for model, method in ((model, method) for method in args.methods for model in args.models):
            model_config = configs[model]
            if ("distill_accuracy", method, ipc, model_config.model_name()) in done:
                continue
            if method in ("pretrained", "d2m") and args.d2m_run is None:
                continue
            if method == "dm" and ipc not in dm_runs:
                continue
            synthetic = image_set(method, dm_runs.get(ipc) if method == "dm" else args.d2m_run, dataset, ipc,
                                  args.seed, args.val_per_class, device)
            if synthetic is None:
                raise SystemExit(f"{dm_runs[ipc]} holds a DM set at another IPC than {ipc}")
            report = evaluate_synthetic(synthetic, dataset, model_config, runs=args.runs, device=device,
                                        seed=args.seed, progress=False)
            _emit({"benchmark": "distill_accuracy", "method": method, "ipc": ipc,
                   "model": model_config.model_name(), "mean": report.mean,
                   "std": report.std, "accuracies": report.accuracies, "runs": args.runs,
                   "protocol": report.describe_setup(), "differences": report.differences,
                   "eval_seconds": report.seconds, **common}, args.out)

        if ("redistill_cost", None, ipc, None) in done or args.d2m_run is None:
            continue
        t0 = time.perf_counter()
        synthesize_from_generator(args.d2m_run, ipc, args.seed, device, "distilled")
        generate_s = time.perf_counter() - t0  # includes loading the checkpoint
        dm_summary = dm_runs.get(ipc, Path("/nonexistent")) / "summary.json"
        dm = json.loads(dm_summary.read_text())["dm"] if dm_summary.exists() else {}
        _emit({"benchmark": "redistill_cost", "ipc": ipc, "d2m_generate_seconds": generate_s,
               "dm_distill_seconds": dm.get("elapsed_s"), "dm_iterations": dm.get("step"),
               "dm_settings": dm.get("settings", {}).get("dm"), **common}, args.out)


if __name__ == "__main__":
    main()
