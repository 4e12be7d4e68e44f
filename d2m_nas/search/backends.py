"""Search backends behind one base class and a registry, as spaces and proxies are.

A backend decides which architecture comes next; `SearchDriver` does the rest (cache, proxy,
results table, stopping), so every backend writes the same results. Built in: Optuna (TPE, random,
NSGA-II; resumable studies in a storage URL, pruners, warm starts, proxy budgets), NNI 3.0
(regularised evolution, random, TPE; in-process) and the funnel (staged zero-cost screening of a
pool, then training of its best, picked by an ensemble's rank average). A user adds one with `register_backend` (or the
`d2m_nas.search_backends` entry-point group) and selects it with `search --backend NAME`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from d2m_nas.plugins import load_entry_points

if TYPE_CHECKING:
    from d2m_nas.search.driver import SearchConfig, SearchDriver

ENTRY_POINT_GROUP = "d2m_nas.search_backends"


class SearchBackend(ABC):
    """Proposes architectures to a `SearchDriver` until `driver.config` says stop."""

    name: str = ""
    strategies: tuple[str, ...] = ()  # the first is the default
    # Whether it takes --pruner, --warm-start, --proxy-budget, --storage and --workers (a study in storage).
    study_options: bool = False
    uses_pool: bool = False  # whether --warm-start-pool means something to it

    @abstractmethod
    def run(self, driver: "SearchDriver", run_dir: Path, study: str) -> None:
        """Search one study (a seed of `search --repeat`) into `run_dir`, resuming it when it exists."""

    def check(self, proxy, config: "SearchConfig") -> None:
        """ValueError when this backend cannot search with `proxy` under `config` (before any run
        directory is made)."""


class OptunaBackend(SearchBackend):
    name = "optuna"
    strategies = ("tpe", "random", "nsga2")
    study_options = True

    def run(self, driver, run_dir, study):
        from d2m_nas.search.optuna_backend import run_optuna
        from d2m_nas.search.storage import default_storage_url

        run_optuna(driver, driver.config.storage or default_storage_url(run_dir), study)


class NNIBackend(SearchBackend):
    name = "nni"
    strategies = ("evolution", "random", "tpe")

    def run(self, driver, run_dir, study):
        from d2m_nas.search.nni_backend import run_nni

        run_nni(driver, study, Path(run_dir) / "nni")


class FunnelBackend(SearchBackend):
    """Zero-cost screening of a pool, training of the top --trials, pick by a rank average over
    them (`d2m_nas.search.funnel_backend`): of every component (rank-average), of each stage's
    own (stage-wise), or cut by each stage's own and picked by every component (stage-cuts)."""

    name = "funnel"
    strategies = ("rank-average", "stage-wise", "stage-cuts")
    uses_pool = True

    def check(self, proxy, config):
        from d2m_nas.search.funnel_backend import stage_sizes

        stage_sizes(proxy, config.funnel, config.warm_start_pool)

    def run(self, driver, run_dir, study):
        from d2m_nas.search.funnel_backend import run_funnel

        run_funnel(driver, study)


_BACKENDS: dict[str, type[SearchBackend]] = {}


def register_backend(cls: type[SearchBackend]) -> type[SearchBackend]:
    """Make a SearchBackend subclass available as `search --backend NAME` (a class decorator too)."""
    if not (isinstance(cls, type) and issubclass(cls, SearchBackend)) or not cls.name or not cls.strategies:
        raise ValueError(f"register_backend takes a SearchBackend subclass with a name and strategies, got {cls!r}")
    if cls.name in _BACKENDS and _BACKENDS[cls.name] is not cls:
        raise ValueError(f"search backend name {cls.name!r} is taken")
    _BACKENDS[cls.name] = cls
    return cls


def _registry() -> dict[str, type[SearchBackend]]:
    load_entry_points(ENTRY_POINT_GROUP, _BACKENDS, register_backend)
    return _BACKENDS


def list_backends() -> list[str]:
    return list(_registry())


def backend_class(name: str) -> type[SearchBackend]:
    """The registered backend class; ValueError naming the choices."""
    try:
        return _registry()[name]
    except KeyError:
        raise ValueError(f"unknown search backend {name!r}; choose from {', '.join(list_backends())}") from None


def create_backend(name: str) -> SearchBackend:
    return backend_class(name)()


register_backend(OptunaBackend)
register_backend(NNIBackend)
register_backend(FunnelBackend)
