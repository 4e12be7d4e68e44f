"""`d2m-nas report`: numbers recomputed independently from the same rows, the 12-epoch reference,
search summaries over seeds, truth columns kept apart, one-line errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from d2m_nas import cli
from d2m_nas.formatting import finite_or_null
from d2m_nas.report import twelve_epoch_column
from d2m_nas.search.results import read_results, search_seconds, search_summaries

TRUTH = "cifar10_test_acc"
RANK_COLUMNS = ["arch", "index", "isomorphism", "proxy", "score", "seconds", "seed", "truth", "truth_column"]
SEARCH_COLUMNS = ["study", "trial", "retry_of", "backend", "strategy", "seed", "arch", "index", "isomorphism", "proxy",
                  "score", "seconds", "cached", "cost_metric", "cost", "truth", "truth_column", "worker", "elapsed_s",
                  "finished_at"]


def archs_and_truths(n: int = 12, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"arch{i}": float(v) for i, v in enumerate(np.round(rng.uniform(60, 94, n), 3))}


def write_rank_run(path, truths: dict[str, float], truth_column: str = TRUTH, extras: bool = True, seed: int = 1):
    """2 proxies x 2 seeds per architecture; proxy `good` tracks the truth with noise, `bad` is noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for proxy_seed in (0, 1):
        for arch, truth in truths.items():
            for proxy in ("good", "bad"):
                score = truth + rng.normal(0, 5) if proxy == "good" else rng.normal(0, 1)
                row = {"arch": arch, "index": int(arch[4:]), "isomorphism": arch, "proxy": proxy, "score": score,
                       "seconds": float(rng.uniform(1, 2)), "seed": proxy_seed, "truth": truth,
                       "truth_column": truth_column}
                if extras:
                    row |= {"steps": 200 if proxy == "good" else None, "train_images": None,
                            "device_seconds": float(rng.uniform(0.5, 1)) if proxy == "good" else None,
                            "peak_memory_mb": None}
                rows.append(row)
    path.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(path / "results.csv", index=False)
    return frame


def write_search_run(path, truths: dict[str, float], seed: int = 2):
    """2 strategies x 2 seeds, 6 trials each, one worker, one session."""
    rng = np.random.default_rng(seed)
    archs = list(truths)
    rows = []
    for strategy in ("tpe", "random"):
        for study_seed in (0, 1):
            study = f"s-{strategy}-seed{study_seed}"
            for trial in range(6):
                arch = archs[int(rng.integers(len(archs)))]
                rows.append({"study": study, "trial": trial, "retry_of": None, "backend": "optuna",
                             "strategy": strategy, "seed": study_seed, "arch": arch, "index": int(arch[4:]),
                             "isomorphism": arch, "proxy": "good", "score": truths[arch] + rng.normal(0, 5),
                             "seconds": 0.5, "cached": 0, "cost_metric": None, "cost": None, "truth": truths[arch],
                             "truth_column": TRUTH, "worker": "h:1", "elapsed_s": 0.7 * (trial + 1),
                             "finished_at": "t"})
    path.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=SEARCH_COLUMNS)
    frame.to_csv(path / "results.csv", index=False)
    return frame


def write_table(path, truths: dict[str, float], seed: int = 3) -> pd.DataFrame:
    """A tiny NAS-Bench-201-shaped table: the archs above plus two more, 200- and 12-epoch columns."""
    rng = np.random.default_rng(seed)
    archs = list(truths) + ["extra0", "extra1"]
    acc = [truths.get(a, v) for a, v in zip(archs, rng.uniform(60, 99, len(archs)))]
    table = pd.DataFrame({"nb201_index": range(len(archs)), "arch_str": archs, TRUTH: acc,
                          "cifar10_test_acc_12ep": np.array(acc) - 10 + rng.normal(0, 4, len(archs))})
    table.to_csv(path, index=False)
    return table


