import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from d2m_nas import cli
from d2m_nas.commands import COMMANDS


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("data", "distill", "generate", "evaluate", "search", "rank", "report", "plot"):
        assert name in out
    assert set(COMMANDS) == {"data", "distill", "generate", "evaluate", "search", "rank", "report", "plot"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help_with_common_options(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--device" in out and "--seed" in out and "--config" in out


def test_config_file_values_apply_and_cli_flags_win(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"seed": 7, "device": "cpu", "data-root": str(tmp_path)}))
    args = cli.parse_args(["data", "--config", str(config), "--seed", "3"])
    assert args.seed == 3  # the flag beats the file
    assert args.device == "cpu"  # the file beats the default
    assert str(args.data_root) == str(tmp_path)


def test_config_file_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"no_such_option": 1}))
    assert cli.main(["data", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown option 'no_such_option'" in err and len(err.splitlines()) == 1
    assert cli.main(["data", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_unknown_device_is_a_clear_error(capsys):
    from d2m_nas.devices import resolve_device
    from d2m_nas.errors import UserError

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu9")


def test_run_record_written(tmp_path):
    args = cli.parse_args(["generate", "--device", "cpu", "--out", str(tmp_path / "run")])
    device, out = cli.start_run(args)
    assert device.type == "cpu"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["device"] == "cpu" and config["seed"] == 0
    versions = json.loads((out / "versions.json").read_text())
    assert versions["torch"] and versions["threads"] >= 1
    head = subprocess.run(["git", "-C", str(Path(cli.__file__).parent), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:  # a checkout: the record names the commit that ran
        assert versions["code"].removesuffix("+dirty") == head.stdout.strip()


def test_console_script_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "d2m_nas", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "d2m-nas" in result.stdout


def test_size_options_reach_only_spaces_that_scale():
    from argparse import Namespace

    from d2m_nas.commands import size_options
    from search_spaces.registry import create_space

    args = Namespace(channels=8, cells=1)
    assert size_options(create_space("nasbench201"), args) == {"channels": 8, "cells_per_stage": 1}
    assert size_options(create_space("convnet720"), args) == {}


def test_top_level_help_does_not_import_torch():
    code = ("import sys\nfrom d2m_nas import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'optuna', 'matplotlib', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("argv, fragment", [
    (["rank", "--channels", "0"], "--channels: must be a whole number >= 1, got '0'"),
    (["search", "--cells", "-1"], "--cells: must be a whole number >= 1"),
    (["distill", "--lr", "nan"], "--lr: must be a number > 0, got 'nan'"),
    (["distill", "--lr", "-1"], "--lr: must be a number > 0"),
    (["rank", "--bootstrap", "-5"], "--bootstrap: must be a whole number >= 0"),
    (["generate", "--val-per-class", "-5"], "--val-per-class: must be a whole number >= 0"),
    (["evaluate", "--epochs", "2.5"], "--epochs: must be a whole number >= 1"),
    (["rank", "--seed", "-3"], "--seed: must be a whole number >= 0"),
    (["search", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_bad_flag_values_are_one_line_errors(argv, fragment, tmp_path, capsys):
    assert cli.main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert err.startswith(f"d2m-nas {argv[0]}: error:") and not (tmp_path / "run").exists()


def test_bounded_values_from_a_config_file_are_checked_too(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"channels": 0}))
    assert cli.main(["rank", "--config", str(config)]) == 2
    assert "channels must be a whole number >= 1, got 0" in capsys.readouterr().err


def test_every_registered_marker_is_carried_by_a_test():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    markers = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    sources = "".join(path.read_text() for path in (root / "tests").glob("test_*.py"))
    for marker in markers:
        assert f"pytest.mark.{marker.split(':')[0]}" in sources, f"marker {marker!r} selects no test"


def test_the_demo_states_the_cpu_presets_pretraining_steps():
    from d2m_nas.distill_runs import PRESETS

    demo = (Path(__file__).resolve().parents[1] / "scripts" / "demo.sh").read_text()
    assert f"the cpu preset uses {PRESETS['cpu'].pretrain.steps})" in demo


def test_threads_option_sets_torch_and_is_recorded(tmp_path):
    import torch

    try:
        assert cli.main(["generate", "--method", "random", "--dataset", "fake", "--ipc", "1", "--val-per-class", "5",
                         "--device", "cpu", "--threads", "2", "--out", str(tmp_path / "run")]) == 0
        assert torch.get_num_threads() == 2
        assert json.loads((tmp_path / "run" / "versions.json").read_text())["threads"] == 2
    finally:
        torch.set_num_threads(1)
