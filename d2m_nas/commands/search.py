"""`d2m-nas search`: search an architecture space with Optuna or NNI using a cheap proxy."""

from __future__ import annotations

from dataclasses import dataclass

from d2m_nas.commands import (add_download_option, add_size_options, add_split_options, check_cache, proxy_context,
                              read_ground_truth, space_named, warn_if_other_dataset)
from d2m_nas.commands.option_types import COUNT, COUNTS, POSITIVE

HELP = "search an architecture space with Optuna or NNI using a cheap proxy"
DESCRIPTION = """Ask a search backend (Optuna or NNI) for architectures, score each with a proxy through a
score cache, and record every evaluation in RUN_DIR/results.csv (trial, architecture, proxy
score and seconds, and the true accuracy from --ground-truth for reporting only: the search never
sees it). Stops at --trials finished evaluations of the study or after --time-budget seconds.

Re-running the same command resumes: the study lives in Optuna storage (default: sqlite in the
run directory, which defaults to runs/search/<study>), and scores already computed come from the
cache. --workers N searches with N processes on this machine (training-based proxies gain most);
separately started processes share a study with --storage journal:FILE.log; several machines
with --storage postgresql://USER:PASSWORD@HOST:PORT/DB --study NAME, started on each.
The study opens in optuna-dashboard (optuna-dashboard sqlite:///RUN_DIR/study.db).

Backends and strategies: optuna: tpe, random, nsga2 (maximise the score, minimise --cost);
nni: evolution (regularised evolution), random, tpe (in-process, NNI 3.0); funnel: rank-average,
stage-wise, stage-cuts (an ensemble's zero-cost part screens --warm-start-pool architectures, or
stage by stage with --funnel: params over 3,000, then the vote over the best 100; its training
part trains the top --trials; rank-average cuts and picks by the rank average of every component
scored so far, stage-wise by each stage's own components: the pick by the trained ones alone;
stage-cuts cuts as stage-wise and picks as rank-average).

examples:
  d2m-nas search --space nasbench201 --proxy synflow --trials 100 --ground-truth cifar10:test:200
  d2m-nas search --backend nni --strategy evolution --proxy params --trials 50 --repeat 3
  d2m-nas search --proxy synflow --strategy nsga2 --cost params --trials 100
  d2m-nas search --proxy d2m --generator runs/d2m --ipc 10 --steps 200 --channels 8 --cells 1 --trials 50
  d2m-nas search --proxy random-subset@tse_e --ipc 500 --steps 400 --proxy-batch-size 128 --channels 8 \
      --cells 1 --pruner hyperband --warm-start synflow:10 --trials 50
  d2m-nas search --proxy zc-vote --trials 100     # an ensemble, ranked against --ensemble-reference archs
"""
WRITES_RUN_DIR = True