def run_cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rank_report_numbers_match_an_independent_recomputation(tmp_path, capsys):
    truths = archs_and_truths()
    frame = write_rank_run(tmp_path / "rank", truths)
    table = write_table(tmp_path / "table.csv", truths)
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["report", str(tmp_path / "rank"), "--out", str(out), "--bootstrap", "200",
                               "--ground-truth-file", str(tmp_path / "table.csv")], capsys)
    assert code == 0 and str(out / "report.md") in stdout
    summary = json.loads((out / "summary.json").read_text())
    [section] = summary["rankings"]
    assert section["truth_column"] == TRUTH
    by_proxy = {e["proxy"]: e for e in section["rankings"]}
    assert set(by_proxy) == {"good", "bad"}
    for proxy, entry in by_proxy.items():
        rows = frame[frame["proxy"] == proxy]
        mean = rows.groupby("arch")["score"].mean()
        truth = rows.groupby("arch")["truth"].first().reindex(mean.index)
        corr = entry["correlation"]
        assert entry["n_archs"] == corr["n"] == len(truths) and entry["seeds"] == [0, 1]
        assert corr["spearman"]["value"] == pytest.approx(stats.spearmanr(mean, truth).statistic)
        assert corr["kendall"]["value"] == pytest.approx(stats.kendalltau(mean, truth).statistic)
        low, high = corr["spearman"]["ci_low"], corr["spearman"]["ci_high"]
        assert -1 <= low < high <= 1
        per_seed = [stats.spearmanr(g["score"], g["truth"]).statistic for _, g in rows.groupby("seed")]
        assert entry["per_seed_spearman"]["mean"] == pytest.approx(np.mean(per_seed))
        assert entry["per_seed_spearman"]["std"] == pytest.approx(np.std(per_seed, ddof=1))
        top = mean.idxmax()
        assert corr["regret"]["truth_of_best_scored"] == pytest.approx(truths[top])
        assert corr["regret"]["regret"] == pytest.approx(max(truths.values()) - truths[top])
        assert entry["seconds_per_arch"] == pytest.approx(rows["seconds"].sum() / len(truths))
    assert by_proxy["good"]["device_seconds_per_arch"] == pytest.approx(
        frame.loc[frame["proxy"] == "good", "device_seconds"].sum() / len(truths))
    assert by_proxy["good"]["steps_per_eval"] == 200 and "device_seconds_per_arch" not in by_proxy["bad"]

    [reference] = section["references"]
    assert reference["reference_column"] == "cifar10_test_acc_12ep" and reference["cost"] == "table (not measured here)"
    twelve = table.set_index("arch_str")["cifar10_test_acc_12ep"].reindex(list(truths))
    assert reference["correlation"]["spearman"]["value"] == pytest.approx(
        stats.spearmanr(twelve, list(truths.values())).statistic)
    assert reference["truth_differs_from_table"] == 0

    md = (out / "report.md").read_text()
    assert f"`{TRUTH}`" in md and "| rank | good | 12 | 2 |" in md and "| rank | bad | 12 | 2 |" in md
    assert "12-epoch full data `cifar10_test_acc_12ep` (free reference)" in md and "table (not measured here)" in md
    assert "within the sampled architectures" in md  # the regret says what it is relative to
    combined = pd.read_csv(out / "results.csv")
    assert list(combined.columns[:2]) == ["run", "arch"] and len(combined) == len(frame)
    assert set(combined["run"]) == {"rank"}


def test_rank_and_report_write_one_ranking_summary(tmp_path, table, capsys):
    """`rank`'s summary.json and summary.md and `report`'s entries for the same run are one summary
    and one table: the same keys, the same numbers, the same rows."""
    run = tmp_path / "rank"
    settings = ["--ground-truth-file", str(table), "--top-k", "3", "--bootstrap", "50", "--seed", "1"]
    assert cli.main(["rank", "--proxy", "params,flops", "--sample", "8", "--proxy-seeds", "2", "--ground-truth",
                     "cifar10:test:200", "--channels", "4", "--cells", "1", "--device", "cpu", "--out", str(run),
                     *settings]) == 0
    code, _, _ = run_cli(["report", str(run), *settings], capsys)
    assert code == 0
    own = json.loads((run / "summary.json").read_text())["proxies"]
    [section] = json.loads((run / "report" / "summary.json").read_text())["rankings"]
    entries = {e["proxy"]: {k: v for k, v in e.items() if k not in ("run", "proxy")} for e in section["rankings"]}
    assert entries == own and own["params"]["correlation"]["spearman"]["value"] > 0.5
    rows = [line for line in (run / "summary.md").read_text().splitlines() if line.startswith(("| params", "| flops"))]
    report_md = (run / "report" / "report.md").read_text()
    assert len(rows) == 2 and all(f"| rank {row}" in report_md for row in rows)


