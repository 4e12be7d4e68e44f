"""Search loops: one driver (cache + proxy + results table), Optuna and NNI backends."""

from __future__ import annotations

from d2m_nas.search.driver import BACKENDS, COST_METRICS, STRATEGIES, Evaluation, SearchConfig, SearchDriver
from d2m_nas.search.results import RESULT_COLUMNS, ResultsTable, read_results, trajectory
from d2m_nas.search.run import run_search, study_name

__all__ = ["BACKENDS", "COST_METRICS", "RESULT_COLUMNS", "STRATEGIES", "Evaluation", "ResultsTable", "SearchConfig",
           "SearchDriver", "read_results", "run_search", "study_name", "trajectory"]
