import json

import pandas as pd
import pytest

from d2m_nas.cli import main
from search_spaces.nasbench201 import all_archs, parse_arch

TINY = ["--channels", "4", "--cells", "1", "--device", "cpu", "--bootstrap", "50"]


@pytest.fixture
def table(tmp_path):
    """A synthetic NAS-Bench-201 table: accuracy grows with the number of 3x3 convolutions."""
    archs = list(all_archs())
    accuracy = [50 + 5 * parse_arch(a).count("nor_conv_3x3") + (i % 7) * 0.1 for i, a in enumerate(archs)]
    path = tmp_path / "table.csv"
    pd.DataFrame({"nb201_index": range(len(archs)), "arch_str": archs, "cifar10_test_acc": accuracy,
                  "cifar10_test_acc_12ep": accuracy}).to_csv(path, index=False)
    return path


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
                                     "truth_column"]
    assert (results["truth_column"] == "cifar10_test_acc").all() and (results["seed"] == 1).all()
    truth = pd.read_csv(table).set_index("arch_str")["cifar10_test_acc"]
    assert results["truth"].tolist() == pytest.approx(truth.loc[results["arch"]].tolist())
    assert (results["index"] == [all_archs().index(a) for a in results["arch"]]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["truth_column"] == "cifar10_test_acc" and summary["n_archs"] == 6
    params = summary["proxies"]["params"]
    assert params["n"] == 6 and params["spearman"]["value"] > 0.5 and "top3" in params["top_k"]
    assert params["seconds_per_arch"] >= 0
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
    (["--sample", "0"], "--sample must be 1..15625"),
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
    assert summary["proxies"]["params"]["spearman"]["value"] > 0.3
