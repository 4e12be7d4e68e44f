"""Rank a seeded sample of architectures with proxies and correlate with a ground truth.

Writes into a run directory:
- results.csv: one row per (architecture, proxy, proxy seed): arch, index, isomorphism class,
  proxy, score, seconds, seed, the true value and the ground-truth column it came from, then
  what training-based proxies add (steps, distinct training images, device seconds, peak
  memory), the rule `score` was computed by and the value of every score rule from the same run
  (empty for zero-cost proxies). Rows are appended as they are computed (with several workers,
  as any of them finishes an item, in that order), so an interrupted run resumes where it stopped
  and `report` reads a running one.
- curves.jsonl: per training-based row, its recorded trace (the training loss of every step;
  validation accuracy, loss and seconds at each checkpoint), from which every rule is computed.
- summary.json: the run's settings and, per proxy and per score rule of every training-based
  proxy (`NAME@RULE`), the ranking summary `d2m-nas report` gives the same rows
  (`d2m_nas.report.ranking_summary`: correlation of the per-architecture mean score over the
  proxy seeds, the per-seed Spearman, cost).
- summary.md: the same as a readable table (`d2m_nas.report.ranking_table`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from d2m_nas.formatting import finite_or_null
from d2m_nas.proxies import EnsembleProxy, Proxy, ProxyContext, ProxyScore, TrainingProxy, score_architecture
from d2m_nas.proxies.ensemble import rank_average
from d2m_nas.proxies.score_rules import RULES, final_rules
from d2m_nas.report import expand_score_rules, ranking_notes, ranking_summary, ranking_table
from d2m_nas.score_cache import ScoreCache, config_key, proxy_config
from distill.atomic import atomic_write_text
from search_spaces.base import SearchSpace

EXTRA_COLUMNS = ["steps", "train_images", "device_seconds", "peak_memory_mb", "peak_memory_kind"]  # ProxyScore.extra
RESULT_COLUMNS = ["arch", "index", "isomorphism", "proxy", "score", "seconds", "seed", "truth", "truth_column",
                  *EXTRA_COLUMNS, "score_rule", *RULES]
# Tables written before peak_memory_kind existed: resumed by adding the column, empty (unknown).
LEGACY_COLUMNS = [c for c in RESULT_COLUMNS if c != "peak_memory_kind"]


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
    proxy_seeds: int = 1  # every architecture is scored with proxy seeds seed .. seed + proxy_seeds - 1
    archs_file: str | None = None  # the architectures came from this file, not from a sample

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed, self.seed + self.proxy_seeds))


def sample_archs(space: SearchSpace, k: int, seed: int, one_per_isomorph: bool = False) -> list[str]:
    """K distinct architectures drawn uniformly from the space's full list (its natural
    distribution: for NAS-Bench-201 all 15,625 cells, isomorphic duplicates included, as the
    published zero-cost correlations use). `one_per_isomorph`: K distinct isomorphism classes
    instead (the first of each class in a seeded shuffle), so no network is counted twice."""
    if not one_per_isomorph:
        return space.sample(k, seed)
    chosen: dict[str, str] = {}
    for arch in space.sample(len(space), seed):
        chosen.setdefault(space.isomorphism_key(arch), arch)
        if len(chosen) == k:
            return list(chosen.values())
    raise ValueError(f"{space.name} has only {len(chosen)} isomorphism classes; --sample {k} is too many")


def read_archs(path: str | Path, space: SearchSpace) -> list[str]:
    """The architectures a text file lists, one per line in the space's notation, canonical and in
    file order; '#' starts a comment. ValueError (one line, naming the line) for anything else."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--archs {path}: cannot read it ({exc.__class__.__name__}: "
                         f"{getattr(exc, 'strerror', None) or exc})") from None
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            arch = space.parse(text)
        except ValueError as exc:
            raise ValueError(f"--archs {path}, line {number}: {exc}") from None
        if arch in first_line:
            raise ValueError(f"--archs {path}, line {number}: repeats line {first_line[arch]} ({arch})")
        first_line[arch] = number
    if not first_line:
        raise ValueError(f"--archs {path} lists no architecture")
    return list(first_line)


