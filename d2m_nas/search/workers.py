"""Worker processes sharing an Optuna study (a search's, or rank's work): starting them on this
machine (`--workers N`), and re-queueing the trials of one that died or was interrupted (who a
worker is and whether it runs: `d2m_nas.databases`).

A worker records its identity (host, pid, process start time) in each trial it takes. A RUNNING
trial whose worker ran on this host and is gone is failed and re-queued at once with the same
parameters and user attributes (Optuna's RetryHeartbeatStaleTrialCallback, whose retry names the
original); workers on other machines are covered by the RDB storages' heartbeats instead.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import os
import subprocess
import sys
from typing import Iterator

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


@contextlib.contextmanager
def local_workers(count: int, entry: str, args_json: str) -> Iterator[list[subprocess.Popen]]:
    """`count` worker processes (one torch thread each unless --threads says otherwise) working
    beside this one, which has its inputs already and works too: a worker's set-up (imports, data)
    overlaps the first work instead of delaying it. `entry` ("module:function") is the command's
    worker mode, called with the command's options as JSON, so a worker builds the same proxies.
    On leaving, waits for them to finish (they stop when no work is left), or stops them if this
    process is stopping on an error."""
    module, function = entry.split(":")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    code = f"import sys; from {module} import {function}; sys.exit({function}(sys.stdin.read()))"
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, env=env, text=True)
            process.stdin.write(args_json)
            process.stdin.close()
            processes.append(process)
        yield processes
        for process in processes:
            process.wait()
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