def test_reference_on_the_real_table(tmp_path, shared_data_root, capsys):
    table = pd.read_csv(shared_data_root / "nb201" / "nb201_ground_truth.csv")
    sample = table.sample(40, random_state=0)
    truths = dict(zip(sample["arch_str"], sample[TRUTH]))
    rows = [{"arch": a, "index": 0, "isomorphism": a, "proxy": "p", "score": t + np.random.default_rng(i).normal(0, 3),
             "seconds": 1.0, "seed": 0, "truth": t, "truth_column": TRUTH} for i, (a, t) in enumerate(truths.items())]
    (tmp_path / "rank").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "rank" / "results.csv", index=False)
    code, _, _ = run_cli(["report", str(tmp_path / "rank"), "--bootstrap", "100", "--data-root", str(shared_data_root)],
                         capsys)
    assert code == 0
    summary = json.loads((tmp_path / "rank" / "report" / "summary.json").read_text())
    [reference] = summary["rankings"][0]["references"]
    expected = stats.spearmanr(sample["cifar10_test_acc_12ep"], sample[TRUTH]).statistic
    assert reference["correlation"]["spearman"]["value"] == pytest.approx(expected)
    assert reference["truth_differs_from_table"] == 0 and reference["missing_in_table"] == 0


def test_search_report_over_seeds(tmp_path, capsys):
    truths = archs_and_truths()
    frame = write_search_run(tmp_path / "search", truths)
    table = write_table(tmp_path / "table.csv", truths)
    out = tmp_path / "out"
    code, _, _ = run_cli(["report", str(tmp_path / "search"), "--out", str(out), "--ground-truth-file",
                               str(tmp_path / "table.csv")], capsys)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    [section] = summary["searches"]
    refs = section["references"]
    optimum = table[TRUTH].max()
    pick = table.loc[table["cifar10_test_acc_12ep"].idxmax()]
    assert refs["optimum"] == pytest.approx(optimum) and refs["twelve_epoch_pick_arch"] == pick["arch_str"]
    assert refs["twelve_epoch_pick_truth"] == pytest.approx(pick[TRUTH])
    by_strategy = {e["strategy"]: e for e in section["searches"]}
    assert set(by_strategy) == {"tpe", "random"}
    for strategy, entry in by_strategy.items():
        incumbents, seen = [], []
        for _, rows in frame[frame["strategy"] == strategy].groupby("study"):
            rows = rows.sort_values("trial")
            incumbents.append(rows["truth"].iloc[int(np.argmax(rows["score"].to_numpy()))])  # first best score
            seen.append(rows["truth"].max())
        assert entry["seeds"] == [0, 1] and entry["trials"]["min"] == entry["trials"]["max"] == 6
        assert entry["best_truth"]["mean"] == pytest.approx(np.mean(incumbents))
        assert entry["best_truth"]["std"] == pytest.approx(np.std(incumbents, ddof=1))
        assert entry["best_truth_seen"]["mean"] == pytest.approx(np.mean(seen))
        assert entry["regret"]["mean"] == pytest.approx(optimum - np.mean(incumbents))
        assert entry["search_s"]["mean"] == pytest.approx(0.7 * 6)
    # one search summary: the report's entries are what `d2m-nas search` writes for the same rows
    own = search_summaries(read_results(tmp_path / "search" / "results.csv"), refs["optimum"])
    assert [{k: v for k, v in e.items() if k != "run"} for e in section["searches"]] == finite_or_null(own)
    md = (out / "report.md").read_text()
    assert f"## Searches against `{TRUTH}`" in md and "| search | optuna | tpe | good | 2 (0, 1) | 6 |" in md
    assert f"table optimum {optimum:.2f} of `{TRUTH}`" in md and "12-epoch column's pick" in md
    assert "| search | s-random-seed0 | 0 | 6 |" in md  # each study's pick