def _read_done(path: Path) -> set[tuple[str, str, int]]:
    """The (arch, proxy, seed) triples results.csv already holds. A partial last line (a run killed
    while writing) is cut off, to be recomputed, but only once the rest has been read and checked: a
    damaged or hand-edited file is refused in one line and left exactly as it is."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if not complete:  # killed while writing the header
        path.unlink()
        return set()
    try:
        header, *rows = csv.reader(io.StringIO(complete.decode("utf-8"), newline=""))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ResumeError(f"{path} cannot be read as a results table ({exc}); repair or delete the damaged lines, "
                          "or use another --out") from None
    if header not in (RESULT_COLUMNS, LEGACY_COLUMNS):
        raise ResumeError(f"{path} was written with other columns ({', '.join(header)}), e.g. by an "
                          "older d2m-nas; use another --out")
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ResumeError(f"{path} line {line} has {len(row)} fields where the header has {len(header)}; "
                              "repair or delete that line (it is recomputed), or use another --out")
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    for column in ("score", "seconds", "seed"):
        text = frame[column]
        missing = text.str.lower().isin(["", "nan"]) if column == "score" else False  # a NaN score is a result
        bad = text[pd.to_numeric(text, errors="coerce").isna() & ~missing]
        if len(bad):
            raise ResumeError(f"{path} line {bad.index[0] + 2}: {column} {bad.iloc[0]!r} is not a number; "
                              "repair or delete that line (it is recomputed), or use another --out")
    if header == LEGACY_COLUMNS:
        _add_kind_column(path, rows)  # the checked rows: a torn last line is recomputed
    elif len(complete) < len(data):
        os.truncate(path, len(complete))
    return set(zip(frame["arch"], frame["proxy"], frame["seed"].astype(int)))


def _add_kind_column(path: Path, rows: list[list[str]]) -> None:
    """Rewrite a table of the layout before `peak_memory_kind` in the current one (atomically),
    the new column empty: what those runs measured is not known."""
    at = RESULT_COLUMNS.index("peak_memory_kind")
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(RESULT_COLUMNS)
    writer.writerows(row[:at] + [""] + row[at:] for row in rows)
    atomic_write_text(path, text.getvalue())


def report_labels(proxy: Proxy) -> list[str]:
    """The names a proxy's results are summarised under: every rule of a training-based proxy."""
    return [f"{proxy.name}@{rule}" for rule in RULES] if isinstance(proxy, TrainingProxy) else [proxy.name]


def check_same_settings(out_dir: Path, settings: RankSettings, proxies: list[Proxy], context: ProxyContext) -> None:
    """Resuming is only safe when the scores would be computed the same way: the run settings,
    and for every proxy already in the directory its configuration key (settings, split, files)."""
    current = {"space": context.space.name, "truth_column": settings.truth_column,
               "dataset": context.dataset.name if context.dataset is not None else None,
               "batch_size": context.batch_size, "model_options": context.model_options}
    keys = {proxy.name: config_key(proxy_config(proxy, context)) for proxy in proxies}
    path = out_dir / "rank_settings.json"
    previous = json.loads(path.read_text()) if path.is_file() else None
    if previous is not None:
        changed = [key for key in current if previous.get(key) != json.loads(json.dumps(current[key]))]
        old_keys = previous.get("proxy_keys", {})
        changed += [f"{name} proxy settings" for name, key in keys.items() if old_keys.get(name, key) != key]
        if changed:
            raise ResumeError(f"{out_dir} holds results computed with other settings ({', '.join(changed)} differ); "
                             "use another --out")
        keys = old_keys | keys
    atomic_write_text(path, json.dumps(current | {"proxy_keys": keys}, indent=2) + "\n")


def _cell(value) -> str:
    return "" if value is None else repr(float(value)) if isinstance(value, float) else str(value)


def _extra_cells(proxy: Proxy, extra: dict) -> list[str]:
    """The training-based columns: costs, the score rule, and every rule's value from the trace."""
    cells = [_cell(extra.get(column)) for column in EXTRA_COLUMNS]
    if "trace" not in extra:
        return cells + [""] * (1 + len(RULES))
    rules = final_rules(extra["trace"])
    return cells + [getattr(proxy, "rule", "")] + [_cell(float(rules[rule])) for rule in RULES]


def score_cached(arch: str, proxies: list[Proxy], context: ProxyContext, cache: ScoreCache | None,
           configs: dict) -> dict:
    """Scores of `arch` by `proxies`: from the cache where it has them, the rest computed (and stored).
    `configs`: each proxy's cache configuration (the same for every arch and seed: built once)."""
    if cache is None:
        return score_architecture(arch, proxies, context)
    found = cache.lookup_or_compute(
        context.space.name, arch, context.seed, {p.name: configs[p.name] for p in proxies},
        lambda names: score_architecture(arch, [p for p in proxies if p.name in names], context), str(context.device),
        claim=any(p.costly for p in proxies))
    return {name: cached.score for name, cached in found.items()}


