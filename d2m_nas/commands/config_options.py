"""Command-line options made from a config dataclass: the dataclass is the one place that names a
setting, bounds it, documents it and gives its default, and the command builds its config back
from the parsed options. The run directory's config.yaml holds those options, so it reloads
through the same parser (`--config`).

A field becomes an option when its metadata has "help". Optional metadata: "flag" (default
--field-name), "metavar", "choices", "minimum" (an inclusive bound) or "above" (an exclusive one).
The option's type follows the field's default: int, float, str, bool (a True default is turned off
by the flag, e.g. --no-dsa) or a tuple of positive numbers (written `0.25,0.5,1`).
"""

from __future__ import annotations

import argparse
from dataclasses import Field, fields, replace
from typing import Any

from d2m_nas.commands.option_types import FRACTIONS, Number


def option_fields(cls) -> list[Field]:
    return [f for f in fields(cls) if "help" in f.metadata]


def _flag(field: Field) -> str:
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def _dest(field: Field) -> str:
    return field.name if isinstance(field.default, bool) else _flag(field).lstrip("-").replace("-", "_")


def _type(field: Field, default):
    meta = field.metadata
    if "choices" in meta or not isinstance(default, (int, float, tuple)):
        return str
    if isinstance(default, tuple):
        return FRACTIONS
    if "above" in meta:
        return Number(type(default), meta["above"], inclusive=False)
    return Number(type(default), meta.get("minimum", float("-inf")))


def _shown(value) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value}"


def add_config_options(group, config, *, default_label: str | None = None) -> None:
    """One option per documented field of the dataclass instance `config`. With `default_label`
    (e.g. "protocol") the options only override `config` (their default is None) and the help
    names its value under that label; without, the options default to its values."""
    for field in option_fields(type(config)):
        value, meta = getattr(config, field.name), field.metadata
        label = default_label or "default"
        if isinstance(value, bool):  # only a True default is worth a switch: --no-NAME turns it off
            group.add_argument(_flag(field), dest=field.name, action="store_const", const=not value,
                               default=None if default_label else value,
                               help=f"{meta['help']} ({label}: {field.name} {'on' if value else 'off'})")
            continue
        shown = f" ({label}: {_shown(value)})" if value is not None else ""
        group.add_argument(_flag(field), dest=_dest(field), type=_type(field, value), choices=meta.get("choices"),
                           metavar=meta.get("metavar"), default=None if default_label else value,
                           help=meta["help"].replace("%", "%%") + shown)


def config_from_args(config, args: argparse.Namespace, **changes: Any):
    """`config` with every option the command line (or a --config file) set, then `changes`."""
    given = {f.name: getattr(args, _dest(f)) for f in option_fields(type(config))
             if getattr(args, _dest(f), None) is not None}
    for name, value in given.items():
        if isinstance(getattr(config, name), tuple):
            given[name] = FRACTIONS(value)  # a list from a JSON or YAML copy of the options
    return replace(config, **{**given, **changes})
