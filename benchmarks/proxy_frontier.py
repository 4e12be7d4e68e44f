"""The ρ-versus-cost frontier on NAS-Bench-201: every score rule of every training run at every
checkpoint, the zero-cost proxies, ensembles, and the 12-epoch column, on the same architectures.

Input: `d2m-nas rank` run directories (their results.csv and, for training-based proxies,
curves.jsonl). Shards of one study (`rank --shard I/N`) are simply given together. Nothing is
trained here: a checkpoint at step s of a training run is the fidelity "s steps" of that run (the
same run cut off; its learning-rate schedule is the full run's, so it is what a pruner sees, not
a separate s-step run). Its cost per architecture is the training seconds up to s, plus that
checkpoint's validation pass for the validation rules (val_acc, val_loss); the loss rules (TSE,
TSE-E, TSE-EMA) need none. Zero-cost proxies cost their recorded seconds.

Rows (every statistic on the architectures every input scored, so all rows are paired):
- each zero-cost proxy; zc-vote (synflow + jacob_cov + snip) and synflow + naswot (rank average);
- each (training proxy, checkpoint, rule);
- ensembles of synflow + naswot, and of zc-vote's three proxies (added in session 5, after the
  100-cell result), with each (training proxy, checkpoint, rule): rank average; cost = the sum of
  the parts;
- the table's 12-epoch column (the free reference; its cost is not measured here).
Each row: n, Spearman ρ [95% bootstrap CI], Kendall τ, top-10% overlap, s/arch, and paired
bootstrap CIs of ρ − ρ_synflow, ρ − ρ_zc-vote, ρ − ρ of the best single zero-cost proxy and ρ − ρ of the 12-epoch column on
these architectures. The crossover lines name, for each image source's training-rule rows and
ensembles that contain a training rule, the cheapest row whose paired CI lies above 0 against that
best zero-cost proxy and against zc-vote (or say none does). Many
rows are compared on the same architectures: the best of them is selected after the fact, so
its margin is optimistic.

Prints one JSON line per row and writes OUT/frontier.jsonl, OUT/frontier.md and OUT/frontier.png.

    python benchmarks/proxy_frontier.py RUN_DIR [RUN_DIR ...] --out OUT [--bootstrap 1000]

`--exclude-archs-of DIR ...` leaves out the architectures those runs scored: a hold-out check of
a row picked on them (the study grows by new cells; the pick is judged on the new ones only).
`--among-top params=0.25` keeps only the architectures in that proxy's best quarter of the sample:
the frontier where a funnel's later stages work (after a cheap screen has kept the largest
networks, what still tells good from best?).
`--ensemble params+synflow+random-subset@tse_e@400` adds that rank average as a row (any rows).
`--rules tse_e val_acc` keeps only those score rules of the training proxies.
`--versus-source d2m=random-subset` adds, for every row of the d2m proxy, the paired difference
to the same row of random-subset: image sources compared at equal budget.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from d2m_nas.correlation import correlation_summary, paired_difference  # noqa: E402
from d2m_nas.formatting import finite_or_null  # noqa: E402
from d2m_nas.proxies.ensemble import rank_average  # noqa: E402
from d2m_nas.proxies.score_rules import RULES, VALIDATION_RULES, fidelities  # noqa: E402
from d2m_nas.settings import resolve_data_root  # noqa: E402
from search_spaces.ground_truth import GroundTruth, default_table_path  # noqa: E402

TWELVE_EPOCH = "cifar10_test_acc_12ep"
TWELVE_EPOCH_ROW = f"12-epoch column ({TWELVE_EPOCH})"  # also a baseline: "as good as 12 epochs of training"
BASELINES = ("synflow", "zc-vote")
ZERO_COST = ("params", "flops", "synflow", "snip", "grad_norm", "jacob_cov", "naswot")


def read_runs(run_dirs: list[Path], seed: int) -> tuple[pd.DataFrame, list[dict]]:
    """(zero-cost rows, training traces) of proxy seed `seed` from every run directory."""
    rows, traces = [], []
    for run in run_dirs:
        frame = pd.read_csv(run / "results.csv")
        frame = frame[frame["seed"] == seed]
        trained = frame["score_rule"].notna() if "score_rule" in frame else pd.Series(False, index=frame.index)
        rows.append(frame[~trained])
        truth = frame.drop_duplicates("arch").set_index("arch")["truth"]
        curves = run / "curves.jsonl"
        if curves.is_file():
            for line in curves.read_text().splitlines():
                record = json.loads(line)
                if record["seed"] == seed and record["arch"] in truth.index:
                    traces.append(record | {"truth": float(truth[record["arch"]])})
    return pd.concat(rows, ignore_index=True), traces


def score_table(zero_cost: pd.DataFrame, traces: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """(scores, seconds, truth): one column per proxy/fidelity/rule, one row per architecture."""
    scores, seconds = {}, {}
    for proxy, part in zero_cost.groupby("proxy"):
        part = part.drop_duplicates("arch", keep="last").set_index("arch")
        scores[proxy], seconds[proxy] = part["score"].astype(float), part["seconds"].astype(float)
    truth = zero_cost.drop_duplicates("arch").set_index("arch")["truth"].astype(float)
    by_column: dict[str, dict] = {}
    for record in traces:
        truth.loc[record["arch"]] = record["truth"]
        for point in fidelities(record["trace"]):
            for rule in RULES:
                name = f"{record['proxy']}@{rule}@{point['step']}"
                cost = point["train_seconds"] + (point["eval_seconds"] if rule in VALIDATION_RULES else 0.0)
                by_column.setdefault(name, {})[record["arch"]] = (point["rules"][rule], cost)
    for name, values in by_column.items():
        scores[name] = pd.Series({a: v for a, (v, _) in values.items()}, dtype=float)
        seconds[name] = pd.Series({a: c for a, (_, c) in values.items()}, dtype=float)
    return pd.DataFrame(scores), pd.DataFrame(seconds), truth


def add_ensembles(scores: pd.DataFrame, seconds: pd.DataFrame, extra: list[str] = ()) -> None:
    """The ensembles of the module docstring, and each of `extra` ("A+B+...", row names), as new
    columns (rank average over the rows given)."""
    def add(name: str, parts: list[str]) -> None:
        if all(p in scores for p in parts):
            scores[name] = rank_average(scores[parts].to_numpy())
            seconds[name] = seconds[parts].sum(axis=1)

    add("zc-vote", ["synflow", "jacob_cov", "snip"])
    add("synflow+naswot", ["synflow", "naswot"])
    for column in [c for c in scores.columns if c.count("@") == 2]:
        add(f"synflow+naswot+{column}", ["synflow", "naswot", column])
        add(f"zc-vote+{column}", ["synflow", "jacob_cov", "snip", column])
    for name in extra:  # after the loop above, which would extend them too
        parts = name.split("+")
        if not all(p in scores for p in parts):
            raise SystemExit(f"--ensemble {name}: {', '.join(p for p in parts if p not in scores)} is not a row; "
                             f"rows: {', '.join(scores.columns)}")
        add(name, parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="proxy seed to read (default: 0)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--data-root", help="for the 12-epoch column (default: the product's data root)")
    parser.add_argument("--exclude-archs-of", nargs="+", type=Path, default=[], metavar="RUN_DIR",
                        help="leave out the architectures these runs scored (a hold-out check)")
    parser.add_argument("--among-top", metavar="PROXY=FRACTION",
                        help="keep only the architectures in PROXY's best FRACTION of the sample (after "
                             "--exclude-archs-of), e.g. params=0.25: the population a screen passes on")
    parser.add_argument("--versus-source", action="append", default=[], metavar="A=B",
                        help="also compare image sources at equal budget: every row of training proxy A (its rule "
                             "and checkpoint, alone or in an ensemble) against the same row of B, paired (e.g. "
                             "d2m=random-subset); repeatable")
    parser.add_argument("--rules", nargs="+", choices=RULES, metavar="RULE",
                        help=f"report only these score rules of the training proxies (default: all of {', '.join(RULES)}); "
                             "fewer rows and pairs to read")
    parser.add_argument("--ensemble", action="append", default=[], metavar="A+B+...",
                        help="also the rank average of these rows (e.g. params+synflow+random-subset@tse_e@400); "
                             "repeatable")
    args = parser.parse_args()

    zero_cost, traces = read_runs(args.run_dirs, args.seed)
    scores, seconds, truth = score_table(zero_cost, traces)
    if args.rules:  # a training column is PROXY@RULE@STEP
        scores = scores[[c for c in scores.columns if c.count("@") != 2 or c.split("@")[1] in args.rules]]
    excluded = {a for run in args.exclude_archs_of for a in pd.read_csv(run / "results.csv")["arch"]}
    archs = scores.dropna(how="any", subset=[c for c in scores.columns if c not in ("jacob_cov",)]).index
    archs = archs[~archs.isin(excluded)]
    if args.among_top:
        archs = among_top(scores.loc[archs], args.among_top)
    scores, seconds, truth = scores.loc[archs], seconds.loc[archs], truth.loc[archs]
    add_ensembles(scores, seconds, args.ensemble)
    table = GroundTruth.from_csv(default_table_path(resolve_data_root(args.data_root)))
    scores[TWELVE_EPOCH_ROW] = pd.to_numeric(table.frame[TWELVE_EPOCH], errors="coerce").reindex(
        archs).to_numpy()

    def rho(column: str) -> float:
        return correlation_summary(scores[column], truth, top_k=(), bootstrap=0)["spearman"]["value"]

    best_zero_cost = max((c for c in ZERO_COST if c in scores), key=rho)
    rows = []
    for name in scores.columns:
        stats = correlation_summary(scores[name], truth, top_k=(0.1,), bootstrap=args.bootstrap, seed=args.seed)
        row = {"proxy": name, "n": stats["n"], "truth_column": "cifar10_test_acc", "proxy_seed": args.seed,
               "spearman": stats["spearman"], "kendall": stats["kendall"]["value"],
               "top10%_overlap": stats["top_k"]["top10%"]["overlap"],
               "seconds_per_arch": float(seconds[name].mean()) if name in seconds else None}
        for baseline in (*BASELINES, best_zero_cost, TWELVE_EPOCH_ROW):
            if baseline in scores and baseline != name:
                diff = paired_difference(scores[name], scores[baseline], truth, top_k=(0.1,),
                                         bootstrap=args.bootstrap, seed=args.seed)
                row[f"vs_{baseline}"] = diff.get("spearman_diff")
        row["best_zero_cost"] = best_zero_cost
        rows.append(finite_or_null(row))
        print(json.dumps(rows[-1]), flush=True)
    sources = sorted({source_of(r["proxy"]) for r in rows} - {None})
    crossovers = [crossover(rows, family, baseline, source) for source in sources
                  for baseline in dict.fromkeys((best_zero_cost, "zc-vote"))
                  for family in ("training rule", "training ensemble")]
    for line in crossovers:
        print(json.dumps(line), flush=True)
    pairs = source_pairs(scores, truth, seconds, args.versus_source, args.bootstrap, args.seed)
    for line in pairs:
        print(json.dumps(line), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frontier.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (args.out / "frontier.md").write_text(markdown(rows, len(archs), crossovers) + pairs_markdown(pairs))
    plot(rows, args.out / "frontier.png", len(archs))
    return 0


def among_top(scores: pd.DataFrame, spec: str) -> pd.Index:
    """The architectures in the best FRACTION of PROXY's scores (spec "PROXY=FRACTION"), ties kept
    together at the cut by ranking with the minimum rank."""
    proxy, _, fraction = spec.partition("=")
    if proxy not in scores or not 0 < float(fraction or 0) <= 1:
        raise SystemExit(f"--among-top wants PROXY=FRACTION with PROXY one of {sorted(scores.columns)} and "
                         f"0 < FRACTION <= 1, not {spec!r}")
    ranks = scores[proxy].rank(ascending=False, method="min")
    return scores.index[ranks <= round(float(fraction) * len(scores))]


def source_pairs(scores: pd.DataFrame, truth: pd.Series, seconds: pd.DataFrame, specs: list[str], bootstrap: int,
                 seed: int) -> list[dict]:
    """For each `A=B`: every column naming training proxy A (`A@rule@step`, alone or in an
    ensemble) against the same column with B, paired on these architectures."""
    out = []
    for spec in specs:
        parts = re.split(r"=(?![^\[]*\])", spec)  # an = inside NAME[key=value] does not split
        a, b = parts if len(parts) == 2 else ("", "")
        if not a or not b:
            raise SystemExit(f"--versus-source takes A=B, e.g. d2m=random-subset; got {spec!r}")
        for name in scores.columns:
            counterpart = name.replace(f"{a}@", f"{b}@")
            if f"{a}@" not in name or counterpart not in scores:
                continue
            diff = paired_difference(scores[name], scores[counterpart], truth, top_k=(0.1,), bootstrap=bootstrap,
                                     seed=seed)
            out.append(finite_or_null({
                "kind": "source_pair", "proxy": name, "versus": counterpart, "n": diff["n"],
                "rho": correlation_summary(scores[name], truth, top_k=(), bootstrap=0)["spearman"]["value"],
                "rho_versus": correlation_summary(scores[counterpart], truth, top_k=(), bootstrap=0)["spearman"]["value"],
                "spearman_diff": diff.get("spearman_diff"),
                "top10%_overlap_diff": diff.get("top_k_overlap_diff", {}).get("top10%"),
                "seconds_per_arch": float(seconds[name].mean()) if name in seconds else None,
                "seconds_per_arch_versus": float(seconds[counterpart].mean()) if counterpart in seconds else None}))
    return out


def pairs_markdown(pairs: list[dict]) -> str:
    if not pairs:
        return ""
    lines = ["", "Image sources at equal budget (same rule, checkpoint, steps, batch and image count; paired):", "",
             "| row | versus | n | ρ | ρ versus | ρ − ρ_versus [95% CI] | top-10% diff | s/arch | s/arch versus |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        lines.append(f"| {p['proxy']} | {p['versus']} | {p['n']} | {_num(p['rho'], '+.3f')} | "
                     f"{_num(p['rho_versus'], '+.3f')} | {_ci(p['spearman_diff'])} | "
                     f"{_ci(p['top10%_overlap_diff'])} | {_num(p['seconds_per_arch'], '.3g')} | "
                     f"{_num(p['seconds_per_arch_versus'], '.3g')} |")
    return "\n".join(lines) + "\n"


def family_of(name: str) -> str:
    if "+" in name or name == "zc-vote":
        return "training ensemble" if "@" in name else "zero-cost ensemble"
    return "training rule" if "@" in name else "zero-cost" if name in ZERO_COST else "reference"


def source_of(name: str) -> str | None:
    """The image source of a training-based row (`zc-vote+d2m@tse_e@200` -> `d2m`); None without one."""
    trained = [part for part in name.split("+") if "@" in part]
    return trained[0].split("@")[0] if trained else None


def crossover(rows: list[dict], family: str, baseline: str, source: str) -> dict:
    """The cheapest row of `family` trained on `source`'s images whose paired CI against `baseline` is above 0."""
    beating = [r for r in rows if family_of(r["proxy"]) == family and source_of(r["proxy"]) == source
               and r["seconds_per_arch"] is not None
               and (r.get(f"vs_{baseline}") or {}).get("ci_low") is not None and r[f"vs_{baseline}"]["ci_low"] > 0]
    cheapest = min(beating, key=lambda r: r["seconds_per_arch"], default=None)
    return {"kind": "crossover", "family": family, "source": source, "baseline": baseline,
            "proxy": cheapest["proxy"] if cheapest else None,
            "seconds_per_arch": cheapest["seconds_per_arch"] if cheapest else None,
            "difference": cheapest[f"vs_{baseline}"] if cheapest else None}


