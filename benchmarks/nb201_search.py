"""Search NAS-Bench-201 on CIFAR-10 with cheap proxies: which loop finds the better architecture
for the same number of evaluations, and at what wall-clock?

For each proxy and each search (Optuna TPE, Optuna random, NNI regularised evolution), R seeds
of the same evaluation budget; each search picks the architecture with the best proxy score and
we look up its true 200-epoch CIFAR-10 test accuracy (`cifar10_test_acc` of the NAS-Bench-201
table: never seen by the search). Prints one JSON line per search and one per (proxy, search)
with mean ± std over seeds, plus the table's reference points; every evaluation lands in
OUT/<proxy>-<backend>-<strategy>/results.csv (the search-trajectory data).

Each (proxy, search) gets its own score cache, so no search is sped up by another's scores;
wall-clock is that of the search process (proxy + search loop + storage), proxy_s the proxy alone.
Zero-cost proxies score full-size candidates (C16, N5); training-based proxies (d2m,
random-subset, ...: docs/method.md §3) train scaled-down ones (--train-channels, --train-cells) for
--steps SGD steps and score them on the CLI's default validation split (200 per class, seed 0).

    OMP_NUM_THREADS=1 python benchmarks/nb201_search.py --proxies params,synflow --trials 100 --seeds 5
    OMP_NUM_THREADS=1 python benchmarks/nb201_search.py --proxies d2m,random-subset --generator RUN \
        --ipc 10 --steps 200 --trials 20 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d2m_nas.proxies import ProxyContext, TrainingProxy, TrainingProxyConfig, create_proxy  # noqa: E402
from d2m_nas.proxies import proxy_needs_data  # noqa: E402
from d2m_nas.search import SearchConfig, run_search  # noqa: E402
from d2m_nas.settings import resolve_data_root  # noqa: E402
from search_spaces.ground_truth import GroundTruth  # noqa: E402
from search_spaces.registry import create_space  # noqa: E402

SEARCHES = (("optuna", "tpe"), ("optuna", "random"), ("nni", "evolution"))
TRUTH_KEY = "cifar10:test:200"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxies", default="params,synflow", help="proxies, comma-separated (zero-cost, or "
                        "training-based: d2m, random-subset, ...)")
    parser.add_argument("--generator", help="distill run directory, for the d2m proxies")
    parser.add_argument("--dm-set", help="synthetic set file, for the dm proxy")
    parser.add_argument("--ipc", type=int, default=10, help="training proxies: images per class (default: 10)")
    parser.add_argument("--steps", type=int, default=200, help="training proxies: SGD steps (default: 200)")
    parser.add_argument("--train-channels", type=int, default=8,
                        help="training proxies: candidates' channels C (default: 8; zero-cost proxies use 16)")
    parser.add_argument("--train-cells", type=int, default=1,
                        help="training proxies: candidates' cells per stage N (default: 1; zero-cost proxies use 5)")
    parser.add_argument("--searches", default=",".join(f"{b}:{s}" for b, s in SEARCHES),
                        help="BACKEND:STRATEGY list (default: optuna:tpe,optuna:random,nni:evolution)")
    parser.add_argument("--trials", type=int, default=100, help="evaluations per search (default: 100)")
    parser.add_argument("--proxy-budget", type=float, help="optuna searches: proxy seconds per search (evaluations "
                        "not answered by the cache, pruned work included); --trials still caps it")
    parser.add_argument("--proxy-batch-size", type=int, default=64, help="training proxies: batch (default: 64)")
    parser.add_argument("--pruner", default="none", help="optuna with a training proxy: none, median, halving, "
                        "hyperband (default: none)")
    parser.add_argument("--warm-start", help="optuna: PROXY:K, the top K of a zero-cost proxy evaluated first")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..R-1 per search (default: 5)")
    parser.add_argument("--population", type=int, default=20, help="evolution population (default: 20)")
    parser.add_argument("--tournament", type=int, default=5, help="evolution tournament size (default: 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--data-root", type=Path, help="default: $D2M_NAS_DATA")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "nb201_search")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data_root = resolve_data_root(args.data_root)
    table = GroundTruth.from_data_root(data_root)
    truths = table.column(TRUTH_KEY)
    twelve = table.column("cifar10:test:12")
    references = {"truth_column": truths.name, "optimum": float(truths.max()),
                  "twelve_epoch_pick_truth": float(truths[twelve.idxmax()]),
                  "mean_of_space": float(truths.mean()), "n_archs": int(len(truths))}
    print(json.dumps({"kind": "references", **references, "machine": platform.processor() or platform.machine(),
                      "threads": args.threads, "torch": torch.__version__}), flush=True)

    space = create_space("nasbench201")
    dataset = train_indices = val_indices = None
    training = TrainingProxyConfig(ipc=args.ipc, steps=args.steps, batch_size=args.proxy_batch_size,
                                   generator=args.generator, dm_set=args.dm_set)
    searches = [tuple(item.split(":")) for item in args.searches.split(",")]
    for proxy_name in args.proxies.split(","):
        proxy = create_proxy(proxy_name, training)
        if proxy_needs_data(proxy_name) and dataset is None:
            from d2m_nas.data import load_dataset, split_train_val

            dataset = load_dataset("cifar10", data_root)
            from d2m_nas.settings import DEFAULT_VAL_PER_CLASS

            train_indices, val_indices = split_train_val(dataset.y_train, DEFAULT_VAL_PER_CLASS, 0)  # the CLI's split
        model_options = {"channels": 16, "cells_per_stage": 5}
        if isinstance(proxy, TrainingProxy):
            proxy.check(dataset, train_indices)
            model_options = {"channels": args.train_channels, "cells_per_stage": args.train_cells}
        for backend, strategy in searches:
            run_dir = args.out / f"{proxy_name}-{backend}-{strategy}"
            optuna_only = {"proxy_budget": args.proxy_budget, "warm_start": args.warm_start,
                           "pruner": args.pruner if isinstance(proxy, TrainingProxy) else "none"}
            config = SearchConfig(backend=backend, strategy=strategy, trials=args.trials, seed=0,
                                  study=f"{proxy_name}-{backend}-{strategy}", population=args.population,
                                  tournament=args.tournament, progress=False,
                                  **(optuna_only if backend == "optuna" else {}))
            context = ProxyContext(space=space, dataset=dataset, seed=0, model_options=model_options,
                                   train_indices=train_indices, val_indices=val_indices)
            started = time.perf_counter()
            summary = run_search(proxy, context, config, run_dir, repeat=args.seeds, truths=truths,
                                 truth_column=truths.name, references=references)
            total = time.perf_counter() - started
            [entry] = summary["searches"]  # one proxy, backend and strategy per run directory
            for s in entry["studies"].values():
                print(json.dumps({"kind": "search", "proxy": proxy_name, "backend": backend, "strategy": strategy,
                                  "seed": s["seed"], "trials": s["trials"], "distinct_archs": s["distinct_archs"],
                                  "best_arch": s["best_arch"], "best_score": s["best_score"],
                                  "best_truth": s["best_truth"], "regret": s["regret"],
                                  "best_truth_seen": s["best_truth_seen"], "proxy_s": round(s["cost_s"], 3),
                                  "wall_s": round(s["search_s"], 3)}), flush=True)
            print(json.dumps({"kind": "aggregate", "proxy": proxy_name, "backend": backend, "strategy": strategy,
                              "seeds": len(entry["studies"]), "trials": args.trials,
                              "best_truth_mean": entry["best_truth"]["mean"],
                              "best_truth_std": entry["best_truth"]["std"], "regret_mean": entry["regret"]["mean"],
                              "proxy_s_mean": entry["cost_s"]["mean"], "wall_s_mean": entry["search_s"]["mean"],
                              "wall_s_total": round(total, 1), "results": str(run_dir / "results.csv")}),
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
