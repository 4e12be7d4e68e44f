"""Markdown of the summaries, and the files a report writes. `ranking_table` and `ranking_notes`
print a ranking summary for `d2m-nas rank` (summary.md) and `d2m-nas report` alike;
`search_tables` a search summary for `d2m-nas search` (stdout) and `d2m-nas report` alike."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from d2m_nas.formatting import finite_or_null, mean_pm, number, seconds, significant, with_ci
from d2m_nas.report.reading import Run
from d2m_nas.report.statistics import TABLE_COST
from distill.atomic import atomic_write_text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _code(text: str) -> str:
    """Code in a table cell: a NAS-Bench-201 cell's `|` would end the cell, even inside backticks."""
    return "`" + text.replace("|", "\\|") + "`"


def _keys(entries: list[dict], keys: tuple[str, ...]) -> list[str]:
    """The identifying columns the entries carry (`run` only in a report)."""
    return [k for k in keys if entries and k in entries[0]]


# ------------------------------------------------------------------ rankings

def ranking_table(entries: list[dict], references: list[dict] = ()) -> list[str]:
    """One row per ranking summary (keyed by run, where a report has several, and proxy), then one
    per 12-epoch reference. Optional columns appear when some entry has them."""
    keys = _keys(entries, ("run", "proxy"))
    first = (entries or references)[0]["correlation"]
    labels = list(first["top_k"])
    per_seed = any(len(e["seeds"]) > 1 for e in entries)
    device = any("device_seconds_per_arch" in e for e in entries)
    steps = any("steps_per_eval" in e for e in entries)
    header = (keys + ["n archs", "seeds", "Spearman ρ [95% CI]", "Kendall τ-b [95% CI]"]
              + (["per-seed ρ"] if per_seed else []) + [f"{label} overlap" for label in labels]
              + ["top pick true acc", "regret", "s/arch"] + (["device s/arch"] if device else [])
              + (["steps"] if steps else []))

    def statistics(c: dict) -> list[str]:
        return [with_ci(c["spearman"]), with_ci(c["kendall"])]

    def tail(c: dict) -> list[str]:
        return ([number(c["top_k"][label]["overlap"], 2, False) if label in c["top_k"] else "n/a" for label in labels]
                + [number(c["regret"]["truth_of_best_scored"], 2, False), number(c["regret"]["regret"], 2, False)])

    rows = []
    for e in entries:
        c, spread = e["correlation"], e["per_seed_spearman"]
        seed_cell = (f"{number(spread['mean'])} ± {number(spread['std'], sign=False)}" if len(e["seeds"]) > 1
                     else "—")
        rows.append([str(e[k]) for k in keys] + [str(e["n_archs"]), str(len(e["seeds"]))] + statistics(c)
                    + ([seed_cell] if per_seed else []) + tail(c) + [seconds(e["seconds_per_arch"])]
                    + ([seconds(e.get("device_seconds_per_arch", math.nan))] if device else [])
                    + ([number(e.get("steps_per_eval", math.nan), 0, False)] if steps else []))
    for ref in references:
        c = ref["correlation"]
        names = {"run": ", ".join(ref["runs"]), "proxy": f"12-epoch full data `{ref['reference_column']}` "
                                                          "(free reference)"}
        rows.append([names[k] for k in keys] + [str(c["n"]), "—"] + statistics(c) + (["—"] if per_seed else [])
                    + tail(c) + [TABLE_COST] + ["—"] * (device + steps))
    return _table(header, rows)


def ranking_notes(entries: list[dict]) -> list[str]:
    """What a reader of the ranking table should know: architectures dropped for a NaN, undefined
    correlations, unequal seed counts, and proxies that score nearly every candidate alike."""
    keys = _keys(entries, ("run", "proxy"))

    def name(e: dict) -> str:
        return "/".join(str(e[k]) for k in keys)

    notes = []
    dropped = [f"{name(e)}: {e['correlation']['n_dropped_nan']}" for e in entries if e["correlation"]["n_dropped_nan"]]
    if dropped:
        notes.append("architectures dropped for a missing score or truth — " + ", ".join(dropped))
    undefined = [f"{name(e)}: {e['correlation']['spearman']['undefined']}" for e in entries
                 if e["correlation"]["spearman"].get("undefined")]
    if undefined:
        notes.append("undefined correlations — " + ", ".join(undefined))
    uneven = [f"{name(e)}: {e['seeds_per_arch']['min']}–{e['seeds_per_arch']['max']}" for e in entries
              if e["seeds_per_arch"]["min"] != e["seeds_per_arch"]["max"]]
    if uneven:
        notes.append("architectures scored with unequal numbers of seeds — " + ", ".join(uneven))
    for e in entries:
        common, n = e.get("most_common_score"), e["n_archs"]
        if common and n >= 5 and common["count"] >= 0.9 * n:
            notes.append(f"{name(e)}: {common['count']} of {n} architectures score {common['value']:g} — the proxy "
                         "tells them apart no better than chance (did training diverge? try a lower --proxy-lr)")
    return notes


