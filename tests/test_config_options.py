"""Options made from a config dataclass: names, bounds, defaults and help come from the fields, and
the config comes back from the parsed options (or a --config file's values)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from d2m_nas.commands.config_options import add_config_options, config_from_args
from d2m_nas.commands.option_types import FRACTIONS
from d2m_nas.evaluation import EvalConfig
from d2m_nas.proxies.training import TrainingProxyConfig


@dataclass(frozen=True)
class Toy:
    steps: int = field(default=10, metadata={"help": "steps", "minimum": 1})
    lr: float = field(default=0.1, metadata={"help": "learning rate", "flag": "--toy-lr", "above": 0})
    mode: str = field(default="a", metadata={"help": "mode", "choices": ("a", "b")})
    fractions: tuple[float, ...] = field(default=(0.5, 1.0), metadata={"help": "fractions"})
    flips: bool = field(default=True, metadata={"help": "no flips", "flag": "--no-flips"})
    internal: int = 3  # no help: not an option


def parser(**options) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_options(parser, Toy(), **options)
    return parser


def test_fields_become_options_with_their_defaults_bounds_and_help():
    args = parser().parse_args([])
    assert config_from_args(Toy(), args) == Toy()
    args = parser().parse_args(["--steps", "4", "--toy-lr", "0.5", "--mode", "b", "--fractions", "0.25,1",
                                "--no-flips"])
    assert config_from_args(Toy(), args) == Toy(steps=4, lr=0.5, mode="b", fractions=(0.25, 1.0), flips=False)
    text = parser().format_help()
    assert "learning rate (default: 0.1)" in text and "--toy-lr" in text and "--internal" not in text
    assert "fractions (default: 0.5,1)" in text and "no flips (default: flips on)" in text
    for argv in (["--steps", "0"], ["--toy-lr", "0"], ["--mode", "c"], ["--fractions", "0.5,x"]):
        with pytest.raises(argparse.ArgumentError):
            parser().parse_args(argv)


def test_overrides_leave_the_base_config_where_no_option_is_given():
    base = Toy(steps=99, flips=True)
    assert config_from_args(base, parser(default_label="preset").parse_args([])) == base
    args = parser(default_label="preset").parse_args(["--no-flips"])
    assert config_from_args(base, args) == Toy(steps=99, flips=False)
    assert "(preset: 10)" in parser(default_label="preset").format_help()


def test_a_list_from_a_config_file_comes_back_a_tuple():
    args = argparse.Namespace(steps=10, toy_lr=0.1, mode="a", fractions=[0.25, 1], flips=True)
    assert config_from_args(Toy(), args).fractions == (0.25, 1.0)
    assert FRACTIONS([0.5, "1"]) == (0.5, 1.0)


def test_the_products_configs_make_the_options_they_always_had_and_the_layout_and_precision_ones():
    proxy = argparse.ArgumentParser()
    add_config_options(proxy, TrainingProxyConfig())
    flags = {a.option_strings[0] for a in proxy._actions if a.option_strings} - {"-h"}
    assert flags == {"--ipc", "--steps", "--proxy-batch-size", "--proxy-lr", "--augment", "--checkpoints",
                     "--generator", "--dm-set", "--proxy-precision", "--proxy-memory-format"}
    evaluate = argparse.ArgumentParser()
    add_config_options(evaluate, EvalConfig(), default_label="protocol")
    flags = {a.option_strings[0] for a in evaluate._actions if a.option_strings} - {"-h"}
    assert flags == {"--model", "--epochs", "--lr", "--momentum", "--weight-decay", "--batch-size", "--no-dsa",
                     "--dsa-strategy", "--test-batch-size", "--precision", "--memory-format"}
    assert config_from_args(EvalConfig(epochs=300), evaluate.parse_args(["--no-dsa"])) == EvalConfig(epochs=300,
                                                                                                    dsa=False)
