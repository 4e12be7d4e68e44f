"""Reports over run directories: every proxy ranking and every search side by side.

Reads the results.csv of `d2m-nas rank` and `d2m-nas search` runs (one row per evaluation;
columns arch, proxy, score, seconds, seed, truth, truth_column, plus study, trial, backend,
strategy, elapsed_s for searches; further numeric columns such as steps or device_seconds are
optional) and writes

    results.csv   every row of every input, with a `run` column naming its directory
    summary.json  the numbers below, for machines
    report.md     the same as tables, for people

Rankings: per (run, proxy), the ranking summary `d2m-nas rank` writes too (`ranking_summary`:
the per-architecture mean score over seeds against the truth, Spearman, Kendall with bootstrap
CIs, top-k overlap, regret within the sample; the per-seed Spearman; cost); next to them the
12-epoch full-data column of the NAS-Bench-201 table for the same architectures against the same
truth (free: it is read from the table, not measured). Searches: per (run, backend, strategy,
proxy), the search summary `d2m-nas search` writes too (`search_summaries`: over studies, the true
accuracy of the incumbent and the best truth seen), with the table optimum and the 12-epoch
column's pick as references. Rows of different ground-truth columns are never compared with each
other: each truth column gets its own tables.

A rank study shared through Optuna storage (`rank --storage URL`) is read from the storage too
(`load_study_run`): every finished item's rows, whichever machine scored it.

reading: the run directories, studies and the table; statistics: the numbers; rendering: the
Markdown and the files written.
"""

from d2m_nas.report.reading import (Run, expand_score_rules, load_run, load_runs, load_study_run, load_table,
                                    run_labels)
from d2m_nas.report.rendering import ranking_notes, ranking_table, search_tables, write_report
from d2m_nas.report.statistics import (build_report, per_arch_scores, ranking_summary, search_references,
                                       search_trajectories, table_references, twelve_epoch_column)

__all__ = ["Run", "build_report", "expand_score_rules", "load_run", "load_runs", "load_table", "per_arch_scores",
           "ranking_notes", "ranking_summary", "ranking_table", "run_labels", "search_references", "search_tables",
           "search_trajectories", "table_references", "twelve_epoch_column", "write_report"]
