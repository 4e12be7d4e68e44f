"""Reports over run directories: every proxy ranking and every search side by side.

Reads the results.csv of `d2m-nas rank` and `d2m-nas search` runs (one row per evaluation;
columns arch, proxy, score, seconds, seed, truth, truth_column, plus study, trial, backend,
strategy, elapsed_s for searches; further numeric columns such as steps or device_seconds are
optional) and writes

    results.csv   every row of every input, with a `run` column naming its directory
    summary.json  the numbers below, for machines
    report.md     the same as tables, for people

Rankings: per (run, proxy), the per-architecture mean score over seeds against the truth
(`correlation_summary`: Spearman, Kendall with bootstrap CIs, top-k overlap, regret within the
sample), the per-seed Spearman mean ± std, and cost; next to them the 12-epoch full-data column
of the NAS-Bench-201 table for the same architectures against the same truth (free: it is read
from the table, not measured). Searches: per (run, backend, strategy, proxy), over studies
(seeds), the true accuracy of the incumbent (best proxy score) and the best truth seen, with the
table optimum and the 12-epoch column's pick as references. Rows of different ground-truth
columns are never compared with each other: each truth column gets its own tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from d2m_nas.correlation import correlation_summary, paired_difference
from d2m_nas.errors import UserError
from d2m_nas.formatting import number, with_ci
from d2m_nas.provenance import record_read
from d2m_nas.ranking import expand_score_rules, finite_or_null
from d2m_nas.search.results import trajectory
from distill.atomic import atomic_write_text
from search_spaces.ground_truth import (DATASETS, METRICS, GroundTruth, GroundTruthError, default_table_path,
                                        table_column)

REQUIRED_COLUMNS = ("arch", "proxy", "score", "seconds", "seed", "truth", "truth_column")
SEARCH_COLUMNS = ("study", "trial", "backend", "strategy", "elapsed_s")
OPTIONAL_NUMERIC = ("steps", "train_images", "device_seconds", "peak_memory_mb")
TABLE_COST = "table (not measured here)"
DEFAULT_BASELINES = ("synflow", "zc-vote")  # what every ranking is paired against, where present


@dataclass
class Run:
    """One input directory's results."""

    label: str  # the `run` column and the tables' first cell
    path: Path
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


# ------------------------------------------------------------------ reading

