"""`d2m-nas rank`: score a seeded sample of architectures with proxies and correlate with ground truth."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from d2m_nas.commands import (add_download_option, add_size_options, add_split_options, add_top_k_option,
                              check_cache, parse_top_k, proxy_context, read_ground_truth, space_named,
                              warn_if_other_dataset)
from d2m_nas.commands.option_types import COUNT, WHOLE

HELP = "score a seeded sample of architectures with a proxy and correlate with ground truth"
DESCRIPTION = """Score K architectures of a space with one or more proxies and report Spearman and Kendall
(with bootstrap CIs), top-k overlap and regret against a named ground-truth column.

The sample is K distinct architectures drawn uniformly, with the seed, from the whole space
(for nasbench201 all 15,625 cells, isomorphic ones included, as in the published zero-cost
correlations), or the architectures a file lists (--archs: a search's finalists, a paper's cells).
Writes RUN_DIR/results.csv (one row per architecture, proxy and proxy seed), summary.json and
summary.md; rerunning with the same --out resumes.

Training-based proxies (d2m, d2m-stream, pretrained-generator, random-subset, real-stream, dm)
build each candidate at --channels/--cells, train it for --steps SGD steps on their images and
score it by accuracy on the validation split (--val-per-class images per class held out of the
training set; never the test set). --proxy-seeds R scores every architecture with proxy seeds
SEED..SEED+R-1 (weights, data draws, batch order) and correlates the mean score. Every score
rule (val_acc, val_loss, tse, tse_e, tse_ema; higher is better for each) is recorded from the same
run and reported as NAME@RULE; the learning curves go to RUN_DIR/curves.jsonl. Ensembles
(A+B[+...], zc-vote, or --ensemble NAME=A+B) are the rank average of their components over the
sample; their components are scored (and reported) too.

Ground-truth keys (NAS-Bench-201 table): DATASET:METRIC:EPOCHS with DATASET cifar10, cifar100 or
imagenet16-120, METRIC test or valid, EPOCHS 200 or 12, e.g. cifar10:test:200. With
--ground-truth-file pointing at a d2m-nas results CSV (column 'arch'), the key is a numeric
column of it, or PROXY:COLUMN.

examples:
  d2m-nas rank --space nasbench201 --proxy synflow,jacob_cov,params --sample 1000 --ground-truth cifar10:test:200
  d2m-nas rank --proxy d2m,random-subset --generator runs/distill --ipc 10 --steps 200 --channels 8 --cells 1 \
      --sample 50 --proxy-seeds 2 --ground-truth cifar10:test:200
  d2m-nas rank --proxy zc-vote,naswot+random-subset@tse_e --ipc 500 --steps 400 --proxy-batch-size 128 \
      --channels 8 --cells 1 --sample 200 --ground-truth cifar10:test:200
  d2m-nas rank --archs finalists.txt --proxy 'random-subset[ipc=500,steps=400,channels=16,cells=5]@tse_e' \
      --proxy-seeds 3 --ground-truth cifar10:test:200 --device cuda
