"""`d2m-nas data` output and errors, and placing a dataset on a device."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from d2m_nas import cli
from d2m_nas.data import load_dataset, split_train_val
from d2m_nas.data.placement import fits_on_device, place_dataset


def test_data_prints_a_readable_block(isolated_data_root, capsys):
    assert cli.main(["data", "--dataset", "fake", "--val-per-class", "15", "--split-seed", "3", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        "dataset       fake",
        "found at      generated (fake)",
        "train / test  2,600 / 200 images",
        "image         32x32, 3 channels",
        "classes       10 (260-260 train images each): 0, 1, 2, 3, 4, 5, 6, 7, 8, 9",
        "normalisation mean (0.5000, 0.5000, 0.5000), std (0.2500, 0.2500, 0.2500)",
        "validation    15 per class, seed 3: 150 val + 2,450 train (carved from the training set)",
        "memory        8.2 MiB as uint8; fits on cpu",
    ]


def test_data_json_matches_the_loaded_dataset_and_split(isolated_data_root, capsys):
    np.savez(isolated_data_root / "x.npz")  # unrelated files in the root do not matter
    assert cli.main(["data", "--dataset", "fake", "--val-per-class", "20", "--json", "--device", "cpu"]) == 0
    facts = json.loads(capsys.readouterr().out)
    dataset = load_dataset("fake")
    train_idx, val_idx = split_train_val(dataset.y_train, 20, seed=0)
    assert facts["train_images"] == 2600 and facts["test_images"] == 200
    assert facts["split"] == {"seed": 0, "val_per_class": 20,
                              "train_images": len(train_idx), "val_images": len(val_idx)}
    assert facts["channels"] == 3 and facts["image_size"] == 32 and facts["num_classes"] == 10
    assert facts["uint8_bytes"] == dataset.nbytes() and facts["device"] == "cpu" and facts["fits_on_device"]


def test_data_reads_an_imagefolder(tmp_path, capsys):
    from PIL import Image

    for split, n in (("train", 4), ("val", 1)):
        for name in ("a", "b"):
            (tmp_path / "set" / split / name).mkdir(parents=True)
            for k in range(n):
                Image.fromarray(np.full((6, 6), 40 * k, np.uint8)).save(tmp_path / "set" / split / name / f"{k}.png")
    assert cli.main(["data", "--dataset", f"imagefolder:{tmp_path / 'set'}", "--val-per-class", "1", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["class_names"] == ["a", "b"] and facts["channels"] == 1 and facts["image_size"] == 6
    assert facts["train_images"] == 8 and facts["split"]["val_images"] == 2


@pytest.mark.parametrize("argv, expected", [
    (["data", "--dataset", "cifar100"], "cifar100 not found: looked for"),
    (["data", "--dataset", "nope"], "unknown dataset 'nope'; choose from cifar10, cifar100"),
    (["data", "--dataset", "fake", "--val-per-class", "300"], "class 0 has 260 training images; cannot hold out 300"),
    (["data", "--dataset", "fake", "--val-per-class", "-1"], "--val-per-class: must be a whole number >= 0"),
])
def test_data_errors_are_one_line_with_exit_2(isolated_data_root, capsys, argv, expected):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("d2m-nas data: error: ") and expected in captured.err


def test_data_help_documents_layouts_and_download(capsys):
    with pytest.raises(SystemExit):
        cli.main(["data", "--help"])
    out = capsys.readouterr().out
    for text in ("--download", "--val-per-class", "--json", "NAME.npz", "cifar-10-batches-py", "tiny-imagenet-200",
                 "imagefolder:PATH", "D2M_NAS_DATA"):
        assert text in out


def test_place_dataset_on_cpu_keeps_the_arrays():
    dataset = load_dataset("fake")
    placed = place_dataset(dataset, "cpu")
    assert placed is dataset and placed.device.type == "cpu" and placed.x_train.dtype == torch.uint8


def test_fits_on_device_uses_free_cuda_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    assert fits_on_device(500, "cuda", max_fraction=0.5)
    assert not fits_on_device(501, "cuda", max_fraction=0.5)
    assert fits_on_device(900, "cuda:0", max_fraction=0.9)
    assert fits_on_device(10**15, "cpu")


def test_place_dataset_too_large_for_the_device_stays_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    dataset = load_dataset("fake")
    assert place_dataset(dataset, "cuda").device.type == "cpu"  # 2.5 MB does not fit in half of 1000 bytes


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_place_dataset_moves_to_cuda_when_it_fits():
    dataset = place_dataset(load_dataset("fake"), "cuda")
    assert dataset.device.type == "cuda" and dataset.normalize(dataset.x_train[:4]).device.type == "cuda"
