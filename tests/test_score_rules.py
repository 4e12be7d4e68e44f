"""Score rules: every rule recomputed by hand from a recorded trace; one training run gives all of
them; the rule never enters the cache key; bad rules are one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from d2m_nas.cli import main
from d2m_nas.data import split_train_val
from d2m_nas.data.sources import make_fake_dataset
from d2m_nas.errors import UserError
from d2m_nas.proxies import ProxyContext, TrainingProxyConfig, create_proxy
from d2m_nas.proxies.score_rules import RULES, checkpoint_rules, final_rules, training_rules, window
from d2m_nas.score_cache import ScoreCache, config_key, proxy_config
from search_spaces.registry import create_space

SPACE = create_space("nasbench201")
ARCH = SPACE.sample(1, 3)[0]


@pytest.fixture(scope="module")
def fake():
    return make_fake_dataset(train_per_class=20, test_per_class=4)


@pytest.fixture(scope="module")
def ctx(fake):
    train, val = split_train_val(fake.y_train, 5, seed=0)
    return ProxyContext(space=SPACE, dataset=fake, model_options={"channels": 4, "cells_per_stage": 1},
                        train_indices=train, val_indices=val)


def config(**kwargs):
    return TrainingProxyConfig(ipc=3, steps=kwargs.pop("steps", 12), batch_size=16, **kwargs)


def test_training_rules_by_hand():
    losses = [2.3, 2.1, 1.9, 1.6, 1.5, 1.2, 1.1, 0.9]
    rules = training_rules(losses)
    assert window(8) == 2
    assert rules["tse"] == pytest.approx(-np.mean(losses))
    assert rules["tse_e"] == pytest.approx(-(1.1 + 0.9) / 2)
    alpha = 2 / (2 + 1)
    weights = [(1 - alpha) ** (7 - t) for t in range(8)]
    assert rules["tse_ema"] == pytest.approx(-sum(w * x for w, x in zip(weights, losses)) / sum(weights))
    assert all(np.isnan(v) for v in training_rules([]).values())
    assert np.isnan(training_rules([1.0, float("nan")])["tse"])  # a diverged run is not ranked by its losses


def test_one_run_records_every_rule_and_they_follow_from_its_trace(fake, ctx):
    result = create_proxy("random-subset@tse_e", config()).score(ARCH, ctx)
    trace = result.extra["trace"]
    losses = trace["train_losses"]
    assert len(losses) == 12 and [c["step"] for c in trace["checkpoints"]] == [2, 3, 6, 12]
    last = trace["checkpoints"][-1]
    by_hand = {"val_acc": last["val_acc"], "val_loss": -last["val_loss"], "tse": -np.mean(losses),
               "tse_e": -np.mean(losses[-3:]), "tse_ema": training_rules(losses)["tse_ema"]}
    assert result.extra["scores"] == pytest.approx(by_hand)
    assert result.score == pytest.approx(by_hand["tse_e"])
    # the checkpoint at step 6 sees the first 6 losses only
    middle = checkpoint_rules(trace, trace["checkpoints"][2])
    assert middle["tse"] == pytest.approx(-np.mean(losses[:6]))
    assert middle["val_acc"] == trace["checkpoints"][2]["val_acc"]
    # costs add up: training seconds grow, evaluation seconds are summed
    seconds = [c["train_seconds"] for c in trace["checkpoints"]]
    assert seconds == sorted(seconds) and result.extra["train_seconds"] == pytest.approx(seconds[-1])
    assert result.extra["eval_seconds"] == pytest.approx(sum(c["eval_seconds"] for c in trace["checkpoints"]))


def test_checkpoints_do_not_change_the_training(fake, ctx):
    few = create_proxy("random-subset", config(checkpoints=(1.0,))).score(ARCH, ctx)
    many = create_proxy("random-subset", config(checkpoints=(0.25, 0.5, 0.75, 1.0))).score(ARCH, ctx)
    assert few.extra["trace"]["train_losses"] == many.extra["trace"]["train_losses"]
    assert few.extra["scores"] == many.extra["scores"]


def test_the_rule_is_not_part_of_the_cache_key_and_a_hit_is_rescored(fake, ctx, tmp_path):
    by_acc, by_tse = create_proxy("random-subset", config()), create_proxy("random-subset@tse", config())
    assert config_key(proxy_config(by_acc, ctx)) == config_key(proxy_config(by_tse, ctx))
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        first = cache.score(by_acc, ARCH, ctx)
        second = cache.score(by_tse, ARCH, ctx)
    assert not first.hit and second.hit
    assert first.score.score == first.score.extra["scores"]["val_acc"]
    assert second.score.score == pytest.approx(first.score.extra["scores"]["tse"])


def test_stopping_at_a_checkpoint_keeps_the_partial_record(fake, ctx):
    from d2m_nas.proxies.training import Stopped

    seen = []
    with pytest.raises(Stopped) as stopped:
        create_proxy("random-subset", config()).score(ARCH, ctx, on_checkpoint=lambda step, rules: seen.append(
            (step, rules)) or step >= 3)
    partial = stopped.value.result
    assert [s for s, _ in seen] == [2, 3] and partial.extra["steps"] == 3
    assert len(partial.extra["trace"]["train_losses"]) == 3 and partial.seconds > 0
    assert set(seen[-1][1]) == set(RULES)


@pytest.mark.parametrize("spec, fragment", [
    ("random-subset@best", "unknown score rule 'best'"),
    ("synflow@tse", "apply to training-based proxies only"),
])
def test_bad_rules_are_one_line_errors(spec, fragment):
    with pytest.raises(UserError, match=fragment):
        create_proxy(spec, config())


@pytest.mark.parametrize("checkpoints", [(0.5,), (0.5, 0.25, 1.0), (0.0, 1.0)])
def test_bad_checkpoints_are_refused(checkpoints):
    with pytest.raises(UserError, match="--checkpoints"):
        config(checkpoints=checkpoints).validate()


def test_rank_reports_every_rule_from_one_run_and_writes_curves(tmp_path, table, capsys):
    out = tmp_path / "run"
    assert main(["rank", "--proxy", "random-subset@tse_e,params", "--sample", "3", "--ground-truth",
                 "cifar10:test:200", "--ground-truth-file", str(table), "--dataset", "fake", "--val-per-class", "10",
                 "--ipc", "2", "--steps", "4", "--proxy-batch-size", "8", "--channels", "4", "--cells", "1",
                 "--bootstrap", "20", "--device", "cpu", "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv")
    trained = results[results["proxy"] == "random-subset"]
    assert (trained["score_rule"] == "tse_e").all() and (trained["score"] == trained["tse_e"]).all()
    curves = [json.loads(line) for line in (out / "curves.jsonl").read_text().splitlines()]
    assert len(curves) == 3 and {c["arch"] for c in curves} == set(trained["arch"])
    for curve in curves:
        row = trained[trained["arch"] == curve["arch"]].iloc[0]
        assert final_rules(curve["trace"]) == pytest.approx({rule: row[rule] for rule in RULES})
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["proxies"]) == {"params", *(f"random-subset@{rule}" for rule in RULES)}
    assert "| random-subset@tse_ema | 3 |" in capsys.readouterr().out
    # the same training proxy twice in one rank run is refused: every rule comes from one run anyway
    assert main(["rank", "--proxy", "random-subset,random-subset@tse", "--sample", "3", "--ground-truth",
                 "cifar10:test:200", "--ground-truth-file", str(table), "--dataset", "fake",
                 "--out", str(tmp_path / "twice")]) == 2
    assert "lists a proxy twice" in capsys.readouterr().err


def test_the_frontier_benchmark_reads_rank_runs(tmp_path, table):
    """benchmarks/proxy_frontier.py on a tiny study: one row per (checkpoint, rule), ensembles, pairs."""
    root = tmp_path / "data"
    (root / "nb201").mkdir(parents=True)
    shutil.copy(table, root / "nb201" / "nb201_ground_truth.csv")
    common = ["--sample", "6", "--ground-truth", "cifar10:test:200", "--ground-truth-file", str(table), "--dataset",
              "fake", "--val-per-class", "10", "--channels", "4", "--cells", "1", "--bootstrap", "10",
              "--device", "cpu", "--batch-size", "8"]
    assert main(["rank", "--proxy", "synflow,naswot,jacob_cov,snip", *common, "--out", str(tmp_path / "zc")]) == 0
    for shard in ("0/2", "1/2"):
        assert main(["rank", "--proxy", "random-subset", "--ipc", "2", "--steps", "8", "--proxy-batch-size", "8",
                     "--shard", shard, *common, "--out", str(tmp_path / f"t{shard[0]}")]) == 0
    assert main(["rank", "--proxy", "random-subset[ipc=3]", "--steps", "8", "--proxy-batch-size", "8", *common,
                 "--out", str(tmp_path / "other")]) == 0  # another image budget: a "source" to pair against
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(repo / "benchmarks" / "proxy_frontier.py"), str(tmp_path / "zc"),
                           str(tmp_path / "t0"), str(tmp_path / "t1"), str(tmp_path / "other"), "--out",
                           str(tmp_path / "out"), "--bootstrap", "10", "--data-root", str(root),
                           "--versus-source", "random-subset[ipc=3]=random-subset"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr[-2000:]
    pairs = {p["proxy"]: p for p in map(json.loads, done.stdout.splitlines()) if p.get("kind") == "source_pair"}
    assert "random-subset[ipc=3]@tse_e@8" in pairs, (list(pairs)[:5], done.stdout[-3000:])
    pair = pairs["random-subset[ipc=3]@tse_e@8"]
    assert pair["versus"] == "random-subset@tse_e@8" and pair["n"] == 6
    assert pair["spearman_diff"]["value"] == pytest.approx(pair["rho"] - pair["rho_versus"])
    assert "zc-vote+random-subset[ipc=3]@tse_e@8" in pairs  # ensembles pair too
    assert "| random-subset[ipc=3]@tse_e@8 | random-subset@tse_e@8 | 6 |" in (tmp_path / "out" / "frontier.md").read_text()
    rows = {r["proxy"]: r for r in map(json.loads, (tmp_path / "out" / "frontier.jsonl").read_text().splitlines())}
    assert {f"random-subset@{rule}@{step}" for rule in RULES for step in (1, 2, 4, 8)} <= set(rows)
    assert {"zc-vote", "synflow+naswot", "synflow+naswot+random-subset@tse_e@8"} <= set(rows)
    crossovers = [line for line in (tmp_path / "out" / "frontier.md").read_text().splitlines() if "- crossover (" in line]
    assert len(crossovers) == 8  # per image source (2), family (2) and baseline (the best zero-cost, zc-vote)
    assert sum("random-subset[ipc=3] images" in line for line in crossovers) == 4
    assert all(r["n"] == 6 for r in rows.values())
    assert rows["random-subset@tse@4"]["seconds_per_arch"] < rows["random-subset@tse@8"]["seconds_per_arch"]
    assert rows["random-subset@val_acc@8"]["vs_synflow"]["value"] is not None
    assert (tmp_path / "out" / "frontier.png").stat().st_size > 0
    assert "zc-vote+random-subset@tse_e@8" in rows
    held_out = subprocess.run([sys.executable, str(repo / "benchmarks" / "proxy_frontier.py"), str(tmp_path / "zc"),
                               str(tmp_path / "t0"), str(tmp_path / "t1"), "--out", str(tmp_path / "held"),
                               "--bootstrap", "10", "--data-root", str(root), "--exclude-archs-of",
                               str(tmp_path / "t0"), "--rules", "tse_e", "val_acc"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(repo)})
    assert held_out.returncode == 0, held_out.stderr[-2000:]
    kept = [json.loads(line) for line in (tmp_path / "held" / "frontier.jsonl").read_text().splitlines()]
    assert all(r["n"] == 3 for r in kept)  # the shard-0 cells left out
    trained = {r["proxy"].split("@")[1] for r in kept if r["proxy"].count("@") == 2}
    assert trained == {"tse_e", "val_acc"} and "synflow" in {r["proxy"] for r in kept}  # other rules left out


def test_the_frontier_figure_tells_image_sources_apart(benchmark_script):
    """Training rows take their colour from their image source, ensembles included; zero-cost rows have none."""
    frontier = benchmark_script("proxy_frontier")
    assert frontier.source_of("d2m@tse_e@200") == "d2m"
    assert frontier.source_of("zc-vote+random-subset[ipc=3]@tse@25") == "random-subset[ipc=3]"
    assert frontier.source_of("synflow+naswot") is None and frontier.source_of("params") is None


def test_the_crossover_is_the_cheapest_row_above_the_baseline_for_each_image_source(benchmark_script):
    frontier = benchmark_script("proxy_frontier")

    def row(proxy, seconds, low):
        return {"proxy": proxy, "seconds_per_arch": seconds, "vs_synflow": {"value": low + 0.05, "ci_low": low}}

    rows = [row("d2m@tse@50", 10, -0.1), row("d2m@tse@100", 20, 0.01), row("d2m@tse@200", 40, 0.05),
            row("random-subset@tse@25", 5, 0.02), row("synflow+naswot+d2m@tse@25", 7, 0.03)]
    assert frontier.crossover(rows, "training rule", "synflow", "d2m")["proxy"] == "d2m@tse@100"
    assert frontier.crossover(rows, "training rule", "synflow", "random-subset")["proxy"] == "random-subset@tse@25"
    assert frontier.crossover(rows, "training ensemble", "synflow", "d2m")["proxy"] == "synflow+naswot+d2m@tse@25"
    assert frontier.crossover(rows, "training ensemble", "synflow", "random-subset")["proxy"] is None
