"""One search driver for every backend: evaluate an architecture through the cache and the
proxy, record the evaluation, and know when to stop.

A backend (Optuna, NNI) decides *which* architecture comes next; the driver does the rest, so
both produce the same results table. The driver keeps the ground truth to itself: a backend
receives the proxy score (and, for multi-objective search, a cost), never the true accuracy.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import asdict, dataclass, field

import pandas as pd

from d2m_nas.databases import worker_identity
from d2m_nas.proxies.base import Proxy, ProxyContext
from d2m_nas.proxies.ensemble import EnsembleProxy
from d2m_nas.proxies.training import CheckpointCallback, Stopped
from d2m_nas.score_cache import ScoreCache, config_key, proxy_config
from d2m_nas.search.backends import backend_class
from d2m_nas.search.results import ResultsTable

COST_METRICS = ("params", "seconds")  # the second objective of nsga2
PRUNERS = ("none", "median", "halving", "hyperband")  # Optuna pruners on a training proxy's checkpoints


@dataclass
class SearchConfig:
    backend: str = "optuna"
    strategy: str = "tpe"
    trials: int | None = 20  # the study's total of finished evaluations
    time_budget: float | None = None  # seconds per session: no trial starts after this
    proxy_budget: float | None = None  # proxy seconds per study (optuna): no trial starts after this
    seed: int = 0
    study: str = "search"
    storage: str | None = None  # Optuna storage URL; None: sqlite in the run directory
    cost_metric: str = "params"  # nsga2: minimise this next to maximising the score
    population: int = 20  # nsga2 population; NNI regularised evolution population
    tournament: int = 5  # NNI regularised evolution sample size
    heartbeat: int = 60  # Optuna RDB storages: seconds between heartbeats (stale after 2x)
    pruner: str = "none"  # stop candidates early on their checkpoint scores (optuna, training proxies)
    warm_start: str | None = None  # "PROXY:K": enqueue the top K of a zero-cost proxy (or vote) first
    warm_start_pool: int = 200  # ... among this many seeded architectures
    funnel: tuple[int, ...] | None = None  # funnel backend: architectures entering each screening stage
    progress: bool = True

    def __post_init__(self) -> None:
        backend = backend_class(self.backend)  # ValueError naming the choices
        if self.strategy not in backend.strategies:
            raise ValueError(f"unknown strategy {self.strategy!r} for the {self.backend} backend; choose from "
                             f"{', '.join(backend.strategies)}")
        if self.cost_metric not in COST_METRICS:
            raise ValueError(f"unknown cost metric {self.cost_metric!r}; choose from {', '.join(COST_METRICS)}")
        if self.trials is None and self.time_budget is None and self.proxy_budget is None:
            raise ValueError("a search needs a stop: give a number of trials, a time budget or a proxy budget")
        if self.trials is not None and self.trials < 1:
            raise ValueError(f"the number of trials must be at least 1, got {self.trials}")
        for name, value in (("time budget", self.time_budget), ("proxy budget", self.proxy_budget)):
            if value is not None and not value > 0:
                raise ValueError(f"the {name} must be positive seconds, got {value}")
        if self.population < 2:
            raise ValueError(f"the population must be at least 2, got {self.population}")
        if self.backend == "nni" and self.strategy == "evolution" and not 1 <= self.tournament <= self.population:
            raise ValueError(f"need 1 <= tournament ({self.tournament}) <= population ({self.population})")
        if self.heartbeat < 1:
            raise ValueError(f"the heartbeat interval must be at least 1 second, got {self.heartbeat}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"unknown pruner {self.pruner!r}; choose from {', '.join(PRUNERS)}")
        if (self.pruner != "none" or self.warm_start or self.proxy_budget) and not backend.study_options:
            raise ValueError("--pruner, --warm-start and --proxy-budget work with the optuna backend")
        if self.warm_start is not None:
            self.warm_start_spec()
        if self.funnel is not None:
            sizes = tuple(self.funnel)
            if self.backend != "funnel":
                raise ValueError("--funnel sets the stages of the funnel backend (--backend funnel)")
            if not sizes or min(sizes) < 1 or list(sizes) != sorted(sizes, reverse=True) or (
                    self.trials is not None and self.trials > sizes[-1]):
                raise ValueError(f"--funnel takes stage sizes that never grow, the last at least --trials "
                                 f"({self.trials}), e.g. 3000,100; got {','.join(map(str, sizes))}")

    def warm_start_spec(self) -> tuple[str, int]:
        """--warm-start PROXY:K as (proxy, K)."""
        name, _, count = str(self.warm_start).rpartition(":")
        if not name or not count.isdigit() or not 1 <= int(count) <= self.warm_start_pool:
            raise ValueError(f"--warm-start must be PROXY:K with 1 <= K <= --warm-start-pool "
                             f"({self.warm_start_pool}), e.g. synflow:10; got {self.warm_start!r}")
        return name, int(count)

    @property
    def multi_objective(self) -> bool:
        return self.strategy == "nsga2"


@dataclass
class Evaluation:
    """What a backend learns about one architecture (no ground truth here)."""

    arch: str
    score: float
    seconds: float  # the proxy's cost of this score when it was computed
    cached: bool
    cost: float | None = None  # nsga2's second objective
    elapsed_s: float = 0.0  # worker session wall-clock when the evaluation finished
    finished_at: str = ""
    state: str = "complete"  # or "pruned": stopped at a checkpoint; score and seconds are partial
    steps: int | None = None  # training steps run (training-based proxies)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchDriver:
    space_name: str
    proxy: Proxy
    context: ProxyContext
    cache: ScoreCache
    table: ResultsTable
    config: SearchConfig
    truths: pd.Series | None = None  # true accuracy by arch, for the results table only
    truth_column: str = ""
    cost_proxy: Proxy | None = None  # scores the nsga2 cost when cost_metric == "params"
    warm_proxy: Proxy | None = None  # --warm-start's proxy (else built from its name)
    worker: dict = field(default_factory=worker_identity)

    def __post_init__(self) -> None:
        self.session_start = time.perf_counter()
        self.evaluations = 0
        self.overhead_s = 0.0  # one-off work (a warm start's scoring) charged to the next evaluation
        if isinstance(self.proxy, EnsembleProxy):  # its components are scored through the cache too
            self.proxy.scorer = lambda proxy, arch, context: self.cache.score(proxy, arch, context).score

    @property
    def proxy_config(self) -> dict:
        return proxy_config(self.proxy, self.context)

    def identity(self) -> dict:
        """What a study must agree on to be continued by this search (stored with the study)."""
        config = self.proxy_config
        return {"space": self.space_name, "proxy": config["proxy"], "proxy_key": config_key(config),
                "proxy_config": json.dumps(config, sort_keys=True), "seed": self.context.seed,
                "backend": self.config.backend, "strategy": self.config.strategy,
                "cost_metric": self.config.cost_metric if self.config.multi_objective else "",
                "score_rule": getattr(self.proxy, "rule", ""), "pruner": self.config.pruner,
                "warm_start": self.config.warm_start or ""}

    def start_clock(self) -> None:
        """Start the session's wall-clock (backends call it once their imports are done)."""
        self.session_start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.session_start

    def time_left(self) -> float:
        if self.config.time_budget is None:
            return math.inf
        return self.config.time_budget - self.elapsed()

    def evaluate(self, arch: str, on_checkpoint: CheckpointCallback | None = None) -> Evaluation:
        """Score `arch` through the cache (and its nsga2 cost); nothing about the truth. With
        `on_checkpoint`, a training proxy may be stopped early: the evaluation is then "pruned",
        with the score at that checkpoint and the seconds spent (not cached: it is not the score)."""
        arch = self.context.space.parse(arch)
        options = {"on_checkpoint": on_checkpoint} if on_checkpoint is not None else {}
        try:
            result = self.cache.score(self.proxy, arch, self.context, **options)
        except Stopped as stopped:
            partial = self.proxy.rescored(stopped.result)
            return self._evaluation(arch, partial.score, partial.seconds, False, None, "pruned",
                                    partial.extra.get("steps"))
        cost = None
        if self.config.multi_objective:
            if self.config.cost_metric == "seconds":
                cost = result.score.seconds
            else:
                assert self.cost_proxy is not None
                cost = float(self.cache.score(self.cost_proxy, arch, self.context).score.score)
        return self._evaluation(arch, result.score.score, result.score.seconds, result.hit, cost, "complete",
                                result.score.extra.get("steps"))

    def _evaluation(self, arch: str, score: float, seconds: float, cached: bool, cost, state: str,
                    steps) -> Evaluation:
        self.evaluations += 1
        cached = cached and self.overhead_s == 0  # charged work is never a free cache answer
        seconds, self.overhead_s = float(seconds) + self.overhead_s, 0.0
        return Evaluation(arch, float(score), seconds, cached, cost,
                          round(self.elapsed(), 6), dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                          state, None if steps is None else int(steps))

    def row(self, study: str, trial: int, evaluation: Evaluation, retry_of: int | None = None,
            worker: dict | None = None) -> dict:
        truth = math.nan if self.truths is None else float(self.truths.get(evaluation.arch, math.nan))
        return result_row(self.context.space, study, trial, evaluation, self.report_labels(), self.context.seed,
                          truth, retry_of, worker or self.worker)

    def report_labels(self) -> dict:
        """What a results row says beside the evaluation (stored with the study, so that the rows
        can be rebuilt from the storage alone: `d2m_nas.search.stored`)."""
        return {"backend": self.config.backend, "strategy": self.config.strategy, "proxy": self.proxy.name,
                "cost_metric": self.config.cost_metric if self.config.multi_objective else "",
                "truth_column": self.truth_column if self.truths is not None else ""}

    def record(self, rows: list[dict]) -> list[dict]:
        return self.table.append(rows)


def result_row(space, study: str, trial: int, evaluation: Evaluation, labels: dict, seed: int, truth: float,
               retry_of: int | None, worker: dict) -> dict:
    """One row of RUN_DIR/results.csv (`RESULT_COLUMNS`); `labels` as `SearchDriver.report_labels`."""
    arch = evaluation.arch
    return {"study": study, "trial": trial, "retry_of": retry_of, "backend": labels["backend"],
            "strategy": labels["strategy"], "seed": seed, "arch": arch, "index": space.index(arch),
            "isomorphism": space.isomorphism_key(arch), "proxy": labels["proxy"], "score": evaluation.score,
            "seconds": evaluation.seconds, "cached": int(evaluation.cached), "cost_metric": labels["cost_metric"],
            "cost": evaluation.cost, "truth": truth, "truth_column": labels["truth_column"],
            "worker": f"{worker.get('host')}:{worker.get('pid')}", "elapsed_s": evaluation.elapsed_s,
            "finished_at": evaluation.finished_at, "state": evaluation.state, "steps": evaluation.steps}
