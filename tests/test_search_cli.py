"""`d2m-nas search` on the command line: a real run with a zero-cost proxy, resume, bad input."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

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
    (["--backend", "nni", "--workers", "2"], "--workers applies to the optuna backend"),
    (["--workers", "0"], "--workers: must be a whole number >= 1"),
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


def test_two_workers_fill_one_study_and_score_each_architecture_once(tmp_path, table, capsys):
    """`--workers 2`: a second process joins the run directory's study; the study ends with the
    budget (one trial over at most), each trial recorded once, each architecture trained once, and
    a rerun of the same command trains nothing."""
    out = tmp_path / "run"
    args = ["search", "--proxy", "random-subset", "--dataset", "fake", "--ipc", "2", "--proxy-batch-size", "8",
            "--steps", "20", "--val-per-class", "10", "--ground-truth", "cifar10:test:200", "--trials", "8",
            "--workers", "2", "--strategy", "random", "--out", str(out), *TINY]
    assert main(args) == 0
    assert "worker processes stopped early" not in capsys.readouterr().err  # the helper ran and exited cleanly
    frame = read_results(out / "results.csv")
    storage = f"sqlite:///{out / 'study.db'}"
    (name,) = optuna.get_all_study_names(storage)
    complete = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.COMPLETE,))
    assert 8 <= len(complete) <= 9
    assert frame["trial"].is_unique and sorted(frame["trial"]) == sorted(t.number for t in complete)
    assert frame["worker"].nunique() <= 2
    trained = frame[frame["cached"] == 0]
    assert trained["arch"].is_unique and set(trained["arch"]) == set(frame["arch"])  # repeats came from the cache
    summary = json.loads((out / "summary.json").read_text())
    assert summary["searches"][0]["studies"][name]["trials"] == len(complete)
    assert main(args) == 0  # the study is full: nothing is trained or recorded again
    assert read_results(out / "results.csv").equals(frame)


def reported(out):
    """A report's rows in one order, without the run's label."""
    frame = pd.read_csv(out / "results.csv").drop(columns="run")
    return frame.sort_values(["study", "trial"]).reset_index(drop=True)


def test_report_reads_search_studies_whole_from_their_storage(tmp_path, table, capsys):
    """`report --storage` on a search's study.db gives the report of its run directory: every row
    rebuilt from the trials (the true accuracies from the table) and the same summaries."""
    out = tmp_path / "run"
    assert main(["search", "--proxy", "synflow", "--ground-truth", "cifar10:test:200", "--trials", "4",
                 "--repeat", "2", "--study", "zc", "--out", str(out), *TINY]) == 0
    storage = f"sqlite:///{out / 'study.db'}"
    assert main(["report", "--storage", storage, "--out", str(tmp_path / "stored")]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "written")]) == 0
    stored, written = reported(tmp_path / "stored"), reported(tmp_path / "written")
    assert len(stored) == 8 and set(stored["study"]) == {"zc-seed0", "zc-seed1"}
    pd.testing.assert_frame_equal(stored, written)
    summaries = [json.loads((tmp_path / d / "summary.json").read_text())["searches"] for d in ("stored", "written")]
    for summary in summaries:  # one section per ground-truth column, one row per search
        for search in (row for section in summary for row in section["searches"]):
            search.pop("run")
    assert summaries[0] == summaries[1]
    capsys.readouterr()
    assert main(["report", "--storage", storage, "--study", "zc-seed1", "--out", str(tmp_path / "one")]) == 0
    assert set(reported(tmp_path / "one")["study"]) == {"zc-seed1"}  # one repeat by its own name


def test_a_stored_search_without_its_truth_column_in_the_table_is_a_one_line_error(tmp_path, table, capsys):
    out = tmp_path / "run"
    assert main(["search", "--proxy", "params", "--ground-truth", "cifar10:test:12", "--trials", "2",
                 "--out", str(out), *TINY]) == 0
    pd.read_csv(table).drop(columns="cifar10_test_acc_12ep").to_csv(tmp_path / "other.csv", index=False)
    capsys.readouterr()
    assert main(["report", "--storage", f"sqlite:///{out / 'study.db'}", "--ground-truth-file",
                 str(tmp_path / "other.csv"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "scored against 'cifar10_test_acc_12ep'" in err and err.count("\n") == 1 and not (tmp_path / "r").exists()
