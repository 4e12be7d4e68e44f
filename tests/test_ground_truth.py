import pandas as pd
import pytest

from search_spaces.ground_truth import (GroundTruth, GroundTruthError, default_table_path, parse_table_key,
                                        table_column)

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
B = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize("key, column", [
    ("cifar10:test:200", "cifar10_test_acc"),
    ("cifar100:test:200", "cifar100_test_acc"),
    ("imagenet16-120:test:200", "imagenet16_test_acc"),
    ("cifar10:valid:200", "naslib_cifar10_val_acc"),
    ("cifar10:test:12", "cifar10_test_acc_12ep"),
    ("cifar100:valid:12", "cifar100_valid_acc_12ep"),
    ("ImageNet16-120:valid:12", "imagenet16_valid_acc_12ep"),
])
def test_keys_map_to_the_documented_columns(key, column):
    assert table_column(*parse_table_key(key)) == column


@pytest.mark.parametrize("key, fragment", [
    ("cifar10", "must be DATASET:METRIC:EPOCHS"),
    ("cifar10:test", "must be DATASET:METRIC:EPOCHS"),
    ("svhn:test:200", "unknown ground-truth dataset 'svhn'"),
    ("cifar10:train:200", "unknown ground-truth metric 'train'"),
    ("cifar10:test:100", "epochs must be one of 200, 12"),
])
def test_bad_keys_are_rejected_with_one_line(key, fragment):
    with pytest.raises(GroundTruthError) as info:
        parse_table_key(key)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def _table(tmp_path):
    path = tmp_path / "table.csv"
    pd.DataFrame({"nb201_index": [6111, 1651], "arch_str": [A, B], "cifar10_test_acc": [94.37, 10.0],
                  "cifar10_test_acc_12ep": [88.0, 10.0]}).to_csv(path, index=False)
    return path


def test_table_lookup_requires_an_explicit_key(tmp_path):
    truth = GroundTruth.from_csv(_table(tmp_path))
    assert truth.lookup([B, A], "cifar10:test:200").tolist() == [10.0, 94.37]
    assert truth.lookup([A], "cifar10:test:12").tolist() == [88.0]
    assert truth.column_name("cifar10:test:12") == "cifar10_test_acc_12ep"
    with pytest.raises(TypeError):
        truth.column()  # no default key
    with pytest.raises(GroundTruthError, match="lacks the column 'cifar100_test_acc'"):
        truth.column("cifar100:test:200")
    assert pd.isna(truth.lookup(["|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "cifar10:test:200").iloc[0])


def test_a_non_numeric_accuracy_cell_is_a_one_line_error(tmp_path):
    path = _table(tmp_path)
    frame = pd.read_csv(path)
    frame["cifar10_test_acc"] = frame["cifar10_test_acc"].astype(object)
    frame.loc[1, "cifar10_test_acc"] = "n/a?"
    frame.to_csv(path, index=False)
    truth = GroundTruth.from_csv(path)
    with pytest.raises(GroundTruthError, match=r"holds 'n/a\?', not a number \(architecture "):
        truth.column("cifar10:test:200")
    assert truth.column("cifar10:test:12").tolist() == [88.0, 10.0]  # other columns still read


def test_missing_or_unreadable_table_says_how_to_obtain_it(tmp_path):
    with pytest.raises(GroundTruthError) as info:
        GroundTruth.from_data_root(tmp_path)
    message = str(info.value)
    assert str(default_table_path(tmp_path)) in message and "nb201_ground_truth.csv" in message
    assert "\n" not in message
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(GroundTruthError, match="neither an 'arch_str' column"):
        GroundTruth.from_csv(odd)


def test_results_file_from_the_product_as_ground_truth(tmp_path):
    path = tmp_path / "results.csv"
    pd.DataFrame({"arch": ["convnet-d3-w128-relu-instancenorm-avgpool"] * 2 + ["convnet-d1-w32-relu-none-none"],
                  "proxy": ["train"] * 3, "score": [80.0, 82.0, 40.0], "seed": [0, 1, 0]}).to_csv(path, index=False)
    truth = GroundTruth.from_csv(path)
    assert truth.kind == "results"
    values = truth.lookup(["convnet-d1-w32-relu-none-none", "convnet-d3-w128-relu-instancenorm-avgpool"], "score")
    assert values.tolist() == [40.0, 81.0]  # seeds averaged
    assert truth.lookup(["convnet-d1-w32-relu-none-none"], "train:score").tolist() == [40.0]
    with pytest.raises(GroundTruthError, match="no column 'accuracy'; numeric columns: score, seed"):
        truth.column("accuracy")
    with pytest.raises(GroundTruthError, match="no rows for proxy 'synflow'"):
        truth.column("synflow:score")


@pytest.mark.needs_shared_data
def test_real_table(shared_data_root):
    truth = GroundTruth.from_data_root(shared_data_root)
    column = truth.column("cifar10:test:200")
    assert len(column) == 15625
    assert column.idxmax() == A and column.max() == pytest.approx(94.37, abs=0.01)
    assert truth.lookup([B], "cifar10:test:200").tolist() == [pytest.approx(10.0)]
