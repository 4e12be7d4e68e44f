"""One way to print a number in every table the product writes (rank, search and report summaries,
plots): fixed digits, signed where a value is a correlation or a difference, "n/a" where a
statistic is undefined (None or NaN)."""

from __future__ import annotations

import math


def number(value, digits: int = 3, sign: bool = True) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def with_ci(stat: dict, digits: int = 3) -> str:
    """`value [low, high]` of a statistic with its confidence interval."""
    return f"{number(stat['value'], digits)} [{number(stat['ci_low'], digits)}, {number(stat['ci_high'], digits)}]"