def load_run(path: str | Path, label: str | None = None) -> Run:
    """A run directory's results.csv, checked and typed; one-line UserError when unusable."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run directory not found: {path}")
    csv_path = path / "results.csv"
    if not csv_path.is_file():
        raise UserError(f"{path} holds no results.csv; pass a `d2m-nas rank` or `d2m-nas search` run directory")
    try:
        # rank writes a NaN score (e.g. jacob_cov of a cell whose output ignores its input) as nan
        frame = pd.read_csv(csv_path, dtype={c: str for c in ("arch", "proxy", "truth_column", "study", "backend",
                                                              "strategy")}, keep_default_na=False, na_values=["", "nan"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{csv_path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{csv_path} lacks the column(s) {', '.join(missing)}; it is not a d2m-nas results file")
    if frame.empty:
        raise UserError(f"{csv_path} holds no evaluations yet")
    kind = "search" if all(c in frame.columns for c in SEARCH_COLUMNS) else "rank"
    numeric = ["score", "seconds", "truth", "seed"] + [c for c in OPTIONAL_NUMERIC if c in frame.columns]
    numeric += ["trial", "elapsed_s"] if kind == "search" else []
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            raise UserError(f"{csv_path}: column {column!r} holds a non-number ({frame[column][bad].iloc[0]!r} "
                            f"in row {int(bad.idxmax()) + 2})")
        frame[column] = values
    frame["truth_column"] = frame["truth_column"].fillna("")
    if kind == "rank":  # every score rule of a training run as its own proxy, NAME@RULE
        frame = expand_score_rules(frame).reset_index(drop=True)
    if frame["truth"].isna().all():
        command = "search" if kind == "search" else "rank"
        raise UserError(f"{csv_path} has no ground truth (the truth column is empty); rerun `d2m-nas {command}` "
                        "with --ground-truth KEY, e.g. cifar10:test:200")
    return Run(label or path.name, path, frame, kind, _json_or_empty(path / "summary.json"),
               _json_or_empty(path / "versions.json"))


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


def twelve_epoch_column(truth_column: str) -> str | None:
    """The 12-epoch column of the table matching a 200-epoch truth column (same dataset and
    split), e.g. cifar10_test_acc -> cifar10_test_acc_12ep; None for anything else."""
    for dataset in DATASETS:
        for metric in METRICS:
            if table_column(dataset, metric, 200) == truth_column:
                return table_column(dataset, metric, 12)
    return None


# ------------------------------------------------------------------ rankings

def _optional_costs(rows: pd.DataFrame, n_archs: int) -> dict:
    out = {}
    if "device_seconds" in rows and rows["device_seconds"].notna().any():
        out["device_seconds_per_arch"] = float(rows["device_seconds"].sum()) / n_archs
    if "steps" in rows and rows["steps"].notna().any():
        out["steps_per_eval"] = float(rows["steps"].mean())
    if "train_images" in rows and rows["train_images"].notna().any():
        out["train_images"] = float(rows["train_images"].mean())
    if "peak_memory_mb" in rows and rows["peak_memory_mb"].notna().any():
        out["peak_memory_mb"] = float(rows["peak_memory_mb"].max())
        if "peak_memory_kind" in rows:  # what it measures (a run's peak, or the process's lifetime one)
            out["peak_memory_kind"] = ",".join(sorted(set(rows["peak_memory_kind"].dropna().astype(str)))) or None
    return out


def per_arch_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture: the mean score over its seeds, its truth, its seed count."""
    rows = rows.drop_duplicates(["seed", "arch"], keep="last")
    return rows.groupby("arch", sort=False).agg(score=("score", "mean"), truth=("truth", "mean"),
                                                seeds=("seed", "nunique"))


