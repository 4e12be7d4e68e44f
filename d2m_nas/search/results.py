"""The search's results table (RUN_DIR/results.csv) and what is drawn from it: the trajectories
and the search summary that `d2m-nas search` and `d2m-nas report` both write.

One row per finished evaluation, identified by (study, trial). Several worker processes may
append to one file: each append takes an exclusive lock on the file, reads the rows added
since its last look, and writes only rows whose (study, trial) is absent, in one write. So a
row written twice (a worker's own append racing another worker's reconciliation from the
storage) is kept once, a half-run append can never interleave with another, and the torn last
line of a writer killed mid-write is cut off by the next append.

The columns extend those of `d2m-nas rank` (arch, index, isomorphism, proxy, score, seconds,
seed, truth, truth_column), so the same readers work on both. `truth` is for reporting only:
it is looked up when a row is written and never reaches a search backend.
"""

from __future__ import annotations

import csv
import fcntl
import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

RESULT_COLUMNS = [
    "study", "trial", "retry_of", "backend", "strategy", "seed",
    "arch", "index", "isomorphism", "proxy", "score", "seconds", "cached",
    "cost_metric", "cost", "truth", "truth_column", "worker", "elapsed_s", "finished_at", "state", "steps",
]
LEGACY_COLUMNS = RESULT_COLUMNS[:-2]  # before pruning: every row was a complete evaluation