def add_arguments(parser) -> None:
    from d2m_nas.commands.proxy_options import add_proxy_options
    from d2m_nas.proxies import list_proxies
    from d2m_nas.search.backends import backend_class, list_backends
    from d2m_nas.search.driver import COST_METRICS, PRUNERS

    parser.add_argument("--space", default="nasbench201", help="search space (default: nasbench201)")
    parser.add_argument("--backend", default="optuna", help=f"{', '.join(list_backends())} (default: optuna)")
    parser.add_argument("--strategy", help="; ".join(
        f"{name}: {', '.join(backend_class(name).strategies)} (default {backend_class(name).strategies[0]})"
        for name in list_backends()))
    parser.add_argument("--proxy", metavar="NAME", help=f"proxy to score with (required): {', '.join(list_proxies())}; a training-based "
                        "one may carry its own budget, NAME[ipc=K,steps=N,...], and score rule, NAME@RULE; any may set its "
                        "own network size, NAME[channels=C,cells=N]")
    parser.add_argument("--trials", type=COUNT, default=20, metavar="N",
                        help="stop when the study holds N finished evaluations (default: 20)")
    parser.add_argument("--time-budget", type=POSITIVE, metavar="S",
                        help="start no trial after S seconds of searching, per repeat (storage set-up excluded; "
                        "a trial in progress finishes)")
    parser.add_argument("--proxy-budget", type=POSITIVE, metavar="S",
                        help="optuna: start no trial once the study has spent S proxy seconds (evaluations not "
                             "answered by the cache, pruned ones included): searches compared at equal cost")
    parser.add_argument("--storage", metavar="URL", help="Optuna storage: sqlite:///FILE.db (default: RUN_DIR/study.db), "
                        "journal:FILE.log, postgresql://USER:PASSWORD@HOST:PORT/DB")
    parser.add_argument("--study", metavar="NAME", help="study name (default: SPACE-PROXY-BACKEND-STRATEGY-seedS); "
                        "with --repeat R, NAME-seedS per repeat")
    parser.add_argument("--repeat", type=COUNT, default=1, metavar="R",
                        help="independent searches with seeds --seed ... --seed+R-1 (default: 1)")
    parser.add_argument("--ground-truth", metavar="KEY",
                        help="true-accuracy column written next to each evaluation for reports, e.g. cifar10:test:200")
    parser.add_argument("--ground-truth-file", metavar="CSV",
                        help="ground-truth CSV (default: <data-root>/nb201/nb201_ground_truth.csv)")
    parser.add_argument("--cost", default="params", help=f"nsga2's second objective, minimised: "
                        f"{' or '.join(COST_METRICS)} (proxy seconds) (default: params)")
    parser.add_argument("--population", type=COUNT, default=20,
                        help="population of nsga2 and of NNI regularised evolution (default: 20)")
    parser.add_argument("--tournament", type=COUNT, default=5,
                        help="NNI regularised evolution: sample size of each tournament (default: 5)")
    parser.add_argument("--pruner", default="none", choices=PRUNERS,
                        help="multi-fidelity search (optuna, training-based proxies): the proxy reports its score "
                             "rule at every --checkpoints fraction of --steps and the pruner stops poor candidates "
                             "early; pruned trials are recorded with their partial score and seconds (default: none)")
    parser.add_argument("--warm-start", metavar="PROXY:K",
                        help="optuna: score --warm-start-pool seeded architectures with a cheap proxy or vote (e.g. "
                             "synflow:10, zc-vote:10) and evaluate its top K first; that scoring counts as proxy seconds")
    parser.add_argument("--warm-start-pool", type=COUNT, default=200, metavar="M",
                        help="architectures the warm-start proxy ranks; for the funnel backend, the pool its "
                             "ensemble's zero-cost part screens down to --trials finalists (default: 200)")
    parser.add_argument("--funnel", type=COUNTS, metavar="M1,M2",
                        help="funnel backend, an ensemble with counted (params, flops) and other zero-cost parts: "
                             "the architectures entering each screening stage, e.g. 3000,100 (params over a pool "
                             "of 3,000, the vote over its best 100, training of the best --trials)")
    parser.add_argument("--heartbeat", type=COUNT, default=60, metavar="S",
                        help="RDB storages: heartbeat interval; a trial silent for 2S is failed and retried (default: 60)")
    parser.add_argument("--cache", metavar="FILE|URL", help="score cache: a SQLite file or postgresql://... "
                        "(default: the --storage database when it is PostgreSQL, else RUN_DIR/cache.sqlite); share "
                        "one between runs (search and rank) to reuse scores and never compute one twice")
    parser.add_argument("--dataset", default="cifar10",
                        help="dataset whose training images feed data-dependent proxies (default: cifar10)")
    parser.add_argument("--zc-batch-size", "--batch-size", dest="batch_size", type=COUNT, default=64, metavar="N",
                        help="the zero-cost proxies' minibatch (snip, grad_norm, jacob_cov, naswot; default: 64); a "
                             "training proxy's is --proxy-batch-size")
    parser.add_argument("--workers", type=COUNT, default=1, metavar="N",
                        help="optuna: processes searching side by side on this machine (this one and N-1 more), one "
                             "torch thread each unless --threads says otherwise (default: 1); they share the study "
                             "(--storage, default RUN_DIR/study.db) and the score cache, so no architecture is scored "
                             "twice. Pays off for training-based proxies; which worker proposes what then depends on "
                             "timing, so the trial sequence is not reproducible, and the study may end up to N-1 "
                             "trials over --trials")
    add_split_options(parser)
    add_download_option(parser)
    add_size_options(parser)
    add_proxy_options(parser)


