"""The funnel backend: screen a pool with an ensemble's zero-cost part, train the top K, pick by the
rank average over them; every second charged once; a rerun answers from the cache."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from d2m_nas.cli import main
from d2m_nas.proxies import EnsembleProxy, ProxyContext, create_proxy
from d2m_nas.proxies.ensemble import rank_average
from d2m_nas.score_cache import ScoreCache
from d2m_nas.search import SearchConfig, read_results, run_search
from tests.test_search_optuna import SPACE, FakeProxy, fake_truths


def funnel(tmp_path, trials=4, pool=12, seed=0, repeat=1):
    proxy = EnsembleProxy("params+fake", [create_proxy("params"), FakeProxy()])
    config = SearchConfig(backend="funnel", strategy="rank-average", trials=trials, warm_start_pool=pool,
                          study="f", seed=seed, progress=False)
    summary = run_search(proxy, ProxyContext(space=SPACE, dataset=None), config, tmp_path / "run", repeat=repeat,
                         truths=fake_truths(), truth_column="fake_acc")
    return proxy, summary, read_results(tmp_path / "run" / "results.csv")


def test_the_funnel_trains_the_screens_top_k_and_picks_by_the_rank_average(tmp_path):
    proxy, summary, frame = funnel(tmp_path)
    context = ProxyContext(space=SPACE, dataset=None)
    pool = SPACE.sample(12, 0)
    params = np.array([create_proxy("params").score(a, context).score for a in pool])
    finalists = [pool[i] for i in np.argsort(-params, kind="stable")[:4]]
    assert frame["arch"].tolist() == finalists  # the screen's top 4, in its order, each trained once
    assert sorted(proxy.components[1].calls) == sorted(finalists)
    values = np.array([[create_proxy("params").score(a, context).score, FakeProxy().score(a, context).score]
                       for a in finalists])
    assert frame["score"].to_numpy() == pytest.approx(rank_average(values))
    best = finalists[int(np.argmax(rank_average(values)))]
    assert summary["searches"][0]["studies"]["f"]["best_arch"] == best
    # every second once: the pool's params and the finalists' training, as the cache recorded them
    with ScoreCache(tmp_path / "run" / "cache.sqlite") as cache:
        spent = sum(cache.score(p, a, context).score.seconds for p, archs in
                    ((proxy.components[0], pool), (proxy.components[1], finalists)) for a in archs)
    assert frame["seconds"].sum() == pytest.approx(spent)
    assert frame["seconds"].iloc[1:].sum() == 0.0  # all charged to the first evaluation


def test_a_rerun_trains_nothing_and_records_nothing_twice(tmp_path):
    funnel(tmp_path)
    proxy, _, frame = funnel(tmp_path)
    assert proxy.components[1].calls == [] and len(frame) == 4


def test_each_seed_screens_its_own_pool(tmp_path):
    _, summary, frame = funnel(tmp_path, repeat=2)
    assert set(frame["study"]) == {"f-seed0", "f-seed1"}
    seeds = frame.groupby("study")["arch"].apply(set)
    assert seeds["f-seed0"] != seeds["f-seed1"]


@pytest.mark.parametrize("proxy, fragment", [
    ("params", "the funnel backend needs an ensemble proxy"),
    ("params+synflow", "has nothing to train"),
])
def test_the_funnel_refuses_a_proxy_it_cannot_funnel(tmp_path, capsys, proxy, fragment):
    assert main(["search", "--backend", "funnel", "--proxy", proxy, "--trials", "2", "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err


def test_the_funnel_from_the_command_line_with_sizes_of_its_own(tmp_path, table, capsys, benchmark_script):
    out = tmp_path / "run"
    assert main(["search", "--backend", "funnel", "--proxy", "synflow+random-subset[channels=2,cells=1]@tse_e",
                 "--trials", "2", "--warm-start-pool", "5", "--channels", "4", "--cells", "1", "--dataset", "fake",
                 "--val-per-class", "10", "--steps", "3", "--ipc", "4", "--ground-truth", "cifar10:test:200",
                 "--ground-truth-file", str(table), "--device", "cpu", "--out", str(out)]) == 0
    frame = read_results(out / "results.csv")
    assert len(frame) == 2 and (frame["backend"] == "funnel").all() and frame["truth"].notna().all()
    # the stage benchmark: the best truth can only fall from stage to stage, and the pick is a finalist
    script = benchmark_script("funnel_stages")
    assert "| nasbench201-synflow+random-subset" in capsys.readouterr().out
    assert script.main([str(out), "--ground-truth-file", str(table), "--reference", "cifar10:test:12"]) == 0
    line, summary = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [s["archs"] for s in line["stages"]] == [5, 2]
    assert line["stages"][0]["best_truth"] >= line["stages"][1]["best_truth"] >= line["pick_truth"]
    assert summary["studies"] == 1 and summary["mean_pick_truth"] == line["pick_truth"]
    rules = line["pick_truth_by_final_rule_post_hoc"]
    assert set(rules) == {"synflow", "random-subset[cells=1,channels=2]@tse_e", "rank average",
                          "reference cifar10:test:12"}
    assert rules["rank average"] == line["pick_truth"]  # the funnel's own rule, recomputed
    assert rules["reference cifar10:test:12"] == line["stages"][-1]["best_truth"]  # this table's 12 = its 200
    # the finalists rescored by another run (here params), read back as a final rule
    finalists = tmp_path / "finalists.txt"
    assert script.main([str(out), "--ground-truth-file", str(table), "--finalists-out", str(finalists)]) == 0
    trained = frame["arch"].tolist()
    assert [x for x in finalists.read_text().splitlines() if not x.startswith("#")] == trained
    rescored = tmp_path / "rescored"
    assert main(["rank", "--archs", str(finalists), "--proxy", "params", "--ground-truth", "cifar10:test:200",
                 "--ground-truth-file", str(table), "--channels", "4", "--cells", "1", "--out", str(rescored)]) == 0
    capsys.readouterr()
    assert script.main([str(out), "--ground-truth-file", str(table), "--final-scores", str(rescored)]) == 0
    rules = json.loads(capsys.readouterr().out.splitlines()[0])["pick_truth_by_final_rule_post_hoc"]
    params = pd.read_csv(rescored / "results.csv").set_index("arch")["score"]
    assert rules["rescored: params"] == frame.set_index("arch").loc[params.idxmax(), "truth"]


def test_funnel_stages_scores_each_final_rule_by_its_spearman_among_the_finalists(benchmark_script):
    script = benchmark_script("funnel_stages")
    trained = {"trained": ["a", "b", "c", "d"], "components": {"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 1.0, 4.0, 3.0]}}
    truths = pd.Series({"a": 1.0, "b": 3.0, "c": 2.0, "d": 4.0, "e": 9.0})
    columns = {"other run": pd.Series({"a": 4.0, "b": 1.0, "c": 3.0, "d": 2.0}),
               "partial": pd.Series({"a": 1.0})}  # does not score every finalist: left out
    rho = script.final_rule_spearman(trained, truths, columns)
    # by hand: 1 − 6Σd²/(n(n²−1)); the rank average (1.5, 1.5, 3.5, 3.5) by Pearson on ranks: 2/√20
    assert rho == pytest.approx({"x": 0.8, "y": 0.0, "rank average": 2 / 20 ** 0.5, "other run": -0.8})
    picks = script.final_rules(trained, truths, columns)  # the first of the tied best rank averages: c
    assert picks == {"x": 4.0, "y": 2.0, "rank average": 2.0, "other run": 1.0}


def staged_funnel(tmp_path, strategy):
    """params over 12, synflow over the best 6, a fake trained proxy over the best 3."""
    context = ProxyContext(space=SPACE, dataset=None, model_options={"channels": 4, "cells_per_stage": 1})
    proxy = EnsembleProxy("params+synflow+fake", [create_proxy("params"), create_proxy("synflow"), FakeProxy()])
    config = SearchConfig(backend="funnel", strategy=strategy, trials=3, funnel=(12, 6), study="f", progress=False)
    summary = run_search(proxy, context, config, tmp_path / "run", truths=fake_truths(), truth_column="fake_acc")
    return context, proxy, summary, read_results(tmp_path / "run" / "results.csv")


def test_a_staged_funnel_screens_each_stage_on_the_survivors_of_the_one_before(tmp_path):
    context, proxy, summary, frame = staged_funnel(tmp_path, "rank-average")
    pool = SPACE.sample(12, 0)
    params = {a: create_proxy("params").score(a, context).score for a in pool}
    stage_two = sorted(pool, key=lambda a: -params[a])[:6]  # counted first: params alone over the pool
    synflow = {a: create_proxy("synflow").score(a, context).score for a in stage_two}
    order = np.argsort(-rank_average(np.array([[params[a], synflow[a]] for a in stage_two])), kind="stable")
    finalists = [stage_two[i] for i in order[:3]]  # then the vote of all screens so far, on the survivors
    assert frame["arch"].tolist() == finalists and sorted(proxy.components[2].calls) == sorted(finalists)
    stages = json.loads((tmp_path / "run" / "funnel.json").read_text())["f"]
    components = {"params": [params[a] for a in finalists], "synflow": [synflow[a] for a in finalists],
                  "fake": [FakeProxy().score(a, context).score for a in finalists]}
    recorded = stages[2].pop("components")
    assert stages[0].pop("scores") == {"params": [params[a] for a in pool]}  # each screen's scores, as entered
    assert stages[1].pop("scores")["synflow"] == pytest.approx([synflow[a] for a in stage_two])
    assert stages == [{"proxies": ["params"], "entered": pool}, {"proxies": ["synflow"], "entered": stage_two},
                      {"trained": finalists}]
    assert recorded.keys() == components.keys()  # each component over the finalists, in their order
    assert all(recorded[k] == pytest.approx(components[k]) for k in components)
    assert summary["searches"][0]["studies"]["f"]["best_arch"] in finalists
    with ScoreCache(tmp_path / "run" / "cache.sqlite") as cache:  # every second once: the pool's params,
        spent = sum(cache.score(p, a, context).score.seconds for p, archs in  # the six's synflow, three trainings
                    ((proxy.components[0], pool), (proxy.components[1], stage_two), (proxy.components[2], finalists))
                    for a in archs)
    assert frame["seconds"].sum() == pytest.approx(spent)


def test_a_stage_wise_funnel_cuts_and_picks_by_each_stages_own_components(tmp_path):
    context, proxy, summary, frame = staged_funnel(tmp_path, "stage-wise")
    pool = SPACE.sample(12, 0)
    params = {a: create_proxy("params").score(a, context).score for a in pool}
    stage_two = [pool[i] for i in np.argsort([-params[a] for a in pool], kind="stable")[:6]]
    synflow = [create_proxy("synflow").score(a, context).score for a in stage_two]
    finalists = [stage_two[i] for i in np.argsort(-np.array(synflow), kind="stable")[:3]]  # synflow alone cuts
    assert frame["arch"].tolist() == finalists
    fake = np.array([[FakeProxy().score(a, context).score] for a in finalists])
    assert frame["score"].to_numpy() == pytest.approx(rank_average(fake))  # the trained part alone picks
    best = finalists[int(np.argmax(fake[:, 0]))]
    assert summary["searches"][0]["studies"]["f"]["best_arch"] == best
    # a rank-average run of the same study would not reuse these ensemble scores: the voters are keyed
    assert proxy.config()["voters"] == ["fake"]


def test_a_stage_cuts_funnel_cuts_stage_wise_and_picks_by_every_component(tmp_path):
    context, proxy, summary, frame = staged_funnel(tmp_path, "stage-cuts")
    pool = SPACE.sample(12, 0)
    params = {a: create_proxy("params").score(a, context).score for a in pool}
    stage_two = [pool[i] for i in np.argsort([-params[a] for a in pool], kind="stable")[:6]]
    synflow = {a: create_proxy("synflow").score(a, context).score for a in stage_two}
    finalists = sorted(stage_two, key=lambda a: -synflow[a])[:3]  # synflow alone cuts, as stage-wise
    assert frame["arch"].tolist() == finalists
    every = np.array([[params[a], synflow[a], FakeProxy().score(a, context).score] for a in finalists])
    assert frame["score"].to_numpy() == pytest.approx(rank_average(every))  # all three pick
    assert proxy.voters is None and "voters" not in proxy.config()


@pytest.mark.parametrize("options, fragment", [
    ([], "screens in 2 stages (params; synflow): give the number entering each with --funnel"),
    (["--funnel", "5"], "--funnel names 1 stage size(s), but params+synflow+random-subset"),
    (["--funnel", "5,8"], "--funnel takes stage sizes that never grow"),
    (["--funnel", "8,1"], "the last at least --trials (2)"),
    (["--funnel", "8,x"], "--funnel: must be whole numbers >= 1 separated by commas"),
])
def test_funnel_stages_that_do_not_fit_are_a_one_line_error(tmp_path, capsys, options, fragment):
    assert main(["search", "--backend", "funnel", "--proxy", "params+synflow+random-subset", "--trials", "2",
                 *options, "--dataset", "fake", "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_funnel_stages_belong_to_the_funnel_backend(tmp_path, capsys):
    assert main(["search", "--proxy", "params", "--trials", "2", "--funnel", "5", "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--funnel sets the stages of the funnel backend" in capsys.readouterr().err


def test_the_shortlist_ceiling_of_a_perfect_proxy_is_its_own_pick(tmp_path, capsys, benchmark_script):
    script = benchmark_script("shortlist_ceiling")
    truths = np.arange(50, dtype=float)
    rows = pd.DataFrame({"arch": [f"a{i}" for i in range(50)], "proxy": "params", "score": truths, "truth": truths,
                         "truth_column": "acc"})
    (tmp_path / "run").mkdir()
    rows.to_csv(tmp_path / "run" / "results.csv", index=False)
    assert script.main([str(tmp_path / "run"), "--pools", "20,50", "--keep", "5", "--seeds", "0-3"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["pool"], r["keep"]) for r in lines] == [(20, 5), (50, 5)]
    assert all(r["best_in_shortlist_mean"] == r["proxy_pick_mean"] for r in lines)  # score = truth
    assert lines[1]["proxy_pick_mean"] == 49.0  # the whole space: the best cell, every seed
