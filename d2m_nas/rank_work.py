"""`rank`'s work shared through Optuna storage: many processes, on one machine or many, score one
sample, each (architecture, proxy seed) once.

The work is an Optuna study whose trials are the items: one enqueued trial per (architecture,
proxy seed), carrying it as a user attribute. A worker takes the next one with `study.optimize`
(Optuna pops a waiting trial atomically, so two workers never take the same item), scores it
with every proxy through its score cache and stores the scores in the trial (`results`), so a
process on another machine reads them from the storage. A worker that dies leaves its trial
RUNNING; it is failed and re-queued with the same item (`d2m_nas.search.workers`: at once for a
worker on this host, after two heartbeats of silence on RDB storages for one elsewhere), and a
worker with nothing to take waits while others run, so a dead one's item is never lost.

The study's name is a hash of what determines the scores (space, sample, proxy seeds, every
proxy's cache key), so the same command started on several machines with one `--storage` URL
joins one study, and a changed setting starts another. The process that runs the command writes
each finished item's rows into its results.csv as soon as it sees them (`finished`), whichever
worker scored it; when the work is done it copies the scores into its score cache and
`run_ranking` adds what is left (ensembles, the summary): the same files as a single-process run,
rows in the order the items finished.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Callable, Iterator

import optuna
from optuna.trial import TrialState
from d2m_nas.databases import worker_identity
from d2m_nas.proxies.base import ProxyScore
from d2m_nas.score_cache import ScoreCache
from d2m_nas.search.storage import StorageError, open_storage, quiet
from d2m_nas.search.workers import fail_dead_workers, retry_interrupted

ITEM_ATTR, RESULTS_ATTR, READY_ATTR = "item", "results", "d2m_nas_rank_items"
ROWS_ATTR, ABOUT_ATTR, ENSEMBLE_ROWS_ATTR = "rows", "d2m_nas_rank_about", "d2m_nas_rank_ensemble_rows"
Scorer = Callable[[str, int], dict[str, ProxyScore]]  # (arch, proxy seed) -> scores by proxy name
# (arch, proxy seed, scores) -> the item's results.csv rows and where they were measured
RowMaker = Callable[[str, int, dict[str, ProxyScore]], tuple[list[list[str]], str]]


def study_name(space: str, archs: list[str], seeds: list[int], proxy_keys: dict[str, str]) -> str:
    """A name that only the same work shares: space, sample (in order), seeds and proxy cache keys."""
    text = json.dumps([space, archs, seeds, sorted(proxy_keys.items())], separators=(",", ":"))
    return "rank-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def open_work(url: str, name: str, archs: list[str], seeds: list[int], heartbeat: int = 60,
              stalled_after: float = 30.0, order: Callable[[list[str]], list[str]] = list,
              about: dict | None = None) -> optuna.Study:
    """The work study: created with every item enqueued (architectures in `order(archs)`, computed
    only by the process that enqueues), or joined once its creator has enqueued. `about`: the
    rank's settings (the report's header), stored by whichever process finishes the enqueueing.
    A creator that died while enqueueing (no new item for `stalled_after` seconds) is taken over:
    the missing items are enqueued here."""
    storage = open_storage(url, heartbeat)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(storage=storage, study_name=name)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        seen, since = -1, time.monotonic()
        while READY_ATTR not in study.user_attrs:  # its creator is still enqueueing
            count = len(study.get_trials(deepcopy=False))
            if count != seen:
                seen, since = count, time.monotonic()
            elif time.monotonic() - since > stalled_after:
                break
            time.sleep(0.5)
            study = optuna.load_study(study_name=name, storage=storage)
        else:
            return study
    present = {tuple(t.user_attrs[ITEM_ATTR]) for t in study.get_trials(deepcopy=False) if ITEM_ATTR in t.user_attrs}
    for arch in order(archs):
        for seed in seeds:
            if (arch, seed) not in present:
                study.enqueue_trial({}, user_attrs={ITEM_ATTR: [arch, seed]})
    if about is not None:
        study.set_user_attr(ABOUT_ATTR, about)
    study.set_user_attr(READY_ATTR, len(archs) * len(seeds))
    return study


def longest_first(archs: list[str], trained: list, context) -> list[str]:
    """`archs` in the order their items should be taken: for training proxies, the most FLOPs (at
    each proxy's own network size) first, so the last items to finish are short ones and no worker
    waits long at the end for another's big network; the sample's order otherwise."""
    if not trained:
        return list(archs)
    from d2m_nas.proxies.zero_cost import score_zero_cost

    flops = {arch: sum(score_zero_cost(arch, ["flops"], p.context_for(context))["flops"].score for p in trained)
             for arch in archs}
    return sorted(archs, key=lambda arch: -flops[arch])


def work(study: optuna.Study, score: Scorer, heartbeat: int = 60, poll: float = 0.5,
         on_progress: Callable[[], None] | None = None, rows: RowMaker | None = None) -> int:
    """Take and score items until none is waiting or running; returns how many this worker scored.
    `on_progress` is called after each item and each wait (a progress bar of the whole study).
    `rows`: each item's results.csv rows are stored with its scores, so `report` reads the study
    from the storage alone (`study_rows`)."""
    worker = worker_identity()
    scored = []  # items this worker finished (the objective appends; no storage query per item)

    def objective(trial: optuna.Trial) -> float:
        item = trial.user_attrs.get(ITEM_ATTR)
        if item is None:  # nothing was waiting: Optuna made a fresh trial, which is no work
            trial.set_user_attr("spare", True)
            raise optuna.TrialPruned()
        trial.set_user_attr("worker", worker)
        results = score(item[0], int(item[1]))
        trial.set_user_attr(RESULTS_ATTR, {name: {"score": float(r.score), "seconds": float(r.seconds),
                                                  "extra": r.extra} for name, r in results.items()})
        if rows is not None:
            lines, hardware = rows(item[0], int(item[1]), results)
            trial.set_user_attr(ROWS_ATTR, {"lines": lines, "hardware": hardware})
        scored.append(item)
        return 0.0

    while True:
        fail_dead_workers(study, 2 * heartbeat)
        with quiet():
            optuna.storages.fail_stale_trials(study)  # heartbeats of workers on other machines
        if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                with quiet():
                    study.optimize(objective, n_trials=1, gc_after_trial=False)
            except KeyboardInterrupt:
                retry_interrupted(study, worker, RESULTS_ATTR)
                raise
        elif pending(study):
            time.sleep(poll)  # another worker's item: it finishes, or dies and is re-queued above
        else:
            return len(scored)
        if on_progress is not None:
            on_progress()


def finished(study: optuna.Study, seen: set[int] | None = None) -> Iterator[tuple[str, int, dict[str, ProxyScore]]]:
    """(arch, proxy seed, scores by proxy name) of every finished item, by any worker; with `seen`,
    only the trials not in it, which are then added (to follow a running study cheaply)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if RESULTS_ATTR not in trial.user_attrs or (seen is not None and trial.number in seen):
            continue
        if seen is not None:
            seen.add(trial.number)
        arch, seed = trial.user_attrs[ITEM_ATTR]
        yield arch, int(seed), {name: ProxyScore(**result) for name, result in trial.user_attrs[RESULTS_ATTR].items()}


def collect(study: optuna.Study, cache: ScoreCache, space: str, configs: dict[str, dict], device: str) -> int:
    """Copy the scores of finished items into `cache` (the ones it lacks); returns how many."""
    added = 0
    for arch, seed, scores in finished(study):
        for name, score in scores.items():
            if name in configs and cache.get(space, arch, configs[name], seed) is None:
                cache.put(space, arch, configs[name], seed, score, device)
                added += 1
    return added


def store_ensemble_rows(study: optuna.Study, lines: list[list[str]]) -> None:
    """The ensembles' rows, computed once every item is finished (any process that finishes may
    store them: they are the same)."""
    study.set_user_attr(ENSEMBLE_ROWS_ATTR, lines)


def rank_study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The rank studies a storage holds (those whose items were all enqueued)."""
    return [s.study_name for s in storage.get_all_studies() if READY_ATTR in s.user_attrs]


def study_rows(storage: optuna.storages.BaseStorage, name: str, shown: str) -> tuple[dict, list[list[str]], list[str]]:
    """(its `about`, the results.csv rows of every finished item and then of the ensembles, the
    hardware the rows were measured on) of the rank study `name` (`shown`: where, for messages).
    StorageError, one line, for a study whose items were scored without rows (by a d2m-nas before
    this was stored)."""
    study = optuna.load_study(study_name=name, storage=storage)
    lines, hardware, seen, bare = [], set(), set(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if ITEM_ATTR not in trial.user_attrs:
            continue
        if ROWS_ATTR not in trial.user_attrs:
            bare += 1
            continue
        hardware.add(trial.user_attrs[ROWS_ATTR]["hardware"])
        for line in trial.user_attrs[ROWS_ATTR]["lines"]:
            key = (line[0], line[3], line[6])  # (arch, proxy, seed): an item finished twice counts once
            if key not in seen:
                seen.add(key)
                lines.append(line)
    if bare:
        raise StorageError(f"{bare} finished items of study {name} in {shown} hold scores but no report rows (scored "
                           "by an older d2m-nas); read a run directory of the study instead")
    lines += study.user_attrs.get(ENSEMBLE_ROWS_ATTR, [])
    return study.user_attrs.get(ABOUT_ATTR, {}), lines, sorted(hardware)


def pending(study: optuna.Study) -> bool:
    """Whether any item is waiting or being scored."""
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))


def progress(study: optuna.Study) -> tuple[int, int]:
    """(items finished, items in all) of the work study (spare trials are pruned, never complete)."""
    return (len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
            int(study.user_attrs.get(READY_ATTR, 0)))