def _references(ground_truth, truths) -> dict:
    """The reference lines of a search trajectory: the table's optimum for the truth column and,
    for a NAS-Bench-201 table, the 200-epoch value of its 12-epoch column's pick."""
    if ground_truth.kind == "nasbench201-table":
        from d2m_nas.report import table_references

        return table_references(ground_truth, truths.name)
    return {"truth_column": truths.name, "optimum": float(truths.max()), "optimum_arch": str(truths.idxmax())}


@dataclass
class Inputs:
    """What `search` runs, checked: built alike by the command and by each of its --workers."""
    space: object
    config: object
    proxy: object
    warm_proxy: object
    dataset: object
    train_indices: object
    val_indices: object
    needs_data: bool
    ground_truth: object
    truths: object
    truth_column: str
    references: dict | None

    def context(self, args, device):
        return proxy_context(args, device, self.space, self.dataset, self.train_indices, self.val_indices)


def read_inputs(args) -> Inputs:
    """The search's configuration, proxies, ground truth and data; one-line UserError for anything
    wrong, before any run directory is touched."""
    from d2m_nas.data import load_dataset, split_train_val
    from d2m_nas.errors import UserError
    from d2m_nas.commands.proxy_options import build_proxies
    from d2m_nas.proxies import TrainingProxy, ZeroCostProxy, create_proxy, proxy_needs_data
    from d2m_nas.proxies.ensemble import parse_definitions
    from d2m_nas.search.driver import SearchConfig
    from d2m_nas.search.backends import backend_class
    from d2m_nas.search.storage import check_storage_url
    from d2m_nas.settings import resolve_data_root

    if not args.proxy:
        raise UserError("--proxy NAME is required, e.g. --proxy synflow")
    space = space_named(args.space)
    try:
        strategy = args.strategy or backend_class(args.backend).strategies[0]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    base = args.study or f"{space.name}-{args.proxy}-{args.backend}-{strategy}" + (
        f"-seed{args.seed}" if args.repeat == 1 else "")
    try:
        config = SearchConfig(backend=args.backend, strategy=strategy, trials=args.trials,
                              time_budget=args.time_budget, proxy_budget=args.proxy_budget, seed=args.seed,
                              study=base, storage=args.storage,
                              cost_metric=args.cost, population=args.population, tournament=args.tournament,
                              heartbeat=args.heartbeat, pruner=args.pruner, warm_start=args.warm_start,
                              warm_start_pool=args.warm_start_pool, funnel=args.funnel)
        for option, given in (("--storage", args.storage is not None), ("--workers", args.workers > 1)):
            if given and not backend_class(args.backend).study_options:
                raise ValueError(f"{option} applies to the optuna backend; the {args.backend} backend resumes "
                                 "from its score cache")
        if args.storage is not None:
            check_storage_url(args.storage)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.batch_size < 2:
        raise UserError(f"--zc-batch-size must be at least 2, got {args.batch_size}")
    data_root = resolve_data_root(args.data_root)
    ground_truth, truths, truth_column, references = None, None, "", None
    if args.ground_truth:
        ground_truth, truth_column, truths = read_ground_truth(args, data_root)
        references = _references(ground_truth, truths)
    ensembles = parse_definitions(args.ensemble)
    needs_data = proxy_needs_data(args.proxy, ensembles)
    warm_proxy = None
    if config.warm_start:
        warm_spec = config.warm_start_spec()[0]
        warm_proxy = create_proxy(warm_spec, ensembles=ensembles)
        if not all(isinstance(c, ZeroCostProxy) for c in getattr(warm_proxy, "components", [warm_proxy])):
            raise UserError(f"--warm-start takes a zero-cost proxy or a zero-cost ensemble (e.g. synflow:10, "
                            f"zc-vote:10, synflow[channels=16,cells=5]:10), got {warm_spec!r}")
        needs_data = needs_data or proxy_needs_data(warm_spec, ensembles)  # e.g. naswot reads a batch
    dataset = load_dataset(args.dataset, data_root, args.download) if needs_data else None
    train_indices, val_indices = (split_train_val(dataset.y_train, args.val_per_class, args.split_seed) if dataset
                                  else (None, None))
    proxy = build_proxies([args.proxy], args, dataset, train_indices)[0]
    try:
        backend_class(config.backend)().check(proxy, config)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if config.pruner != "none" and not isinstance(proxy, TrainingProxy):
        raise UserError(f"--pruner {config.pruner} needs a training-based proxy (it stops training runs at their "
                        f"checkpoints); {args.proxy} has no intermediate scores")
    return Inputs(space, config, proxy, warm_proxy, dataset, train_indices, val_indices, needs_data, ground_truth,
                  truths, truth_column, references)


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    from d2m_nas.cli import set_threads, start_run
    from d2m_nas.errors import UserError
    from d2m_nas.score_cache import CacheError, default_cache
    from d2m_nas.search.optuna_backend import StudyMismatchError
    from d2m_nas.search.storage import StorageError
    from d2m_nas.search.run import run_studies, write_summary
    from d2m_nas.search.workers import local_workers
    from d2m_nas.report import search_tables

    inputs = read_inputs(args)
    if args.workers > 1 and args.threads is None:
        set_threads(1)  # one thread per process: two on one core spin-wait each other (many times slower)
    if args.out is None:
        args.out = Path("runs") / "search" / inputs.config.study  # deterministic, so the same command resumes
    check_cache(args.cache)
    device, out_dir = start_run(args, shared=True)  # workers of one study share the run directory
    if inputs.needs_data and inputs.truths is not None:  # once the inputs are known to be good: an error comes alone
        warn_if_other_dataset(args.dataset, inputs.ground_truth, args.ground_truth)
    cache = args.cache or default_cache(args.storage, out_dir)  # a PostgreSQL study's machines share its cache
    options = json.dumps({**vars(args), "out": str(out_dir), "cache": str(cache)}, default=str)
    try:
        with local_workers(args.workers - 1, "d2m_nas.commands.search:work_only", options) as processes:
            run_studies(inputs.proxy, inputs.context(args, device), inputs.config, out_dir, repeat=args.repeat,
                        cache_path=cache, truths=inputs.truths, truth_column=inputs.truth_column,
                        warm_proxy=inputs.warm_proxy)
    except (StorageError, StudyMismatchError, CacheError) as exc:
        raise UserError(str(exc)) from None
    failed = [process.returncode for process in processes if process.returncode != 0]
    if failed:
        print(f"d2m-nas search: warning: {len(failed)} of {len(processes)} worker processes stopped early (exit "
              f"{', '.join(map(str, failed))}); this process went on with the study", file=sys.stderr)
    summary = write_summary(out_dir, inputs.references)  # after the workers: their last rows are in
    print("\n".join(search_tables(summary["searches"], summary["references"])))
    print(f"wrote {out_dir / 'results.csv'}, {out_dir / 'summary.json'}")
    return 0


def work_only(args_json: str) -> int:
    """A --workers process: the same inputs as the command that started it, then search its
    studies beside it until they are full. Writes results.csv rows, the cache and the study."""
    import argparse
    import dataclasses
    import json
    import sys

    from d2m_nas.cli import set_threads
    from d2m_nas.devices import resolve_device
    from d2m_nas.errors import UserError
    from d2m_nas.score_cache import CacheError
    from d2m_nas.search.optuna_backend import StudyMismatchError
    from d2m_nas.search.run import run_studies
    from d2m_nas.search.storage import StorageError

    args = argparse.Namespace(**json.loads(args_json))
    set_threads(args.threads or 1)
    try:
        inputs = read_inputs(args)
        config = dataclasses.replace(inputs.config, progress=False)  # the command's own bar shows the study
        run_studies(inputs.proxy, inputs.context(args, resolve_device(args.device)), config, args.out,
                    repeat=args.repeat, cache_path=args.cache, truths=inputs.truths,
                    truth_column=inputs.truth_column, warm_proxy=inputs.warm_proxy)
    except (UserError, StorageError, StudyMismatchError, CacheError) as exc:
        print(f"d2m-nas search worker: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
