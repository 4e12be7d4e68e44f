"""Ensembles: rank-average arithmetic on known ranks (ties and NaN included), rank writes them from
their components' rows, search scores them against a reference sample; bad ensembles are
one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from d2m_nas.cli import main
from d2m_nas.errors import UserError
from d2m_nas.proxies import EnsembleProxy, ProxyContext, ProxyScore, create_proxy
from d2m_nas.proxies.base import Proxy
from d2m_nas.proxies.ensemble import component_specs, parse_definitions, percentiles, rank_average
from search_spaces.nasbench201 import all_archs
from search_spaces.registry import create_space


def test_percentiles_share_ties_and_keep_nan():
    reference = np.array([1.0, 2.0, 2.0, 4.0, np.nan])
    assert percentiles(np.array([0.0, 1.0, 2.0, 3.0, 5.0, np.nan]), reference).tolist()[:5] == [
        0.0, 0.125, 0.5, 0.75, 1.0]
    assert np.isnan(percentiles(np.array([np.nan]), reference)[0])


def test_rank_average_over_the_set_is_the_mean_rank():
    scores = np.array([[3.0, 10.0, 0.1], [1.0, 30.0, 0.3], [2.0, 20.0, 0.3], [4.0, 40.0, 0.2]])
    ranks = np.column_stack([stats.rankdata(scores[:, c]) for c in range(3)])  # ties: average rank
    expected = (ranks.mean(axis=1) - 0.5) / len(scores)
    assert rank_average(scores) == pytest.approx(expected)
    assert stats.spearmanr(rank_average(scores), ranks.mean(axis=1)).statistic == pytest.approx(1.0)


def test_a_nan_component_is_left_out_of_that_architectures_mean():
    scores = np.array([[1.0, 5.0], [2.0, 4.0], [3.0, 3.0], [3.0, np.nan]])
    # arch 3: only its first component, tied top with arch 2: (2 + 0.5 * 2) / 4
    assert rank_average(scores)[3] == pytest.approx(0.75)
    assert np.isnan(rank_average(np.array([[np.nan, np.nan], [1.0, 2.0]]))[0])


@pytest.mark.parametrize("spec, defined, fragment", [
    ("synflow+fisher", {}, "unknown proxy 'fisher'"),
    ("mix", {"mix": "synflow+mix"}, "names itself"),
    ("synflow+zc-vote", {}, "lists a component twice once expanded"),
    ("a", {"a": "synflow+b", "b": "snip+a"}, "contains itself"),
    ("synflow+synflow", {}, "lists a component twice"),
    ("synflow+", {}, "empty component"),
])
def test_bad_ensembles_are_one_line_errors(spec, defined, fragment):
    with pytest.raises(UserError, match=fragment):
        create_proxy(spec, ensembles=defined)


def test_a_component_naming_an_ensemble_stands_for_its_components():
    mix = create_proxy("zc-vote+random-subset@tse_e")
    assert [c.label for c in mix.components] == ["synflow", "jacob_cov", "snip", "random-subset@tse_e"]
    sized = create_proxy("zc-vote[channels=16]+params", ensembles={})
    assert [c.name for c in sized.components] == ["synflow[channels=16]", "jacob_cov[channels=16]",
                                                  "snip[channels=16]", "params"]


def test_definitions_parse_and_refuse_malformed_ones():
    assert parse_definitions(["mix=synflow+random-subset@tse_e"]) == {"mix": "synflow+random-subset@tse_e"}
    assert component_specs("zc-vote") == ("zc-vote", ["synflow", "jacob_cov", "snip"])
    for bad in ("mix", "=synflow+snip", "a+b=synflow+snip"):
        with pytest.raises(UserError, match="--ensemble must be NAME="):
            parse_definitions([bad])
    with pytest.raises(UserError, match="twice"):
        parse_definitions(["zc-vote=synflow+snip"])


class Fixed(Proxy):
    """A zero-cost-like toy proxy with known scores and seconds."""

    needs_data = False

    def __init__(self, name, values):
        self.name, self.values, self.calls = name, values, []

    def config(self):
        return {"toy": self.name}

    def score(self, arch, context):
        self.calls.append(arch)
        return ProxyScore(self.values[arch], 0.5)


def test_a_search_ensemble_ranks_against_its_reference_sample_and_pays_for_it_once():
    space = create_space("nasbench201")
    context = ProxyContext(space=space, dataset=None, seed=4)
    archs = list(all_archs())
    a = Fixed("a", {arch: float(i) for i, arch in enumerate(archs)})
    b = Fixed("b", {arch: -float(i) for i, arch in enumerate(archs)})
    ensemble = EnsembleProxy("ab", [a, b], reference_size=10)
    reference = ensemble.reference_archs(context)
    first = ensemble.score(archs[7], context)
    assert len(a.calls) == 11 and first.seconds == pytest.approx(11 * 2 * 0.5)  # the reference is charged once
    again = ensemble.score(archs[7], context)
    assert again.seconds == pytest.approx(1.0) and again.score == first.score
    ranks = np.array([[a.values[r], b.values[r]] for r in reference])
    assert first.score == pytest.approx(rank_average(np.array([[7.0, -7.0]]), ranks)[0])


def test_rank_writes_ensemble_rows_from_its_components(tmp_path, table, capsys):
    out = tmp_path / "run"
    argv = ["rank", "--proxy", "zc-vote,mix", "--ensemble", "mix=params+random-subset@tse", "--sample", "5",
            "--proxy-seeds", "2", "--ground-truth", "cifar10:test:200", "--ground-truth-file", str(table),
            "--dataset", "fake", "--val-per-class", "10", "--ipc", "2", "--steps", "3", "--proxy-batch-size", "8",
            "--channels", "4", "--cells", "1", "--bootstrap", "20", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["proxy"]) == {"synflow", "jacob_cov", "snip", "params", "random-subset", "zc-vote", "mix"}
    for seed, rows in results.groupby("seed"):
        by = {p: r.set_index("arch") for p, r in rows.groupby("proxy")}
        archs = list(by["mix"].index)
        parts = [by["params"].loc[archs, "score"], by["random-subset"].loc[archs, "tse"]]
        expected = rank_average(np.column_stack(parts))
        assert by["mix"]["score"].tolist() == pytest.approx(expected.tolist())
        assert by["mix"]["seconds"].tolist() == pytest.approx(
            (by["params"].loc[archs, "seconds"] + by["random-subset"].loc[archs, "seconds"]).tolist(), abs=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert {"zc-vote", "mix", "random-subset@tse"} <= set(summary["proxies"])
    before = (out / "results.csv").read_text()
    assert main(argv) == 0  # a resumed run writes nothing twice
    assert (out / "results.csv").read_text() == before
    # report: every rule of the training component is its own row, every row is paired against the baseline
    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--ground-truth-file", str(table),
                 "--bootstrap", "20", "--baseline", "zc-vote"]) == 0
    report = json.loads((tmp_path / "report" / "summary.json").read_text())
    section = report["rankings"][0]
    assert {"random-subset@tse_e", "mix", "zc-vote"} <= {r["proxy"] for r in section["rankings"]}
    paired = section["paired"]
    assert {p["baseline"] for p in paired} == {"zc-vote"} and {"mix", "synflow"} <= {p["proxy"] for p in paired}
    assert all(p["n"] == 5 for p in paired)
    assert "ρ − ρ_baseline" in capsys.readouterr().out


def test_a_search_with_an_ensemble_scores_its_components_through_the_cache(tmp_path):
    from d2m_nas.score_cache import ScoreCache, proxy_config
    from d2m_nas.search import SearchConfig, read_results, run_search

    space = create_space("nasbench201")
    archs = list(all_archs())
    a = Fixed("a", {arch: float(i % 97) for i, arch in enumerate(archs)})
    b = Fixed("b", {arch: float(i % 89) for i, arch in enumerate(archs)})
    context = ProxyContext(space=space, dataset=None)
    run_search(EnsembleProxy("ab", [a, b], reference_size=8), context,
               SearchConfig(trials=4, study="e", progress=False), tmp_path / "run")
    frame = read_results(tmp_path / "run" / "results.csv")
    assert len(frame) == 4 and frame["score"].between(0, 1).all()
    assert frame["seconds"].iloc[0] >= (8 + 1) * 2 * 0.5  # the reference's scoring is charged once
    with ScoreCache(tmp_path / "run" / "cache.sqlite") as cache:
        scored = {e["arch"] for e in cache.entries(proxy_config(a, context))}
    assert set(EnsembleProxy("ab", [a, b], 8).reference_archs(context)) <= scored
