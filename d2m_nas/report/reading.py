"""Reading run directories: the results.csv of `d2m-nas rank` and `d2m-nas search` runs, checked
and typed, and the NAS-Bench-201 table the references come from."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from d2m_nas.errors import UserError
from d2m_nas.proxies.score_rules import RULES
from d2m_nas.provenance import record_read
from search_spaces.ground_truth import GroundTruth, GroundTruthError, default_table_path

REQUIRED_COLUMNS = ("arch", "proxy", "score", "seconds", "seed", "truth", "truth_column")
SEARCH_COLUMNS = ("study", "trial", "backend", "strategy", "elapsed_s")
OPTIONAL_NUMERIC = ("steps", "train_images", "device_seconds", "peak_memory_mb")


@dataclass
class Run:
    """One input directory's results."""

    label: str  # the `run` column and the tables' first cell
    path: Path | str  # the run directory, or where a study's rows were read (`load_study_run`)
    frame: pd.DataFrame
    kind: str  # "rank" or "search"
    summary: dict = field(default_factory=dict)  # the directory's own summary.json, when readable
    versions: dict = field(default_factory=dict)  # its run record (device, versions), when readable

    @property
    def hardware(self) -> str:
        """What the run record says about where the seconds were measured."""
        parts = [f"{key} {self.versions[key]}" for key in ("device", "hardware", "threads") if self.versions.get(key)]
        return ", ".join(parts) or "not recorded"

    @property
    def truth_columns(self) -> list[str]:
        return sorted(c for c in self.frame["truth_column"].unique() if c)


def expand_score_rules(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a results table with one row per score rule for every training-based row: proxy
    `NAME@RULE`, score = that rule's value (the row's own `score` is one of them). Other rows,
    and tables without rule columns, are returned as they are."""
    if "score_rule" not in frame.columns:
        return frame
    trained = frame["score_rule"].fillna("").astype(str) != ""
    parts = [frame[~trained]]
    for rule in RULES:
        part = frame[trained].copy()
        part["proxy"] = part["proxy"].astype(str) + "@" + rule
        part["score"] = pd.to_numeric(part[rule], errors="coerce")
        parts.append(part)
    return pd.concat(parts).sort_index(kind="stable")


def load_run(path: str | Path, label: str | None = None) -> Run:
    """A run directory's results.csv, checked and typed; one-line UserError when unusable."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run directory not found: {path}")
    csv_path = path / "results.csv"
    if not csv_path.is_file():
        raise UserError(f"{path} holds no results.csv; pass a `d2m-nas rank` or `d2m-nas search` run directory")
    frame, kind = _read_results(csv_path, str(csv_path))
    return Run(label or path.name, path, frame, kind, _json_or_empty(path / "summary.json"),
               _json_or_empty(path / "versions.json"))


def load_study_run(url: str, study: str | None = None, table: GroundTruth | None = None) -> Run:
    """A shared study's rows read from its storage, as the results.csv of a run directory that had
    written every finished evaluation would hold them: the whole study from any machine, running
    or done. A rank study (`rank --storage`/`--workers`; its ensembles' rows once it is done), or
    `d2m-nas search` studies: `study`, with its repeats (STUDY-seedS), or every one the storage
    holds; their true accuracies come from `table`."""
    from d2m_nas.databases import hide_password
    from d2m_nas.rank_work import rank_study_names, study_rows
    from d2m_nas.ranking import RESULT_COLUMNS as RANK_COLUMNS
    from d2m_nas.search.results import RESULT_COLUMNS as SEARCH_COLUMNS
    from d2m_nas.search.storage import StorageError, check_exists, open_storage
    from d2m_nas.search.stored import search_study_names, stored_rows

    shown = hide_password(url)
    text = io.StringIO(newline="")
    try:
        check_exists(url)  # a report must not create an empty database
        storage = open_storage(url)
        label, names, kind = _chosen_studies(rank_study_names(storage), search_study_names(storage), study, shown)
        if kind == "rank":
            about, lines, hardware = study_rows(storage, label, shown)
            csv.writer(text).writerows([RANK_COLUMNS, *lines])
            versions = {"hardware": " | ".join(hardware)} if hardware else {}
        else:
            writer = csv.DictWriter(text, fieldnames=SEARCH_COLUMNS)
            writer.writeheader()
            writer.writerows(stored_rows(storage, names, lambda column: _table_column(table, column), shown))
            about, versions = {}, {}
    except StorageError as exc:
        raise UserError(str(exc)) from None
    text.seek(0)
    where = f"{shown} (study {', '.join(names)})"
    frame, kind = _read_results(text, where)
    return Run(label, where, frame, kind, about, versions)


