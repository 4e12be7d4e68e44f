"""Figures of run directories, each written as PNG and PDF (or the formats asked for).

What a directory supports is drawn, nothing else:
- results.csv of `rank`: per (run, proxy) a scatter of the per-architecture mean score against
  the truth, with n and Spearman [95% CI] in the title; and, over all ranking inputs, correlation
  against cost (seconds per architecture, log axis) with CI bars, one point per (run, proxy), so
  a budget sweep of several rank directories reads as a curve per proxy;
- results.csv of `search`: best true accuracy found against evaluations and against the
  search's seconds, per backend and strategy (mean ± std band over seeds), with the table
  optimum and the 12-epoch column's pick as reference lines;
- synthetic.pt, generator.pt, generator_pretrained.pt: an image grid, one row per class
  (a generator draws 10 images per class with seed 0);
- losses.csv, pretrain_losses.csv: distillation loss curves.

The numbers come from `d2m_nas.report` (the same as report.md). Figures are built on
`matplotlib.figure.Figure` directly, so no pyplot state or GUI backend is involved.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from d2m_nas.errors import UserError
from d2m_nas.formatting import with_ci
from d2m_nas.report import (Run, build_report, load_run, per_arch_scores, run_labels, search_references,
                            search_trajectories)

FORMATS = ("png", "pdf", "svg")
IMAGE_FILES = {"synthetic.pt": None, "generator.pt": "distilled", "generator_pretrained.pt": "pretrained"}
LOSS_FILES = ("losses.csv", "pretrain_losses.csv")
GRID_IPC = 10  # images per class drawn from a generator for its grid
GRID_SEED = 0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def _save(fig: Figure, out: Path, name: str, formats: tuple[str, ...]) -> list[Path]:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    paths = []
    for fmt in formats:
        path = out / f"{_slug(name)}.{fmt}"
        fig.savefig(path, format=fmt, dpi=150)
        paths.append(path)
    return paths


def _ci_text(stat: dict) -> str:
    return "ρ = " + with_ci(stat)


def _log_scale(ax, axis: str, values: np.ndarray) -> str:
    """Values spanning orders of magnitude (synflow) on a log axis, or symlog when some are exactly
    0 (linear up to the smallest positive value); returns the scale's name, '' when linear."""
    values = values[np.isfinite(values)]
    positive = values[values > 0]
    if len(positive) < 2 or values.min() < 0 or positive.max() / positive.min() <= 100:
        return ""
    set_scale, set_limits = (ax.set_xscale, ax.set_xlim) if axis == "x" else (ax.set_yscale, ax.set_ylim)
    if values.min() > 0:
        set_scale("log")
        ax.locator_params(axis=axis, numticks=8)
        return "log"
    set_scale("symlog", linthresh=float(positive.min()))
    set_limits(-0.1 * float(positive.min()), None)  # nothing is negative: no negative decades
    ax.locator_params(axis=axis, numticks=8)
    return "symlog"


# ------------------------------------------------------------------ rankings

