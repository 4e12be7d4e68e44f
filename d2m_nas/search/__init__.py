"""Search loops: one driver (cache + proxy + results table) and registered backends (Optuna, NNI)."""

from __future__ import annotations

from d2m_nas.search.backends import SearchBackend, create_backend, list_backends, register_backend
from d2m_nas.search.driver import COST_METRICS, Evaluation, SearchConfig, SearchDriver
from d2m_nas.search.results import RESULT_COLUMNS, ResultsTable, read_results, trajectory
from d2m_nas.search.run import run_search, study_name

__all__ = ["COST_METRICS", "RESULT_COLUMNS", "Evaluation", "ResultsTable", "SearchBackend", "SearchConfig",
           "SearchDriver", "create_backend", "list_backends", "read_results", "register_backend", "run_search",
           "study_name", "trajectory"]
