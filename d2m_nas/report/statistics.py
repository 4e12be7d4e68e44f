"""The numbers of a report: the ranking summary (shared with `d2m-nas rank`), the search summary
(`search_summaries`, shared with `d2m-nas search`), paired comparisons against baseline proxies,
and the NAS-Bench-201 table's references (the 12-epoch column, the optimum)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from d2m_nas.correlation import correlation_summary, paired_difference
from d2m_nas.report.reading import Run
from d2m_nas.search.results import search_summaries, trajectory
from search_spaces.ground_truth import DATASETS, METRICS, GroundTruth, table_column

TABLE_COST = "table (not measured here)"
DEFAULT_BASELINES = ("synflow", "zc-vote")  # what every ranking is paired against, where present


def twelve_epoch_column(truth_column: str) -> str | None:
    """The 12-epoch column of the table matching a 200-epoch truth column (same dataset and
    split), e.g. cifar10_test_acc -> cifar10_test_acc_12ep; None for anything else."""
    for dataset in DATASETS:
        for metric in METRICS:
            if table_column(dataset, metric, 200) == truth_column:
                return table_column(dataset, metric, 12)
    return None


# ------------------------------------------------------------------ rankings

def per_arch_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture: the mean score over its seeds, its truth, its seed count."""
    rows = rows.drop_duplicates(["seed", "arch"], keep="last")
    # the truth is one table value per architecture: the mean of its rows is that value (NaN rows skipped)
    return rows.groupby("arch", sort=False).agg(score=("score", "mean"), truth=("truth", "mean"),
                                                seeds=("seed", "nunique"))


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


def ranking_summary(rows: pd.DataFrame, *, top_k, bootstrap: int, seed: int) -> dict:
    """The ranking summary of one proxy's rows (one truth column): `correlation_summary` of the
    per-architecture mean score over seeds, the per-seed Spearman, the most common score, cost."""
    rows = rows.drop_duplicates(["seed", "arch"], keep="last")
    archs = per_arch_scores(rows)
    stats = correlation_summary(archs["score"].to_numpy(dtype=float), archs["truth"].to_numpy(dtype=float),
                                top_k=top_k, bootstrap=bootstrap, seed=seed)
    per_seed = {str(int(s)): correlation_summary(g["score"].to_numpy(dtype=float), g["truth"].to_numpy(dtype=float),
                                                 top_k=(), bootstrap=0)["spearman"]["value"]
                for s, g in rows.groupby("seed")}
    values = np.array(list(per_seed.values()), dtype=float)
    finite = values[np.isfinite(values)]
    n_archs = len(archs)
    out = {"n_archs": n_archs, "seeds": sorted(int(s) for s in rows["seed"].unique()), "evaluations": len(rows),
           "seeds_per_arch": {"min": int(archs["seeds"].min()), "max": int(archs["seeds"].max())},
           "correlation": stats,
           "per_seed_spearman": {"values": per_seed,
                                 "mean": float(finite.mean()) if len(finite) else math.nan,
                                 "std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan}}
    counts = archs["score"].round(9).value_counts()
    if len(counts):  # a proxy whose candidates all score alike (training that diverged) ranks nothing
        out["most_common_score"] = {"value": float(counts.index[0]), "count": int(counts.iloc[0])}
    out |= {"seconds_total": float(rows["seconds"].sum()), "seconds_per_arch": float(rows["seconds"].sum()) / n_archs,
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
                           | ranking_summary(rows, top_k=top_k, bootstrap=bootstrap, seed=seed))
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

def _study_truth_columns(frame: pd.DataFrame) -> pd.Series:
    """The truth column of each study (its first non-empty one)."""
    return frame[frame["truth_column"] != ""].groupby("study")["truth_column"].first()


def search_trajectories(run: Run) -> pd.DataFrame:
    """`trajectory()` of a search run plus the run, proxy and truth column of each study."""
    frame = run.frame.sort_values(["study", "trial"])
    paths = trajectory(frame)  # the same (study, trial) order, row for row
    paths["proxy"] = frame["proxy"].to_numpy()
    paths["truth_column"] = paths["study"].map(_study_truth_columns(frame)).fillna("").to_numpy()
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


def _search_section(runs: list[Run], truth_column: str, table) -> dict:
    refs = search_references(truth_column, table, runs)
    optimum = refs["optimum"] if refs else None
    entries = []
    for run in runs:
        studies = _study_truth_columns(run.frame)
        rows = run.frame[run.frame["study"].map(studies) == truth_column]
        entries += [{"run": run.label} | entry for entry in search_summaries(rows, optimum)]
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
