"""Ground truth for rankings: the NAS-Bench-201 table, or a results file d2m-nas produced.

The NAS-Bench-201 table is a CSV with one row per architecture (``arch_str``) and accuracy
columns; it is queried by an explicit key ``dataset:metric:epochs`` (e.g. ``cifar10:test:200``),
never a default, because 12- and 200-epoch or valid and test numbers rank architectures
differently. A results file (for spaces without a table, such as the 720 ConvNets) is any CSV
with an ``arch`` column; its key is a numeric column, optionally ``proxy:column`` when the file
has a ``proxy`` column; repeated rows of one architecture (seeds) are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TABLE_RELATIVE_PATH = Path("nb201") / "nb201_ground_truth.csv"
DATASETS = ("cifar10", "cifar100", "imagenet16-120")
METRICS = ("test", "valid")
EPOCHS = (200, 12)
_PREFIX = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet16"}
HOW_TO_OBTAIN = ("the NAS-Bench-201 table is a CSV with columns nb201_index, arch_str and accuracy columns such "
                 "as cifar10_test_acc (see the d2m-nas README, 'Ground truth'); put it at "
                 "<data-root>/nb201/nb201_ground_truth.csv or pass its path")


class GroundTruthError(ValueError):
    """Missing or malformed ground-truth file, or an unknown key."""


def table_column(dataset: str, metric: str, epochs: int | str) -> str:
    """The documented column of the NAS-Bench-201 table for a (dataset, metric, epochs) key.

    200 epochs: ``<d>_test_acc`` (trained on train+valid, official test set, seed mean) and
    ``naslib_<d>_val_acc`` (NASLib's validation accuracy); 12 epochs: ``<d>_test_acc_12ep`` and
    ``<d>_valid_acc_12ep``."""
    if dataset not in DATASETS:
        raise GroundTruthError(f"unknown ground-truth dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if metric not in METRICS:
        raise GroundTruthError(f"unknown ground-truth metric {metric!r}; choose from {', '.join(METRICS)}")
    try:
        epochs = int(epochs)
    except (TypeError, ValueError):
        epochs = -1
    if epochs not in EPOCHS:
        raise GroundTruthError(f"ground-truth epochs must be one of {', '.join(map(str, EPOCHS))}, got {epochs!r}")
    prefix = _PREFIX[dataset]
    if epochs == 200:
        return f"{prefix}_test_acc" if metric == "test" else f"naslib_{prefix}_val_acc"
    return f"{prefix}_{metric}_acc_12ep"


def parse_table_key(key: str) -> tuple[str, str, int]:
    parts = str(key).strip().lower().split(":")
    if len(parts) != 3:
        raise GroundTruthError(f"ground-truth key {key!r} must be DATASET:METRIC:EPOCHS, e.g. cifar10:test:200 "
                               f"(datasets {', '.join(DATASETS)}; metrics test, valid; epochs 200, 12)")
    dataset, metric, epochs = parts
    table_column(dataset, metric, epochs)
    return dataset, metric, int(epochs)


def default_table_path(data_root: str | Path) -> Path:
    return Path(data_root) / TABLE_RELATIVE_PATH


@dataclass
class GroundTruth:
    """True performance per architecture string; `column(key)` gives a Series indexed by arch."""

    frame: pd.DataFrame  # indexed by architecture string
    source: str
    kind: str  # "nasbench201-table" or "results"

    @classmethod
    def from_csv(cls, path: str | Path) -> "GroundTruth":
        path = Path(path)
        if not path.is_file():
            raise GroundTruthError(f"ground-truth file not found: {path}; {HOW_TO_OBTAIN}")
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise GroundTruthError(f"ground-truth file {path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
        if "arch_str" in frame.columns:
            if frame["arch_str"].duplicated().any():
                raise GroundTruthError(f"ground-truth table {path} lists an architecture twice")
            return cls(frame.set_index("arch_str"), str(path), "nasbench201-table")
        if "arch" in frame.columns:
            return cls(frame, str(path), "results")
        raise GroundTruthError(f"ground-truth file {path} has neither an 'arch_str' column (NAS-Bench-201 table) "
                               "nor an 'arch' column (a d2m-nas results file)")

    @classmethod
    def from_data_root(cls, data_root: str | Path) -> "GroundTruth":
        return cls.from_csv(default_table_path(data_root))

    def column_name(self, key: str) -> str:
        """The column a key reads (reports print it next to every correlation)."""
        if self.kind == "nasbench201-table":
            name = table_column(*parse_table_key(key))
            if name not in self.frame.columns:
                raise GroundTruthError(f"ground-truth table {self.source} lacks the column {name!r} for key {key!r}")
            return name
        return str(key).split(":", 1)[-1]

    def column(self, key: str) -> pd.Series:
        """True values for `key`, indexed by architecture string (NaN-free)."""
        name = self.column_name(key)
        if self.kind == "nasbench201-table":
            text = self.frame[name]
            values = pd.to_numeric(text, errors="coerce")
            bad = text[values.isna() & text.notna()]
            if len(bad):
                raise GroundTruthError(f"ground-truth table {self.source}: column {name!r} holds {bad.iloc[0]!r}, not "
                                       f"a number (architecture {bad.index[0]}); repair the table or use another one")
            return values.dropna().rename(name)
        frame = self.frame
        if ":" in str(key):
            proxy = str(key).split(":", 1)[0]
            if "proxy" not in frame.columns:
                raise GroundTruthError(f"results file {self.source} has no 'proxy' column to select {proxy!r}")
            frame = frame[frame["proxy"] == proxy]
            if frame.empty:
                raise GroundTruthError(f"results file {self.source} has no rows for proxy {proxy!r}")
        elif "proxy" in frame.columns and frame["proxy"].nunique() > 1:
            raise GroundTruthError(f"results file {self.source} holds several proxies "
                                   f"({', '.join(sorted(map(str, frame['proxy'].unique())))}); use the key PROXY:{name}")
        if name not in frame.columns or name == "arch":
            numeric = [c for c in frame.columns if c != "arch" and pd.api.types.is_numeric_dtype(frame[c])]
            raise GroundTruthError(f"results file {self.source} has no column {name!r}; numeric columns: "
                                   f"{', '.join(numeric) or 'none'}")
        values = pd.to_numeric(frame[name], errors="coerce")
        return values.groupby(frame["arch"]).mean().dropna().rename(name)

    def lookup(self, archs: list[str], key: str) -> pd.Series:
        """True values for `archs` in their order (NaN where the ground truth lacks one)."""
        return self.column(key).reindex(archs)
