"""Optuna backend: TPE, random and NSGA-II samplers over a space's categorical choices.

The study lives in Optuna storage and the storage URL is the only switch (`d2m_nas.search.storage`):
- default: `sqlite:///RUN_DIR/study.db` (re-running the command resumes; `search --workers N`'s
  processes share it);
- `journal:PATH`: an Optuna journal file, for several processes on one machine;
- `postgresql://USER:PASSWORD@HOST:PORT/DB` (or `mysql://...`): several machines on one study,
  `d2m-nas search --storage URL --study NAME` started on each.

Workers that die leave RUNNING trials. They are failed and re-queued with the same parameters
(Optuna's RetryHeartbeatStaleTrialCallback; `retry_of` in the results names the original) in
two ways: a worker on the same host that is no longer alive is detected at once (pid and
process start time, recorded in the trial), and on RDB storages (sqlite, PostgreSQL, MySQL)
Optuna's heartbeat fails trials of workers on any machine after 2 heartbeats of silence. A
failed trial has no row, its retry does; the cache makes the retry free when the dead worker
had finished scoring. The budget counts finished plus running trials, so a retry is run, not
added on top, and a worker whose budget is filled by running trials waits for them (or for a dead
worker's retry): a resumed study ends with exactly `trials` evaluations after any sequence of
kills. Ctrl-C re-queues the interrupted trial the same way. Workers that start at the same
instant may still overshoot the budget by one trial each.

The storage is the record: each finished trial carries its evaluation (score, seconds, cached,
cost, worker; never the truth) as user attributes, and at start and end every worker writes
the rows its results table lacks. So a row lost to a kill between the storage's commit and the
append comes back, and each machine's RUN_DIR/results.csv ends with the whole study as the
worker saw it when it finished (run the command again after all workers stop for every row).

Multi-fidelity: with a pruner (median, successive halving, Hyperband) a training-based proxy
reports its score rule at every checkpoint (`trial.report`), and a trial the pruner stops is
PRUNED: it keeps its partial evaluation (the score at that checkpoint, the seconds spent), is
recorded with state "pruned", counts as a finished trial, and a resumed study neither trains it
again nor loses it. A warm start (`PROXY:K`) scores a seeded pool of architectures with a cheap
proxy and enqueues its top K as the study's first trials; that scoring is charged to the first
evaluation.
"""

from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np
import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from d2m_nas.search.driver import Evaluation, SearchDriver
from d2m_nas.search.storage import open_storage, quiet
from d2m_nas.search.workers import fail_dead_workers, retry_interrupted

IDENTITY_ATTR = "d2m_nas"
LABELS_ATTR = "d2m_nas_row_labels"  # the results rows' proxy name, ground-truth column, ...


class StudyMismatchError(ValueError):
    """A study that was created for another space, proxy or strategy."""


def make_sampler(strategy: str, seed: int, population: int) -> optuna.samplers.BaseSampler:
    if strategy == "tpe":
        # constant_liar: parallel workers do not all propose the point the model likes best now.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    raise ValueError(f"unknown Optuna strategy {strategy!r}")


def _describe(identity: dict) -> str:
    return (f"space {identity.get('space')}, proxy {identity.get('proxy')} (config {identity.get('proxy_key')}), "
            f"seed {identity.get('seed')}, {identity.get('backend')} {identity.get('strategy')}"
            + (f" vs {identity['cost_metric']}" if identity.get("cost_metric") else ""))


def _differences(found: dict, wanted: dict) -> list[str]:
    """'field: study value != this search's value' for each identity field that differs."""
    defaults = {"score_rule": "", "pruner": "none", "warm_start": ""}  # studies made before these existed
    out = [f"{k}: {found.get(k, defaults.get(k))!r} != {wanted.get(k)!r}"
           for k in ("space", "proxy", "seed", "backend", "strategy", "cost_metric", *defaults)
           if found.get(k, defaults.get(k)) != wanted.get(k)]
    if found.get("proxy_key") != wanted.get("proxy_key") and found.get("proxy") == wanted.get("proxy"):
        old, new = json.loads(found.get("proxy_config") or "{}"), json.loads(wanted.get("proxy_config") or "{}")
        out += [f"proxy {k}: {old.get(k)!r} != {new.get(k)!r}" for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)] or ["proxy configuration"]
    return out