def scatter_figure(run: Run, proxy: str, rows: pd.DataFrame, truth_column: str, stats: dict) -> Figure:
    archs = per_arch_scores(rows)
    spread = rows.drop_duplicates(["seed", "arch"], keep="last").groupby("arch")["score"].std().reindex(archs.index)
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    seeds = len(stats["seeds"])
    ax.errorbar(archs["score"], archs["truth"], xerr=spread if seeds > 1 else None, fmt="o", ms=4, alpha=0.75,
                elinewidth=0.8, capsize=0)
    scale = _log_scale(ax, "x", archs["score"].to_numpy(dtype=float))
    ax.set_xlabel(f"{proxy} score" + (f" (mean over {seeds} seeds, bars: std)" if seeds > 1 else "")
                  + (f" ({scale} axis)" if scale else ""))
    ax.set_ylabel(f"true accuracy ({truth_column})")
    ax.set_title(f"{run.label}: {proxy}\nn = {stats['correlation']['n']}, {_ci_text(stats['correlation']['spearman'])}",
                 fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def cost_figure(section: dict) -> Figure:
    """Spearman (95% CI) against seconds per architecture, one point per (run, proxy)."""
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    entries = section["rankings"]
    for proxy in dict.fromkeys(e["proxy"] for e in entries):
        points = sorted((e for e in entries if e["proxy"] == proxy), key=lambda e: e["seconds_per_arch"])
        x = np.array([e["seconds_per_arch"] for e in points])
        rho = [e["correlation"]["spearman"] for e in points]
        y = np.array([r["value"] for r in rho], dtype=float)
        low = np.array([r["ci_low"] for r in rho], dtype=float)
        high = np.array([r["ci_high"] for r in rho], dtype=float)
        yerr = np.nan_to_num(np.vstack([y - low, high - y]), nan=0.0)
        ax.errorbar(x, y, yerr=yerr, fmt="o-" if len(points) > 1 else "o", capsize=3, label=proxy)
        if len({e["run"] for e in entries}) > 1:
            for e, xi, yi in zip(points, x, y):
                ax.annotate(e["run"], (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for ref, style in zip(section["references"], itertools.cycle(("--", ":", "-.", (0, (5, 1, 1, 1))))):
        value = ref["correlation"]["spearman"]["value"]
        if math.isfinite(value):  # one line per distinct architecture sample
            ax.axhline(value, color="grey", linestyle=style, linewidth=1.2,
                       label=f"12-epoch full data ({', '.join(ref['runs'])}; table, cost not measured here)")
    seconds = np.array([e["seconds_per_arch"] for e in entries], dtype=float)
    log = bool(seconds.min() > 0 and seconds.max() / seconds.min() > 10)  # a log axis only across a decade
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("proxy seconds per architecture" + (" (log)" if log else ""))
    ax.set_ylabel(f"Spearman ρ with {section['truth_column']} (95% CI)")
    ax.set_title(f"Correlation vs cost (ground truth {section['truth_column']})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


# ------------------------------------------------------------------ searches

def _band_by_evaluations(paths: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = paths.pivot_table(index="evaluations", columns="study", values=column, aggfunc="last")
    values = table.to_numpy(dtype=float)
    return table.index.to_numpy(dtype=float), _nanmean(values), _nanstd(values)


def _band_by_seconds(paths: pd.DataFrame, column: str, points: int = 200):
    """Each study's value as a step function of its seconds, sampled on one grid."""
    end = float(paths["search_s"].max())
    grid = np.linspace(0.0, end, points) if end > 0 else np.array([0.0])
    curves = []
    for _, rows in paths.groupby("study"):
        times, values = rows["search_s"].to_numpy(dtype=float), rows[column].to_numpy(dtype=float)
        index = np.searchsorted(times, grid, side="right") - 1
        curves.append(np.where(index >= 0, values[np.clip(index, 0, None)], np.nan))
    values = np.array(curves).T
    return grid, _nanmean(values), _nanstd(values)


def _nanmean(values: np.ndarray) -> np.ndarray:
    count = np.sum(np.isfinite(values), axis=1)
    return np.where(count > 0, np.nansum(values, axis=1) / np.maximum(count, 1), np.nan)


def _nanstd(values: np.ndarray) -> np.ndarray:
    """Sample std across studies where at least two have a value, else 0 (no band)."""
    count = np.sum(np.isfinite(values), axis=1)
    mean = _nanmean(values)
    squares = np.nansum((values - mean[:, None]) ** 2, axis=1)
    return np.where(count > 1, np.sqrt(squares / np.maximum(count - 1, 1)), 0.0)


def trajectory_figure(paths: pd.DataFrame, truth_column: str, references: dict | None) -> Figure:
    """2 x 2: incumbent's true accuracy and best true accuracy seen, vs evaluations and vs seconds."""
    fig = Figure(figsize=(11, 8.5), layout="constrained")
    axes = fig.subplots(2, 2, sharey="row")
    groups = list(paths.groupby(["run", "backend", "strategy", "proxy"], sort=True))
    kinds = [key[1:] for key, _ in groups]
    ambiguous = {kind for kind in kinds if kinds.count(kind) > 1}  # the same search in several runs
    rows = (("incumbent_truth", "true accuracy of the incumbent\n(best proxy score)"),
            ("best_truth_seen", "best true accuracy seen\n(oracle: the search cannot know it)"))
    for r, (column, ylabel) in enumerate(rows):
        low, high = math.inf, -math.inf
        for c, band in enumerate((_band_by_evaluations, _band_by_seconds)):
            ax = axes[r][c]
            for (run, backend, strategy, proxy), group in groups:
                x, mean, std = band(group, column)
                studies = group["study"].nunique()
                label = (f"{backend}/{strategy}, {proxy}" + (f" [{run}]" if (backend, strategy, proxy) in ambiguous
                                                             else "") + f" ({studies} seeds)")
                line, = ax.plot(x, mean, label=label, drawstyle="steps-post", linewidth=1.4)
                if studies > 1:
                    ax.fill_between(x, mean - std, mean + std, step="post", alpha=0.2, color=line.get_color())
                if np.isfinite(mean).any():
                    low, high = min(low, np.nanmin(mean)), max(high, np.nanmax(mean))
            if references:
                ax.axhline(references["optimum"], color="black", linestyle="--", linewidth=1,
                           label=f"table optimum ({references['truth_column']})")
                if references.get("twelve_epoch_pick_truth") is not None:
                    ax.axhline(references["twelve_epoch_pick_truth"], color="grey", linestyle=":", linewidth=1.2,
                               label=f"12-epoch column's pick ({references.get('twelve_epoch_column', '12 epochs')})")
            ax.set_xlabel("evaluations" if c == 0 else "search seconds (elapsed_s)")
            if c == 0:
                ax.set_ylabel(f"{ylabel}\n[{truth_column}]")
            ax.grid(alpha=0.3)
        if references:
            high = max(high, references["optimum"])
        if math.isfinite(low) and high > low:  # the means set the scale; early bands may be clipped
            margin = 0.05 * (high - low)
            axes[r][0].set_ylim(low - margin, high + margin)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"Search trajectories (mean ± std over seeds), ground truth {truth_column}", fontsize=11)
    return fig


# ------------------------------------------------------------------ images and losses

def _class_names(metadata: dict, num_classes: int) -> list[str]:
    from d2m_nas.data.catalog import CATALOG

    names = list(metadata.get("class_names") or [])
    info = CATALOG.get(str(metadata.get("dataset")))
    if len(names) != num_classes and info is not None and len(info.class_names) == num_classes:
        names = list(info.class_names)
    return names if len(names) == num_classes else [f"class {i}" for i in range(num_classes)]


def image_grid_figure(synthetic, title: str, per_class: int = GRID_IPC) -> Figure:
    """One row per class, up to `per_class` images each, de-normalised to [0, 1]."""
    meta = synthetic.metadata
    mean = np.asarray(meta["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    images = np.clip(synthetic.images.detach().cpu().numpy() * std + mean, 0.0, 1.0)
    labels = synthetic.labels.cpu().numpy()
    classes = int(meta["num_classes"])
    _, channels, height, width = images.shape
    columns = max(1, min(per_class, max(int((labels == k).sum()) for k in range(classes))))
    pad = 2
    grid = np.ones(((height + pad) * classes + pad, (width + pad) * columns + pad, channels), dtype=np.float32)
    for k in range(classes):
        for j, image in enumerate(images[labels == k][:columns]):
            top, left = pad + k * (height + pad), pad + j * (width + pad)
            grid[top:top + height, left:left + width] = image.transpose(1, 2, 0)
    fig = Figure(figsize=(0.55 * columns + 1.6, 0.55 * classes + 0.8))
    ax = fig.subplots()
    ax.imshow(grid[..., 0] if channels == 1 else grid, cmap="gray" if channels == 1 else None,
              interpolation="nearest")
    ax.set_yticks([pad + k * (height + pad) + height / 2 for k in range(classes)],
                  _class_names(meta, classes), fontsize=7)
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    return fig


def loss_figure(csv_path: Path, title: str) -> Figure | None:
    """One panel per loss term against the step (terms differ by orders of magnitude)."""
    try:
        frame = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{csv_path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    if "step" not in frame.columns:
        raise UserError(f"{csv_path} has no 'step' column; it is not a d2m-nas loss log")
    terms = [c for c in frame.columns if c not in ("step", "seconds") and pd.api.types.is_numeric_dtype(frame[c])]
    if frame.empty or not terms:
        return None
    columns = min(3, len(terms))
    rows = math.ceil(len(terms) / columns)
    fig = Figure(figsize=(4 * columns, 3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    window = max(1, len(frame) // 50)
    for ax, term in zip(axes, terms):
        values = frame[term].astype(float)
        ax.plot(frame["step"], values, linewidth=0.7, alpha=0.5 if window > 1 else 1.0)
        if window > 1:
            ax.plot(frame["step"], values.rolling(window, min_periods=1).mean(), linewidth=1.4,
                    label=f"mean of {window} steps")
            ax.legend(fontsize=7)
        _log_scale(ax, "y", values.to_numpy())
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[len(terms):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return fig


# ------------------------------------------------------------------ everything a directory supports

def plottable(path: Path) -> bool:
    return any((path / name).is_file() for name in ("results.csv", *IMAGE_FILES, *LOSS_FILES))


def plot_runs(run_dirs: list[Path], out: Path, formats: tuple[str, ...] = ("png", "pdf"), table=None,
              bootstrap: int = 1000, seed: int = 0, device: str = "cpu") -> list[Path]:
    """Draw every figure the directories support into `out`; returns the files written."""
    dirs = [Path(d) for d in run_dirs]
    for path in dirs:
        if not path.is_dir():
            raise UserError(f"run directory not found: {path}")
        if not plottable(path):
            raise UserError(f"{path} holds nothing to plot (no results.csv, {', '.join(IMAGE_FILES)}, "
                            f"{' or '.join(LOSS_FILES)})")
    labels = run_labels(dirs)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    runs = [load_run(path, label) for path, label in zip(dirs, labels) if (path / "results.csv").is_file()]
    ranks = [r for r in runs if r.kind == "rank"]
    searches = [r for r in runs if r.kind == "search"]
    if ranks:
        report = build_report(ranks, table, top_k=(0.1, 10), bootstrap=bootstrap, seed=seed)
        for section in report["rankings"]:
            column = section["truth_column"]
            for run in ranks:
                frame = run.frame[run.frame["truth_column"] == column]
                for proxy, rows in frame.groupby("proxy", sort=False):
                    stats = next(e for e in section["rankings"] if e["run"] == run.label and e["proxy"] == proxy)
                    written += _save(scatter_figure(run, proxy, rows, column, stats), out,
                                     f"scatter-{run.label}-{proxy}" + (f"-{column}" if len(report["rankings"]) > 1
                                                                       else ""), formats)
            written += _save(cost_figure(section), out, f"correlation-vs-cost-{column}", formats)
    if searches:
        paths = pd.concat([search_trajectories(r) for r in searches], ignore_index=True)
        for column, group in paths[paths["truth_column"] != ""].groupby("truth_column"):
            refs = search_references(column, table, searches)
            written += _save(trajectory_figure(group, column, refs), out, f"search-trajectories-{column}", formats)
    for path, label in zip(dirs, labels):
        written += _images_and_losses(path, label, out, formats, device)
    return written


def _images_and_losses(path: Path, label: str, out: Path, formats, device) -> list[Path]:
    from d2m_nas.generator_files import synthesize_from_generator
    from d2m_nas.synthetic import SyntheticSet

    written = []
    for name, stage in IMAGE_FILES.items():
        if not (path / name).is_file():
            continue
        if stage is None:
            synthetic = SyntheticSet.load(path / name)
            meta = synthetic.metadata
            title = f"{label}: {meta['method']} set, {meta['ipc']} per class ({meta['dataset']}, seed {meta['seed']})"
        else:
            synthetic = synthesize_from_generator(path, GRID_IPC, GRID_SEED, device, stage=stage)
            title = (f"{label}: {'distilled (D2M)' if stage == 'distilled' else 'pre-trained (before D2M)'} generator, "
                     f"{GRID_IPC} per class, seed {GRID_SEED} ({synthetic.metadata['dataset']})")
        written += _save(image_grid_figure(synthetic, title), out, f"images-{label}-{Path(name).stem}", formats)
    method = "DM" if (path / "dm_state.pt").is_file() else "D2M"
    for name, what in zip(LOSS_FILES, (f"{method} losses", "GAN pre-training losses")):
        if (path / name).is_file():
            fig = loss_figure(path / name, f"{label}: {what} ({name})")
            if fig is not None:
                written += _save(fig, out, f"losses-{label}-{Path(name).stem}", formats)
    return written
