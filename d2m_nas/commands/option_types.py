"""Bounded number types for options: `--channels 0` or `--lr nan` is a one-line error at parse time,
and the same check applies to values read from a --config file."""

from __future__ import annotations

import argparse
import math


class Number:
    """An argparse `type`: a finite int or float, at least (or above) `minimum`."""

    def __init__(self, kind: type, minimum: float, inclusive: bool = True) -> None:
        self.kind, self.minimum, self.inclusive = kind, minimum, inclusive
        self.__name__ = kind.__name__  # argparse names the type in some of its own messages

    def describe(self, plural: bool = False) -> str:
        noun = ("whole numbers" if plural else "a whole number") if self.kind is int else (
            "numbers" if plural else "a number")
        return f"{noun} {'>=' if self.inclusive else '>'} {self.minimum:g}"

    def __call__(self, value):
        try:
            if isinstance(value, bool) or (self.kind is int and isinstance(value, float)):
                raise ValueError  # YAML's true or 2.5 where a count belongs
            number = self.kind(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number) or number < self.minimum or (
                not self.inclusive and number == self.minimum):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {value!r}")
        return number


COUNT = Number(int, 1)  # sizes, steps, batches, samples: at least one
WHOLE = Number(int, 0)  # seeds and phase lengths that may be zero
POSITIVE = Number(float, 0, inclusive=False)  # learning rates, temperatures, budgets
NON_NEGATIVE = Number(float, 0)  # loss weights, momentum, weight decay


class Numbers:
    """An argparse `type` for a comma-separated list of `item` numbers (`3000,100`), or a YAML list."""

    def __init__(self, item: Number) -> None:
        self.item = item
        self.__name__ = "list"

    def __call__(self, value) -> tuple:
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        try:
            return tuple(self.item(item.strip() if isinstance(item, str) else item) for item in items)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be {self.item.describe(plural=True)} separated by commas, "
                                             f"got {value!r}") from None


COUNTS = Numbers(COUNT)  # stage sizes
FRACTIONS = Numbers(POSITIVE)  # checkpoints, as fractions of a run