def test_search_references_fall_back_to_the_runs_summary(tmp_path, capsys):
    truths = archs_and_truths()
    write_search_run(tmp_path / "search", truths)
    refs = {"truth_column": TRUTH, "optimum": 99.5, "twelve_epoch_pick_truth": 97.25}
    (tmp_path / "search" / "summary.json").write_text(json.dumps({"references": refs}))
    code, _, _ = run_cli(["report", str(tmp_path / "search"), "--data-root", str(tmp_path / "nothing")], capsys)
    assert code == 0
    summary = json.loads((tmp_path / "search" / "report" / "summary.json").read_text())
    assert summary["searches"][0]["references"]["optimum"] == 99.5
    assert any("table not found" in note for note in summary["notes"])


def test_resumed_sessions_and_several_workers_add_up():
    frame = pd.DataFrame({"study": ["a"] * 5 + ["b"] * 3, "trial": [0, 1, 2, 3, 4, 0, 1, 2],
                          "worker": ["h:1"] * 3 + ["h:2"] * 2 + ["w:1", "w:2", "w:1"],
                          "elapsed_s": [1.0, 2.0, 3.0, 0.5, 1.5, 1.0, 2.0, 4.0]})
    # study a: one session to 3 s, then a resumed one to 1.5 s; study b: two workers in parallel
    assert search_seconds(frame).tolist() == [1.0, 2.0, 3.0, 3.5, 4.5, 1.0, 3.0, 6.0]


def test_truth_columns_are_never_mixed(tmp_path, capsys):
    truths = archs_and_truths()
    write_rank_run(tmp_path / "a", truths, TRUTH, extras=False)
    write_rank_run(tmp_path / "b", truths, "cifar100_test_acc", extras=False)
    out = tmp_path / "out"
    code, _, _ = run_cli(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--bootstrap", "0",
                          "--data-root", str(tmp_path)], capsys)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    sections = {s["truth_column"]: {e["run"] for e in s["rankings"]} for s in summary["rankings"]}
    assert sections == {TRUTH: {"a"}, "cifar100_test_acc": {"b"}}
    md = (out / "report.md").read_text()
    assert f"## Rankings against `{TRUTH}`" in md and "## Rankings against `cifar100_test_acc`" in md
    assert any("several ground-truth columns" in note for note in summary["notes"])
    assert set(pd.read_csv(out / "results.csv")["run"]) == {"a", "b"}


def test_twelve_epoch_column_mapping():
    assert twelve_epoch_column("cifar10_test_acc") == "cifar10_test_acc_12ep"
    assert twelve_epoch_column("naslib_cifar100_val_acc") == "cifar100_valid_acc_12ep"
    assert twelve_epoch_column("imagenet16_test_acc") == "imagenet16_test_acc_12ep"
    assert twelve_epoch_column("cifar10_test_acc_12ep") is None and twelve_epoch_column("acc") is None


