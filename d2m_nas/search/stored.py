"""A search's studies read back from their storage alone (`d2m-nas report --storage`): the rows
every worker writes to its results.csv, rebuilt from what each finished trial stores (its
evaluation, worker and retry) and what the study stores once (its identity and the rows' labels).
The true accuracies come from the ground-truth table the report reads: a study holds only the
column's name, since the search never sees a truth value."""

from __future__ import annotations

import math
from typing import Callable

import optuna
import pandas as pd

from d2m_nas.search.driver import result_row
from d2m_nas.search.optuna_backend import FINISHED, IDENTITY_ATTR, LABELS_ATTR, recorded_evaluation
from d2m_nas.search.storage import StorageError
from search_spaces.registry import create_space


def search_study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The studies of `d2m-nas search` a storage holds."""
    return [s.study_name for s in storage.get_all_studies() if IDENTITY_ATTR in s.user_attrs]


def stored_rows(storage: optuna.storages.BaseStorage, names: list[str], truths: Callable[[str], pd.Series],
                shown: str) -> list[dict]:
    """The results rows of every finished trial of the studies `names`, in trial order; `truths`
    gives the true values of a ground-truth column by architecture. StorageError, one line, for a
    study made before its rows' labels were stored."""
    rows = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        identity, labels = study.user_attrs[IDENTITY_ATTR], study.user_attrs.get(LABELS_ATTR)
        if labels is None:
            raise StorageError(f"search study {name} in {shown} was made by an older d2m-nas (its rows' labels are "
                               "not stored); read a run directory of the study instead")
        space = create_space(identity["space"])
        values = truths(labels["truth_column"]) if labels["truth_column"] else None
        for trial in study.get_trials(deepcopy=False, states=FINISHED):
            recorded = recorded_evaluation(trial)
            if recorded is None:
                continue
            evaluation, retry_of = recorded
            truth = math.nan if values is None else float(values.get(evaluation.arch, math.nan))
            rows.append(result_row(space, name, trial.number, evaluation, labels, identity["seed"], truth, retry_of,
                                   trial.user_attrs.get("worker") or {}))
    return rows