def scored_proxies(proxies: list[Proxy]) -> tuple[list[Proxy], list[EnsembleProxy]]:
    """(the proxies to score, the ensembles): ensembles are computed from their components' rows,
    so a component not listed on its own is scored (and reported) too."""
    ensembles = [p for p in proxies if isinstance(p, EnsembleProxy)]
    scored = [p for p in proxies if not isinstance(p, EnsembleProxy)]
    for component in (c for e in ensembles for c in e.components):
        if component.name not in {p.name for p in scored}:
            scored.append(component)
    return scored, ensembles


def _component_values(rows: pd.DataFrame, component: Proxy, archs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values, seconds) of a component for `archs`, from its rows of results.csv: a training-based
    component's own rule column, a zero-cost one's score."""
    mine = rows[rows["proxy"] == component.name].drop_duplicates("arch", keep="last").set_index("arch")
    column = getattr(component, "rule", "score")
    return (pd.to_numeric(mine[column], errors="coerce").reindex(archs).to_numpy(dtype=float),
            mine["seconds"].reindex(archs).to_numpy(dtype=float))


def _ensemble_rows(results_path: Path, archs: list[str], ensembles: list[EnsembleProxy], settings: RankSettings,
                   context: ProxyContext, truths: pd.Series, done: set) -> list[list]:
    """Rows of every ensemble not yet in results.csv: the rank average of its components over the
    sample, per proxy seed; seconds = the components' seconds for that architecture."""
    frame = pd.read_csv(results_path)
    space, rows = context.space, []
    blank = [""] * (len(EXTRA_COLUMNS) + 1 + len(RULES))  # an ensemble records no training
    for seed in settings.seeds:
        part = frame[frame["seed"] == seed]
        for ensemble in ensembles:
            columns = [_component_values(part, c, archs) for c in ensemble.components]
            values = rank_average(np.column_stack([v for v, _ in columns]))
            seconds = np.sum([s for _, s in columns], axis=0)
            for arch, value, cost in zip(archs, values, seconds):
                if (arch, ensemble.name, seed) not in done:
                    rows.append([arch, space.index(arch), space.isomorphism_key(arch), ensemble.name,
                                 repr(float(value)), f"{cost:.6f}", seed, truths.get(arch, math.nan),
                                 settings.truth_column, *blank])
    return rows


def result_lines(space: SearchSpace, truths: pd.Series, truth_column: str, arch: str, seed: int,
                 proxies: list[Proxy], scores: dict[str, ProxyScore]) -> tuple[list[dict], list[list[str]]]:
    """(curves.jsonl records, results.csv rows) of `arch` at proxy seed `seed` for `proxies`, from
    their stored `scores` by name: what a run directory and a shared study (`rank_work`) both hold."""
    truth = truths.get(arch, math.nan)
    index, isomorphism = space.index(arch), space.isomorphism_key(arch)
    curves, lines = [], []
    for proxy in proxies:
        result = proxy.rescored(scores[proxy.name])
        if "trace" in result.extra:
            curves.append({"arch": arch, "proxy": proxy.name, "seed": seed, "trace": result.extra["trace"]})
        lines.append([arch, str(index), isomorphism, proxy.name, repr(float(result.score)), f"{result.seconds:.6f}",
                      str(seed), _cell(float(truth)), truth_column, *_extra_cells(proxy, result.extra)])
    return curves, lines


class ResultRows:
    """A run directory's results.csv and curves.jsonl, open for appending: the rows of each
    (architecture, proxy seed) as its scores arrive, a training row's curve written before the row,
    flushed at once, so an interrupted run resumes and `report` reads a running one. Reading the
    table it continues (`done`) happens on construction, before anything is written."""

    def __init__(self, out_dir: Path, space: SearchSpace, truths: pd.Series, settings: RankSettings) -> None:
        self.results_path, self.curves_path = out_dir / "results.csv", out_dir / "curves.jsonl"
        self.done = _read_done(self.results_path)
        self.space, self.truths, self.settings = space, truths, settings

    def __enter__(self) -> "ResultRows":
        new_file = not self.results_path.is_file()
        self._table, self._curves = self.results_path.open("a", newline=""), self.curves_path.open("a")
        self._writer = csv.writer(self._table)
        if new_file:
            self._writer.writerow(RESULT_COLUMNS)
        return self

    def __exit__(self, *exc) -> None:
        self._table.close()
        self._curves.close()

    def missing(self, arch: str, seed: int, proxies: list[Proxy]) -> list[Proxy]:
        return [p for p in proxies if (arch, p.name, seed) not in self.done]

    def add(self, arch: str, seed: int, proxies: list[Proxy], scores: dict[str, ProxyScore]) -> None:
        """The rows of `arch` at proxy seed `seed` for `proxies`, from their stored `scores` by name."""
        curves, lines = result_lines(self.space, self.truths, self.settings.truth_column, arch, seed, proxies, scores)
        for curve in curves:  # before the rows: a row always has its curve
            self._curves.write(json.dumps(curve) + "\n")
        self._writer.writerows(lines)
        self.done.update((arch, proxy.name, seed) for proxy in proxies)
        self._curves.flush()
        self._table.flush()

    def add_lines(self, lines: list[list]) -> None:
        self._writer.writerows(lines)
        self._table.flush()