"""
WRITES_RUN_DIR = True


def _csv(text: str) -> list[str]:
    """Comma-separated proxy specs; commas inside per-proxy settings (`NAME[a=1,b=2]`) do not split."""
    parts = re.split(r",(?![^\[]*\])", str(text))
    return [part.strip() for part in parts if part.strip()]


def _shard(text: str) -> tuple[int, int]:
    from d2m_nas.errors import UserError

    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise UserError(f"--shard must be I/N with whole numbers, e.g. 0/2, got {text!r}") from None
    if not 0 <= index < count:
        raise UserError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return index, count


def add_arguments(parser) -> None:
    from d2m_nas.commands.proxy_options import add_proxy_options
    from d2m_nas.proxies import list_proxies

    parser.add_argument("--space", default="nasbench201", help="search space: nasbench201 or convnet720 "
                        "(default: nasbench201)")
    # --proxy and --ground-truth are required, but checked in run() so a --config file can give them
    parser.add_argument("--proxy", metavar="NAME[,NAME...]",
                        help=f"required: proxies to score with: {', '.join(list_proxies())}; a training-based "
                             "one may carry its own budget, NAME[ipc=K,steps=N,batch_size=B,lr=LR,augment=A], over "
                             "--ipc/--steps/..., and its score rule, NAME@RULE; any may set its own network size, "
                             "NAME[channels=C,cells=N], over --channels/--cells")
    parser.add_argument("--sample", type=COUNT, metavar="K",
                        help="number of architectures, drawn with --seed (default: 100)")
    parser.add_argument("--archs", metavar="FILE",
                        help="score the architectures this text file lists, one per line (# starts a comment), "
                             "instead of a sample; every worker and machine of the study reads the same file")
    parser.add_argument("--ground-truth", metavar="KEY",
                        help="required: ground-truth column, e.g. cifar10:test:200 (no default, since 12- vs "
                             "200-epoch or valid vs test columns rank differently)")
    parser.add_argument("--ground-truth-file", metavar="CSV",
                        help="ground-truth CSV (default: <data-root>/nb201/nb201_ground_truth.csv)")
    parser.add_argument("--dataset", default="cifar10",
                        help="dataset whose training images feed the data-dependent proxies (default: cifar10)")
    parser.add_argument("--zc-batch-size", "--batch-size", dest="batch_size", type=COUNT, default=64, metavar="N",
                        help="the zero-cost proxies' minibatch (snip, grad_norm, jacob_cov, naswot; default: 64, as "
                             "the zero-cost reference); a training proxy's is --proxy-batch-size")
    parser.add_argument("--one-per-isomorph", action="store_true",
                        help="sample K distinct isomorphism classes (no network counted twice) instead of K cells "
                             "drawn uniformly, duplicates included, as the published correlations do")
    parser.add_argument("--shard", metavar="I/N", help="score only every N-th architecture of the sample, from "
                        "the I-th (0-based): N processes sharing one --cache split a study, and a last run without "
                        "--shard (all cache hits) summarises the whole sample")
    parser.add_argument("--workers", type=COUNT, default=1, metavar="N",
                        help="processes scoring the sample side by side on this machine (this one and N-1 more), "
                             "one torch thread each unless --threads says otherwise (default: 1); they share the work through Optuna "
                             "storage (--storage, default RUN_DIR/work.db) and the score cache (--cache, default "
                             "RUN_DIR/cache.sqlite). Pays off for training-based proxies")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage that holds the work: the same command started on several machines "
                             "with one postgresql://USER:PASSWORD@HOST:PORT/DB URL splits the sample between them "
                             "(each (architecture, proxy seed) scored once, a dead worker's item retried) and each "
                             "writes the whole report; journal:FILE.log for processes on one machine")
    parser.add_argument("--heartbeat", type=COUNT, default=60, metavar="S",
                        help="RDB storages: heartbeat interval; an item silent for 2S is retried elsewhere (default: 60)")
    parser.add_argument("--proxy-seeds", type=COUNT, default=1, metavar="R",
                        help="score every architecture with R proxy seeds, --seed onwards (default: 1)")
    add_size_options(parser)
    add_top_k_option(parser)
    parser.add_argument("--bootstrap", type=WHOLE, default=1000, help="bootstrap resamples for the CIs (default: 1000)")
    parser.add_argument("--cache", metavar="FILE|URL", help="score cache shared with other rank and search runs: "
                        "scores it holds for the same architecture, proxy settings and seed are reused, and one "
                        "another process is computing is waited for, not computed twice; a SQLite file or "
                        "postgresql://... (default: none; with --workers RUN_DIR/cache.sqlite, with a PostgreSQL "
                        "--storage that database; the run directory's results.csv alone makes a rerun resume)")
    add_split_options(parser)
    add_download_option(parser)
    add_proxy_options(parser)


@dataclass
class Inputs:
    """What `rank` scores, checked: built alike by the command and by each of its --workers."""
    space: object
    archs: list
    proxies: list
    ground_truth: object
    truth_column: str
    truths: object
    dataset: object
    train_indices: object
    val_indices: object
    needs_data: bool
    top_k: tuple

    def context(self, args, device):
        return proxy_context(args, device, self.space, self.dataset, self.train_indices, self.val_indices)


def read_inputs(args) -> Inputs:
    """The sample, the proxies, the ground truth and the data of a rank command; one-line
    UserError for anything wrong, before any run directory is touched."""
    from d2m_nas.commands.proxy_options import build_proxies
    from d2m_nas.data import load_dataset, split_train_val
    from d2m_nas.errors import UserError
    from d2m_nas.proxies import proxy_needs_data, split_spec
    from d2m_nas.proxies.ensemble import is_ensemble_spec, parse_definitions
    from d2m_nas.ranking import read_archs, sample_archs
    from d2m_nas.settings import resolve_data_root

    if not args.ground_truth:
        raise UserError("--ground-truth KEY is required (e.g. cifar10:test:200); there is no default because "
                        "12- vs 200-epoch and valid vs test columns rank architectures differently")
    if not args.proxy:
        raise UserError("--proxy NAME[,NAME...] is required, e.g. --proxy synflow,params")
    space = space_named(args.space)
    names = _csv(args.proxy)
    if not names:
        raise UserError("--proxy needs at least one proxy name")
    ensembles = parse_definitions(args.ensemble)
    needs_data = [proxy_needs_data(name, ensembles) for name in names]  # also refuses unknown names
    bases = [name if is_ensemble_spec(name, ensembles) else split_spec(name)[0] for name in names]
    if len(set(bases)) != len(bases):
        raise UserError(f"--proxy lists a proxy twice: {args.proxy} (rank reports every score rule of a "
                        "training-based proxy from one run)")
    if args.archs and (args.sample is not None or args.one_per_isomorph):
        raise UserError("--archs lists the architectures: give it without --sample and --one-per-isomorph")
    sample = 100 if args.sample is None else args.sample
    if not args.archs and not 0 < sample <= len(space):
        raise UserError(f"--sample must be 1..{len(space)} for {space.name}, got {sample}")
    if args.batch_size < 2:
        raise UserError(f"--zc-batch-size must be at least 2, got {args.batch_size}")
    top_k = parse_top_k(args.top_k)

    data_root = resolve_data_root(args.data_root)
    ground_truth, truth_column, truths = read_ground_truth(args, data_root)

    try:
        archs = read_archs(args.archs, space) if args.archs else \
            sample_archs(space, sample, args.seed, args.one_per_isomorph)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.shard:
        index, count = _shard(args.shard)
        archs = archs[index::count]
    covered = sum(arch in truths.index for arch in archs)
    if covered == 0:
        raise UserError(f"the ground truth {ground_truth.source} has no value for any sampled {space.name} "
                        "architecture; check --space and --ground-truth-file")
    dataset = load_dataset(args.dataset, data_root, args.download) if any(needs_data) else None
    train_indices = val_indices = None
    if dataset is not None:
        train_indices, val_indices = split_train_val(dataset.y_train, args.val_per_class, args.split_seed)
        if args.batch_size > len(train_indices):
            raise UserError(f"--zc-batch-size {args.batch_size} exceeds the {len(train_indices)} training images of "
                            f"{dataset.name}")
    proxies = build_proxies(names, args, dataset, train_indices)
    return Inputs(space, archs, proxies, ground_truth, truth_column, truths, dataset, train_indices, val_indices,
                  any(needs_data), top_k)


def run(args) -> int:
    from d2m_nas.cli import set_threads, start_run
    from d2m_nas.errors import UserError
    from d2m_nas.ranking import RankSettings, ResumeError, run_ranking
    from d2m_nas.score_cache import CacheError, ScoreCache, default_cache
    from d2m_nas.search.storage import StorageError, check_storage_url

    if args.storage is not None:
        try:
            check_storage_url(args.storage)
        except StorageError as exc:
            raise UserError(str(exc)) from None
    inputs = read_inputs(args)
    if args.workers > 1 and args.threads is None:
        set_threads(1)  # one thread per process: two on one core spin-wait each other (many times slower)
    check_cache(args.cache)
    device, out_dir = start_run(args)
    if inputs.needs_data:  # once the inputs are known to be good: an error comes alone
        warn_if_other_dataset(args.dataset, inputs.ground_truth, args.ground_truth)
    context = inputs.context(args, device)
    settings = RankSettings(sample=len(inputs.archs), seed=args.seed, ground_truth_key=args.ground_truth,
                            truth_column=inputs.truth_column, top_k=inputs.top_k, bootstrap=args.bootstrap,
                            proxy_seeds=args.proxy_seeds, archs_file=args.archs)
    shared = args.workers > 1 or args.storage is not None
    if shared and args.cache is None:
        args.cache = default_cache(args.storage, out_dir)  # where the workers' scores meet
    try:
        with (ScoreCache(args.cache) if args.cache else contextlib.nullcontext()) as cache:
            study = _work_shared(args, inputs, context, settings, out_dir, cache) if shared else None
            run_ranking(inputs.archs, inputs.proxies, context, inputs.truths, settings, out_dir, cache=cache)
            if study is not None:
                _store_ensemble_rows(study, inputs, settings, out_dir)
    except (ResumeError, CacheError, StorageError) as exc:
        raise UserError(str(exc)) from None
    print((out_dir / "summary.md").read_text(), end="")
    print(f"wrote {out_dir / 'results.csv'}, {out_dir / 'summary.json'}, {out_dir / 'summary.md'}")
    return 0


def _open_work(args, inputs: Inputs, context, seeds: list[int]):
    """(the work study, the proxies it scores, each one's cache configuration)."""
    from d2m_nas import rank_work
    from d2m_nas.proxies import TrainingProxy
    from d2m_nas.ranking import scored_proxies
    from d2m_nas.score_cache import config_key, proxy_config

    scored, _ = scored_proxies(inputs.proxies)  # ensembles come from their components' rows at the end
    configs = {p.name: proxy_config(p, context) for p in scored}
    name = rank_work.study_name(inputs.space.name, inputs.archs, seeds,
                                {n: config_key(c) for n, c in configs.items()})
    trained = [p for p in scored if isinstance(p, TrainingProxy)]
    about = {"space": inputs.space.name, "n_archs": len(inputs.archs), "seed": args.seed, "proxy_seeds": seeds,
             "ground_truth": args.ground_truth, "truth_column": inputs.truth_column,
             "proxies": [p.name for p in inputs.proxies], "model_options": context.model_options}
    study = rank_work.open_work(args.storage, name, inputs.archs, seeds, args.heartbeat,
                                order=lambda archs: rank_work.longest_first(archs, trained, context), about=about)
    return study, scored, configs


def _row_maker(inputs: Inputs, scored: list, device):
    """An item's results.csv rows, stored in the study beside its scores (`rank_work.study_rows`)."""
    import torch

    from d2m_nas.ranking import result_lines
    from d2m_nas.run_dir import hardware as host_hardware

    threads = torch.get_num_threads()
    hardware = f"{device}: {host_hardware()}, {threads} thread{'s' * (threads != 1)}"

    def rows(arch, seed, scores):
        return result_lines(inputs.space, inputs.truths, inputs.truth_column, arch, seed, scored, scores)[1], hardware

    return rows


def _store_ensemble_rows(study, inputs: Inputs, settings, out_dir) -> None:
    """The ensembles' rows of results.csv (written by run_ranking once every item is in), into the study."""
    import csv

    from d2m_nas import rank_work
    from d2m_nas.ranking import scored_proxies

    names = {p.name for p in scored_proxies(inputs.proxies)[1]}
    if not names:
        return
    archs, seeds = set(inputs.archs), {str(s) for s in settings.seeds}
    with (out_dir / "results.csv").open(newline="") as handle:
        lines = [row for row in csv.reader(handle) if row[3] in names and row[0] in archs and row[6] in seeds]
    rank_work.store_ensemble_rows(study, lines)


def _scorer(scored: list, context, cache, configs: dict):
    from dataclasses import replace

    from d2m_nas.ranking import score_cached

    return lambda arch, seed: score_cached(arch, scored, replace(context, seed=seed), cache, configs)


def _work_shared(args, inputs: Inputs, context, settings, out_dir, cache) -> None:
    """Score the sample through the work study: this process and --workers − 1 more here (or this one
    alone, as one of several machines on --storage). Each finished item's rows go into results.csv
    as this process sees them; at the end the scores are copied into `cache`, where run_ranking
    finds any it has not written."""
    import json
    import sys

    from tqdm import tqdm

    from d2m_nas import rank_work
    from d2m_nas.ranking import ResultRows, check_same_settings, scored_proxies
    from d2m_nas.search.workers import local_workers

    rows = ResultRows(out_dir, inputs.space, inputs.truths, settings)  # a damaged table is refused first
    check_same_settings(out_dir, settings, [p for group in scored_proxies(inputs.proxies) for p in group], context)
    if args.storage is None:
        args.storage = f"sqlite:///{(out_dir / 'work.db').resolve()}"
    study, scored, configs = _open_work(args, inputs, context, settings.seeds)
    helpers = args.workers - 1 if rank_work.pending(study) else 0
    options = json.dumps({**vars(args), "out": str(out_dir)}, default=str)
    seen: set[int] = set()

    def write_finished():
        for arch, seed, scores in rank_work.finished(study, seen):
            todo = rows.missing(arch, seed, scored)
            if todo:
                rows.add(arch, seed, todo, scores)

    with rows, local_workers(helpers, "d2m_nas.commands.rank:work_only", options) as processes:
        done, total = rank_work.progress(study)
        with tqdm(total=total, initial=done, desc=f"scoring ({args.workers} workers)" if args.workers > 1
                  else "scoring", unit="item", dynamic_ncols=True) as bar:
            def on_progress():
                finished = rank_work.progress(study)[0]
                if finished != bar.n:  # a wait with nothing new reads the study once, not twice
                    write_finished()
                    bar.update(finished - bar.n)

            rank_work.work(study, _scorer(scored, context, cache, configs), args.heartbeat, on_progress=on_progress,
                           rows=_row_maker(inputs, scored, context.device))
        write_finished()
    failed = [process.returncode for process in processes if process.returncode != 0]
    if failed:
        print(f"d2m-nas rank: warning: {len(failed)} of {helpers} worker processes stopped early (exit "
              f"{', '.join(map(str, failed))}); this process did their work", file=sys.stderr)
    rank_work.collect(study, cache, inputs.space.name, configs, str(context.device))
    return study


def work_only(args_json: str) -> int:
    """A --workers process: the same inputs as the command that started it, then take and score
    items of its work study until none is left. Writes nothing but the cache and the study."""
    import argparse
    import json
    import sys

    from d2m_nas import rank_work
    from d2m_nas.cli import set_threads
    from d2m_nas.devices import resolve_device
    from d2m_nas.errors import UserError
    from d2m_nas.ranking import RankSettings
    from d2m_nas.score_cache import ScoreCache

    args = argparse.Namespace(**json.loads(args_json))
    set_threads(args.threads or 1)
    try:
        inputs = read_inputs(args)
        context = inputs.context(args, resolve_device(args.device))
        seeds = RankSettings(len(inputs.archs), args.seed, args.ground_truth, "", proxy_seeds=args.proxy_seeds).seeds
        with ScoreCache(args.cache) as cache:
            study, scored, configs = _open_work(args, inputs, context, seeds)
            rank_work.work(study, _scorer(scored, context, cache, configs), args.heartbeat,
                           rows=_row_maker(inputs, scored, context.device))
    except UserError as exc:
        print(f"d2m-nas rank worker: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
