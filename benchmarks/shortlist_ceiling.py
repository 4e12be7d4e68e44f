"""How good can a screened shortlist be? For a proxy scored on (nearly) the whole space by `d2m-nas
rank`, draw random pools of P architectures, keep the K best by the proxy, and report the best true
accuracy among those K (the ceiling of any ranking that only sees the shortlist) and the truth of
the proxy's own pick, averaged over seeds. Used to size a funnel search before running it, on
seeds other than the search's.

    d2m-nas rank --proxy params --sample 15625 --ground-truth cifar10:test:200 --out RUN
    python benchmarks/shortlist_ceiling.py RUN --proxy params --pools 100,300,1000,3000 --keep 10,30,100 \
        --seeds 100-109
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a `d2m-nas rank` run directory (its results.csv)")
    p.add_argument("--proxy", default="params")
    p.add_argument("--pools", default="100,300,1000,3000", help="pool sizes P, comma-separated")
    p.add_argument("--keep", default="10,30,100", help="shortlist sizes K, comma-separated")
    p.add_argument("--seeds", default="100-109", help="FIRST-LAST: the pools' seeds")
    return p.parse_args(argv)


def ceilings(scores: np.ndarray, truths: np.ndarray, pool: int, keep: int, seeds: range) -> dict:
    best, picks = [], []
    for seed in seeds:
        drawn = np.random.default_rng(seed).choice(len(scores), pool, replace=False)
        order = drawn[np.argsort(-scores[drawn], kind="stable")]
        best.append(truths[order[:keep]].max())
        picks.append(truths[order[0]])
    return {"pool": pool, "keep": keep, "seeds": len(seeds), "best_in_shortlist_mean": float(np.mean(best)),
            "best_in_shortlist_std": float(np.std(best, ddof=1)) if len(best) > 1 else None,
            "proxy_pick_mean": float(np.mean(picks))}


def main(argv=None) -> int:
    args = parse_args(argv)
    frame = pd.read_csv(args.run / "results.csv")
    frame = frame[(frame["proxy"] == args.proxy) & frame["score"].notna() & frame["truth"].notna()]
    first, last = (int(x) for x in args.seeds.split("-"))
    for pool in (int(x) for x in args.pools.split(",")):
        for keep in (int(x) for x in args.keep.split(",")):
            if keep <= pool <= len(frame):
                row = ceilings(frame["score"].to_numpy(float), frame["truth"].to_numpy(float), pool, keep,
                               range(first, last + 1))
                print(json.dumps({"benchmark": "shortlist_ceiling", "proxy": args.proxy, "archs": len(frame),
                                  "truth_column": str(frame["truth_column"].iloc[0]), **row}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
