"""Run a search (or R seeded repeats of it) into a run directory.

RUN_DIR/results.csv    one row per evaluation (see d2m_nas.search.results)
RUN_DIR/cache.sqlite   the score cache (default; share one across runs with `cache_path`)
RUN_DIR/study.db       the Optuna study (default storage)
RUN_DIR/summary.json   the search summary `d2m-nas report` gives too (`search_summaries`): per
                       (backend, strategy, proxy), each study's pick, its true accuracy and
                       regret, cost, and their mean ± std over the studies
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from d2m_nas.formatting import finite_or_null
from d2m_nas.proxies.base import Proxy, ProxyContext
from d2m_nas.score_cache import ScoreCache
from d2m_nas.search.backends import create_backend
from d2m_nas.search.driver import SearchConfig, SearchDriver
from d2m_nas.search.results import ResultsTable, read_results, search_summaries
from distill.atomic import atomic_write_text


def study_name(base: str, seed: int, repeat: int) -> str:
    """The study of one repeat: `base` itself for a single run, `base-seedS` for repeats."""
    return base if repeat == 1 else f"{base}-seed{seed}"


def run_search(proxy: Proxy, context: ProxyContext, config: SearchConfig, run_dir: str | Path, repeat: int = 1,
               cache_path: str | Path | None = None, truths: pd.Series | None = None, truth_column: str = "",
               references: dict | None = None, warm_proxy: Proxy | None = None) -> dict:
    """Search `repeat` times with seeds config.seed, config.seed + 1, ... (sampler and proxy
    seed alike); every evaluation lands in RUN_DIR/results.csv. Returns the summary."""
    run_studies(proxy, context, config, run_dir, repeat, cache_path, truths, truth_column, warm_proxy)
    return write_summary(run_dir, references)


def run_studies(proxy: Proxy, context: ProxyContext, config: SearchConfig, run_dir: str | Path, repeat: int = 1,
                cache_path: str | Path | None = None, truths: pd.Series | None = None, truth_column: str = "",
                warm_proxy: Proxy | None = None) -> None:
    """The searches of `run_search` without the summary: what each of several workers runs."""
    if repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {repeat}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    table = ResultsTable(run_dir / "results.csv")
    cost_proxy = None
    if config.multi_objective and config.cost_metric == "params":
        from d2m_nas.proxies import create_proxy

        cost_proxy = create_proxy("params")
    with ScoreCache(cache_path or run_dir / "cache.sqlite") as cache:
        for r in range(repeat):
            seed = config.seed + r
            name = study_name(config.study, seed, repeat)
            driver = SearchDriver(context.space.name, proxy, dataclasses.replace(context, seed=seed), cache, table,
                                  dataclasses.replace(config, seed=seed, study=name), truths, truth_column,
                                  cost_proxy, warm_proxy=warm_proxy)
            create_backend(config.backend).run(driver, run_dir, name)


def write_summary(run_dir: str | Path, references: dict | None = None) -> dict:
    """RUN_DIR/summary.json from RUN_DIR/results.csv (every study in it); returns the summary."""
    path = Path(run_dir) / "results.csv"
    summary = {"results": str(path), "references": references or {},
               "searches": search_summaries(read_results(path), (references or {}).get("optimum"))}
    atomic_write_text(Path(run_dir) / "summary.json", json.dumps(finite_or_null(summary), indent=2, allow_nan=False) + "\n")
    return summary