class ResultsTable:
    """Append-only CSV of evaluations, deduplicated on (study, trial), safe for several processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = 0
        self._rows: dict[tuple[str, int], dict] = {}

    def _read_new(self, handle) -> None:
        """Parse the complete lines added since the last look (binary handle, under a lock)."""
        handle.seek(self._offset)
        data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a torn last line (killed mid-write) is not a row
        if not complete:
            return
        lines = complete.decode("utf-8").splitlines()
        if self._offset == 0:
            header, lines = lines[0].split(","), lines[1:]
            if header != RESULT_COLUMNS:
                raise ValueError(f"{self.path} is not a d2m-nas search results file (columns {header}); "
                                 "use another --out")
        for values in csv.reader(lines):
            row = dict(zip(RESULT_COLUMNS, values))
            self._rows[(row["study"], int(row["trial"]))] = row
        self._offset += len(complete)

    def rows(self) -> dict[tuple[str, int], dict]:
        """Every row in the file, keyed by (study, trial), as strings."""
        if self.path.is_file():
            with self.path.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH)
                self._read_new(handle)
        return dict(self._rows)

    def append(self, rows: list[dict]) -> list[dict]:
        """Append the rows whose (study, trial) is not in the file yet; returns those written.

        A row for a (study, trial) already present with another architecture is an error: it
        means two different evaluations claim one trial."""
        with open(self.path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                end = handle.seek(0, os.SEEK_END)
                if end == 0:
                    self._offset, self._rows = 0, {}
                    handle.write((",".join(RESULT_COLUMNS) + "\n").encode())
                    handle.flush()
                self._read_new(handle)
                new = []
                for row in rows:
                    key = (str(row["study"]), int(row["trial"]))
                    if key in self._rows:
                        if self._rows[key]["arch"] != str(row["arch"]):
                            raise RuntimeError(f"{self.path}: trial {key[1]} of study {key[0]} is recorded with "
                                               f"{self._rows[key]['arch']}, now evaluated as {row['arch']}")
                        continue
                    new.append(row)
                    self._rows[key] = {k: _cell(row.get(k)) for k in RESULT_COLUMNS}
                if new:
                    if handle.seek(0, os.SEEK_END) > self._offset:
                        # Under the lock no live writer is mid-line: this is a killed writer's torn line.
                        handle.truncate(self._offset)
                    buffer = io.StringIO()
                    csv.writer(buffer, lineterminator="\n").writerows(
                        [[_cell(row.get(k)) for k in RESULT_COLUMNS] for row in new])
                    handle.write(buffer.getvalue().encode())  # one write: appended whole
                    handle.flush()
                    os.fsync(handle.fileno())
                    self._offset = handle.seek(0, os.SEEK_END)
                return new
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_results(path: str | Path) -> pd.DataFrame:
    """results.csv as a DataFrame with typed columns."""
    frame = pd.read_csv(path, dtype={"study": str, "arch": str, "backend": str, "strategy": str, "state": str})
    if list(frame.columns) == LEGACY_COLUMNS:
        frame = frame.assign(state="complete", steps=np.nan)
    if list(frame.columns) != RESULT_COLUMNS:
        raise ValueError(f"{path} is not a d2m-nas search results file (columns {list(frame.columns)})")
    frame["state"] = frame["state"].fillna("complete")
    return frame


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


def trajectory(frame: pd.DataFrame) -> pd.DataFrame:
    """Per study, in trial order: what the search knew after each evaluation.

    - evaluations: 1, 2, ... (rows of the study in trial order)
    - cost_s: cumulative proxy seconds, counting each distinct architecture once (a loop that
      proposes an architecture again pays nothing: the cache answers), and every pruned
      evaluation's partial seconds
    - elapsed_s: the worker's wall-clock since its session started (as recorded)
    - search_s: the search's seconds so far, over sessions and workers (`search_seconds`)
    - best_score: the best proxy score so far among complete evaluations (the search's incumbent;
      a pruned evaluation's partial score never is)
    - incumbent_arch, incumbent_truth: that incumbent (the earliest trial with the best score:
      what the search would return) and its true accuracy
    - best_truth_seen: the best true accuracy among the architectures evaluated so far (an
      oracle upper bound: the search cannot know it)
    For a multi-objective (nsga2) study the incumbent is the best by proxy score alone.
    """
    parts = []
    frame = frame.sort_values(["study", "trial"]).reset_index(drop=True)
    seconds = search_seconds(frame)
    for study, rows in frame.groupby("study", sort=False):
        search_s = seconds.loc[rows.index].to_numpy()
        rows = rows.reset_index(drop=True)
        pruned = (rows["state"] == "pruned").to_numpy() if "state" in rows else np.zeros(len(rows), bool)
        first_time = ~rows["arch"].where(~pruned).duplicated() & ~pruned
        scores = np.where(pruned, -np.inf, rows["score"].astype(float).fillna(-np.inf).to_numpy())
        truths = rows["truth"].astype(float).to_numpy()
        incumbent, best, best_index = [], -np.inf, -1
        for i, score in enumerate(scores):
            if score > best or best_index < 0:
                best, best_index = score, i
            incumbent.append(best_index)
        parts.append(pd.DataFrame({
            "study": study, "backend": rows["backend"], "strategy": rows["strategy"], "seed": rows["seed"],
            "trial": rows["trial"], "evaluations": np.arange(1, len(rows) + 1),
            "cost_s": np.cumsum(np.where(first_time | pruned, rows["seconds"].astype(float), 0.0)),
            "elapsed_s": rows["elapsed_s"].astype(float), "search_s": search_s,
            "best_score": np.maximum.accumulate(scores),
            "incumbent_arch": rows["arch"].to_numpy()[incumbent],
            "incumbent_truth": truths[incumbent],
            "best_truth_seen": pd.Series(truths).cummax().to_numpy(),
        }))
    columns = ["study", "backend", "strategy", "seed", "trial", "evaluations", "cost_s", "elapsed_s", "search_s",
               "best_score", "incumbent_arch", "incumbent_truth", "best_truth_seen"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def search_summaries(frame: pd.DataFrame, optimum: float | None = None) -> list[dict]:
    """The search summary: per (backend, strategy, proxy), each study's final state (see
    `study_summary`) and, over the studies (seeds), the mean ± sample std of each number.
    `optimum`: the truth column's best value in the space, for the regret (NaN without it)."""
    entries = []
    for (backend, strategy, proxy), rows in frame.groupby(["backend", "strategy", "proxy"], sort=True):
        studies = {study: study_summary(part, optimum) for study, part in rows.groupby("study", sort=True)}
        trials = [s["trials"] for s in studies.values()]
        entries.append({"backend": backend, "strategy": strategy, "proxy": proxy, "studies": studies,
                        "seeds": sorted(s["seed"] for s in studies.values()),
                        "trials": {"min": min(trials), "max": max(trials), "mean": float(np.mean(trials))}}
                       | {key: mean_std([s[key] for s in studies.values()])
                          for key in ("best_truth", "regret", "best_truth_seen", "cost_s", "search_s")})
    return entries


def study_summary(rows: pd.DataFrame, optimum: float | None = None) -> dict:
    """One study after its last evaluation: the pick (the trajectory's incumbent), its score, true
    accuracy and regret, the best truth seen, and what the study cost."""
    last = trajectory(rows).iloc[-1]
    pruned = rows["state"] == "pruned" if "state" in rows else pd.Series(False, index=rows.index)
    complete = rows[~pruned]
    truth = float(last["incumbent_truth"])
    return {"seed": int(last["seed"]), "trials": int(last["evaluations"]), "pruned": int(pruned.sum()),
            "distinct_archs": int(rows["arch"].nunique()), "cached": int(rows["cached"].sum()),
            "best_arch": str(last["incumbent_arch"]), "best_score": float(last["best_score"]),
            "ties_at_best_score": int(complete.loc[complete["score"] == last["best_score"], "arch"].nunique()),
            "best_truth": truth, "regret": optimum - truth if optimum is not None else math.nan,
            "best_truth_seen": float(last["best_truth_seen"]), "cost_s": float(last["cost_s"]),
            "search_s": float(last["search_s"])}


def mean_std(values) -> dict:
    """Mean and sample std of the finite values, and how many there are."""
    values = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    return {"mean": float(values.mean()) if len(values) else math.nan,
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan, "n": len(values)}
