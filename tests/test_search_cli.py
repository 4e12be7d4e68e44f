"""`d2m-nas search` on the command line: a real run with a zero-cost proxy, resume, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from d2m_nas.cli import main
from d2m_nas.search import read_results
from search_spaces.registry import create_space

SPACE = create_space("nasbench201")
TINY = ["--channels", "2", "--cells", "1"]


@pytest.fixture
def table(isolated_data_root):
    """A small NAS-Bench-201-style table under the data root (every arch, fake accuracies)."""
    archs = SPACE.enumerate()
    path = isolated_data_root / "nb201" / "nb201_ground_truth.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"arch_str": archs, "cifar10_test_acc": [50 + (i % 97) / 2 for i in range(len(archs))],
                  "cifar10_test_acc_12ep": [40 + (i % 89) / 2 for i in range(len(archs))]}).to_csv(path, index=False)
    return path


def test_search_writes_results_and_the_same_command_resumes(tmp_path, table, capsys):
    out = tmp_path / "run"
    args = ["search", "--proxy", "params", "--ground-truth", "cifar10:test:200", "--out", str(out), *TINY]
    assert main([*args, "--trials", "3"]) == 0
    printed = capsys.readouterr().out
    assert "nasbench201-params-optuna-tpe-seed0" in printed and "table optimum 98.00" in printed
    frame = read_results(out / "results.csv")
    assert len(frame) == 3 and (frame["proxy"] == "params").all() and (frame["cached"] == 0).all()
    assert (frame["truth_column"] == "cifar10_test_acc").all() and frame["truth"].notna().all()
    assert main([*args, "--trials", "5"]) == 0  # the same command with a larger budget: two more
    frame = read_results(out / "results.csv")
    assert frame["trial"].tolist() == [0, 1, 2, 3, 4]
    summary = json.loads((out / "summary.json").read_text())
    study = summary["searches"][0]["studies"]["nasbench201-params-optuna-tpe-seed0"]
    assert study["trials"] == 5 and summary["references"]["optimum"] == 98.0
    assert summary["references"]["twelve_epoch_column"] == "cifar10_test_acc_12ep"
    assert (out / "config.yaml").is_file() and (out / "study.db").is_file()


@pytest.mark.parametrize("extra, message", [
    (["--space", "nope"], "unknown search space 'nope'"),
    (["--backend", "ray"], "unknown search backend 'ray'; choose from optuna, nni"),
    (["--strategy", "bayes"], "unknown strategy 'bayes' for the optuna backend; choose from tpe, random, nsga2"),
    (["--backend", "nni", "--strategy", "nsga2"], "unknown strategy 'nsga2' for the nni backend"),
    (["--storage", "redis://localhost"], "unknown storage URL 'redis://localhost'"),
    (["--storage", "journal:"], "journal storage URL 'journal:' names no file"),
    (["--backend", "nni", "--storage", "journal:x.log"], "--storage applies to the optuna backend"),
    (["--trials", "0"], "--trials: must be a whole number >= 1"),
    (["--repeat", "0"], "--repeat: must be a whole number >= 1"),
    (["--strategy", "nsga2", "--cost", "flops"], "unknown cost metric 'flops'"),
    (["--proxy", "nope"], "unknown proxy 'nope'"),
    (["--ground-truth", "cifar10:test:7"], "ground-truth epochs must be one of 200, 12"),
])
def test_bad_input_is_one_line(tmp_path, table, capsys, extra, message):
    args = ["search", "--proxy", "params", "--out", str(tmp_path / "run"), *TINY, *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("d2m-nas search: error: ") and message in err and err.count("\n") == 1


def test_a_study_made_for_another_proxy_is_refused(tmp_path, table, capsys):
    base = ["search", "--trials", "2", "--study", "mine", "--out", str(tmp_path / "run"), *TINY]
    assert main([*base, "--proxy", "params"]) == 0
    capsys.readouterr()
    assert main([*base, "--proxy", "flops"]) == 2
    err = capsys.readouterr().err
    assert "study 'mine' was created for space nasbench201, proxy params" in err and "'params' != 'flops'" in err


def test_search_with_a_training_proxy_scores_on_the_validation_split(tmp_path, table, capsys):
    """A training-based proxy drives the search like any other; a study made with another training
    budget is refused rather than mixed."""
    base = ["search", "--proxy", "random-subset", "--dataset", "fake", "--ipc", "2", "--proxy-batch-size", "8",
            "--val-per-class", "10", "--ground-truth", "cifar10:test:200", "--study", "train",
            "--out", str(tmp_path / "run"), *TINY]
    assert main([*base, "--steps", "2", "--trials", "3"]) == 0
    frame = read_results(tmp_path / "run" / "results.csv")
    assert len(frame) == 3 and (frame["proxy"] == "random-subset").all()
    # a validation accuracy in percent on the 10 x 10 held-out fake images
    assert frame["score"].between(0, 100).all() and (frame["seconds"] > 0).all()
    capsys.readouterr()
    assert main([*base, "--steps", "3", "--trials", "4"]) == 2
    assert "study 'train' was created for" in capsys.readouterr().err
