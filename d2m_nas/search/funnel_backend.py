"""The funnel: the frontier study's best ranking, as a search. Stage 1 scores a seeded pool of
`--warm-start-pool M` architectures with the zero-cost part of an ensemble proxy (for
`zc-vote+random-subset@tse_e`: the vote) and keeps the top `--trials K`; stage 2 trains those K
with the ensemble's training part; the pick is the best rank average of all the ensemble's
components over the K finalists (what `rank` measures for that ensemble, on a pool pre-screened
by its cheap half). No model of the space is fitted: the cost is M zero-cost scores plus K
trainings, all charged as proxy seconds, and a rerun answers from the results cache.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from d2m_nas.proxies import EnsembleProxy, ZeroCostProxy
from d2m_nas.proxies.ensemble import rank_average
from d2m_nas.search.driver import SearchDriver


def screen_of(proxy) -> list[ZeroCostProxy]:
    """The zero-cost components of an ensemble of zero-cost and trained proxies; ValueError else."""
    if not isinstance(proxy, EnsembleProxy):
        raise ValueError(f"the funnel backend needs an ensemble proxy (e.g. zc-vote+random-subset@tse_e); "
                         f"{proxy.name} is not one")
    screen = [c for c in proxy.components if isinstance(c, ZeroCostProxy)]
    if not screen or len(screen) == len(proxy.components):
        raise ValueError(f"the funnel backend needs an ensemble of zero-cost and trained proxies; {proxy.name} "
                         "has " + ("no zero-cost part" if not screen else "nothing to train"))
    return screen


def run_funnel(driver: SearchDriver, study: str, pool_size: int) -> None:
    proxy = driver.proxy
    screen = screen_of(proxy)
    space, context, config = driver.context.space, driver.context, driver.config
    pool = space.sample(min(pool_size, len(space)), context.seed)
    finalists_count = min(config.trials or len(pool), len(pool))
    driver.start_clock()
    bar = tqdm(pool, desc=f"funnel {study}: screening", unit="arch", disable=not config.progress, leave=False,
               dynamic_ncols=True)
    results = [[driver.cache.score(c, arch, context).score for c in screen] for arch in bar]
    values = np.array([[r.score for r in row] for row in results], dtype=float)
    ranked = rank_average(values) if len(screen) > 1 else values[:, 0]
    order = np.argsort(-np.nan_to_num(ranked, nan=-np.inf), kind="stable")
    finalists = [pool[i] for i in order[:finalists_count]]
    # the screen's work, less the finalists' part (the ensemble charges that with its reference)
    driver.overhead_s += sum(r.seconds for arch, row in zip(pool, results) if arch not in finalists for r in row)
    proxy.reference = finalists  # the ensemble ranks within the finalists
    done = _done(driver, study)  # a rerun records only what is missing
    for trial, arch in enumerate(tqdm(finalists, desc=f"funnel {study}: training", unit="arch",
                                      disable=not config.progress, dynamic_ncols=True)):
        if arch not in done:
            driver.record([driver.row(study, trial, driver.evaluate(arch))])


def _done(driver: SearchDriver, study: str) -> set[str]:
    from d2m_nas.search.results import read_results

    if not driver.table.path.is_file():
        return set()
    frame = read_results(driver.table.path)
    return set(frame.loc[frame["study"] == study, "arch"]) if len(frame) else set()
