"""`d2m-nas` command line: subcommands, common options, --config FILE.yaml with CLI overrides."""

from __future__ import annotations

import argparse
import importlib
import random
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

import yaml

from d2m_nas import __version__
from d2m_nas.commands import COMMANDS
from d2m_nas.commands.option_types import COUNT, WHOLE, Number, Numbers
from d2m_nas.errors import UserError


def _common_options(parser: argparse.ArgumentParser, writes_run_dir: bool) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument("--config", type=Path, metavar="FILE.yaml",
                       help="read options from a YAML mapping (keys as the long options, "
                            "dashes or underscores); flags given on the command line win")
    group.add_argument("--device", default="auto",
                       help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto)")
    group.add_argument("--seed", type=WHOLE, default=0, help="random seed (default: 0)")
    group.add_argument("--data-root", type=Path, metavar="DIR",
                       help="where datasets live or are downloaded to "
                            "(default: $D2M_NAS_DATA, else ~/.cache/d2m-nas/data)")
    if writes_run_dir:
        group.add_argument("--threads", type=COUNT, metavar="N",
                           help="CPU threads for torch (default: torch's choice, $OMP_NUM_THREADS); give 1 to "
                                "each of several processes sharing a machine")
        group.add_argument("--out", type=Path, metavar="RUN_DIR",
                           help="run directory for outputs, the resolved config.yaml and versions.json "
                                "(default: runs/<command>/<timestamp>)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A bad flag is one line, like every other d2m-nas error (argparse would print the usage too)."""
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. With `command`, only that subcommand gets its options: the others' option
    set-up imports torch, optuna or matplotlib, which `d2m-nas --help` should not wait for."""
    parser = _Parser(
        prog="d2m-nas",
        description="Neural architecture search driven by distilled data: distill a dataset into a "
                    "conditional generator (D2M), generate small training sets at any images-per-class "
                    "budget, rank architectures by brief training on them, and report how well the "
                    "cheap ranking agrees with full-data ground truth.",
    )
    parser.add_argument("--version", action="version", version=f"d2m-nas {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"d2m_nas.commands.{name}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        if command is None or name == command:
            module.add_arguments(sub)
            _common_options(sub, getattr(module, "WRITES_RUN_DIR", True))
            sub.set_defaults(_module=module, _parser=sub)
    return parser


def _apply_config_file(parser: argparse.ArgumentParser, args: argparse.Namespace,
                       argv: list[str]) -> argparse.Namespace:
    """Re-parse with the YAML values as the subcommand's defaults, so explicit flags win."""
    path: Path = args.config
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if loaded is None:
        return args
    if not isinstance(loaded, dict):
        raise UserError(f"config file {path} must hold a mapping of option names to values")
    sub: argparse.ArgumentParser = args._parser
    actions = {action.dest: action for action in sub._actions}
    written_by = loaded.pop("command", args.command)  # a run's own config.yaml names the command that wrote it
    if written_by != args.command:
        raise UserError(f"config file {path} was written by `d2m-nas {written_by}`, not `d2m-nas {args.command}`")
    values = {}
    for key, value in loaded.items():
        dest = str(key).replace("-", "_")
        if dest not in actions:
            raise UserError(f"config file {path}: unknown option {key!r} for `d2m-nas {args.command}`")
        _check_config_value(actions[dest], key, value, path)
        values[dest] = value
    sub.set_defaults(**values)
    return parser.parse_args(argv)  # dispatches to the same, now re-defaulted, subparser


def _check_config_value(action: argparse.Action, key, value, path: Path) -> None:
    """argparse converts only string defaults, so a YAML value of the wrong kind would pass unchecked."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        expected, ok = "true or false", isinstance(value, bool)
    elif isinstance(action, argparse._AppendAction):
        expected, ok = "a list of strings", isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif value is None or isinstance(value, str):
        return  # None keeps the option unset; strings go through the option's own type
    elif isinstance(action.type, (Number, Numbers)):
        try:
            action.type(value)
        except argparse.ArgumentTypeError as exc:
            raise UserError(f"config file {path}: {key} {exc}") from None
        return
    else:
        expected, ok = "a single value", not isinstance(value, (list, dict))
    if not ok:
        raise UserError(f"config file {path}: {key} must be {expected}, got {value!r}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    # only flags without values may precede the subcommand, so its name is the first command word
    parser = build_parser(next((word for word in argv if word in COMMANDS), ""))
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the subcommand, whose --help lists what it takes
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        raise SystemExit(2)
    if args.config is not None:
        args = _apply_config_file(parser, args, argv)  # argparse applies each option's type to file values too
    return args


def set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


_claimed: list = []  # the run directories this invocation claimed, undone if it fails


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: the same clean stop and the same resume."""


def _terminate(signum, frame) -> NoReturn:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    from d2m_nas import provenance
    from d2m_nas.run_dir import disk_error_message

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in argv if word in COMMANDS), "")
    code = 1
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        provenance.forget()
        args = parse_args(argv)
        set_threads(getattr(args, "threads", None))
        seed_everything(args.seed)
        code = int(args._module.run(args) or 0)
        return code
    except UserError as exc:
        code = _error(command, str(exc))
        return code
    except OSError as exc:
        message = disk_error_message(exc)
        if message is None:
            raise
        code = _error(command, message)
        return code
    except KeyboardInterrupt as exc:
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"d2m-nas: {how}; rerun the same command to resume where supported", file=sys.stderr)
        code = 130
        return code
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        while _claimed:
            run = _claimed.pop()
            if code == 2:  # a refusal or a fixable failure: leave --out as it was
                run.roll_back()
            elif code == 0:
                run.record_data_files(provenance.data_files())
            run.release()


def _error(command: str, message: str) -> int:
    print(f"d2m-nas {command}: error: {message}".replace(" :", ":"), file=sys.stderr)
    return 2


def config_of(args: argparse.Namespace) -> dict:
    """The resolved options of a run, as written to config.yaml (private argparse keys dropped)."""
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "config"}


def start_run(args: argparse.Namespace, shared: bool = False):
    """Resolve the device, claim the run directory (refusing another command's run or a second
    writer) and write its record; returns (device, out_dir). `shared`: several processes may
    write the directory at once (search workers of one study). Undone by `main` if the command fails."""
    from d2m_nas.devices import resolve_device
    from d2m_nas.run_dir import RunDirectory, default_run_dir

    device = resolve_device(args.device)
    out = Path(args.out or default_run_dir(args.command))
    args.out = out
    run = RunDirectory(out, args.command, shared=shared)
    _claimed.append(run)
    run.write_record(config_of(args), str(device))
    return device, out
