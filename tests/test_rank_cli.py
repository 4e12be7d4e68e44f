import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from d2m_nas.cli import main
from d2m_nas.proxies.training import TrainingProxy
from search_spaces.nasbench201 import all_archs

TINY = ["--channels", "4", "--cells", "1", "--device", "cpu", "--bootstrap", "50"]


def test_rank_writes_results_and_summary_and_resumes(tmp_path, table, capsys):
    out = tmp_path / "run"
    argv = ["rank", "--space", "nasbench201", "--proxy", "params,synflow,snip,naswot", "--sample", "6",
            "--ground-truth", "cifar10:test:200", "--ground-truth-file", str(table), "--dataset", "fake",
            "--batch-size", "8", "--val-per-class", "10", "--top-k", "3", "--out", str(out), "--seed", "1", *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "cifar10_test_acc" in printed and "| params | 6 |" in printed
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 24 and set(results["proxy"]) == {"params", "synflow", "snip", "naswot"}
    assert list(results.columns) == ["arch", "index", "isomorphism", "proxy", "score", "seconds", "seed", "truth",
                                     "truth_column", "steps", "train_images", "device_seconds", "peak_memory_mb",
                                     "peak_memory_kind", "score_rule", "val_acc", "val_loss", "tse", "tse_e", "tse_ema"]
    assert results.iloc[:, 9:].isna().all().all()  # what training-based proxies add is empty for zero-cost ones
    assert (results["truth_column"] == "cifar10_test_acc").all() and (results["seed"] == 1).all()
    truth = pd.read_csv(table).set_index("arch_str")["cifar10_test_acc"]
    assert results["truth"].tolist() == pytest.approx(truth.loc[results["arch"]].tolist())
    assert (results["index"] == [all_archs().index(a) for a in results["arch"]]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["truth_column"] == "cifar10_test_acc" and summary["n_archs"] == 6
    params = summary["proxies"]["params"]
    correlation = params["correlation"]
    assert correlation["n"] == 6 and correlation["spearman"]["value"] > 0.5 and "top3" in correlation["top_k"]
    assert params["n_archs"] == 6 and params["seeds"] == [1] and params["seconds_per_arch"] >= 0
    assert (out / "summary.md").read_text().startswith("# Ranking on nasbench201")
    assert (out / "config.yaml").is_file()
    # same command again: nothing is recomputed or duplicated
    assert main(argv) == 0
    assert len(pd.read_csv(out / "results.csv")) == 24
    # other settings into the same run directory would mix incompatible scores
    changed = [a if a != "cifar10:test:200" else "cifar10:test:12" for a in argv]
    assert main(changed) == 2
    assert "truth_column differ" in capsys.readouterr().err


def test_ground_truth_key_is_required(table, capsys):
    assert main(["rank", "--proxy", "params", "--ground-truth-file", str(table)]) == 2
    assert "--ground-truth KEY is required" in capsys.readouterr().err


def test_options_can_come_from_a_config_file(tmp_path, table):
    config = tmp_path / "rank.yaml"
    config.write_text(f"proxy: params\nground-truth: cifar10:test:200\nground-truth-file: {table}\nsample: 3\n")
    out = tmp_path / "from_config"
    assert main(["rank", "--config", str(config), "--out", str(out), *TINY]) == 0
    assert len(pd.read_csv(out / "results.csv")) == 3


@pytest.mark.parametrize("extra, fragment", [
    (["--space", "darts"], "unknown search space 'darts'"),
    (["--proxy", "params,fisher"], "unknown proxy 'fisher'"),
    (["--ground-truth", "cifar10:test:100"], "epochs must be one of 200, 12"),
    (["--sample", "0"], "--sample: must be a whole number >= 1"),
    (["--sample", "99999"], "--sample must be 1..15625"),
    (["--zc-batch-size", "1"], "--zc-batch-size must be at least 2"),
    (["--batch-size", "1"], "--zc-batch-size must be at least 2"),  # the older name still works
])
def test_bad_input_is_one_line_error_exit_2(tmp_path, table, capsys, extra, fragment):
    argv = ["rank", "--proxy", "params", "--sample", "3", "--ground-truth", "cifar10:test:200",
            "--ground-truth-file", str(table), "--out", str(tmp_path / "r"), *TINY]
    for i in range(0, len(extra), 2):
        position = argv.index(extra[i]) if extra[i] in argv else None
        if position is None:
            argv += extra[i:i + 2]
        else:
            argv[position + 1] = extra[i + 1]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("d2m-nas rank: error:") and fragment in err and "\n" not in err


def test_missing_table_under_the_data_root_says_how_to_get_it(isolated_data_root, capsys):
    assert main(["rank", "--proxy", "params", "--sample", "2", "--ground-truth", "cifar10:test:200", *TINY]) == 2
    err = capsys.readouterr().err
    assert "nb201/nb201_ground_truth.csv" in err and "ground-truth file not found" in err


@pytest.mark.needs_shared_data
def test_rank_on_the_real_table(shared_data_root, tmp_path):
    out = tmp_path / "real"
    assert main(["rank", "--proxy", "params,flops", "--sample", "30", "--ground-truth", "cifar10:test:12",
                 "--data-root", str(shared_data_root), "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["truth_column"] == "cifar10_test_acc_12ep"
    assert summary["proxies"]["params"]["correlation"]["spearman"]["value"] > 0.3


def test_old_results_file_is_refused_in_one_line(tmp_path, table, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "results.csv").write_text("arch,index,isomorphism,proxy,score,seconds,seed,truth,truth_column\n")
    (out / "config.yaml").write_text("command: rank\n")
    assert main(["rank", "--proxy", "params", "--sample", "2", "--ground-truth", "cifar10:test:200",
                 "--ground-truth-file", str(table), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "written with other columns" in err and "\n" not in err


KILLED_RANK = textwrap.dedent("""
    import os, signal, sys
    from d2m_nas.cli import main
    from d2m_nas.proxies.training import TrainingProxy

    calls = []
    score = TrainingProxy.score

    def killed_on_the_fifth_evaluation(self, arch, context):
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of a training run
        calls.append(arch)
        return score(self, arch, context)

    TrainingProxy.score = killed_on_the_fifth_evaluation
    sys.exit(main(sys.argv[1:]))
""")


def test_training_proxy_rank_resumes_after_kill_9(tmp_path, table):
    out = tmp_path / "run"
    argv = ["rank", "--proxy", "random-subset,params", "--sample", "4", "--proxy-seeds", "2", "--steps", "2",
            "--ipc", "2", "--ground-truth", "cifar10:test:200", "--ground-truth-file", str(table), "--dataset", "fake",
            "--val-per-class", "10", "--out", str(out), *TINY]
    script = tmp_path / "killed.py"
    script.write_text(KILLED_RANK)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), *argv], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    before = (out / "results.csv").read_text()
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 8 and (rows["proxy"] == "random-subset").sum() == 4  # 4 trained, each with its params row
    with (out / "results.csv").open("a") as handle:  # a kill during a write leaves a torn last line
        handle.write("|nor_conv_3x3~0|+|none~0|")
    calls = []
    original = TrainingProxy.score

    def counting(self, arch, context):
        calls.append((arch, context.seed))
        return original(self, arch, context)

    TrainingProxy.score = counting
    try:
        assert main(argv) == 0
    finally:
        TrainingProxy.score = original
    after = (out / "results.csv").read_text()
    assert after.startswith(before)  # finished rows kept as they were, nothing rewritten
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4 * 2 * 2 and not results.duplicated(["arch", "proxy", "seed"]).any()
    assert len(calls) == 4  # only the four unfinished (architecture, seed) pairs were trained
    finished = set(zip(rows.loc[rows["proxy"] == "random-subset", "arch"], rows.loc[rows["proxy"] == "random-subset", "seed"]))
    assert not finished & set(calls)


def test_a_shared_cache_means_another_rank_run_trains_nothing_twice(tmp_path, table, monkeypatch, capsys):
    import d2m_nas.ranking as ranking

    cache = tmp_path / "cache.sqlite"
    argv = ["rank", "--proxy", "random-subset,params", "--sample", "3", "--ground-truth", "cifar10:test:200",
            "--ground-truth-file", str(table), "--dataset", "fake", "--val-per-class", "10", "--ipc", "2",
            "--steps", "2", "--proxy-batch-size", "8", "--cache", str(cache), *TINY]
    assert main([*argv, "--out", str(tmp_path / "first")]) == 0
    first = pd.read_csv(tmp_path / "first" / "results.csv")

    def no_scoring(*args, **kwargs):
        raise AssertionError("a cached score was computed again")

    monkeypatch.setattr(ranking, "score_architecture", no_scoring)
    assert main([*argv, "--out", str(tmp_path / "second")]) == 0
    second = pd.read_csv(tmp_path / "second" / "results.csv")
    pd.testing.assert_frame_equal(first, second)  # scores, seconds and training records alike
    # another budget is another cache key: it is computed, not served from the cache
    with pytest.raises(AssertionError, match="computed again"):
        main([*argv, "--steps", "3", "--out", str(tmp_path / "third")])


def test_a_corrupt_cache_is_a_one_line_error(tmp_path, table, capsys):
    cache = tmp_path / "cache.sqlite"
    cache.write_bytes(b"not a database, just bytes" * 100)
    argv = ["rank", "--proxy", "params", "--sample", "2", "--ground-truth", "cifar10:test:200",
            "--ground-truth-file", str(table), "--cache", str(cache), "--out", str(tmp_path / "run"), *TINY]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("d2m-nas rank: error: score cache") and "not a usable SQLite file" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv", [["distill", "--preset", "tiny"], ["search", "--proxy", "naswot"],
                                  ["rank", "--proxy", "naswot", "--ground-truth", "cifar10:test:200"]])
def test_commands_that_read_images_pass_download_on(argv, table, monkeypatch, tmp_path, capsys):
    import d2m_nas.data
    from d2m_nas.errors import UserError

    asked = []

    def load_dataset(name, data_root=None, download=False):
        asked.append(download)
        raise UserError("stop here")

    monkeypatch.setattr(d2m_nas.data, "load_dataset", load_dataset)
    if argv[0] == "rank":
        argv = [*argv, "--ground-truth-file", str(table)]
    assert main([*argv, "--download", "--out", str(tmp_path / "run")]) == 2
    assert asked == [True] and "stop here" in capsys.readouterr().err


def test_a_diverging_training_proxy_is_called_out(tmp_path, table, capsys):
    argv = ["rank", "--proxy", "random-subset", "--proxy-lr", "1e8", "--sample", "6", "--steps", "3", "--ipc", "2",
            "--ground-truth", "cifar10:test:200", "--ground-truth-file", str(table), "--dataset", "fake",
            "--val-per-class", "10", "--out", str(tmp_path / "run"), *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "random-subset@val_acc: 6 of 6 architectures score 10 — the proxy tells them apart no better" in printed
    assert "try a lower --proxy-lr" in printed


def test_one_per_isomorph_and_a_warning_for_another_datasets_truth(tmp_path, table, capsys):
    from search_spaces.registry import create_space

    out = tmp_path / "run"
    assert main(["rank", "--proxy", "params,naswot", "--sample", "40", "--one-per-isomorph", "--ground-truth",
                 "cifar10:test:200", "--ground-truth-file", str(table), "--dataset", "fake", "--val-per-class", "10",
                 "--batch-size", "8", "--out", str(out), *TINY]) == 0
    assert "warning: the proxies read fake images but the ground truth cifar10:test:200 is cifar10's" in \
        capsys.readouterr().err
    archs = pd.read_csv(out / "results.csv").drop_duplicates("arch")["arch"]
    space = create_space("nasbench201")
    assert len(archs) == 40 and len({space.isomorphism_key(a) for a in archs}) == 40
    assert main(["rank", "--proxy", "params", "--sample", "15625", "--one-per-isomorph", "--ground-truth",
                 "cifar10:test:200", "--ground-truth-file", str(table), "--out", str(tmp_path / "r2"), *TINY]) == 2
    assert "isomorphism classes; --sample 15625 is too many" in capsys.readouterr().err


def test_rank_scores_the_architectures_a_file_lists_in_its_order(tmp_path, table):
    chosen = [all_archs()[i] for i in (9930, 6111, 0)]
    listing = tmp_path / "finalists.txt"
    listing.write_text(f"# a search's finalists\n{chosen[0]}\n\n  {chosen[1]}  # the best cell\n{chosen[2]}\n")
    out = tmp_path / "run"
    assert main(["rank", "--proxy", "params", "--archs", str(listing), "--ground-truth", "cifar10:test:200",
                 "--ground-truth-file", str(table), "--out", str(out), *TINY]) == 0
    assert pd.read_csv(out / "results.csv")["arch"].tolist() == chosen
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_archs"] == 3 and summary["archs_file"] == str(listing)


@pytest.mark.parametrize("content, extra, fragment", [
    (None, [], "cannot read it"),
    ("", [], "lists no architecture"),
    ("# nothing but a comment\n", [], "lists no architecture"),
    ("{0}\n|nor_conv_3x3~0|+|bogus~0|\n", [], "line 2:"),
    ("{0}\n{1}\n{0}\n", [], "line 3: repeats line 1"),
    ("{0}\n", ["--sample", "5"], "give it without --sample and --one-per-isomorph"),
    ("{0}\n", ["--one-per-isomorph"], "give it without --sample and --one-per-isomorph"),
])
def test_a_bad_architecture_file_is_a_one_line_error_and_writes_nothing(tmp_path, table, capsys, content, extra,
                                                                          fragment):
    listing = tmp_path / "archs.txt"
    if content is not None:
        listing.write_text(content.format(*all_archs()[:2]))
    out = tmp_path / "run"
    assert main(["rank", "--proxy", "params", "--archs", str(listing), *extra, "--ground-truth", "cifar10:test:200",
                 "--ground-truth-file", str(table), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("d2m-nas rank: error:") and fragment in err and "\n" not in err
    assert not out.exists()


def test_a_table_from_before_the_peak_memory_kind_column_resumes_with_it_added(tmp_path, table):
    from d2m_nas.ranking import LEGACY_COLUMNS, RESULT_COLUMNS

    out = tmp_path / "run"
    argv = ["rank", "--proxy", "params", "--sample", "4", "--ground-truth", "cifar10:test:200",
            "--ground-truth-file", str(table), "--device", "cpu", "--bootstrap", "0", "--out", str(out)]
    assert main(argv[:4] + ["2"] + argv[5:]) == 0  # two of the four, in the current layout ...
    current = pd.read_csv(out / "results.csv")
    current[LEGACY_COLUMNS].to_csv(out / "results.csv", index=False)  # ... turned into the old one
    assert main(argv) == 0
    resumed = pd.read_csv(out / "results.csv")
    assert list(resumed.columns) == RESULT_COLUMNS and len(resumed) == 4
    assert resumed["score"].iloc[:2].tolist() == current["score"].tolist()  # the old rows kept, not rescored