def _chosen_studies(ranks: list[str], searches: list[str], study: str | None,
                    shown: str) -> tuple[str, list[str], str]:
    """(the report's label for what it reads, the studies to read, "rank" or "search"): one rank
    study, or search studies (`study` and its repeats STUDY-seedS, or all of them). StorageError,
    one line, when `study` is not there or the choice is not clear."""
    from d2m_nas.search.storage import StorageError

    if study is None:
        if ranks and searches:
            raise StorageError(f"{shown} holds rank studies ({', '.join(ranks)}) and search studies "
                               f"({', '.join(searches)}); name one with --study")
        if len(ranks) > 1:
            raise StorageError(f"{shown} holds {len(ranks)} rank studies; name one with --study ({', '.join(ranks)})")
        if ranks:
            return ranks[0], ranks, "rank"
        if searches:
            return (searches[0] if len(searches) == 1 else "searches"), searches, "search"
        raise StorageError(f"{shown} holds no study of d2m-nas rank or search")
    if study in ranks:
        return study, [study], "rank"
    chosen = [s for s in searches if s == study or re.fullmatch(re.escape(study) + r"-seed\d+", s)]
    if chosen:
        return study, chosen, "search"
    held = ranks + searches
    raise StorageError(f"{shown} holds no rank or search study {study!r}" + (f"; it holds {', '.join(held)}" if held
                                                                               else ""))


def _table_column(table: GroundTruth | None, column: str) -> pd.Series:
    """The true values of a search's ground-truth column, by architecture, from the report's table."""
    from d2m_nas.search.storage import StorageError

    if table is None or column not in table.frame.columns:
        where = "no NAS-Bench-201 table was found" if table is None else f"{table.source} lacks it"
        raise StorageError(f"the stored searches were scored against {column!r}, and {where}; pass "
                           "--ground-truth-file (or --data-root) with that column")
    return pd.to_numeric(table.frame[column], errors="coerce")


def _read_results(source, where: str) -> tuple[pd.DataFrame, str]:
    """(rows, "rank" or "search") of a results table (a path or a text buffer), checked and typed."""
    try:
        # rank writes a NaN score (e.g. jacob_cov of a cell whose output ignores its input) as nan
        frame = pd.read_csv(source, dtype={c: str for c in ("arch", "proxy", "truth_column", "study", "backend",
                                                            "strategy")}, keep_default_na=False, na_values=["", "nan"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{where} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{where} lacks the column(s) {', '.join(missing)}; it is not a d2m-nas results file")
    if frame.empty:
        raise UserError(f"{where} holds no evaluations yet")
    kind = "search" if all(c in frame.columns for c in SEARCH_COLUMNS) else "rank"
    numeric = ["score", "seconds", "truth", "seed"] + [c for c in OPTIONAL_NUMERIC if c in frame.columns]
    numeric += ["trial", "elapsed_s"] if kind == "search" else []
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            raise UserError(f"{where}: column {column!r} holds a non-number ({frame[column][bad].iloc[0]!r} "
                            f"in row {int(bad.idxmax()) + 2})")
        frame[column] = values
    frame["truth_column"] = frame["truth_column"].fillna("")
    if kind == "rank":  # every score rule of a training run as its own proxy, NAME@RULE
        frame = expand_score_rules(frame).reset_index(drop=True)
    if frame["truth"].isna().all():
        command = "search" if kind == "search" else "rank"
        raise UserError(f"{where} has no ground truth (the truth column is empty); rerun `d2m-nas {command}` "
                        "with --ground-truth KEY, e.g. cifar10:test:200")
    return frame, kind


def _json_or_empty(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def run_labels(paths: list[str | Path]) -> list[str]:
    """A label per input: its directory name, or the path as given when names repeat."""
    paths = [Path(p) for p in paths]
    names = [p.resolve().name for p in paths]
    labels = [name if names.count(name) == 1 else str(p) for name, p in zip(names, paths)]
    if len(set(labels)) != len(labels):
        raise UserError("a run directory is given twice")
    return labels


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Every input, labelled by `run_labels`."""
    return [load_run(p, label) for p, label in zip(paths, run_labels(paths))]


def load_table(path: str | Path | None, data_root: str | Path | None) -> tuple[GroundTruth | None, str]:
    """The NAS-Bench-201 table for the references: (table, note). A missing explicit file is an
    error; a missing default one only drops the references (the note says so)."""
    if path is None and data_root is None:
        return None, "no NAS-Bench-201 table given (--ground-truth-file or --data-root): no table references"
    target = Path(path) if path is not None else default_table_path(data_root)
    if path is None and not target.is_file():
        return None, f"NAS-Bench-201 table not found at {target}: no table references (pass --ground-truth-file)"
    try:
        table = GroundTruth.from_csv(target)
        record_read(target)
    except GroundTruthError as exc:
        raise UserError(str(exc)) from None
    if table.kind != "nasbench201-table":
        raise UserError(f"{target} is not a NAS-Bench-201 table (no 'arch_str' column); the references need one")
    return table, ""
