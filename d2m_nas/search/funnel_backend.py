"""The funnel: the frontier study's best ranking, as a search. An ensemble of zero-cost and trained
proxies is split by cost into stages: counted proxies (params, flops), then the other zero-cost
proxies, then the trained ones. The first stage scores a seeded pool; each later stage scores only
the survivors of the one before, and a stage passes on the best rank average of every component
scored so far (`--funnel M1,M2,...`: the number entering each screening stage; `--trials K`: the
number trained). The pick is the best rank average of all the ensemble's components over the K
finalists (what `rank` measures for that ensemble, on a pool pre-screened by its cheap parts).

`--strategy stage-wise` instead ranks each stage, the pick included, by its own components alone:
earlier stages only decide who enters. Why: a screen is weakest among the architectures it kept
itself (range restriction; measured on NB201 among params' best quarter, params ranks at 0.55
where synflow still ranks at 0.74: benchmarks/README.md, session 8), so its vote in later cuts
mostly repeats its own cut. `--strategy stage-cuts` cuts stage-wise but picks by the rank
average of every component over the finalists: a short training run alone ranks the largest
networks poorly (TSE-E after 400 steps: 0.68 among params' best quarter, 0.80 in that rank
average; benchmarks/README.md, session 9), so the zero-cost scores still vote at the end. No
model of the space is fitted: every score is charged as proxy seconds once, and a rerun answers
from the score cache. RUN_DIR/funnel.json records the architectures entering each stage and
their scores there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from d2m_nas.proxies import EnsembleProxy, ZeroCostProxy
from d2m_nas.proxies.ensemble import rank_average
from d2m_nas.search.driver import SearchDriver
from distill.atomic import atomic_write_text
from search_spaces.zero_cost import COUNT_METRICS

STAGES_FILE = "funnel.json"


def screen_of(proxy) -> list[list[ZeroCostProxy]]:
    """The screening stages of an ensemble of zero-cost and trained proxies, cheapest first (counted
    metrics, then the rest); ValueError for a proxy the funnel cannot split."""
    if not isinstance(proxy, EnsembleProxy):
        raise ValueError(f"the funnel backend needs an ensemble proxy (e.g. zc-vote+random-subset@tse_e); "
                         f"{proxy.name} is not one")
    screen = [c for c in proxy.components if isinstance(c, ZeroCostProxy)]
    if not screen or len(screen) == len(proxy.components):
        raise ValueError(f"the funnel backend needs an ensemble of zero-cost and trained proxies; {proxy.name} "
                         "has " + ("no zero-cost part" if not screen else "nothing to train"))
    counted = [c for c in screen if c.metric in COUNT_METRICS]
    return [stage for stage in (counted, [c for c in screen if c not in counted]) if stage]


def stage_sizes(proxy, funnel: tuple[int, ...] | None, pool: int) -> list[int]:
    """The number of architectures entering each screening stage: --funnel, or --warm-start-pool when
    the screen is one stage; ValueError when they do not fit the ensemble."""
    stages = screen_of(proxy)
    if funnel is None:
        if len(stages) > 1:
            raise ValueError(f"{proxy.name} screens in {len(stages)} stages ("
                             + "; ".join(", ".join(c.label for c in s) for s in stages)
                             + "): give the number entering each with --funnel, e.g. --funnel 3000,100")
        return [pool]
    if len(funnel) != len(stages):
        raise ValueError(f"--funnel names {len(funnel)} stage size(s), but {proxy.name} screens in "
                         f"{len(stages)} stage(s): " + "; ".join(", ".join(c.label for c in s) for s in stages))
    return list(funnel)


def run_funnel(driver: SearchDriver, study: str) -> None:
    proxy, config, context = driver.proxy, driver.config, driver.context
    stages = screen_of(proxy)
    sizes = stage_sizes(proxy, config.funnel, config.warm_start_pool)
    survivors = context.space.sample(min(sizes[0], len(context.space)), context.seed)
    passing = sizes[1:] + [config.trials or len(survivors)]
    driver.start_clock()
    stage_wise = config.strategy in ("stage-wise", "stage-cuts")
    ranked_by: dict[str, list[float]] = {arch: [] for arch in survivors}  # arch -> what its next cut ranks
    spent = dict.fromkeys(survivors, 0.0)  # arch -> seconds of its screens
    record = []
    for number, (stage, keep) in enumerate(zip(stages, passing), start=1):
        bar = tqdm(survivors, desc=f"funnel {study}: screen {number}/{len(stages)}", unit="arch",
                   disable=not config.progress, leave=False, dynamic_ncols=True)
        scores = {}
        for arch in bar:
            results = [driver.cache.score(c, arch, context).score for c in stage]
            spent[arch] += sum(r.seconds for r in results)
            scores[arch] = [r.score for r in results]
            ranked_by[arch] = scores[arch] if stage_wise else ranked_by[arch] + scores[arch]
        record.append({"proxies": [c.label for c in stage], "entered": survivors,
                       "scores": {c.label: [scores[arch][i] for arch in survivors] for i, c in enumerate(stage)}})
        survivors = best_of(survivors, ranked_by, keep)
    finalists = survivors
    # the screens' work, less the finalists' part (the ensemble charges that with its reference)
    driver.overhead_s += sum(seconds for arch, seconds in spent.items() if arch not in finalists)
    proxy.reference = finalists  # the ensemble ranks within the finalists
    if config.strategy == "stage-wise":  # ... by its trained components alone
        screened = {c.label for stage in stages for c in stage}
        proxy.voters = [label for label in proxy.component_labels if label not in screened]
    done = _done(driver, study)  # a rerun records only what is missing
    for trial, arch in enumerate(tqdm(finalists, desc=f"funnel {study}: training", unit="arch",
                                      disable=not config.progress, dynamic_ncols=True)):
        if arch not in done:
            driver.record([driver.row(study, trial, driver.evaluate(arch))])
    record_stages(driver.table.path.parent / STAGES_FILE, study,
                  record + [{"trained": finalists, "components": proxy.reference_table(context)}])


def best_of(archs: list[str], scores: dict[str, list[float]], keep: int) -> list[str]:
    """The `keep` best of `archs` by the rank average of their `scores`, best first (ties: pool
    order)."""
    values = np.array([scores[arch] for arch in archs], dtype=float)
    ranked = rank_average(values) if values.shape[1] > 1 else values[:, 0]
    order = np.argsort(-np.nan_to_num(ranked, nan=-np.inf), kind="stable")
    return [archs[i] for i in order[:keep]]


def record_stages(path: Path, study: str, stages: list[dict]) -> None:
    """Which architectures entered each stage of `study` (RUN_DIR/funnel.json, by study): what a
    user checks when a pick disappoints — was the best one screened out, or ranked down at the end?"""
    studies = json.loads(path.read_text()) if path.is_file() else {}
    studies[study] = stages
    atomic_write_text(path, json.dumps(studies, indent=1) + "\n")


def _done(driver: SearchDriver, study: str) -> set[str]:
    from d2m_nas.search.results import read_results

    if not driver.table.path.is_file():
        return set()
    frame = read_results(driver.table.path)
    return set(frame.loc[frame["study"] == study, "arch"]) if len(frame) else set()

