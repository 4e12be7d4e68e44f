"""`d2m-nas report`: summarise run directories: correlation tables in CSV, JSON and Markdown"""

from __future__ import annotations

from pathlib import Path

from d2m_nas.commands import add_reference_options, add_top_k_option, output_dir, parse_top_k

HELP = "summarise run directories: correlation tables in CSV, JSON and Markdown"
DESCRIPTION = """Collect results.csv from one or more `d2m-nas rank` or `d2m-nas search` run directories, or a
shared study from its storage (--storage URL: what `rank` or `search` shared through --storage or
--workers, read from any machine, whole, while it runs or after), and write OUT/results.csv (every
evaluation, with a `run` column), OUT/summary.json and OUT/report.md.

Rankings: one row per (run, proxy): architectures, seeds, Spearman and Kendall of the
per-architecture mean score with 95% bootstrap intervals, per-seed Spearman mean ± std, top-k
overlap, the true accuracy of the proxy's top pick and its regret within the sample, seconds per
architecture (and device seconds and steps where recorded); next to them the 12-epoch full-data
column of the NAS-Bench-201 table for the same architectures (a free reference: read from the
table, not measured). Searches: per (run, backend, strategy, proxy), over its studies (seeds):
the true accuracy of the incumbent mean ± std, the best true accuracy seen, trials and seconds,
then each study's pick, with the table optimum and the 12-epoch column's pick as references (the
same summaries `rank` and `search` write). Results with different ground-truth columns get
separate tables.

The table is read from --ground-truth-file, else <data-root>/nb201/nb201_ground_truth.csv; without
it the table references are left out (and the report says so). A search read from its storage takes
its true accuracies from that table (the study stores only the column's name).

examples:
  d2m-nas report runs/rank/synflow runs/rank/d2m-ipc10
  d2m-nas report runs/search/* --out runs/report-search
  d2m-nas report --storage postgresql://user:pw@db-host/nas --out runs/report-shared
  d2m-nas report --storage sqlite:///runs/search/NAME/study.db --out runs/report-search-stored
"""
WRITES_RUN_DIR = False


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR",
                        help="run directories holding a results.csv of `d2m-nas rank` or `d2m-nas search`")
    parser.add_argument("--storage", metavar="URL",
                        help="also read a shared study from this Optuna storage (the --storage of `rank` or "
                             "`search`; a `rank --workers` run's is sqlite:///RUN_DIR/work.db, a search's "
                             "sqlite:///RUN_DIR/study.db): the rows of every finished evaluation, whichever "
                             "process or machine made it")
    parser.add_argument("--study", metavar="NAME", help="the study to read from --storage: a rank study, or a "
                        "search study with its repeats (NAME-seedS); needed when the storage holds several rank "
                        "studies or both kinds (the error lists them); without it, all the search studies")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where to write results.csv, summary.json and report.md (default: FIRST_RUN_DIR/report; "
                             "required with --storage alone; never an input directory, whose own results.csv and "
                             "summary.json it would overwrite)")
    add_reference_options(parser)
    add_top_k_option(parser)
    parser.add_argument("--baseline", default="synflow,zc-vote", metavar="PROXY[,PROXY...]",
                        help="proxies every ranking is paired against (paired bootstrap CI of the ρ difference; "
                             "default: synflow,zc-vote, where present)")


def run(args) -> int:
    from d2m_nas.errors import UserError
    from d2m_nas.report import build_report, load_runs, load_study_run, load_table, write_report
    from d2m_nas.settings import resolve_data_root

    if args.study is not None and args.storage is None:
        raise UserError("--study names a study in --storage URL; give --storage too")
    if not args.run_dirs and args.storage is None:
        raise UserError("give run directories, or --storage URL of a shared rank study")
    if not args.run_dirs and args.out is None:
        raise UserError("--storage alone needs --out DIR (where to write the report)")
    top_k = parse_top_k(args.top_k)
    runs = load_runs(args.run_dirs)
    table, note = load_table(args.ground_truth_file, resolve_data_root(args.data_root))
    if args.storage is not None:
        runs.append(load_study_run(args.storage, args.study, table))  # a search's truths come from the table
        if runs[-1].label in {run.label for run in runs[:-1]}:
            raise UserError(f"a run directory is named like the study {runs[-1].label}; rename it")
    out = output_dir(args.out, args.run_dirs, "report")
    baselines = tuple(name.strip() for name in str(args.baseline).split(",") if name.strip())
    report = build_report(runs, table, note, top_k=top_k, bootstrap=args.bootstrap, seed=args.seed,
                          baselines=baselines)
    paths = write_report(runs, out, report)
    print(paths[2].read_text(), end="")
    print("wrote " + ", ".join(map(str, paths)))
    return 0
