"""One way to write a number in everything the product writes: in tables for people (rank, search
and report summaries, plots) fixed digits, signed where a value is a correlation or a difference,
"n/a" where a statistic is undefined (None or NaN); in summary.json for machines, null there."""

from __future__ import annotations

import math

import numpy as np


def number(value, digits: int = 3, sign: bool = True) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def with_ci(stat: dict, digits: int = 3) -> str:
    """`value [low, high]` of a statistic with its confidence interval."""
    return f"{number(stat['value'], digits)} [{number(stat['ci_low'], digits)}, {number(stat['ci_high'], digits)}]"


def significant(value, digits: int = 4) -> str:
    """A value of any magnitude (a proxy score) to `digits` significant digits."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def mean_pm(stat: dict, digits: int = 2, sign: bool = False) -> str:
    """`mean ± std` of a {mean, std, n} summary over seeds; the mean alone for one value."""
    if stat["n"] == 0:
        return "n/a"
    text = number(stat["mean"], digits, sign)
    return text + (f" ± {number(stat['std'], digits, False)}" if stat["n"] > 1 else "")


def seconds(value) -> str:
    """Three significant digits below 100 s, whole seconds with thousands separators above."""
    if value is None or not math.isfinite(value) or value < 100:
        return significant(value, 3)
    return f"{value:,.0f}"


def finite_or_null(value):
    """Strict JSON: undefined statistics (NaN) and infinities become null; NumPy scalars plain."""
    if isinstance(value, dict):
        return {str(k): finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