def open_study(storage, name: str, identity: dict, directions: list[str]) -> tuple[optuna.Study, bool]:
    """Create the study, or load it when it exists and was made for the same search.

    Returns (study, created). A study made for another space, proxy configuration, seed or
    strategy is refused: continuing it would mix incomparable results."""
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions)
        study.set_user_attr(IDENTITY_ATTR, identity)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage)
    found = study.user_attrs.get(IDENTITY_ATTR)
    for _ in range(50):  # a worker that created the study an instant ago may not have labelled it yet
        if found is not None:
            break
        time.sleep(0.1)
        found = optuna.load_study(study_name=name, storage=storage).user_attrs.get(IDENTITY_ATTR)
    if found is None:
        if study.trials:
            raise StudyMismatchError(f"study {name!r} exists but was not created by d2m-nas search; "
                                     "choose another --study name")
        study.set_user_attr(IDENTITY_ATTR, identity)
        found = identity
    differences = _differences(found, identity)
    if differences:
        raise StudyMismatchError(f"study {name!r} was created for {_describe(found)} and differs from this search in "
                                 f"{'; '.join(differences)}; pass another --study (or --out) instead of mixing results")
    if [d.name.lower() for d in study.directions] != directions:
        raise StudyMismatchError(f"study {name!r} optimises {len(study.directions)} objective(s), this search "
                                 f"{len(directions)}; pass another --study")
    return study, False


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # evaluations with a row; pruned ones are partial


def label_rows(study: optuna.Study, labels: dict) -> None:
    """Store what the study's results rows say beside each evaluation (`report --storage` rebuilds
    them from it); a worker that knows the ground-truth column fills it in where the first did not."""
    stored = study.user_attrs.get(LABELS_ATTR)
    if stored is None or (not stored.get("truth_column") and labels["truth_column"]):
        study.set_user_attr(LABELS_ATTR, labels)


def recorded_evaluation(trial: FrozenTrial) -> tuple[Evaluation, int | None] | None:
    """(the evaluation a finished trial stores, the trial it retries) or None: what its results row is made of."""
    evaluation = trial.user_attrs.get("evaluation")
    if trial.state not in FINISHED or evaluation is None:
        return None
    with quiet():
        return Evaluation(**evaluation), RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def row_of(driver: SearchDriver, study_name: str, trial: FrozenTrial) -> dict | None:
    recorded = recorded_evaluation(trial)
    if recorded is None:
        return None
    evaluation, retry_of = recorded
    return driver.row(study_name, trial.number, evaluation, retry_of=retry_of, worker=trial.user_attrs.get("worker"))


def reconcile(driver: SearchDriver, study: optuna.Study) -> int:
    """Write the rows of finished trials that the results table lacks (a kill between the
    storage's commit and the row's append); returns how many."""
    rows = [row for trial in study.get_trials(deepcopy=False, states=FINISHED)
            if (row := row_of(driver, study.study_name, trial)) is not None]
    return len(driver.record(rows))


def _session_seed(seed: int, created: bool, n_trials: int, joining_pid: int | None) -> int:
    """The sampler seed: the given one for the worker that creates the study (a fresh run is
    reproducible); for a resumed study one derived from its length, so the same resume proposes the
    same architectures; a worker that joins live workers (or a study it did not create) mixes in its
    pid, so that it does not replay their proposals."""
    if created and n_trials == 0:
        return seed
    key = f"{seed}:{n_trials}" + (f":{joining_pid}" if joining_pid is not None else "")
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def _others_running(study: optuna.Study, worker: dict) -> bool:
    """Whether another live worker holds a RUNNING trial (after dead ones' trials were failed)."""
    return any(t.user_attrs.get("worker") != worker for t in study.get_trials(deepcopy=False,
                                                                              states=(TrialState.RUNNING,)))


