"""The NNI backend in-process: regularised evolution over the contract-built model space, the
same results table as Optuna, resumption through the cache. One test: importing NNI is slow."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from d2m_nas.proxies.base import ProxyContext
from d2m_nas.search import SearchConfig, read_results, run_search
from d2m_nas.search.results import RESULT_COLUMNS

sys.path.insert(0, str(Path(__file__).parent))
from test_search_optuna import SPACE, FakeProxy, fake_truths, truth_of  # noqa: E402

pytest.importorskip("nni", reason="the nni extra is not installed (pip install 'd2m-nas[nni]')")


def test_nni_regularised_evolution_runs_in_process_and_resumes_from_the_cache(tmp_path):
    config = SearchConfig(backend="nni", strategy="evolution", trials=8, study="e", population=4, tournament=2,
                          seed=3, progress=False)
    proxy = FakeProxy()
    summary = run_search(proxy, ProxyContext(space=SPACE, dataset=None), config, tmp_path / "run",
                         truths=fake_truths(), truth_column="fake_acc")
    frame = read_results(tmp_path / "run" / "results.csv")
    assert list(frame.columns) == RESULT_COLUMNS
    assert frame["trial"].tolist() == list(range(8))
    assert (frame["backend"] == "nni").all() and (frame["strategy"] == "evolution").all()
    assert frame["arch"].map(SPACE.parse).tolist() == frame["arch"].tolist()  # canonical NB201 strings
    assert frame["arch"].is_unique  # NNI deduplicates its samples
    assert frame["truth"].tolist() == pytest.approx([truth_of(a) for a in frame["arch"]])
    assert proxy.calls == frame["arch"].tolist()
    # after the 4 random founders, evolution mutates the tournament winner: one edge differs (or none)
    founders = frame["arch"].tolist()[:4]
    child = SPACE.encode(frame["arch"].iloc[4])
    assert min(sum(SPACE.encode(f)[k] != child[k] for k in child) for f in founders) <= 2
    assert summary["searches"][0]["studies"]["e"]["best_arch"] == frame.loc[frame["score"].idxmax(), "arch"]

    # the same search again: NNI replays its seeded sequence, the cache answers, no new rows
    again = FakeProxy()
    run_search(again, ProxyContext(space=SPACE, dataset=None), config, tmp_path / "run", truths=fake_truths(),
               truth_column="fake_acc")
    assert again.calls == []
    assert read_results(tmp_path / "run" / "results.csv").equals(frame)

    # NNI's TPE strategy drives the same driver (it waits ~1 s per trial, so only two trials)
    tpe = SearchConfig(backend="nni", strategy="tpe", trials=2, study="t", seed=1, progress=False)
    run_search(FakeProxy(), ProxyContext(space=SPACE, dataset=None), tpe, tmp_path / "run")
    rows = read_results(tmp_path / "run" / "results.csv")
    assert rows[rows["study"] == "t"]["trial"].tolist() == [0, 1]