def _ci(stat: dict | None) -> str:
    if not stat or stat.get("value") is None:
        return "—"
    low, high = stat.get("ci_low"), stat.get("ci_high")
    return f"{stat['value']:+.3f} [{low:+.3f}, {high:+.3f}]" if low is not None else f"{stat['value']:+.3f}"


def _num(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(rows: list[dict], n: int, crossovers: list[dict]) -> str:
    best = rows[0]["best_zero_cost"]
    baselines = list(dict.fromkeys((*BASELINES, best, TWELVE_EPOCH_ROW)))
    lines = [f"Frontier on {n} architectures (truth `cifar10_test_acc`, 200 epochs); rows by ρ; the best single "
             f"zero-cost proxy here is {best}.", "",
             "| proxy | ρ [95% CI] | τ | top-10% | s/arch | "
             + " | ".join(f"ρ − ρ_{'12ep' if b == TWELVE_EPOCH_ROW else b} [95% CI]" for b in baselines) + " |",
             "|---|---|---|---|---|" + "---|" * len(baselines)]
    for r in sorted(rows, key=lambda r: -(r["spearman"]["value"] or -9)):
        cost = "table" if r["seconds_per_arch"] is None else f"{r['seconds_per_arch']:.3g}"
        lines.append(f"| {r['proxy']} | {_ci(r['spearman'])} | {_num(r['kendall'], '+.3f')} | "
                     f"{_num(r['top10%_overlap'], '.2f')} | "
                     f"{cost} | " + " | ".join(_ci(r.get(f"vs_{b}")) for b in baselines) + " |")
    lines.append("")
    for c in crossovers:
        lines.append(f"- crossover ({c['family']}, {c['source']} images, vs {c['baseline']}): " + (
            f"`{c['proxy']}` at {c['seconds_per_arch']:.3g} s/arch, ρ − ρ_{c['baseline']} {_ci(c['difference'])}"
            if c["proxy"] else f"no {c['family']} row on {c['source']} images beats {c['baseline']} with its "
            "paired 95% CI above 0"))
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    markers = dict(zip(("zero-cost", "training rule", "zero-cost ensemble", "training ensemble"), "osDv"))
    groups: dict[tuple[str, str | None], list[dict]] = {}
    for r in rows:
        if r["seconds_per_arch"] is None or r["spearman"]["value"] is None:
            if r["spearman"]["value"] is not None:
                ax.axhline(r["spearman"]["value"], color="grey", ls="--", lw=1,
                           label="12-epoch column (free reference)")
            continue
        groups.setdefault((family_of(r["proxy"]), source_of(r["proxy"])), []).append(r)
    # marker = family, colour = image source (training rows), so d2m and real images read apart
    sources = sorted({source for _, source in groups if source is not None})
    colours = {None: "black"} | {source: f"C{i}" for i, source in enumerate(sources)}
    for (family, source), members in sorted(groups.items(), key=lambda kv: (list(markers).index(kv[0][0]),
                                                                             kv[0][1] or "")):
        x = [r["seconds_per_arch"] for r in members]
        y = [r["spearman"]["value"] for r in members]
        # a percentile CI need not contain the estimate (tiny n): draw what lies on either side, never below 0
        err = [[max(0.0, v - (r["spearman"]["ci_low"] or v)) for v, r in zip(y, members)],
               [max(0.0, (r["spearman"]["ci_high"] or v) - v) for v, r in zip(y, members)]]
        ax.errorbar(x, y, yerr=err, fmt=markers[family], color=colours[source], ms=4, capsize=2, alpha=0.8,
                    label=family if source is None else f"{family}, {source}")
    for r in [r for r in rows if r["proxy"] in ("synflow", "zc-vote", "params")]:
        ax.annotate(r["proxy"], (r["seconds_per_arch"], r["spearman"]["value"]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    # the best training row of each image source: they sit at one cost, so their labels are stacked in
    # the empty middle of the axes (training rows cost seconds; zero-cost rows sit high at the left)
    costed = [r for r in rows if r["seconds_per_arch"] is not None and r["spearman"]["value"] is not None]
    best = {}
    for r in sorted(costed, key=lambda r: -r["spearman"]["value"]):
        best.setdefault(source_of(r["proxy"]), r)
    best.pop(None, None)
    for i, r in enumerate(best.values()):  # already in order of ρ, best first
        ax.annotate(f"{r['proxy']} ({r['spearman']['value']:.3f})", (r["seconds_per_arch"], r["spearman"]["value"]),
                    fontsize=7, xytext=(0.42, 0.62 - 0.05 * i), textcoords="axes fraction",
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "grey"})
    ax.set_xscale("log")
    ax.set_xlabel("seconds per architecture (this machine, see benchmarks/README.md)")
    ax.set_ylabel("Spearman ρ vs cifar10_test_acc (200 ep), 95% CI")
    ax.set_title(f"NAS-Bench-201 CIFAR-10: ρ against cost, {n} architectures")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")  # zero-cost rows sit high at the left
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
