"""`d2m-nas rank --workers N` (or `search --workers N`): architectures per second of one sample
(or one search of as many trials) at several worker counts (issue 13's target here: 2 workers >=
1.8x one worker, one torch thread each, on a machine that runs nothing else). Each count gets a
fresh run directory, study and cache, so nothing is answered from another count's scores; the
wall clock is the whole command's (worker start-up, data loading and the report included), as a
user waits for it. Each row also gives the mean proxy seconds per architecture from results.csv:
how much slower each architecture trains beside the other workers, which caps the speed-up at
workers x (mean alone / mean together) however the work is shared out. Prints one JSON line per
count and a summary line.

    OMP_NUM_THREADS=1 python benchmarks/rank_workers.py --workers 1,2 --sample 12 --steps 100 \
        --data-root DATA_ROOT --out OUT
    python benchmarks/rank_workers.py --command search ...      # the same for a random search
    python benchmarks/rank_workers.py --tiny --out OUT      # fake data, seconds: checks the script only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # its sibling modules, also when a test loads it by path

from bounded_run import run_bounded  # noqa: E402


def rank_argv(args, sample: int, table: Path | None) -> list[str]:
    """The command measured: a training proxy at the frontier study's recipe (scaled by --steps),
    over a sample of `sample` architectures (rank) or a random search of `sample` trials."""
    sizes = (["--channels", "4", "--cells", "1", "--ipc", "2", "--steps", "2", "--proxy-batch-size", "8",
              "--val-per-class", "5", "--dataset", "fake"] if args.tiny else
             ["--channels", "8", "--cells", "1", "--ipc", str(args.ipc), "--steps", str(args.steps),
              "--proxy-batch-size", "128", "--dataset", args.dataset])
    common = ["--proxy", "random-subset@tse_e", "--seed", str(args.seed), "--ground-truth", "cifar10:test:200",
              "--device", args.device, "--threads", "1", *sizes]
    if getattr(args, "command", "rank") == "search":  # random: the proposals cost nothing beside training
        argv = ["search", *common, "--trials", str(sample), "--strategy", "random"]
    else:
        argv = ["rank", *common, "--sample", str(sample), "--bootstrap", "0"]
    if args.data_root:
        argv += ["--data-root", str(args.data_root)]
    if table is not None:
        argv += ["--ground-truth-file", str(table)]
    return argv


def measure(workers: list[int], argv: list[str], workdir: Path, device: str = "cpu",
            timeout: float | None = None, extra_env: dict[str, str] | None = None) -> list[dict]:
    """Run `d2m-nas <argv> --workers N` for each N into a fresh directory; one row per N. `timeout`
    bounds all the runs together; a run cut by it is recorded with its error, and the rest skipped.
    `extra_env` is added to the runs' environment (e.g. where an MPS daemon listens)."""
    ends = None if timeout is None else time.monotonic() + timeout
    rows = []
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", **(extra_env or {})}
    sample = int(argv[argv.index("--sample" if "--sample" in argv else "--trials") + 1])
    for count in workers:
        out = workdir / f"workers-{count}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        try:
            done = run_bounded([sys.executable, "-m", "d2m_nas", *argv, "--workers", str(count), "--out", str(out)],
                               None if ends is None else max(ends - time.monotonic(), 1), env=env, cwd=REPO)
        except subprocess.TimeoutExpired:
            rows.append({"workers": count, "archs": sample, "device": device, "error": "timed out"})
            break
        wall = time.perf_counter() - started
        error = done.stderr.strip().splitlines()[-1] if done.returncode != 0 and done.stderr.strip() else None
        rows.append({"workers": count, "archs": sample, "wall_s": round(wall, 3),
                     "archs_per_s": sample / wall, "mean_proxy_s": mean_proxy_seconds(out), **time_split(out),
                     "device": device, "returncode": done.returncode, "error": error})
    for row in rows:
        measured = "archs_per_s" in row and rows[0]["workers"] == 1 and "archs_per_s" in rows[0]
        row["speedup_over_1"] = row["archs_per_s"] / rows[0]["archs_per_s"] if measured else None
        alone, together = rows[0].get("mean_proxy_s"), row.get("mean_proxy_s")
        row["cap_from_slowdown"] = (row["workers"] * alone / together if measured and alone and together else None)
        row.update(paired_slowdown(workdir / f"workers-{rows[0]['workers']}", workdir / f"workers-{row['workers']}"))
    return rows