def run_ranking(archs: list[str], proxies: list[Proxy], context: ProxyContext, truths: pd.Series,
                settings: RankSettings, out_dir: Path, progress: bool = True, cache: ScoreCache | None = None
                ) -> dict:
    """Score every arch with every proxy at every proxy seed (resuming from results.csv), then the
    ensembles, then summarise. With a score cache, scores another rank or search already computed
    are reused, not recomputed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = ResultRows(out_dir, context.space, truths, settings)
    proxies, ensembles = scored_proxies(proxies)
    check_same_settings(out_dir, settings, proxies + ensembles, context)
    # one context per proxy seed: the seed sets the weight init, the data draws and the batch order
    contexts = {seed: replace(context, seed=seed) for seed in settings.seeds}
    configs = {p.name: proxy_config(p, context) for p in proxies} if cache is not None else {}
    with rows:
        for arch in tqdm(archs, desc="scoring", unit="arch", disable=not progress, dynamic_ncols=True):
            for seed, seed_context in contexts.items():
                todo = rows.missing(arch, seed, proxies)
                if todo:
                    rows.add(arch, seed, todo, score_cached(arch, todo, seed_context, cache, configs))
        if ensembles:  # every component row exists now
            rows.add_lines(_ensemble_rows(rows.results_path, archs, ensembles, settings, context, truths, rows.done))
    return summarise(out_dir, archs, proxies + ensembles, settings, context)


def summarise(out_dir: Path, archs: list[str], proxies: list[Proxy], settings: RankSettings,
              context: ProxyContext) -> dict:
    frame = expand_score_rules(pd.read_csv(out_dir / "results.csv"))
    frame = frame[frame["seed"].isin(settings.seeds) & frame["arch"].isin(set(archs))]
    summary = {"space": context.space.name, "n_archs": len(archs), "seed": settings.seed,
               "proxy_seeds": settings.seeds, **({"archs_file": settings.archs_file} if settings.archs_file else {}),
               "ground_truth": settings.ground_truth_key, "truth_column": settings.truth_column,
               "device": str(context.device), "batch_size": context.batch_size,
               "dataset": context.dataset.name if context.dataset is not None else None,
               "model_options": context.model_options, "proxies": {}}
    for label in [label for proxy in proxies for label in report_labels(proxy)]:
        rows = frame[frame["proxy"] == label]
        if len(rows):  # a label with no row in the sample has nothing to summarise
            summary["proxies"][label] = ranking_summary(rows, top_k=settings.top_k, bootstrap=settings.bootstrap,
                                                        seed=settings.seed)
    atomic_write_text(out_dir / "summary.json", json.dumps(finite_or_null(summary), indent=2, allow_nan=False) + "\n")
    atomic_write_text(out_dir / "summary.md", summary_markdown(summary))
    return summary


def summary_markdown(summary: dict) -> str:
    lines = [f"# Ranking on {summary['space']}: {summary['n_archs']} architectures (seed {summary['seed']})", "",
             f"Ground truth: `{summary['ground_truth']}` (column `{summary['truth_column']}`); "
             f"data: {summary['dataset']}, batch {summary['batch_size']}, device {summary['device']}. Every score is "
             "oriented higher = better; NAME@RULE rows are the score rules of one training run (val_acc, val_loss, "
             "tse, tse_e, tse_ema); ensembles are rank averages over this sample.", ""]
    seeds = summary["proxy_seeds"]
    if len(seeds) > 1:
        lines += [f"Scores are the mean over proxy seeds {seeds[0]}..{seeds[-1]}; s/arch covers all of them.", ""]
    entries = [{"proxy": name} | entry for name, entry in summary["proxies"].items()]
    if entries:
        lines += ranking_table(entries)
    lines += [""] + [f"- {note}" for note in ranking_notes(entries)]
    return "\n".join(lines).rstrip() + "\n"
