"""`d2m-nas plot`: every figure a directory supports is written, non-empty, as real PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from d2m_nas import cli
from d2m_nas.data.sources import make_fake_dataset
from d2m_nas.distill_runs import preset, run_d2m
from d2m_nas.plots import image_grid_figure
from d2m_nas.synthetic import SyntheticSet
from test_report import archs_and_truths, write_rank_run, write_search_run, write_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def distill_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("d2m")
    result = run_d2m(make_fake_dataset(train_per_class=12, test_per_class=4), preset("tiny"), out,
                     torch.device("cpu"), progress=False)
    assert result["finished"]
    return out


def plot(argv, capsys) -> tuple[int, list[Path], str]:
    code = cli.main(["plot", *argv, "--device", "cpu"])
    captured = capsys.readouterr()
    return code, [Path(line) for line in captured.out.splitlines()], captured.err


def assert_real_files(files: list[Path], formats=("png", "pdf")) -> None:
    assert files and len(set(files)) == len(files)
    for path in files:
        assert path.is_file() and path.stat().st_size > 1000, path
        head = path.read_bytes()[:8]
        assert head == PNG_MAGIC if path.suffix == ".png" else head.startswith(b"%PDF-"), path
    assert {p.suffix[1:] for p in files} == set(formats)


def test_rank_and_search_figures(tmp_path, capsys):
    truths = archs_and_truths()
    write_rank_run(tmp_path / "rank-ipc10", truths)
    write_rank_run(tmp_path / "rank-ipc50", truths, seed=5)
    write_search_run(tmp_path / "search", truths)
    write_table(tmp_path / "table.csv", truths)
    out = tmp_path / "figures"
    code, files, err = plot([str(tmp_path / "rank-ipc10"), str(tmp_path / "rank-ipc50"), str(tmp_path / "search"),
                             "--out", str(out), "--bootstrap", "50", "--ground-truth-file",
                             str(tmp_path / "table.csv")], capsys)
    assert code == 0, err
    assert_real_files(files)
    names = {p.name for p in files}
    for stem in ("scatter-rank-ipc10-good", "scatter-rank-ipc10-bad", "scatter-rank-ipc50-good",
                 "scatter-rank-ipc50-bad", "correlation-vs-cost-cifar10_test_acc",
                 "search-trajectories-cifar10_test_acc"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    assert len(files) == 12 and all(p.parent == out for p in files)


def test_distill_run_gives_image_grids_and_loss_curves(distill_run, tmp_path, capsys):
    code, files, err = plot([str(distill_run), "--format", "png", "--data-root", str(tmp_path)], capsys)
    assert code == 0, err
    assert_real_files(files, ("png",))
    label = distill_run.name
    assert {p.name for p in files} == {f"images-{label}-generator.png", f"images-{label}-generator_pretrained.png",
                                       f"losses-{label}-losses.png", f"losses-{label}-pretrain_losses.png"}
    assert all(p.parent == distill_run / "plots" for p in files)


def test_synthetic_set_grid(tmp_path, capsys):
    images = torch.randn(30, 3, 8, 8)
    labels = torch.arange(3).repeat_interleave(10)
    meta = {"dataset": "cifar10", "image_size": 8, "channels": 3, "num_classes": 3, "mean": [0.5] * 3,
            "std": [0.25] * 3, "ipc": 10, "method": "dm", "seed": 0}
    SyntheticSet(images, labels, meta).save(tmp_path / "dm" / "synthetic.pt")
    code, files, err = plot([str(tmp_path / "dm"), "--format", "pdf,png", "--data-root", str(tmp_path)], capsys)
    assert code == 0, err
    assert_real_files(files)
    assert {p.name for p in files} == {"images-dm-synthetic.png", "images-dm-synthetic.pdf"}


def test_grid_shows_one_row_per_class_de_normalised():
    images = torch.zeros(6, 1, 4, 4)
    images[3:] = 2.0  # class 1: 0.2 + 2 * 0.4 = 1.0 after de-normalising
    meta = {"dataset": "mnist", "image_size": 4, "channels": 1, "num_classes": 2, "mean": [0.2], "std": [0.4],
            "ipc": 3, "method": "dm", "seed": 0}
    fig = image_grid_figure(SyntheticSet(images, torch.tensor([0, 0, 0, 1, 1, 1]), meta), "t")
    grid = fig.axes[0].images[0].get_array()
    assert grid.shape == (2 + 2 * 6, 2 + 3 * 6)  # 2 rows of 4 px + padding, 3 columns
    assert np.allclose(grid[2:6, 2:6], 0.2) and np.allclose(grid[8:12, 2:6], 1.0)
    # mnist's names belong to 10 classes, not these 2: generic labels; names in the metadata win
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["class 0", "class 1"]
    named = SyntheticSet(images, torch.tensor([0, 0, 0, 1, 1, 1]), meta | {"class_names": ["cat", "dog"]})
    assert [t.get_text() for t in image_grid_figure(named, "t").axes[0].get_yticklabels()] == ["cat", "dog"]


@pytest.mark.parametrize("argv, message", [
    (["{empty}"], "holds nothing to plot"),
    (["{missing}"], "run directory not found"),
    (["{rank}", "--format", "gif"], "--format must list formats"),
    (["{rank}", "--out", "{rank}"], "is an input run directory"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    write_rank_run(tmp_path / "rank", archs_and_truths(4), extras=False)
    paths = {"empty": tmp_path / "empty", "missing": tmp_path / "missing", "rank": tmp_path / "rank"}
    code, _, err = plot([a.format(**paths) for a in argv], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err and err.startswith("d2m-nas plot: error:")


def test_search_without_truth_is_refused(tmp_path, capsys):
    frame = write_search_run(tmp_path / "s", archs_and_truths(4))
    frame.assign(truth=np.nan, truth_column=None).to_csv(tmp_path / "s" / "results.csv", index=False)
    code, _, err = plot([str(tmp_path / "s")], capsys)
    assert code == 2 and "has no ground truth" in err and err.count("\n") == 1
    assert pd.read_csv(tmp_path / "s" / "results.csv")["truth"].isna().all()
