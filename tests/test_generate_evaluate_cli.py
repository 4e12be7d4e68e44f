import json
import sys
import types

import pytest
import torch

from d2m_nas import cli
from d2m_nas.data import split_train_val
from d2m_nas.data.sources import make_fake_dataset
from d2m_nas.errors import UserError
from d2m_nas.random_subset import random_real_subset
from d2m_nas.synthetic import SyntheticSet

TINY = ["--model", "convnet-d1-w8-relu-instancenorm-avgpool", "--epochs", "3", "--batch-size", "32", "--device", "cpu"]


def test_random_subset_comes_only_from_the_train_part_balanced_and_seeded():
    fake = make_fake_dataset(train_per_class=20, test_per_class=2)
    a = random_real_subset(fake, ipc=4, seed=1, val_per_class=5, split_seed=0)
    _, val_idx = split_train_val(fake.y_train, 5, seed=0)
    chosen = torch.tensor(a.metadata["source_indices"])
    assert len(chosen) == 40 and len(set(chosen.tolist())) == 40
    assert not set(chosen.tolist()) & set(val_idx.tolist())  # never a validation image
    assert torch.bincount(a.labels, minlength=10).tolist() == [4] * 10
    assert torch.equal(a.labels, fake.y_train[chosen])
    assert torch.allclose(a.images, fake.normalize(fake.x_train[chosen]))
    assert a.images.dtype == torch.float32
    b = random_real_subset(fake, ipc=4, seed=1, val_per_class=5, split_seed=0)
    c = random_real_subset(fake, ipc=4, seed=2, val_per_class=5, split_seed=0)
    assert a.metadata["source_indices"] == b.metadata["source_indices"] != c.metadata["source_indices"]
    meta = a.metadata
    assert (meta["dataset"], meta["image_size"], meta["channels"], meta["num_classes"], meta["ipc"],
            meta["method"], meta["seed"]) == ("fake", 32, 3, 10, 4, "random", 1)
    assert meta["mean"] == list(fake.mean) and meta["std"] == list(fake.std)


@pytest.mark.parametrize("command", ["generate", "data", "rank", "search"])
def test_every_data_command_holds_out_the_same_validation_split(command):
    from d2m_nas.cli import parse_args
    from d2m_nas.data import DEFAULT_VAL_PER_CLASS

    required = {"search": ["--proxy", "params"]}.get(command, [])
    args = parse_args([command, *required])
    assert (args.val_per_class, args.split_seed) == (DEFAULT_VAL_PER_CLASS, 0)


def test_random_subset_too_large_is_a_user_error():
    fake = make_fake_dataset(train_per_class=20, test_per_class=2)
    with pytest.raises(UserError, match="cannot sample 16 per class"):
        random_real_subset(fake, ipc=16, seed=0, val_per_class=5)


