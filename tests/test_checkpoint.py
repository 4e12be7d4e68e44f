"""Checkpoint files: atomic writes; missing, corrupt or mismatched files give one clear line."""

from __future__ import annotations

import pytest
import torch

from d2m_nas import cli
from d2m_nas.generator_files import load_generator, save_generator, synthesize_from_generator
from d2m_nas.errors import UserError
from distill.checkpoint import GENERATOR_FORMAT, load_payload, save_atomic
from distill.errors import CheckpointError
from distill.generator import Generator, tiny_generator_config

META = {"dataset": "fake", "mean": [0.5] * 3, "std": [0.25] * 3}


def test_atomic_save_leaves_no_temporary_file_and_round_trips(tmp_path):
    path = save_atomic({"format": GENERATOR_FORMAT, "version": 1, "x": torch.ones(2)}, tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    assert torch.equal(load_payload(path, GENERATOR_FORMAT)["x"], torch.ones(2))


def test_generator_round_trip(tmp_path):
    torch.manual_seed(0)
    g = Generator(tiny_generator_config())
    path = save_generator(g, tmp_path / "g.pt", META)
    loaded, meta = load_generator(path)
    assert meta["dataset"] == "fake" and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), loaded.state_dict().values()))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError) as info:
        load_generator(tmp_path / "nope.pt")
    assert "not found" in _one_line(info)


def test_corrupt_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = save_generator(Generator(tiny_generator_config()), tmp_path / "g.pt", META)
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.raises(UserError) as info:
        load_generator(path)
    assert "not a readable checkpoint" in _one_line(info)
    with pytest.raises(CheckpointError):
        load_payload(path, GENERATOR_FORMAT)


def test_wrong_kind_of_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "d2m-nas-synthetic", "version": 1}, path)
    with pytest.raises(UserError) as info:
        load_generator(path)
    assert "not a d2m-nas-generator checkpoint" in _one_line(info)


def test_mismatched_weights(tmp_path):
    torch.manual_seed(0)
    path = save_generator(Generator(tiny_generator_config()), tmp_path / "g.pt", META)
    payload = torch.load(path, weights_only=True)
    payload["config"]["width"] = 8  # the weights are for width 4
    torch.save(payload, path)
    with pytest.raises(UserError) as info:
        load_generator(path)
    assert "does not fit this model" in _one_line(info)


def test_run_directory_without_generator(tmp_path):
    with pytest.raises(UserError) as info:
        synthesize_from_generator(tmp_path, ipc=1, seed=0, device=torch.device("cpu"))
    assert "holds no generator.pt" in _one_line(info)


def test_generator_for_another_dataset_is_refused_by_the_cli(tmp_path, capsys):
    torch.manual_seed(0)
    g = Generator(tiny_generator_config(num_classes=5))
    path = save_generator(g, tmp_path / "g.pt", META | {"dataset": "other"})
    code = cli.main(["distill", "--dataset", "fake", "--preset", "tiny", "--device", "cpu",
                     "--generator", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "is a generator for 'other'" in err and err.count("\n") == 1


def test_corrupt_training_state_in_the_run_dir_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("command: distill\n")  # a distill run, killed mid-write
    (run / "pretrain_state.pt").write_bytes(b"not a checkpoint")
    code = cli.main(["distill", "--dataset", "fake", "--preset", "tiny", "--device", "cpu", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "pretrain_state.pt is not a readable checkpoint" in err and err.count("\n") == 1


def test_all_finite_flags_any_nan_or_inf_tensor():
    from distill.errors import all_finite

    good = [torch.zeros(3), torch.ones(2, 2)]
    assert all_finite(good) and all_finite([]) and all_finite([None, torch.ones(1)])
    assert not all_finite([*good, torch.tensor([1.0, float("nan")])])
    assert not all_finite([torch.tensor([float("inf")]), *good])