def summarise_ranking(rows: pd.DataFrame, *, top_k, bootstrap: int, seed: int) -> dict:
    """One (run, proxy, truth column): correlation of the per-arch mean score, per-seed Spearman, cost."""
    rows = rows.drop_duplicates(["seed", "arch"], keep="last")
    archs = per_arch_scores(rows)
    stats = correlation_summary(archs["score"].to_numpy(), archs["truth"].to_numpy(), top_k=top_k,
                                bootstrap=bootstrap, seed=seed)
    seeds = sorted(int(s) for s in rows["seed"].unique())
    per_seed = {s: correlation_summary(g["score"].to_numpy(), g["truth"].to_numpy(), top_k=(), bootstrap=0)
                ["spearman"]["value"] for s, g in rows.groupby("seed")}
    values = np.array(list(per_seed.values()), dtype=float)
    finite = values[np.isfinite(values)]
    n_archs = len(archs)
    out = {"n_archs": n_archs, "seeds": seeds, "evaluations": len(rows),
           "seeds_per_arch": {"min": int(archs["seeds"].min()), "max": int(archs["seeds"].max())},
           "correlation": stats,
           "per_seed_spearman": {"values": {str(int(s)): v for s, v in per_seed.items()},
                                 "mean": float(finite.mean()) if len(finite) else math.nan,
                                 "std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan},
           "seconds_total": float(rows["seconds"].sum()),
           "seconds_per_arch": float(rows["seconds"].sum()) / n_archs,
           "seconds_per_eval": float(rows["seconds"].mean())}
    return out | _optional_costs(rows, n_archs)


def twelve_epoch_reference(archs: pd.DataFrame, truth_column: str, table: GroundTruth, *, top_k, bootstrap: int,
                           seed: int) -> dict | None:
    """The 12-epoch full-data column for these architectures against the same truth, or None
    when the truth is not a 200-epoch table column."""
    column = twelve_epoch_column(truth_column)
    if column is None or column not in table.frame.columns:
        return None
    twelve = pd.to_numeric(table.frame[column], errors="coerce").reindex(archs.index)
    stats = correlation_summary(twelve.to_numpy(), archs["truth"].to_numpy(), top_k=top_k, bootstrap=bootstrap,
                                seed=seed)
    out = {"reference_column": column, "n_archs": len(archs), "correlation": stats, "cost": TABLE_COST,
           "missing_in_table": int(twelve.isna().sum())}
    if truth_column in table.frame.columns:  # the results' truth should be the table's own numbers
        own = pd.to_numeric(table.frame[truth_column], errors="coerce").reindex(archs.index)
        out["truth_differs_from_table"] = int((~np.isclose(own, archs["truth"], rtol=1e-5, atol=1e-4)).sum())
    return out


def paired_comparisons(runs: list[Run], truth_column: str, baselines: tuple[str, ...], *, top_k, bootstrap: int,
                       seed: int) -> list[dict]:
    """Every ranking entry against each baseline proxy (by name, from any run) on the
    architectures both scored: `paired_difference` of the per-architecture mean scores."""
    scored = {}
    for run in runs:
        frame = run.frame[run.frame["truth_column"] == truth_column]
        for proxy, rows in frame.groupby("proxy", sort=False):
            scored[(run.label, proxy)] = per_arch_scores(rows)
    out = []
    for (base_run, base), reference in scored.items():
        if base not in baselines:
            continue
        for (run, proxy), archs in scored.items():
            if (run, proxy) == (base_run, base):
                continue
            common = archs.index.intersection(reference.index)
            diff = paired_difference(archs.loc[common, "score"], reference.loc[common, "score"],
                                     archs.loc[common, "truth"], top_k=top_k, bootstrap=bootstrap, seed=seed)
            out.append({"run": run, "proxy": proxy, "baseline_run": base_run, "baseline": base} | diff)
    return out


def _ranking_section(runs: list[Run], truth_column: str, table, top_k, bootstrap, seed,
                     baselines: tuple[str, ...] = ()) -> dict:
    entries, references, seen = [], [], {}
    for run in runs:
        frame = run.frame[run.frame["truth_column"] == truth_column]
        for proxy, rows in frame.groupby("proxy", sort=False):
            entries.append({"run": run.label, "proxy": proxy}
                           | summarise_ranking(rows, top_k=top_k, bootstrap=bootstrap, seed=seed))
        if table is None or frame.empty:
            continue
        archs = frame.groupby("arch", sort=False)["truth"].mean().to_frame()  # this run's sample, all proxies
        key = tuple(sorted(archs.index))
        if key in seen:  # the same sample as another run: one reference serves both
            seen[key]["runs"].append(run.label)
            continue
        reference = twelve_epoch_reference(archs, truth_column, table, top_k=top_k, bootstrap=bootstrap, seed=seed)
        if reference is not None:
            seen[key] = {"runs": [run.label]} | reference
            references.append(seen[key])
    paired = paired_comparisons(runs, truth_column, baselines, top_k=top_k, bootstrap=bootstrap, seed=seed)
    return {"truth_column": truth_column, "rankings": entries, "references": references, "paired": paired}


# ------------------------------------------------------------------ searches

def search_seconds(frame: pd.DataFrame) -> pd.Series:
    """Seconds the search has run after each row (index aligned with `frame`), from elapsed_s.

    elapsed_s is each worker process's clock since its session started; a resumed study is a new
    worker (host:pid), and a clock going backwards within one worker is taken as a new session.
    The workers' times are summed: with one worker and one session this is elapsed_s itself;
    otherwise it is worker-seconds."""
    out = pd.Series(np.nan, index=frame.index)
    for _, rows in frame.sort_values(["study", "trial"]).groupby("study", sort=False):
        last: dict = {}
        total = 0.0
        workers = rows["worker"].fillna("") if "worker" in rows else pd.Series("", index=rows.index)
        for index, elapsed, worker in zip(rows.index, rows["elapsed_s"].astype(float), workers):
            previous = last.get(worker, 0.0)
            total += elapsed - previous if elapsed >= previous else elapsed  # a smaller clock: a new session
            last[worker] = elapsed
            out[index] = total
    return out


def search_trajectories(run: Run) -> pd.DataFrame:
    """`trajectory()` of a search run (incumbent truth, best truth seen per evaluation) plus
    search_s (see `search_seconds`) and the run, proxy and truth column of each study."""
    frame = run.frame.sort_values(["study", "trial"])
    paths = trajectory(frame)  # the same (study, trial) order, row for row
    paths["search_s"] = search_seconds(frame).to_numpy()
    paths["proxy"] = frame["proxy"].to_numpy()
    named = frame[frame["truth_column"] != ""].groupby("study")["truth_column"].first()
    paths["truth_column"] = paths["study"].map(named).fillna("").to_numpy()
    paths.insert(0, "run", run.label)
    return paths


def table_references(table: GroundTruth, truth_column: str) -> dict:
    """A NAS-Bench-201 table's optimum for `truth_column` and the truth of its 12-epoch column's
    pick: the reference lines of a search trajectory."""
    truths = pd.to_numeric(table.frame[truth_column], errors="coerce").dropna()
    refs = {"truth_column": truth_column, "optimum": float(truths.max()), "optimum_arch": str(truths.idxmax())}
    column = twelve_epoch_column(truth_column)
    if column is not None and column in table.frame.columns:
        pick = str(pd.to_numeric(table.frame[column], errors="coerce").idxmax())
        refs |= {"twelve_epoch_column": column, "twelve_epoch_pick_arch": pick,
                 "twelve_epoch_pick_truth": float(truths.get(pick, math.nan))}
    return refs


def search_references(truth_column: str, table: GroundTruth | None, runs: list[Run]) -> dict | None:
    """The truth column's table optimum and the truth of the 12-epoch column's pick: from the
    table when it has the column, else from a search run's own summary.json."""
    if table is not None and truth_column in table.frame.columns:
        truths = pd.to_numeric(table.frame[truth_column], errors="coerce").dropna()
        return table_references(table, truth_column) | {"n_archs": len(truths), "source": table.source}
    for run in runs:
        refs = run.summary.get("references") or {}
        if refs.get("truth_column") == truth_column and refs.get("optimum") is not None:
            return dict(refs) | {"source": str(run.path / "summary.json")}
    return None


def _mean_std(values) -> dict:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    return {"mean": float(values.mean()) if len(values) else math.nan,
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan, "n": len(values)}


def summarise_search_group(paths: pd.DataFrame, optimum: float | None) -> dict:
    """Over the studies (seeds) of one (run, backend, strategy, proxy): the final state of each."""
    finals = paths.groupby("study", sort=True).tail(1).set_index("study")
    studies = {study: {"seed": int(row["seed"]), "evaluations": int(row["evaluations"]),
                       "incumbent_truth": float(row["incumbent_truth"]),
                       "best_truth_seen": float(row["best_truth_seen"]),
                       "search_s": float(row["search_s"]), "proxy_s": float(row["cost_s"])}
               for study, row in finals.iterrows()}
    incumbent = finals["incumbent_truth"].to_numpy(dtype=float)
    out = {"studies": studies, "seeds": sorted(int(s) for s in finals["seed"]),
           "incumbent_truth": _mean_std(incumbent), "best_truth_seen": _mean_std(finals["best_truth_seen"]),
           "evaluations": {"min": int(finals["evaluations"].min()), "max": int(finals["evaluations"].max()),
                           "mean": float(finals["evaluations"].mean())},
           "search_s": _mean_std(finals["search_s"]), "proxy_s": _mean_std(finals["cost_s"])}
    if optimum is not None:
        out["regret"] = _mean_std(optimum - incumbent)
    return out


def _search_section(runs: list[Run], truth_column: str, table) -> dict:
    refs = search_references(truth_column, table, runs)
    optimum = refs["optimum"] if refs else None
    entries = []
    for run in runs:
        paths = search_trajectories(run)
        paths = paths[paths["truth_column"] == truth_column]
        for (backend, strategy, proxy), group in paths.groupby(["backend", "strategy", "proxy"], sort=True):
            entries.append({"run": run.label, "backend": backend, "strategy": strategy, "proxy": proxy}
                           | summarise_search_group(group, optimum))
    return {"truth_column": truth_column, "searches": entries, "references": refs}


# ------------------------------------------------------------------ the report

def build_report(runs: list[Run], table: GroundTruth | None = None, table_note: str = "", *,
                 top_k=(0.1, 10), bootstrap: int = 1000, seed: int = 0,
                 baselines: tuple[str, ...] = DEFAULT_BASELINES) -> dict:
    """Everything report.md shows, as plain data (NaN where a statistic is undefined)."""
    report: dict = {"inputs": [{"run": r.label, "path": str(r.path), "kind": r.kind, "rows": len(r.frame),
                                "truth_columns": r.truth_columns, "hardware": r.hardware} for r in runs],
                    "settings": {"bootstrap": bootstrap, "confidence": 0.95, "top_k": list(top_k), "seed": seed,
                                 "baselines": list(baselines)},
                    "rankings": [], "searches": [], "notes": [table_note] if table_note else []}
    for kind, key, build in (("rank", "rankings", lambda rs, c: _ranking_section(rs, c, table, top_k, bootstrap,
                                                                                  seed, baselines)),
                             ("search", "searches", lambda rs, c: _search_section(rs, c, table))):
        chosen = [r for r in runs if r.kind == kind]
        for column in sorted({c for r in chosen for c in r.truth_columns}):
            report[key].append(build([r for r in chosen if column in r.truth_columns], column))
    for section in report["rankings"]:
        for ref in section["references"]:
            if ref.get("truth_differs_from_table"):
                report["notes"].append(f"{ref['truth_differs_from_table']} architecture(s) of {', '.join(ref['runs'])} "
                                       f"have a truth that differs from the table's `{section['truth_column']}`")
        if table is not None and not section["references"]:
            report["notes"].append(f"no 12-epoch reference for `{section['truth_column']}`: it is not a 200-epoch "
                                   "column of the NAS-Bench-201 table")
    for section in report["searches"]:
        if section["references"] is None:
            report["notes"].append(f"no reference lines for `{section['truth_column']}`: neither the table nor a "
                                   "search's summary.json gives them")
    if len({c for r in runs for c in r.truth_columns}) > 1:
        report["notes"].append("the inputs use several ground-truth columns; each has its own tables and they are "
                               "not compared with each other")
    return report


def combined_results(runs: list[Run]) -> pd.DataFrame:
    """All rows of all inputs, the `run` column first."""
    frames = [run.frame.drop(columns=["run"], errors="ignore").assign(run=run.label) for run in runs]
    frame = pd.concat(frames, ignore_index=True, sort=False)
    return frame[["run"] + [c for c in frame.columns if c != "run"]]


def write_report(runs: list[Run], out: Path, report: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.csv", out / "summary.json", out / "report.md"]
    atomic_write_text(paths[0], combined_results(runs).to_csv(index=False))
    atomic_write_text(paths[1], json.dumps(finite_or_null(report), indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths[2], report_markdown(report))
    return paths


# ------------------------------------------------------------------ Markdown

def _mean_pm(stat: dict, digits: int = 2, sign: bool = False) -> str:
    if stat["n"] == 0:
        return "n/a"
    text = number(stat["mean"], digits, sign)
    return text + (f" ± {number(stat['std'], digits, False)}" if stat["n"] > 1 else "")


def _seconds(value) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def _ranking_table(section: dict) -> list[str]:
    rankings, references = section["rankings"], section["references"]
    first = (rankings or references)[0]["correlation"]
    labels = list(first["top_k"])
    device = any("device_seconds_per_arch" in r for r in rankings)
    steps = any("steps_per_eval" in r for r in rankings)
    header = (["run", "proxy", "n archs", "seeds", "Spearman ρ [95% CI]", "Kendall τ-b [95% CI]", "per-seed ρ"]
              + [f"{label} overlap" for label in labels] + ["top pick true acc", "regret", "s/arch"]
              + (["device s/arch"] if device else []) + (["steps"] if steps else []))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rankings:
        c = r["correlation"]
        per_seed = r["per_seed_spearman"]
        seed_cell = (f"{number(per_seed['mean'])} ± {number(per_seed['std'], sign=False)}" if len(r["seeds"]) > 1
                     else "—")
        cells = [r["run"], r["proxy"], str(r["n_archs"]), str(len(r["seeds"])), with_ci(c["spearman"]),
                 with_ci(c["kendall"]), seed_cell]
        cells += [number(c["top_k"][label]["overlap"], 2, False) for label in labels]
        cells += [number(c["regret"]["truth_of_best_scored"], 2, False), number(c["regret"]["regret"], 2, False),
                  _seconds(r["seconds_per_arch"])]
        cells += [_seconds(r.get("device_seconds_per_arch", math.nan))] if device else []
        cells += [number(r.get("steps_per_eval", math.nan), 0, False)] if steps else []
        lines.append("| " + " | ".join(cells) + " |")
    for ref in references:
        c = ref["correlation"]
        cells = [", ".join(ref["runs"]), f"12-epoch full data `{ref['reference_column']}` (free reference)",
                 str(c["n"]), "—", with_ci(c["spearman"]), with_ci(c["kendall"]), "—"]
        cells += [number(c["top_k"][label]["overlap"], 2, False) if label in c["top_k"] else "n/a" for label in labels]
        cells += [number(c["regret"]["truth_of_best_scored"], 2, False), number(c["regret"]["regret"], 2, False),
                  TABLE_COST]
        cells += ["—"] * (device + steps)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_table(section: dict) -> list[str]:
    labels = sorted({label for p in section["paired"] for label in p.get("top_k_overlap_diff", {})})
    header = (["run", "proxy", "baseline", "n archs", "ρ − ρ_baseline [95% CI]", "P(not better)"]
              + [f"{label} overlap diff [95% CI]" for label in labels])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ordered = sorted(section["paired"],
                     key=lambda p: (p["baseline"], -_finite(p.get("spearman_diff", {}).get("value"))))
    for p in ordered:
        if "undefined" in p:
            continue
        d = p["spearman_diff"]
        cells = [p["run"], p["proxy"], f"{p['baseline']} ({p['baseline_run']})", str(p["n"]), with_ci(d),
                 number(d["p_not_better"], 3, False)]
        cells += [with_ci(p["top_k_overlap_diff"][label]) if label in p["top_k_overlap_diff"] else "n/a"
                  for label in labels]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _finite(value) -> float:
    return value if isinstance(value, float) and math.isfinite(value) else -math.inf


def _search_table(section: dict) -> list[str]:
    header = ["run", "backend", "strategy", "proxy", "studies (seeds)", "evaluations", "incumbent true acc",
              "regret vs optimum", "best true acc seen", "search s", "proxy s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in section["searches"]:
        ev = s["evaluations"]
        evaluations = str(ev["min"]) if ev["min"] == ev["max"] else f"{ev['min']}–{ev['max']}"
        cells = [s["run"], s["backend"], s["strategy"], s["proxy"],
                 f"{len(s['studies'])} ({', '.join(map(str, s['seeds']))})", evaluations,
                 _mean_pm(s["incumbent_truth"]), _mean_pm(s["regret"]) if "regret" in s else "n/a",
                 _mean_pm(s["best_truth_seen"]), _mean_pm(s["search_s"], 1), _mean_pm(s["proxy_s"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_markdown(report: dict) -> str:
    settings = report["settings"]
    lines = ["# d2m-nas report", "", "Inputs:"]
    lines += [f"- `{i['run']}`: {i['kind']}, {i['rows']} evaluations, ground truth "
              f"{', '.join(f'`{c}`' for c in i['truth_columns'])}; seconds measured on: {i['hardware']} "
              f"({i['path']})" for i in report["inputs"]]
    for section in report["rankings"]:
        column = section["truth_column"]
        lines += ["", f"## Rankings against `{column}`", "",
                  (f"Ground truth: `{column}`. Scores are averaged over an architecture's seeds before correlating; "
                   "per-seed ρ is the mean ± sample std of the Spearman of each seed on its own. Confidence "
                   f"intervals: {settings['bootstrap']} bootstrap resamples, 95% percentile. Regret = best true "
                   "accuracy *within the sampled architectures* − true accuracy of the proxy's top pick (not the "
                   "space's optimum). s/arch = proxy seconds summed over seeds per architecture."), ""]
        lines += _ranking_table(section)
        if section.get("paired"):
            lines += ["", (f"Paired comparisons against {', '.join(f'`{b}`' for b in settings['baselines'])}: on the "
                           "architectures both scored, the difference of Spearman ρ (and of the top-k overlap) with a "
                           "paired bootstrap 95% interval (the same resampled architectures for both); P(not better) "
                           "= the fraction of resamples with a difference ≤ 0. Every score is oriented higher = "
                           "better."), ""]
            lines += _paired_table(section)
    for section in report["searches"]:
        column, refs = section["truth_column"], section["references"]
        lines += ["", f"## Searches against `{column}`", "",
                  (f"Over the studies (seeds) of each row: the true accuracy (`{column}`) of the incumbent (the best "
                   "proxy score; what the search returns), its regret against the table optimum, and the best true "
                   "accuracy among the evaluated architectures (an oracle bound the search cannot see), as mean ± "
                   "sample std. Search s: the search's own clock (elapsed_s; summed over sessions and workers); "
                   "proxy s: proxy seconds of distinct architectures."), ""]
        lines += _search_table(section)
        if refs:
            text = f"References: table optimum of `{column}` {refs['optimum']:.2f} (`{refs.get('optimum_arch', '?')}`)"
            if refs.get("twelve_epoch_pick_truth") is not None:
                text += (f"; the 12-epoch column's pick (`{refs.get('twelve_epoch_column', '12-epoch column')}` best, "
                         f"`{refs.get('twelve_epoch_pick_arch', '?')}`) scores {refs['twelve_epoch_pick_truth']:.2f}")
            lines += ["", text + f" (from {refs['source']})."]
    if report["notes"]:
        lines += ["", "Notes:"] + [f"- {note}" for note in report["notes"]]
    for section in report["rankings"]:
        dropped = [f"{r['run']}/{r['proxy']}: {r['correlation']['n_dropped_nan']}" for r in section["rankings"]
                   if r["correlation"]["n_dropped_nan"]]
        undefined = [f"{r['run']}/{r['proxy']}: {r['correlation']['spearman']['undefined']}"
                     for r in section["rankings"] if r["correlation"]["spearman"].get("undefined")]
        if dropped:
            lines.append("- architectures dropped for a missing score or truth — " + ", ".join(dropped))
        if undefined:
            lines.append("- undefined correlations — " + ", ".join(undefined))
        uneven = [f"{r['run']}/{r['proxy']}: {r['seeds_per_arch']['min']}–{r['seeds_per_arch']['max']}"
                  for r in section["rankings"] if r["seeds_per_arch"]["min"] != r["seeds_per_arch"]["max"]]
        if uneven:
            lines.append("- architectures scored with unequal numbers of seeds — " + ", ".join(uneven))
    return "\n".join(lines).rstrip() + "\n"
