"""benchmarks/accuracy_table.py: the cross-architecture table's arithmetic on made-up evaluation lines."""

import json

import pytest


@pytest.fixture
def accuracy_table(benchmark_script):
    return benchmark_script("accuracy_table")


def lines(path, method, by_model, seed=0, ipc=10):
    records = [{"benchmark": "distill_accuracy", "method": method, "ipc": ipc, "model": model, "accuracies": accs,
                "mean": sum(accs) / len(accs), "std": 0.5, "runs": len(accs), "seed": seed}
               for model, accs in by_model.items()]
    records.append({"benchmark": "redistill_cost", "ipc": ipc})  # not an accuracy: ignored
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_rows_per_set_columns_per_network_and_paired_differences(tmp_path, accuracy_table):
    random = lines(tmp_path / "r.jsonl", "random", {"convnet": [30.0, 31.0, 32.0], "alexnet": [20.0, 21.0, 22.0]})
    d2m_a = lines(tmp_path / "a.jsonl", "d2m", {"convnet": [40.0, 40.5, 41.0]})
    d2m_b = lines(tmp_path / "b.jsonl", "d2m", {"convnet": [29.0, 31.0, 33.0]})
    other_ipc = lines(tmp_path / "c.jsonl", "dm", {"convnet": [50.0, 50.0, 50.0]}, ipc=50)
    text = accuracy_table.main([random, f"seed0={d2m_a}", f"seed1={d2m_b}", other_ipc, "--ipc", "10", "--baseline", "random"])
    rows = text.splitlines()
    assert rows[0] == "| set | convnet | alexnet |"
    assert rows[2] == "| random | 31.00 ± 0.50 | 21.00 ± 0.50 |"
    assert rows[3] == "| seed0 | 40.50 ± 0.50 | not run |"
    assert rows[4] == "| seed0 − random, paired | +9.50 (+10.00, +9.50, +9.00) | — |"
    assert rows[6] == "| seed1 − random, paired | +0.00 (-1.00, +0.00, +1.00) | — |"
    assert len(rows) == 7  # the IPC-50 set is left out


def test_unpaired_sets_and_an_unknown_baseline_are_refused(tmp_path, accuracy_table):
    random = lines(tmp_path / "r.jsonl", "random", {"convnet": [30.0, 31.0]})
    shifted = lines(tmp_path / "s.jsonl", "d2m", {"convnet": [40.0, 41.0]}, seed=1)
    with pytest.raises(SystemExit, match="not evaluated on the same network seeds"):
        accuracy_table.main([random, shifted, "--ipc", "10", "--baseline", "random"])
    with pytest.raises(SystemExit, match="no set named 'dm'"):
        accuracy_table.main([random, "--ipc", "10", "--baseline", "dm"])
    with pytest.raises(SystemExit, match="no such file: .*missing.jsonl"):
        accuracy_table.main([random, str(tmp_path / "missing.jsonl"), "--ipc", "10"])
