"""NNI backend: NNI 3.0 multi-trial strategies (random, regularised evolution, TPE), in-process.

This is the one module that imports nni. The model space is built from our search-space
contract: one NNI categorical choice per entry of `space.choices()` (for NAS-Bench-201 the six
edges, with the same labels and operation names as our strings, so each NNI sample decodes to
our canonical architecture string with `space.decode`). Frozen samples are not networks: the
evaluator hands the architecture string to the search driver, which scores it through the
score cache and the proxy and writes the same results table as the Optuna backend.

NNI keeps no resumable record of its own here; resumption comes from determinism plus the
cache: with the same seed the strategy proposes the same sequence, every architecture already
scored is answered by the cache, and rows already in the table are not written again.
NNI's TPE strategy waits one second after each trial (its own polling loop), which shows in
wall-clock numbers. A time budget is NNI's sequential-engine limit on the summed duration of the
evaluations (the strategy's own time is not counted).
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from pathlib import Path

from tqdm import tqdm

from d2m_nas.search.driver import SearchDriver
from d2m_nas.torchvision_compat import ensure_torchvision_importable


def _import_nni():
    ensure_torchvision_importable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nni warns about torch classes it does not know
        import nni
        import nni.nas.strategy as strategies
        from nni.nas.evaluator import FunctionalEvaluator
        from nni.nas.experiment import NasExperiment, NasExperimentConfig
        from nni.nas.nn.pytorch import ModelSpace
    for name in ("nni", "nni.nas", "nni.runtime", "nni.experiment"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return nni, strategies, FunctionalEvaluator, NasExperiment, NasExperimentConfig, ModelSpace


def contract_model_space(space):
    """An NNI model space with one categorical choice per entry of `space.choices()`."""
    nni, _, _, _, _, ModelSpace = _import_nni()
    from torch import nn

    class SampledArchitecture(nn.Module):
        """A frozen sample: carries the canonical architecture string (no network is built)."""

        def __init__(self, arch: str) -> None:
            super().__init__()
            self.arch = arch

    class ContractModelSpace(ModelSpace):
        def __init__(self) -> None:
            super().__init__()
            for name, values in space.choices().items():
                self.add_mutable(nni.choice(name, list(values)))

        def freeze(self, sample: dict) -> nn.Module:
            return SampledArchitecture(space.decode({name: sample[name] for name in space.choices()}))

        def forward(self, x):  # never called: the driver builds and scores the real network
            raise NotImplementedError

    return ContractModelSpace()


def make_strategy(name: str, seed: int, population: int, tournament: int):
    _, strategies, *_ = _import_nni()
    if name == "random":
        return strategies.Random(seed=seed, dedup=True)
    if name == "evolution":
        return strategies.RegularizedEvolution(population_size=population, sample_size=tournament, seed=seed,
                                               dedup=True)
    if name == "tpe":
        return strategies.TPE(seed=seed, optimize_mode="maximize")
    raise ValueError(f"unknown NNI strategy {name!r}")


def run_nni(driver: SearchDriver, study_name: str, work_dir: Path) -> int:
    """Run the strategy for `trials` evaluations (or the session's time budget); returns the
    number of evaluations this session made."""
    nni, _, FunctionalEvaluator, NasExperiment, NasExperimentConfig, _ = _import_nni()
    config = driver.config
    model_space = contract_model_space(driver.context.space)
    strategy = make_strategy(config.strategy, config.seed, config.population, config.tournament)
    bar = tqdm(total=config.trials, desc=f"search {study_name}", unit="trial", disable=not config.progress,
               dynamic_ncols=True)
    trial_numbers = itertools.count()
    driver.start_clock()

    def evaluate(model) -> None:
        trial = next(trial_numbers)
        evaluation = driver.evaluate(model.arch)
        driver.record([driver.row(study_name, trial, evaluation)])
        bar.update(1)
        # NNI compares metrics; a non-finite score must rank last, not break the comparison.
        nni.report_final_result(evaluation.score if math.isfinite(evaluation.score) else -math.inf)

    experiment_config = NasExperimentConfig("sequential", "raw")
    experiment_config.experiment_working_directory = str(Path(work_dir).resolve())
    experiment_config.execution_engine.max_model_count = config.trials
    if config.time_budget is not None:
        experiment_config.execution_engine.max_duration = float(config.time_budget)
    experiment = NasExperiment(model_space, FunctionalEvaluator(evaluate), strategy, experiment_config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            experiment.run()
    finally:
        bar.close()
        try:
            experiment.stop()
        except Exception:  # noqa: BLE001 - stopping an already-stopped experiment is harmless
            pass
    return driver.evaluations
