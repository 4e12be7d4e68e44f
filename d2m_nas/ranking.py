"""Rank a seeded sample of architectures with proxies and correlate with a ground truth.

Writes into a run directory:
- results.csv: one row per (architecture, proxy): arch, index, isomorphism class, proxy,
  score, seconds, seed, the true value and the ground-truth column it came from. Rows are
  appended as they are computed, so an interrupted run resumes where it stopped.
- summary.json: per proxy, `correlation_summary` plus cost (mean seconds per architecture).
- summary.md: the same as a readable table.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from d2m_nas.correlation import correlation_summary
from d2m_nas.proxies import Proxy, ProxyContext, score_architecture
from search_spaces.base import SearchSpace

RESULT_COLUMNS = ["arch", "index", "isomorphism", "proxy", "score", "seconds", "seed", "truth", "truth_column"]


class ResumeError(ValueError):
    """The run directory holds results that cannot be continued with these settings."""


@dataclass
class RankSettings:
    sample: int
    seed: int
    ground_truth_key: str
    truth_column: str
    top_k: tuple = (0.1, 10)
    bootstrap: int = 1000


def sample_archs(space: SearchSpace, k: int, seed: int) -> list[str]:
    """K distinct architectures drawn uniformly from the space's full list (its natural
    distribution: for NAS-Bench-201 all 15,625 cells, isomorphic duplicates included, as the
    published zero-cost correlations use)."""
    return space.sample(k, seed)


def _read_done(path: Path, seed: int) -> set[tuple[str, str]]:
    """The (arch, proxy) pairs results.csv already holds for `seed`."""
    if not path.is_file():
        return set()
    frame = pd.read_csv(path)
    if list(frame.columns) != RESULT_COLUMNS:
        raise ResumeError(f"{path} is not a d2m-nas rank results file (columns {list(frame.columns)})")
    frame = frame[frame["seed"] == seed]
    return set(zip(frame["arch"], frame["proxy"]))


def _check_same_settings(out_dir: Path, settings: RankSettings, context: ProxyContext) -> None:
    """Resuming is only safe when the scores would be computed the same way."""
    current = {"space": context.space.name, "truth_column": settings.truth_column,
               "dataset": context.dataset.name if context.dataset is not None else None,
               "batch_size": context.batch_size, "model_options": context.model_options}
    path = out_dir / "rank_settings.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = [key for key in current if previous.get(key) != json.loads(json.dumps(current[key]))]
        if changed:
            raise ResumeError(f"{out_dir} holds results computed with other settings ({', '.join(changed)} differ); "
                             "use another --out")
    else:
        path.write_text(json.dumps(current, indent=2) + "\n")


def run_ranking(archs: list[str], proxies: list[Proxy], context: ProxyContext, truths: pd.Series,
                settings: RankSettings, out_dir: Path, progress: bool = True) -> dict:
    """Score every arch with every proxy (resuming from results.csv), then summarise."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_same_settings(out_dir, settings, context)
    results_path = out_dir / "results.csv"
    done = _read_done(results_path, settings.seed)
    new_file = not results_path.is_file()
    space = context.space
    with results_path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(RESULT_COLUMNS)
        bar = tqdm(archs, desc="scoring", unit="arch", disable=not progress, dynamic_ncols=True)
        for arch in bar:
            todo = [p for p in proxies if (arch, p.name) not in done]
            if not todo:
                continue
            scores = score_architecture(arch, todo, context)
            truth = truths.get(arch, math.nan)
            index, isomorphism = space.index(arch), space.isomorphism_key(arch)
            for proxy in todo:
                result = scores[proxy.name]
                writer.writerow([arch, index, isomorphism, proxy.name, repr(float(result.score)),
                                 f"{result.seconds:.6f}", settings.seed, truth, settings.truth_column])
                done.add((arch, proxy.name))
            handle.flush()
    return summarise(out_dir, archs, proxies, settings, context)


def summarise(out_dir: Path, archs: list[str], proxies: list[Proxy], settings: RankSettings,
              context: ProxyContext) -> dict:
    frame = pd.read_csv(out_dir / "results.csv")
    frame = frame[(frame["seed"] == settings.seed) & frame["arch"].isin(set(archs))]
    summary = {"space": context.space.name, "n_archs": len(archs), "seed": settings.seed,
               "ground_truth": settings.ground_truth_key, "truth_column": settings.truth_column,
               "device": str(context.device), "batch_size": context.batch_size,
               "dataset": context.dataset.name if context.dataset is not None else None,
               "model_options": context.model_options, "proxies": {}}
    for proxy in proxies:
        rows = frame[frame["proxy"] == proxy.name].drop_duplicates("arch", keep="last")
        stats = correlation_summary(rows["score"].astype(float).to_numpy(), rows["truth"].astype(float).to_numpy(),
                                    top_k=settings.top_k, bootstrap=settings.bootstrap, seed=settings.seed)
        stats["seconds_per_arch"] = float(rows["seconds"].mean()) if len(rows) else math.nan
        stats["seconds_total"] = float(rows["seconds"].sum())
        summary["proxies"][proxy.name] = stats
    (out_dir / "summary.json").write_text(json.dumps(_finite_or_null(summary), indent=2, allow_nan=False) + "\n")
    (out_dir / "summary.md").write_text(summary_markdown(summary))
    return summary


def _finite_or_null(value):
    """Strict JSON: undefined statistics (NaN) and infinities become null."""
    if isinstance(value, dict):
        return {str(k): _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


def summary_markdown(summary: dict) -> str:
    lines = [f"# Ranking on {summary['space']}: {summary['n_archs']} architectures (seed {summary['seed']})", "",
             f"Ground truth: `{summary['ground_truth']}` (column `{summary['truth_column']}`); "
             f"data: {summary['dataset']}, batch {summary['batch_size']}, device {summary['device']}.", ""]
    first = next(iter(summary["proxies"].values()), None)
    top_labels = list(first["top_k"]) if first else []
    header = ["proxy", "n", "Spearman ρ [95% CI]", "Kendall τ-b [95% CI]"]
    header += [f"{label} overlap" for label in top_labels] + ["regret", "s/arch"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, s in summary["proxies"].items():
        rho, tau = s["spearman"], s["kendall"]
        cells = [name, str(s["n"]),
                 f"{_fmt(rho['value'])} [{_fmt(rho['ci_low'])}, {_fmt(rho['ci_high'])}]",
                 f"{_fmt(tau['value'])} [{_fmt(tau['ci_low'])}, {_fmt(tau['ci_high'])}]"]
        cells += [f"{s['top_k'][label]['overlap']:.2f}" for label in top_labels]
        cells += [f"{s['regret']['regret']:.2f}", f"{s['seconds_per_arch']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{name}: {s['spearman']['undefined']}" for name, s in summary["proxies"].items()
             if s["spearman"].get("undefined")]
    dropped = [f"{name}: {s['n_dropped_nan']}" for name, s in summary["proxies"].items() if s["n_dropped_nan"]]
    if dropped:
        notes.append("pairs dropped for a NaN score or truth — " + ", ".join(dropped))
    lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"
