"""Worker processes sharing an Optuna study (a search's, or rank's work): re-queueing the trials
of one that died or was interrupted (who a worker is and whether it runs: `d2m_nas.databases`).

A worker records its identity (host, pid, process start time) in each trial it takes. A RUNNING
trial whose worker ran on this host and is gone is failed and re-queued at once with the same
parameters and user attributes (Optuna's RetryHeartbeatStaleTrialCallback, whose retry names the
original); workers on other machines are covered by the RDB storages' heartbeats instead.
"""

from __future__ import annotations

import copy
import datetime as dt

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from d2m_nas.databases import worker_alive
from d2m_nas.search.storage import quiet


def fail_dead_workers(study: optuna.Study, orphan_after: float = 600.0) -> list[int]:
    """Fail and re-queue RUNNING trials whose worker ran on this host and is gone, or that carry
    no worker at all after `orphan_after` seconds (a worker killed between creating the trial
    and labelling it); returns their numbers."""
    failed = []
    now = dt.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker:
            if worker_alive(worker) is not False:
                continue
        elif trial.datetime_start is None or (now - trial.datetime_start).total_seconds() < orphan_after:
            continue
        try:
            changed = study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        if changed:
            with quiet():
                RetryHeartbeatStaleTrialCallback()(study, copy.deepcopy(study._storage.get_trial(trial._trial_id)))
            failed.append(trial.number)
    return failed


def retry_interrupted(study: optuna.Study, worker: dict, result_attr: str = "evaluation") -> None:
    """Re-queue the trial Ctrl-C stopped (Optuna fails it; it has no `result_attr` yet), as a
    killed worker's would be: the resumed study evaluates that architecture, not a new draw."""
    mine = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.user_attrs.get("worker") == worker and result_attr not in t.user_attrs]
    if mine:
        with quiet():
            RetryHeartbeatStaleTrialCallback()(study, copy.deepcopy(mine[-1]))