def proxy_seconds(out: Path) -> dict[str, float]:
    """Seconds a training proxy spent on each architecture of a run's results.csv (rank: the rows of
    the proxy's own score rule; search: every trial), cached rows left out."""
    import pandas as pd

    path = out / "results.csv"
    if not path.is_file():
        return {}
    frame = pd.read_csv(path)
    if "cached" in frame:
        frame = frame[frame["cached"] == 0]
    if "proxy" in frame and len(frame):
        frame = frame[frame["proxy"] == frame["proxy"].iloc[0]]  # one row per architecture
    return frame.groupby("arch")["seconds"].mean().to_dict()


def mean_proxy_seconds(out: Path) -> float | None:
    seconds = proxy_seconds(out)
    return sum(seconds.values()) / len(seconds) if seconds else None


def paired_slowdown(first: Path, other: Path) -> dict:
    """The mean seconds of the architectures both runs trained, in each: a search's helper draws
    architectures of its own, so only these compare one worker with several on equal work."""
    alone, together = proxy_seconds(first), proxy_seconds(other)
    common = sorted(set(alone) & set(together))
    if not common:
        return {}
    return {"common_archs": len(common), "common_mean_s_first": sum(alone[a] for a in common) / len(common),
            "common_mean_s": sum(together[a] for a in common) / len(common)}


def time_split(out: Path) -> dict:
    """Mean seconds per architecture spent training and scoring the validation split (a rank's
    curves.jsonl: cumulative training seconds and each checkpoint's evaluation); {} without it."""
    path = out / "curves.jsonl"
    if not path.is_file():
        return {}
    train, evaluation = [], []
    for line in path.read_text().splitlines():
        checkpoints = json.loads(line)["trace"]["checkpoints"]
        if checkpoints:
            train.append(checkpoints[-1]["train_seconds"])
            evaluation.append(sum(point["eval_seconds"] for point in checkpoints))
    return {"mean_train_s": sum(train) / len(train), "mean_eval_s": sum(evaluation) / len(evaluation)} if train else {}


def tiny_table(workdir: Path) -> Path:
    """A stand-in NAS-Bench-201 table (every cell, made-up accuracies) for runs on fake data."""
    import pandas as pd

    sys.path.insert(0, str(REPO))
    from search_spaces.nasbench201 import all_archs

    archs = list(all_archs())
    path = workdir / "table.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"nb201_index": range(len(archs)), "arch_str": archs,
                  "cifar10_test_acc": [50 + i % 37 for i in range(len(archs))]}).to_csv(path, index=False)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--command", choices=("rank", "search"), default="rank", help="what to measure (default: rank)")
    p.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default: 1,2)")
    p.add_argument("--sample", type=int, default=12, help="architectures, or search trials (default: 12)")
    p.add_argument("--steps", type=int, default=100, help="training steps per architecture (default: 100)")
    p.add_argument("--ipc", type=int, default=500, help="real images per class of the proxy's set (default: 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-root", type=Path)
    p.add_argument("--tiny", action="store_true", help="fake data, 4 archs, 2 steps: checks the script only")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "d2m-nas-rank-workers")
    args = p.parse_args(argv)
    table = tiny_table(args.out) if args.tiny else None
    rows = measure([int(w) for w in args.workers.split(",")], rank_argv(args, 4 if args.tiny else args.sample, table),
                   args.out, args.device)
    for row in rows:
        print(json.dumps(row), flush=True)
    sys.path.insert(0, str(REPO))
    from d2m_nas.run_dir import cpu_model

    print(json.dumps({"summary": True, "command": args.command, "machine": cpu_model(),
                      "cpus": os.cpu_count(), "speedups": {r["workers"]: r["speedup_over_1"] for r in rows},
                      "caps_from_slowdown": {r["workers"]: r["cap_from_slowdown"] for r in rows}}))
    return 0 if all(r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
