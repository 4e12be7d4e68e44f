"""Peak memory of `d2m-nas rank` as the sample grows (issue 13's target: at all 15,625 NAS-Bench-201
cells within 10 % of that at 1,000 cells, with a zero-cost proxy: results streamed to disk, not
held). Each size runs as its own child of a fresh wrapper process, whose RUSAGE_CHILDREN maximum
resident size is that run's peak alone. Prints one JSON line per size and a summary line.

    python benchmarks/rank_memory.py --sizes 1000,15625 --proxy params --data-root DATA_ROOT --out OUT
    python benchmarks/rank_memory.py --tiny --out OUT        # fake table, small sizes: checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Runs the command given in argv as a child and prints the child's peak resident size (KiB on Linux).
WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)"
           ".returncode; print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)")


def peak_rss_mb(command: list[str], env: dict) -> tuple[float, int, float]:
    """(peak resident MiB, exit code, wall seconds) of `command` run alone in a fresh wrapper."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, env=env,
                          cwd=REPO)
    kib, code = done.stdout.split()
    scale = 2**20 if sys.platform == "darwin" else 2**10  # macOS reports bytes
    return int(kib) / scale, int(code), time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,15625", help="sample sizes, comma-separated (default: 1000,15625)")
    p.add_argument("--proxy", default="params", help="zero-cost proxy (default: params)")
    p.add_argument("--data-root", type=Path)
    p.add_argument("--tiny", action="store_true", help="a made-up table and sizes 10,40: checks the script")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "d2m-nas-rank-memory")
    args = p.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    extra = ["--data-root", str(args.data_root)] if args.data_root else []
    sizes = [10, 40] if args.tiny else [int(s) for s in args.sizes.split(",")]
    if args.tiny:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from rank_workers import tiny_table

        extra += ["--ground-truth-file", str(tiny_table(args.out))]
    rows = []
    for size in sizes:
        out = args.out / f"sample-{size}"
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, "-m", "d2m_nas", "rank", "--proxy", args.proxy, "--sample", str(size),
                   "--ground-truth", "cifar10:test:200", "--device", "cpu", "--threads", "1", "--bootstrap", "100",
                   "--out", str(out), *extra]
        peak, code, wall = peak_rss_mb(command, env)
        rows.append({"sample": size, "proxy": args.proxy, "peak_rss_mb": round(peak, 1), "wall_s": round(wall, 1),
                     "returncode": code})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"summary": True, "peak_ratio_last_to_first": rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"],
                      "machine": platform.processor() or platform.machine(), "python": platform.python_version()}))
    return 0 if all(r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
