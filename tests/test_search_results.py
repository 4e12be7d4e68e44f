"""The search results table (dedup across writers, torn lines) and the trajectories drawn from it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from d2m_nas.search.results import RESULT_COLUMNS, ResultsTable, read_results, search_summaries, trajectory


def row(trial: int, arch: str, score: float, truth: float, seconds: float = 1.0, study: str = "s") -> dict:
    return {"study": study, "trial": trial, "backend": "optuna", "strategy": "tpe", "seed": 0, "arch": arch,
            "index": trial, "isomorphism": arch, "proxy": "fake", "score": score, "seconds": seconds, "cached": 0,
            "truth": truth, "truth_column": "acc", "worker": "h:1", "elapsed_s": float(trial), "finished_at": "t"}


def test_rows_are_written_once_across_writers(tmp_path):
    path = tmp_path / "results.csv"
    one, two = ResultsTable(path), ResultsTable(path)
    assert len(one.append([row(0, "a", 1.0, 90.0), row(1, "b", 2.0, 91.0)])) == 2
    assert len(two.append([row(1, "b", 2.0, 91.0), row(2, "c", 0.5, 92.0)])) == 1  # trial 1 is there already
    assert len(one.append([row(2, "c", 0.5, 92.0), row(3, "d", 3.0, 89.0)])) == 1
    frame = read_results(path)
    assert list(frame.columns) == RESULT_COLUMNS
    assert frame["trial"].tolist() == [0, 1, 2, 3]
    assert set(one.rows()) == {("s", 0), ("s", 1), ("s", 2), ("s", 3)}


def test_one_trial_with_two_architectures_is_an_error(tmp_path):
    table = ResultsTable(tmp_path / "results.csv")
    table.append([row(0, "a", 1.0, 90.0)])
    with pytest.raises(RuntimeError, match="trial 0 of study s"):
        ResultsTable(tmp_path / "results.csv").append([row(0, "z", 1.0, 90.0)])


def test_a_torn_last_line_is_skipped_and_closed(tmp_path):
    path = tmp_path / "results.csv"
    ResultsTable(path).append([row(0, "a", 1.0, 90.0)])
    with path.open("a") as handle:
        handle.write("s,1,,optuna,tpe,0,b")  # a writer killed mid-line
    table = ResultsTable(path)
    assert set(table.rows()) == {("s", 0)}
    table.append([row(1, "b", 2.0, 91.0)])
    frame = read_results(path)
    assert frame["trial"].tolist() == [0, 1] and frame["arch"].tolist() == ["a", "b"]


def test_a_foreign_csv_is_refused(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("arch,score\na,1\n")
    with pytest.raises(ValueError, match="not a d2m-nas search results file"):
        ResultsTable(path).append([row(0, "a", 1.0, 90.0)])


def test_trajectory_follows_the_incumbent_not_the_oracle(tmp_path):
    path = tmp_path / "results.csv"
    ResultsTable(path).append([row(0, "a", 1.0, 90.0, 2.0), row(1, "b", 0.5, 95.0, 3.0),
                               row(2, "a", 1.0, 90.0, 2.0),  # proposed again: costs nothing more
                               row(3, "c", 4.0, 93.0, 1.0), row(0, "x", 7.0, 80.0, 5.0, study="t")])
    path_frame = trajectory(read_results(path))
    s = path_frame[path_frame["study"] == "s"]
    assert s["evaluations"].tolist() == [1, 2, 3, 4]
    assert s["cost_s"].tolist() == [2.0, 5.0, 5.0, 6.0]
    assert s["best_score"].tolist() == [1.0, 1.0, 1.0, 4.0]
    assert s["incumbent_truth"].tolist() == [90.0, 90.0, 90.0, 93.0]
    assert s["best_truth_seen"].tolist() == [90.0, 95.0, 95.0, 95.0]
    t = path_frame[path_frame["study"] == "t"]
    assert t["incumbent_truth"].tolist() == [80.0]


def test_trajectory_without_truth_has_nan_truths():
    frame = pd.DataFrame([row(0, "a", 1.0, math.nan), row(1, "b", 2.0, math.nan)])
    out = trajectory(frame)
    assert np.isnan(out["incumbent_truth"]).all() and out["best_score"].tolist() == [1.0, 2.0]


def test_the_pick_among_tied_best_scores_is_the_earliest_trial_whatever_the_row_order(tmp_path):
    path = tmp_path / "results.csv"
    ResultsTable(path).append([row(2, "c", 3.0, 91.0), row(0, "a", 1.0, 95.0), row(1, "b", 3.0, 89.0)])
    [search] = search_summaries(read_results(path), optimum=96.0)
    study = search["studies"]["s"]
    assert study["best_arch"] == "b" and study["best_truth"] == 89.0 and study["ties_at_best_score"] == 2
    assert study["regret"] == 7.0 and search["best_truth"]["mean"] == 89.0 and search["best_truth"]["n"] == 1
    paths = trajectory(read_results(path))
    assert paths["incumbent_truth"].tolist() == [95.0, 89.0, 89.0]  # the trajectory holds the same pick
    assert paths["incumbent_arch"].tolist() == ["a", "b", "b"]
