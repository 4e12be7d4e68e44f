"""The GPU and scaling benchmark scripts, run here at tiny size on the CPU: they must work the day a device is lent."""

import importlib.util
import json
import math
from pathlib import Path

import pandas as pd

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_preset_script_measures_rates_projects_and_evaluates(tmp_path, capsys):
    result = load("paper_preset_gpu").main(["--tiny", "--pretrain-steps", "2", "--iterations", "2", "--epochs", "1",
                                            "--runs", "1", "--ipc", "2", "--out", str(tmp_path / "run")])
    assert result["pretrain"]["steps"] == 2 and result["d2m"]["iterations"] == 2
    rates = result["pretrain"]["steps_per_s"], result["d2m"]["iterations_per_s"]
    assert all(rate > 0 and math.isfinite(rate) for rate in rates)
    expected_h = (40000 / rates[0] + 5000 / rates[1]) / 3600  # the paper preset's lengths at these rates
    assert abs(result["projected_full_preset_h"] - expected_h) < 1e-9
    assert set(result["evaluation"]["accuracy"]) == {"random", "pretrained", "d2m"}
    assert all(0 <= a["mean"] <= 100 for a in result["evaluation"]["accuracy"].values())
    assert (tmp_path / "run" / "generator.pt").is_file()
    assert '"projected_full_preset_h"' in capsys.readouterr().out  # one JSON line on stdout


def test_device_check_runs_every_part_and_records_failures(tmp_path):
    report = load("device_check").main(["--tiny", "--parts", "proxy_loop,rank,class_batching,nosuch", "--workers", "1,2",
                                        "--workdir", str(tmp_path)])
    parts = report["parts"]
    ratios = parts["proxy_loop"]["summaries"][0]["median_over_archs_of_best_ratio_to_bare"]
    assert parts["proxy_loop"]["ok"] and ratios["fixed-set"] > 0
    runs = parts["rank"]["runs"]
    assert [r["workers"] for r in runs] == [1, 2] and all(r["archs_per_s"] > 0 and r["returncode"] == 0 for r in runs)
    assert runs[0]["speedup_over_1"] == 1.0
    for count in (1, 2):  # each count scored the whole sample into its own run directory
        assert len(pd.read_csv(tmp_path / "rank" / f"workers-{count}" / "results.csv")) == 4
    assert (tmp_path / "rank" / "workers-2" / "work.db").is_file()  # the two shared a work study
    batching = {row["method"]: row for row in parts["class_batching"]["summaries"]}
    assert batching.keys() == {"d2m", "dm"} and all(row["max_relative_loss_difference"] < 1e-4 and row["speedup"] > 0
                                                   for row in batching.values())
    assert not parts["nosuch"]["ok"] and "KeyError" in parts["nosuch"]["error"]  # recorded, the rest still ran


def test_the_memory_benchmark_measures_each_size_in_its_own_process(tmp_path, capsys):
    assert load("rank_memory").main(["--tiny", "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["sample"] for r in rows[:2]] == [10, 40] and all(r["returncode"] == 0 for r in rows[:2])
    assert all(50 < r["peak_rss_mb"] < 8000 for r in rows[:2])  # a Python process with torch, not a stray value
    assert rows[2]["peak_ratio_last_to_first"] == rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    assert len(pd.read_csv(tmp_path / "sample-40" / "results.csv")) == 40


def test_the_matching_loss_scale_sums_each_term_over_the_classes(tmp_path, capsys):
    from distill.losses import TERMS

    assert load("matching_loss_scale").main(["--tiny", "--nets", "2", "--out", str(tmp_path / "s.jsonl")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    per_net, summary = rows[:2], rows[2]
    assert [r["net_seed"] for r in per_net] == [0, 1] and summary["nets"] == 2
    for name in TERMS:  # the summary is the mean over the nets, weighted by the preset's weights
        assert summary["mean"][name] == sum(r[name] for r in per_net) / 2 > 0
        assert summary["weighted_mean"][name] == summary["mean"][name] * summary["weights"][name]
    assert (tmp_path / "s.jsonl").read_text().count("\n") == 3