@pytest.mark.parametrize("case, message", [
    ("missing", "run directory not found"),
    ("empty_dir", "holds no results.csv"),
    ("garbage", "not a readable CSV"),
    ("foreign", "lacks the column(s)"),
    ("no_truth", "has no ground truth"),
    ("non_number", "holds a non-number"),
    ("out_is_input", "is an input run directory"),
    ("bad_top_k", "--top-k must be"),
])
def test_errors_are_one_line(tmp_path, capsys, case, message):
    run = tmp_path / "run"
    argv = ["report", str(run)]
    if case != "missing":
        run.mkdir()
    if case == "garbage":
        (run / "results.csv").write_bytes(b'arch,proxy\n"a,b\x00\xff\n')
    elif case == "foreign":
        (run / "results.csv").write_text("arch,score\na,1\n")
    elif case in ("no_truth", "non_number", "out_is_input", "bad_top_k"):
        frame = write_rank_run(run, archs_and_truths(4), extras=False)
        if case == "no_truth":
            frame.assign(truth=np.nan, truth_column="").to_csv(run / "results.csv", index=False)
        if case == "non_number":
            frame.assign(score="high").to_csv(run / "results.csv", index=False)
        if case == "out_is_input":
            argv += ["--out", str(run)]
        if case == "bad_top_k":
            argv += ["--top-k", "ten"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err and err.startswith("d2m-nas report: error:")
    assert "Traceback" not in err
    if case == "out_is_input":
        assert list(pd.read_csv(run / "results.csv").columns) == RANK_COLUMNS  # the input is untouched


def test_undefined_statistics_are_null_in_json(tmp_path, capsys):
    truths = archs_and_truths(4)
    frame = write_rank_run(tmp_path / "r", truths, extras=False)
    frame.assign(score=1.0).to_csv(tmp_path / "r" / "results.csv", index=False)  # constant scores
    code, _, _ = run_cli(["report", str(tmp_path / "r"), "--bootstrap", "10", "--data-root", str(tmp_path)], capsys)
    assert code == 0
    text = (tmp_path / "r" / "report" / "summary.json").read_text()
    assert "NaN" not in text
    entry = json.loads(text)["rankings"][0]["rankings"][0]
    assert entry["correlation"]["spearman"]["value"] is None
    assert "the scores are constant" in (tmp_path / "r" / "report" / "report.md").read_text()
    assert not math.isnan(entry["seconds_per_arch"])


def test_a_real_search_with_repeats_reports_and_plots(tmp_path, shared_data_root, capsys):
    """`search --repeat 2` on the real table, then report and plot: the report agrees with the
    search's own summary (incumbent truth per study, the table references)."""
    run = tmp_path / "search"
    assert cli.main(["search", "--proxy", "params", "--strategy", "random", "--repeat", "2", "--trials", "4",
                     "--ground-truth", "cifar10:test:200", "--out", str(run), "--device", "cpu",
                     "--data-root", str(shared_data_root)]) == 0
    own = json.loads((run / "summary.json").read_text())
    code, _, _ = run_cli(["report", str(run), "--data-root", str(shared_data_root)], capsys)
    assert code == 0
    [section] = json.loads((run / "report" / "summary.json").read_text())["searches"]
    [entry] = section["searches"]
    assert entry["seeds"] == [0, 1] and {k: v for k, v in entry.items() if k != "run"} == own["searches"][0]
    assert section["references"]["optimum"] == pytest.approx(own["references"]["optimum"])
    twelve = own["references"]["twelve_epoch_pick_truth"]
    assert section["references"]["twelve_epoch_pick_truth"] == pytest.approx(twelve)
    assert cli.main(["plot", str(run), "--format", "png", "--bootstrap", "0", "--data-root",
                     str(shared_data_root)]) == 0
    assert (run / "plots" / "search-trajectories-cifar10_test_acc.png").stat().st_size > 1000


def test_a_nan_score_as_rank_writes_it_is_dropped_and_counted(tmp_path, capsys):
    """`d2m-nas rank` writes a proxy's NaN score (jacob_cov on a cell whose output ignores its input) as nan."""
    frame = write_rank_run(tmp_path / "r", archs_and_truths(6), extras=False)
    dead = frame["arch"].iloc[0]  # every row (seed) of one architecture
    frame.assign(score=frame["score"].astype(object).where(frame["arch"] != dead, "nan")).to_csv(
        tmp_path / "r" / "results.csv", index=False)
    code, _, _ = run_cli(["report", str(tmp_path / "r"), "--bootstrap", "10", "--data-root", str(tmp_path)], capsys)
    assert code == 0
    entry = json.loads((tmp_path / "r" / "report" / "summary.json").read_text())["rankings"][0]["rankings"][0]
    assert entry["correlation"]["n_dropped_nan"] == 1 and entry["correlation"]["n"] == 5
