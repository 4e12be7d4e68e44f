"""The GPU and scaling benchmark scripts, run here at tiny size on the CPU: they must work the day a device is lent."""

import json
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def test_paper_preset_script_measures_rates_projects_and_evaluates(tmp_path, capsys, benchmark_script):
    result = benchmark_script("paper_preset_gpu").main(["--tiny", "--pretrain-steps", "2", "--iterations", "2", "--epochs", "1",
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


def test_paper_preset_script_distills_a_latent_pool_and_evaluates_other_networks(tmp_path, benchmark_script):
    from d2m_nas.generator_files import load_generator

    result = benchmark_script("paper_preset_gpu").main(["--tiny", "--pretrain-steps", "1", "--iterations", "2", "--epochs", "1",
                                            "--runs", "1", "--ipc", "2", "--latent-pool", "3", "--trained-nets", "2",
                                            "--latent-init", "real", "--tuning-steps", "2", "--learn", "latents", "--lr", "0.01",
                                            "--tuning-batch", "2", "--tuning-lr", "0.002", "--syn-per-class", "3",
                                            "--match-first", "1,2", "--cross-arch", "alexnet", "--out", str(tmp_path / "run")])
    assert result["latent_pool"] == 3 and result["trained_nets"] == 2 and result["latent_init"] == "real"
    assert result["tuning_steps"] == 2 and result["learn"] == "latents"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    settings = summary["d2m"]["settings"]["d2m"]
    assert settings["trained_nets"] == 2 and settings["latent_init"] == "real"  # the distillation ran with them
    assert settings["tuning_steps"] == 2 and settings["learn"] == "latents" and settings["lr"] == result["lr"] == 0.01
    assert (settings["tuning_batch"], settings["tuning_lr"], settings["syn_per_class"], settings["match_first"]) \
        == (result["tuning_batch"], result["tuning_lr"], result["syn_per_class"], result["match_first"]) == (2, 0.002, 3, [1, 2])
    evaluation = result["evaluation"]
    assert list(evaluation["by_model"]) == [next(iter(evaluation["by_model"])), "alexnet"]
    assert evaluation["accuracy"] == next(iter(evaluation["by_model"].values()))  # the protocol's ConvNet first
    assert set(evaluation["by_model"]["alexnet"]) == {"random", "pretrained", "d2m"}
    generator, _ = load_generator(tmp_path / "run")
    assert generator.learned_z.shape[:2] == (10, 3)  # ten classes, three learned latents each


def test_paper_preset_script_refuses_an_unknown_network_before_distilling(tmp_path, capsys, benchmark_script):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_script("paper_preset_gpu").main(["--tiny", "--cross-arch", "lenet9", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and "--cross-arch" in err and "resnet18" in err
    assert not (tmp_path / "run").exists()


def test_device_check_runs_every_part_and_records_failures(tmp_path, benchmark_script):
    report = benchmark_script("device_check").main(["--tiny", "--parts", "proxy_loop,rank,class_batching,nosuch", "--workers", "1,2",
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


def test_device_check_stops_a_part_at_its_budget_and_records_what_it_could_not_run(tmp_path, monkeypatch, benchmark_script):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-cuda-mps-control here (nor on CI)
    started = time.perf_counter()
    report = benchmark_script("device_check").main(["--tiny", "--parts", "rank_mps,rank,tests", "--workers", "1,2",
                                        "--budget-s", "4", "--workdir", str(tmp_path)])
    parts = report["parts"]
    assert not parts["rank_mps"]["ok"] and "nvidia-cuda-mps-control is not on PATH" in parts["rank_mps"]["error"]
    assert parts["rank"]["runs"][-1]["error"] == "timed out"  # stopped mid-run, its worker processes with it
    assert not parts["tests"]["ok"] and "no time left" in parts["tests"]["error"]
    assert time.perf_counter() - started < 30


def test_device_check_runs_rank_under_an_mps_daemon_and_stops_it(tmp_path, monkeypatch, benchmark_script):
    log = tmp_path / "control.log"  # a stand-in for nvidia-cuda-mps-control: records how it was called
    control = tmp_path / "bin" / "nvidia-cuda-mps-control"
    control.parent.mkdir()
    control.write_text(f'#!/bin/sh\necho "args=$* pipe=$CUDA_MPS_PIPE_DIRECTORY stdin=$(cat)" >> {log}\n')
    control.chmod(0o755)
    monkeypatch.setenv("PATH", f"{control.parent}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    seen = {}
    fake_workers = types.SimpleNamespace(  # the rank part itself is tested above: here only what reaches it
        tiny_table=lambda workdir: None, rank_argv=lambda options, sample, table: ["rank"],
        measure=lambda *args, timeout=None, extra_env=None: seen.update(extra_env) or [{"workers": 1}])
    monkeypatch.setitem(sys.modules, "rank_workers", fake_workers)
    report = benchmark_script("device_check").main(["--tiny", "--parts", "rank_mps", "--workers", "1", "--workdir", str(tmp_path)])
    part = report["parts"]["rank_mps"]
    assert part["ok"] and part["mps"] and part["runs"] == [{"workers": 1}]
    pipe = str(tmp_path / "mps")
    assert seen == {"CUDA_MPS_PIPE_DIRECTORY": pipe, "CUDA_MPS_LOG_DIRECTORY": pipe}  # the workers find the daemon
    assert log.read_text().splitlines() == [f"args=-d pipe={pipe} stdin=", f"args= pipe={pipe} stdin=quit"]
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ  # this process's environment is left as it was


def test_a_bounded_run_kills_the_commands_children_at_its_timeout(tmp_path, benchmark_script):
    run_bounded = benchmark_script("bounded_run").run_bounded
    pid_file = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
              f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    with pytest.raises(subprocess.TimeoutExpired):
        run_bounded([sys.executable, "-c", script], 3)
    stat = Path(f"/proc/{int(pid_file.read_text())}/stat")
    time.sleep(0.2)  # the grandchild went with it (gone, or a zombie left for init to reap):
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # nothing holds a GPU


def test_the_device_data_root_keeps_the_first_images_of_each_class(tmp_path, benchmark_script):
    source = tmp_path / "full"
    (source / "cifar10").mkdir(parents=True)
    (source / "nb201").mkdir()
    (source / "nb201" / "nb201_ground_truth.csv").write_text("arch,cifar10_test_acc\n")
    labels = np.tile(np.arange(10, dtype=np.uint8), 5)  # 5 of each class, interleaved
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    np.savez(source / "cifar10" / "cifar10.npz", x_train=images, y_train=labels, x_test=images, y_test=labels)
    benchmark_script("device_data").main(["--data-root", str(source), "--out", str(tmp_path / "small"),
                              "--train-per-class", "2", "--test-per-class", "1"])
    small = np.load(tmp_path / "small" / "cifar10" / "cifar10.npz")
    assert small["y_train"].tolist() == labels[:20].tolist() and small["x_train"][:, 0, 0, 0].tolist() == list(range(20))
    assert small["y_test"].tolist() == list(range(10))
    assert (tmp_path / "small" / "nb201" / "nb201_ground_truth.csv").is_file()


def test_the_memory_benchmark_measures_each_size_in_its_own_process(tmp_path, capsys, benchmark_script):
    assert benchmark_script("rank_memory").main(["--tiny", "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["sample"] for r in rows[:2]] == [10, 40] and all(r["returncode"] == 0 for r in rows[:2])
    assert all(50 < r["peak_rss_mb"] < 8000 for r in rows[:2])  # a Python process with torch, not a stray value
    assert rows[2]["peak_ratio_last_to_first"] == rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    assert len(pd.read_csv(tmp_path / "sample-40" / "results.csv")) == 40


def test_the_matching_loss_scale_sums_each_term_over_the_classes(tmp_path, capsys, benchmark_script):
    from distill.losses import TERMS

    assert benchmark_script("matching_loss_scale").main(["--tiny", "--nets", "2", "--out", str(tmp_path / "s.jsonl")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    per_net, summary = rows[:2], rows[2]
    assert [r["net_seed"] for r in per_net] == [0, 1] and summary["nets"] == 2
    for name in TERMS:  # the summary is the mean over the nets, weighted by the preset's weights
        assert summary["mean"][name] == sum(r[name] for r in per_net) / 2 > 0
        assert summary["weighted_mean"][name] == summary["mean"][name] * summary["weights"][name]
    assert (tmp_path / "s.jsonl").read_text().count("\n") == 3


def test_the_workers_benchmark_measures_a_search_and_the_cap_its_slowdown_sets(tmp_path, capsys, benchmark_script):
    assert benchmark_script("rank_workers").main(["--tiny", "--command", "search", "--workers", "1,2",
                                                  "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    runs, summary = rows[:2], rows[2]
    for run in runs:  # each count ran its own search of 4 trials (concurrent workers may add one)
        frame = pd.read_csv(tmp_path / f"workers-{run['workers']}" / "results.csv")
        assert 4 <= len(frame) <= 3 + run["workers"] and run["returncode"] == 0
        assert run["mean_proxy_s"] == pytest.approx(frame.loc[frame["cached"] == 0, "seconds"].mean())
    assert runs[1]["cap_from_slowdown"] == pytest.approx(2 * runs[0]["mean_proxy_s"] / runs[1]["mean_proxy_s"])
    first, second = (pd.read_csv(tmp_path / f"workers-{n}" / "results.csv").set_index("arch") for n in (1, 2))
    common = first.index.intersection(second.index)  # the helper draws architectures of its own
    assert runs[1]["common_archs"] == len(common) >= 1
    assert runs[1]["common_mean_s"] == pytest.approx(second.loc[common, "seconds"].mean())
    assert summary["command"] == "search" and summary["speedups"]["1"] == 1.0


def test_the_contention_benchmark_runs_each_kernel_alone_and_beside_itself(capsys, benchmark_script):
    assert benchmark_script("core_contention").main(["--tiny", "--kernels", "in-core,proxy"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["kernel"], r["processes"], len(r["rates"])) for r in rows[:4]] == [
        ("in-core", 1, 1), ("in-core", 2, 2), ("proxy", 1, 1), ("proxy", 2, 2)]
    assert all(rate > 0 for r in rows[:4] for rate in r["rates"])
    for kernel, alone, together in (("in-core", rows[0], rows[1]), ("proxy", rows[2], rows[3])):
        assert rows[4]["kernels"][kernel]["per_process_speed_together"] == pytest.approx(
            together["mean_rate"] / alone["mean_rate"], rel=1e-3)
