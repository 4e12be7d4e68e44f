"""Where does a funnel search lose the best architecture: in a screen, or in the final ranking?

For each study of `search --backend funnel` runs (their RUN_DIR/funnel.json lists the architectures
entering each stage), prints the best true accuracy among the architectures entering every stage,
among the trained finalists, and of the pick (the best score in results.csv): a stage whose
best falls below the target loses it there; a pick below its finalists' best loses it in the final
rank average. Post hoc, what each single component would have picked among the same finalists,
and which top K the last screen's cut would have kept under other rules (each component alone, the
last screen alone, every screen together: the funnel's rule). With --reference, also what another
benchmark column would have picked among the finalists (e.g. cifar10:valid:200, an independent
200-epoch training on another split): a ceiling on what any cheaper final rule can be expected to find.
--finalists-out writes every study's finalists to a file for `d2m-nas rank --archs`, and --final-scores
reads such rank runs back: each of their proxies and score rules becomes a final rule (another
fidelity, more proxy seeds) judged on the same finalists without running the searches again.
One JSON line per study, then the mean over studies.

    python benchmarks/funnel_stages.py RUN_DIR [RUN_DIR ...] --ground-truth cifar10:test:200 --data-root DATA_ROOT \
        --reference cifar10:valid:200 cifar10:test:12 --finalists-out finalists.txt
    d2m-nas rank --archs finalists.txt --proxy 'random-subset[channels=16,cells=5]' --proxy-seeds 3 ... --out RANK_RUN
    python benchmarks/funnel_stages.py RUN_DIR [RUN_DIR ...] --data-root DATA_ROOT --final-scores RANK_RUN
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from d2m_nas.proxies.ensemble import rank_average
from d2m_nas.report import expand_score_rules
from d2m_nas.search import read_results
from d2m_nas.search.funnel_backend import STAGES_FILE
from search_spaces.ground_truth import GroundTruth, default_table_path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="funnel search run directories")
    p.add_argument("--ground-truth", default="cifar10:test:200")
    p.add_argument("--ground-truth-file", type=Path, help="default: DATA_ROOT/nb201/nb201_ground_truth.csv")
    p.add_argument("--data-root", type=Path)
    p.add_argument("--reference", nargs="*", default=[], metavar="KEY",
                   help="ground-truth columns whose pick among the finalists is printed beside the rules'")
    p.add_argument("--final-scores", nargs="*", default=[], type=Path, metavar="RANK_RUN",
                   help="rank run directories whose scores (mean over proxy seeds) are final rules too")
    p.add_argument("--finalists-out", type=Path, metavar="FILE",
                   help="write the finalists of every study here, one per line, for rank --archs")
    return p.parse_args(argv)


def stage_ceilings(stages: list[dict], truths) -> list[dict]:
    """Per stage: its name, how many entered and the best true accuracy among them."""
    rows = []
    for stage in stages:
        archs = stage.get("entered", stage.get("trained"))
        name = "+".join(stage["proxies"]) if "proxies" in stage else "trained"
        rows.append({"stage": name, "archs": len(archs), "best_truth": float(truths.reindex(archs).max())})
    return rows


def final_rule_scores(trained: dict, columns: dict[str, pd.Series] | None = None) -> dict[str, np.ndarray]:
    """Each final rule's scores over the finalists, in their order: every component, their rank
    average (the funnel's rule), and each of `columns` (label -> score by architecture: a benchmark
    column, another run's scores) that scores every finalist."""
    archs, components = trained["trained"], trained.get("components", {})
    if not components:
        return {}
    table = np.array([components[label] for label in components], dtype=float).T  # archs x components
    rules = {label: table[:, i] for i, label in enumerate(components)}
    rules["rank average"] = rank_average(table)
    for label, column in (columns or {}).items():
        values = column.reindex(archs).to_numpy(dtype=float)
        if not np.isnan(values).any():
            rules[label] = values
    return rules


def final_rules(trained: dict, truths, columns: dict[str, pd.Series] | None = None) -> dict[str, float]:
    """Post hoc, on the same finalists: the true accuracy each final rule would have picked. What to
    try next, not a result: the rules are compared on the data that suggested them."""
    archs = trained["trained"]
    return {rule: float(truths.get(archs[int(np.nanargmax(values))], np.nan))
            for rule, values in final_rule_scores(trained, columns).items()}


def final_rule_spearman(trained: dict, truths, columns: dict[str, pd.Series] | None = None) -> dict[str, float]:
    """Each final rule's Spearman ρ with the truth over this study's finalists: does it rank them at all."""
    truth = truths.reindex(trained["trained"]).to_numpy(dtype=float)

    def rho(values: np.ndarray) -> float:  # NaN where either side is all ties: no order to agree with
        tied = np.nanmin(values) == np.nanmax(values) or np.nanmin(truth) == np.nanmax(truth)
        return math.nan if tied else float(spearmanr(values, truth, nan_policy="omit").statistic)

    return {rule: rho(values) for rule, values in final_rule_scores(trained, columns).items()}


def rank_run_scores(run: Path) -> dict[str, pd.Series]:
    """'RUN: PROXY' -> mean score over proxy seeds by architecture, for every proxy and score rule."""
    frame = expand_score_rules(pd.read_csv(run / "results.csv"))
    return {f"{run.name}: {label}": rows.groupby("arch")["score"].mean() for label, rows in frame.groupby("proxy")}


def last_cut_rules(stages: list[dict], truths) -> dict[str, float]:
    """Post hoc, on the architectures entering the last screen: the best true accuracy among the
    top K (K = the number trained) by each screen component alone, by the last screen's own rank
    average, and by the rank average of every screen so far (the funnel's rule). Where the cut to
    the trained set loses the best cell, which rule would have kept it. Needs the stages' scores
    (funnel.json from this version on); {} for an older file."""
    screens, trained = [s for s in stages if "proxies" in s], stages[-1].get("trained", [])
    if not screens or not trained or any("scores" not in s for s in screens):
        return {}
    archs, k = screens[-1]["entered"], len(trained)
    columns = {}
    for screen in screens:
        position = {arch: i for i, arch in enumerate(screen["entered"])}
        for label, values in screen["scores"].items():
            columns[label] = [values[position[arch]] for arch in archs]
    table = np.array(list(columns.values()), dtype=float).T  # archs x components
    last = [list(columns).index(label) for label in screens[-1]["scores"]]
    rules = {label: table[:, i] for i, label in enumerate(columns)}
    rules["last screen's rank average"] = rank_average(table[:, last]) if len(last) > 1 else table[:, last[0]]
    rules["rank average of every screen (the funnel's rule)"] = rank_average(table)
    best = {}
    for rule, values in rules.items():
        top = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[:k]
        best[rule] = float(truths.reindex([archs[i] for i in top]).max())
    return best


def mean_over_studies(lines: list[dict], key: str) -> dict[str, float]:
    """Per rule, the mean of lines[i][key][rule] over the studies, for rules every study has."""
    return {rule: float(np.mean([line[key][rule] for line in lines])) for rule in lines[0][key]
            if all(rule in line[key] for line in lines)}


def main(argv=None) -> int:
    args = parse_args(argv)
    table = args.ground_truth_file or default_table_path(args.data_root)
    ground_truth = GroundTruth.from_csv(table)
    truths = ground_truth.column(args.ground_truth)
    columns = {f"reference {key}": ground_truth.column(key) for key in args.reference}
    for run in args.final_scores:
        columns.update(rank_run_scores(run))
    finalists: dict[str, None] = {}
    lines = []
    for run in args.runs:
        stages = json.loads((run / STAGES_FILE).read_text())
        frame = read_results(run / "results.csv")
        for study, record in stages.items():
            rows = frame[frame["study"] == study]
            pick = rows.loc[rows["score"].idxmax()] if len(rows) else None
            finalists.update(dict.fromkeys(record[-1].get("trained", [])))
            lines.append({"benchmark": "funnel_stages", "run": str(run), "study": study,
                          "stages": stage_ceilings(record, truths),
                          "pick_arch": None if pick is None else pick["arch"],
                          "pick_truth": None if pick is None else float(truths.get(pick["arch"], np.nan)),
                          "proxy_s": float(rows["seconds"].sum()),
                          "pick_truth_by_final_rule_post_hoc": final_rules(record[-1], truths, columns),
                          "spearman_among_finalists": final_rule_spearman(record[-1], truths, columns),
                          "best_truth_kept_by_last_cut_rule_post_hoc": last_cut_rules(record, truths)})
    for line in lines:
        print(json.dumps(line))
    if args.finalists_out:
        header = f"# the finalists of {len(lines)} funnel studies: {' '.join(map(str, args.runs))}\n"
        args.finalists_out.write_text(header + "".join(f"{arch}\n" for arch in finalists))
    if lines:
        first, depth = lines[0]["stages"], min(len(line["stages"]) for line in lines)
        mean = {first[i]["stage"]: float(np.mean([x["stages"][i]["best_truth"] for x in lines])) for i in range(depth)}
        print(json.dumps({"benchmark": "funnel_stages", "studies": len(lines), "mean_best_truth_entering": mean,
                          "mean_pick_truth": float(np.nanmean([x["pick_truth"] for x in lines])),
                          "std_pick_truth": float(np.nanstd([x["pick_truth"] for x in lines], ddof=1))
                          if len(lines) > 1 else None,
                          "mean_proxy_s": float(np.mean([x["proxy_s"] for x in lines])),
                          **{f"mean_{key}": mean_over_studies(lines, key) for key in (
                              "pick_truth_by_final_rule_post_hoc", "spearman_among_finalists",
                              "best_truth_kept_by_last_cut_rule_post_hoc")}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