def make_pruner(name: str, steps: int | None) -> optuna.pruners.BasePruner:
    """The Optuna pruner of --pruner; `steps` is the training budget (Hyperband's max resource)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(max_resource=steps or "auto")
    return optuna.pruners.NopPruner()


def warm_start(driver: SearchDriver, study: optuna.Study) -> None:
    """Enqueue the top K of a seeded pool by the warm-start proxy (a new study only). An ensemble
    (zc-vote) is the rank average of its components over the pool itself, as in `rank`."""
    from d2m_nas.proxies import create_proxy
    from d2m_nas.proxies.ensemble import rank_average

    name, count = driver.config.warm_start_spec()
    proxy = driver.warm_proxy or create_proxy(name)
    components = getattr(proxy, "components", [proxy])
    space = driver.context.space
    pool = space.sample(min(driver.config.warm_start_pool, len(space)), driver.context.seed)
    bar = tqdm(pool, desc=f"warm start: {proxy.name} on {len(pool)} archs", unit="arch", leave=False,
               disable=not driver.config.progress, dynamic_ncols=True)
    results = [[driver.cache.score(c, arch, driver.context).score for c in components] for arch in bar]
    driver.overhead_s += sum(r.seconds for row in results for r in row)
    values = np.array([[r.score for r in row] for row in results], dtype=float)
    scores = values[:, 0] if len(components) == 1 else rank_average(values)
    order = sorted(range(len(pool)), key=lambda i: -scores[i] if math.isfinite(scores[i]) else math.inf)
    for i in order[:count]:
        study.enqueue_trial(space.encode(pool[i]))


def run_optuna(driver: SearchDriver, storage_url: str, study_name: str) -> optuna.Study:
    """Run (or resume, or join) the study until it holds `trials` finished evaluations or the
    session's time budget is spent."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = driver.config
    space = driver.context.space
    choices = {name: list(values) for name, values in space.choices().items()}
    directions = ["maximize", "minimize"] if config.multi_objective else ["maximize"]
    storage = open_storage(storage_url, config.heartbeat)
    study, created = open_study(storage, study_name, driver.identity(), directions)
    label_rows(study, driver.report_labels())
    fail_dead_workers(study, 2 * config.heartbeat)
    reconcile(driver, study)
    joining = _others_running(study, driver.worker) or (not created and not study.trials)
    study.sampler = make_sampler(config.strategy, _session_seed(config.seed, created, len(study.trials),
                                                                driver.worker["pid"] if joining else None),
                                 config.population)
    study.pruner = make_pruner(config.pruner, getattr(getattr(driver.proxy, "settings", None), "steps", None))
    if created and config.warm_start:
        warm_start(driver, study)
    driver.start_clock()  # the time budget and elapsed_s count the search, not opening the storage

    def objective(trial: optuna.Trial):
        trial.set_user_attr("worker", driver.worker)
        try:
            params = {name: trial.suggest_categorical(name, values) for name, values in choices.items()}
            space.decode(params)
        except ValueError as exc:  # an enqueued trial (by hand, or another tool) outside the space
            tqdm.write(f"trial {trial.number}: not an architecture of {space.name} ({exc}); failed and skipped")
            return (math.nan, math.nan) if config.multi_objective else math.nan  # Optuna fails it, quietly

        def on_checkpoint(step: int, rules: dict) -> bool:
            trial.report(rules[driver.proxy.rule], step)
            return trial.should_prune()

        evaluation = driver.evaluate(space.decode(params), on_checkpoint if config.pruner != "none" else None)
        trial.set_user_attr("evaluation", evaluation.as_dict())
        if evaluation.state == "pruned":
            raise optuna.TrialPruned()
        if config.multi_objective:
            return evaluation.score, evaluation.cost
        return evaluation.score

    finished: list[FrozenTrial] = []

    def record(study: optuna.Study, trial: FrozenTrial) -> None:
        finished.append(trial)
        row = row_of(driver, study_name, trial)
        if row is not None:
            driver.record([row])

    def in_budget() -> int:
        return len(study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING)))

    def finished_count() -> int:
        return len(study.get_trials(deepcopy=False, states=FINISHED))

    def proxy_seconds() -> float:
        """Proxy seconds the study has spent: every evaluation not answered by the cache, pruned ones too."""
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        return sum(trial.user_attrs["evaluation"]["seconds"] for trial in finished
                   if "evaluation" in trial.user_attrs and not trial.user_attrs["evaluation"]["cached"])

    total = config.trials
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    bar = tqdm(total=total, initial=min(done, total or 0), desc=f"search {study_name}", unit="trial",
               disable=not config.progress, dynamic_ncols=True)
    failures = 0
    try:
        while driver.time_left() > 0:
            fail_dead_workers(study, 2 * config.heartbeat)
            if total is not None and in_budget() >= total:
                if finished_count() >= total:
                    break
                # the rest are RUNNING: another worker's, to finish, or a killed one's, to be failed
                # and re-queued above once found dead; either way the study ends with `total` evaluations
                bar.set_postfix_str(f"waiting for {in_budget() - finished_count()} running trial(s)")
                time.sleep(0.5)
                continue
            if config.proxy_budget is not None and proxy_seconds() >= config.proxy_budget:
                break
            try:
                with quiet():
                    study.optimize(objective, n_trials=1, callbacks=[record], gc_after_trial=False)
            except KeyboardInterrupt:
                retry_interrupted(study, driver.worker)
                raise
            last = finished[-1] if finished else None
            if last is not None and last.state == TrialState.FAIL and "evaluation" in last.user_attrs:
                failures += 1  # non-finite score: Optuna records the trial as failed
                if failures > max(10, total or 10):
                    raise RuntimeError(f"the proxy {driver.proxy.name} gave {failures} non-finite scores; stopping")
            bar.n = min(finished_count(), total or math.inf)
            bar.refresh()
    finally:
        bar.close()
    reconcile(driver, study)
    return study