def _paired_table(section: dict) -> list[str]:
    labels = sorted({label for p in section["paired"] for label in p.get("top_k_overlap_diff", {})})
    header = (["run", "proxy", "baseline", "n archs", "ρ − ρ_baseline [95% CI]", "P(not better)"]
              + [f"{label} overlap diff [95% CI]" for label in labels])
    ordered = sorted(section["paired"],
                     key=lambda p: (p["baseline"], -_finite(p.get("spearman_diff", {}).get("value"))))
    rows = []
    for p in ordered:
        if "undefined" in p:
            continue
        d = p["spearman_diff"]
        rows.append([p["run"], p["proxy"], f"{p['baseline']} ({p['baseline_run']})", str(p["n"]), with_ci(d),
                     number(d["p_not_better"], 3, False)]
                    + [with_ci(p["top_k_overlap_diff"][label]) if label in p["top_k_overlap_diff"] else "n/a"
                       for label in labels])
    return _table(header, rows)


def _finite(value) -> float:
    return value if isinstance(value, float) and math.isfinite(value) else -math.inf


# ------------------------------------------------------------------ searches

def search_tables(entries: list[dict], references: dict | None) -> list[str]:
    """The search summary: one row per (run, backend, strategy, proxy) over its studies (seeds), one
    row per study with its pick, and the reference line."""
    keys = _keys(entries, ("run", "backend", "strategy", "proxy"))
    header = keys + ["studies (seeds)", "trials", "incumbent true acc", "regret vs optimum", "best true acc seen",
                     "proxy s", "search s"]
    rows = []
    for e in entries:
        trials = e["trials"]
        rows.append([str(e[k]) for k in keys]
                    + [f"{len(e['studies'])} ({', '.join(map(str, e['seeds']))})",
                       str(trials["min"]) if trials["min"] == trials["max"] else f"{trials['min']}–{trials['max']}",
                       mean_pm(e["best_truth"]), mean_pm(e["regret"]), mean_pm(e["best_truth_seen"]),
                       mean_pm(e["cost_s"], 1), mean_pm(e["search_s"], 1)])
    lines = _table(header, rows) + [""]
    study_keys = _keys(entries, ("run",))
    studies = [[str(e[k]) for k in study_keys]
               + [name, str(s["seed"]), str(s["trials"]), _code(s["best_arch"]), significant(s["best_score"])]
               + [number(s[key], 2, False) for key in ("best_truth", "regret", "best_truth_seen")]
               + [seconds(s["cost_s"]), seconds(s["search_s"])]
               for e in entries for name, s in e["studies"].items()]
    lines += _table(study_keys + ["study", "seed", "trials", "best arch (by proxy)", "score", "true acc", "regret",
                                  "best true acc seen", "proxy s", "search s"], studies)
    if references:
        lines += ["", references_line(references)]
    return lines


def references_line(refs: dict) -> str:
    text = (f"References: table optimum {number(refs['optimum'], 2, False)} of `{refs['truth_column']}` "
            f"(`{refs.get('optimum_arch', '?')}`)")
    if refs.get("twelve_epoch_pick_truth") is not None:
        text += (f"; the 12-epoch column's pick (`{refs.get('twelve_epoch_column', '12-epoch column')}` best, "
                 f"`{refs.get('twelve_epoch_pick_arch', '?')}`) scores "
                 f"{number(refs['twelve_epoch_pick_truth'], 2, False)}")
    return text + (f" (from {refs['source']})" if refs.get("source") else "") + "."


# ------------------------------------------------------------------ the report

SEARCH_LEGEND = ("Over the studies (seeds) of each search: the true accuracy (`{column}`) of the incumbent (the best "
                 "proxy score; what the search returns), its regret against the table optimum, and the best true "
                 "accuracy among the evaluated architectures (an oracle bound the search cannot see), as mean ± "
                 "sample std; then each study's pick. Proxy s: proxy seconds of distinct architectures; search s: the "
                 "search's own clock (elapsed_s; summed over sessions and workers).")


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
        lines += ranking_table(section["rankings"], section["references"])
        if section.get("paired"):
            lines += ["", (f"Paired comparisons against {', '.join(f'`{b}`' for b in settings['baselines'])}: on the "
                           "architectures both scored, the difference of Spearman ρ (and of the top-k overlap) with a "
                           "paired bootstrap 95% interval (the same resampled architectures for both); P(not better) "
                           "= the fraction of resamples with a difference ≤ 0. Every score is oriented higher = "
                           "better."), ""]
            lines += _paired_table(section)
    for section in report["searches"]:
        column = section["truth_column"]
        lines += ["", f"## Searches against `{column}`", "", SEARCH_LEGEND.format(column=column), ""]
        lines += search_tables(section["searches"], section["references"])
    notes = report["notes"] + [note for section in report["rankings"] for note in ranking_notes(section["rankings"])]
    if notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"


def combined_results(runs: list[Run]) -> pd.DataFrame:
    """All rows of all inputs, the `run` column first."""
    frames = [run.frame.drop(columns=["run"], errors="ignore").assign(run=run.label) for run in runs]
    frame = pd.concat(frames, ignore_index=True, sort=False)
    return frame[["run"] + [c for c in frame.columns if c != "run"]]


def write_report(runs: list[Run], out: Path, report: dict) -> list[Path]:
    """OUT/results.csv (every row, with its run), OUT/summary.json and OUT/report.md."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.csv", out / "summary.json", out / "report.md"]
    atomic_write_text(paths[0], combined_results(runs).to_csv(index=False))
    atomic_write_text(paths[1], json.dumps(finite_or_null(report), indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths[2], report_markdown(report))
    return paths