def test_generate_then_evaluate_end_to_end_on_fake(tmp_path, capsys):
    gen_dir, eval_dir = tmp_path / "gen", tmp_path / "eval"
    assert cli.main(["generate", "--method", "random", "--dataset", "fake", "--ipc", "5", "--val-per-class", "10",
                     "--seed", "3", "--out", str(gen_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert str(gen_dir / "synthetic.pt") in out and "50 images" in out
    synthetic = SyntheticSet.load(gen_dir)
    assert len(synthetic) == 50 and synthetic.metadata["seed"] == 3 and synthetic.metadata["val_per_class"] == 10
    assert (gen_dir / "config.yaml").is_file() and (gen_dir / "versions.json").is_file()

    assert cli.main(["evaluate", str(gen_dir), "--runs", "2", "--out", str(eval_dir), *TINY]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    record = json.loads((eval_dir / "eval.json").read_text())
    assert lines[0] == record["summary"]
    assert lines[0].startswith("test accuracy ") and "over 2 runs" in lines[0] and lines[0].endswith("on fake test")
    assert "3 epochs [reduced from 1000]" in lines[0]
    assert len(record["accuracies"]) == 2 and record["mean"] == pytest.approx(sum(record["accuracies"]) / 2)
    assert record["protocol"] == "reduced"
    assert record["differences"]["epochs"] == {"used": 3, "protocol": 1000}
    assert record["config"]["lr"] == 0.01 and record["config"]["dsa"] is True
    assert record["synthetic_metadata"]["method"] == "random" and "source_indices" not in record["synthetic_metadata"]
    assert record["seconds"] > 0 and record["threads"] >= 1 and record["device"] == "cpu"


def test_evaluate_with_the_full_protocol_flags_reports_full(tmp_path, monkeypatch):
    # Everything but the work is real: the protocol field must say "full" with no flags given.
    import d2m_nas.evaluation as evaluation

    fake = make_fake_dataset(train_per_class=20, test_per_class=2)
    random_real_subset(fake, 1, 0, 5).save(tmp_path / "s.pt")
    seen = {}

    def fake_train(images, labels, num_classes, config, device, seed, progress=False, desc=""):
        seen["config"] = config
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, num_classes))

    monkeypatch.setattr(evaluation, "train_on_images", fake_train)
    assert cli.main(["evaluate", str(tmp_path / "s.pt"), "--runs", "1", "--out", str(tmp_path / "e"),
                     "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert record["protocol"] == "full" and record["differences"] == {}
    assert seen["config"] == evaluation.EvalConfig()


def test_evaluate_missing_file_exits_2_with_one_line(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("d2m-nas evaluate: error: synthetic set not found") and err.count("\n") == 1
    assert not (tmp_path / "e").exists()


def test_generate_without_data_says_where_it_looked(isolated_data_root, tmp_path, capsys):
    assert cli.main(["generate", "--dataset", "cifar10", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "cifar10" in err and err.count("\n") == 1


def test_generator_method_needs_a_run_directory(tmp_path, capsys):
    assert cli.main(["generate", "--method", "generator", "--out", str(tmp_path / "g")]) == 2
    assert "--method generator needs --generator RUN" in capsys.readouterr().err


def fake_generator_files_module(monkeypatch) -> dict:
    """A stand-in d2m_nas.generator_files whose synthesize_from_generator records its call."""
    calls = {}

    def synthesize_from_generator(run_dir, ipc, seed, device, stage="distilled"):
        calls.update(run_dir=run_dir, ipc=ipc, seed=seed, device=device, stage=stage)
        fake = make_fake_dataset(train_per_class=20, test_per_class=2)
        subset = random_real_subset(fake, ipc, seed, 5)
        return SyntheticSet(subset.images, subset.labels, subset.metadata | {"method": "d2m"})

    module = types.ModuleType("d2m_nas.generator_files")
    module.synthesize_from_generator = synthesize_from_generator
    monkeypatch.setitem(sys.modules, "d2m_nas.generator_files", module)
    return calls


def test_generator_path_saves_what_generator_files_synthesizes(tmp_path, monkeypatch, capsys):
    calls = fake_generator_files_module(monkeypatch)
    (tmp_path / "run").mkdir()
    assert cli.main(["generate", "--generator", str(tmp_path / "run"), "--ipc", "2", "--stage", "pretrained",
                     "--seed", "5", "--device", "cpu", "--out", str(tmp_path / "g")]) == 0
    assert calls == {"run_dir": tmp_path / "run", "ipc": 2, "seed": 5, "device": torch.device("cpu"),
                     "stage": "pretrained"}
    assert SyntheticSet.load(tmp_path / "g").metadata["method"] == "d2m"
    assert "(2 per class, d2m, fake)" in capsys.readouterr().out


def test_a_generator_file_is_taken_and_a_missing_one_is_one_line(tmp_path, monkeypatch, capsys):
    calls = fake_generator_files_module(monkeypatch)
    checkpoint = tmp_path / "generator.pt"
    checkpoint.write_bytes(b"read by the stand-in module only")
    assert cli.main(["generate", "--generator", str(checkpoint), "--ipc", "2", "--device", "cpu",
                     "--out", str(tmp_path / "g")]) == 0
    assert calls["run_dir"] == checkpoint
    capsys.readouterr()
    assert cli.main(["generate", "--generator", str(tmp_path / "nothing.pt"), "--device", "cpu",
                     "--out", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert "no such file or run directory" in err and err.count("\n") == 1 and not (tmp_path / "h").exists()


@pytest.mark.needs_shared_data
def test_generate_random_cifar10_from_the_data_root(shared_data_root, tmp_path):
    assert cli.main(["generate", "--dataset", "cifar10", "--ipc", "2", "--data-root", str(shared_data_root),
                     "--out", str(tmp_path / "g"), "--device", "cpu"]) == 0
    synthetic = SyntheticSet.load(tmp_path / "g")
    assert synthetic.images.shape == (20, 3, 32, 32) and synthetic.metadata["dataset"] == "cifar10"
    assert abs(float(synthetic.images.mean())) < 1.0  # normalised, not 0..255
