"""`d2m-nas plot`: draw figures of run directories (PNG and PDF)"""

from __future__ import annotations

from pathlib import Path

from d2m_nas.commands import add_reference_options, output_dir

HELP = "draw figures of run directories (PNG and PDF)"
DESCRIPTION = """Draw whatever the run directories support into OUT (default FIRST_RUN_DIR/plots) and print the
files written:
- rank results.csv: per proxy, score vs true accuracy with n and Spearman [95% CI] in the title;
  correlation vs cost (seconds per architecture, log axis) with CI bars, one point per (run, proxy):
  give several rank directories (a budget sweep) to see the curve, with the 12-epoch full-data
  column of the NAS-Bench-201 table as a reference line when the table is found;
- search results.csv: best true accuracy found vs evaluations and vs seconds per backend and
  strategy (mean ± std over seeds), with the table optimum and the 12-epoch column's pick;
- synthetic.pt, generator.pt, generator_pretrained.pt: image grids per class (a generator draws
  10 images per class with seed 0);
- losses.csv, pretrain_losses.csv: distillation loss curves.

examples:
  d2m-nas plot runs/distill/cifar10-cpu
  d2m-nas plot runs/rank/ipc10 runs/rank/ipc50 runs/rank/zero-cost --out runs/plots-sweep
  d2m-nas plot runs/search/* --out runs/plots-search --format png
"""
WRITES_RUN_DIR = False


def add_arguments(parser) -> None:
    from d2m_nas.plots import FORMATS

    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run directories of rank, search, distill or generate")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where to write the figures (default: FIRST_RUN_DIR/plots)")
    parser.add_argument("--format", default="png,pdf", metavar="FMT[,FMT...]",
                        help=f"file formats, from {', '.join(FORMATS)} (default: png,pdf)")
    add_reference_options(parser)


def run(args) -> int:
    from d2m_nas.devices import resolve_device
    from d2m_nas.errors import UserError
    from d2m_nas.plots import FORMATS, plot_runs
    from d2m_nas.report import load_table
    from d2m_nas.settings import resolve_data_root

    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in str(args.format).split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise UserError(f"--format must list formats from {', '.join(FORMATS)}, got {args.format!r}")
    out = output_dir(args.out, args.run_dirs, "plots")
    table, _ = load_table(args.ground_truth_file, resolve_data_root(args.data_root))
    files = plot_runs(args.run_dirs, out, formats, table=table, bootstrap=args.bootstrap, seed=args.seed,
                      device=resolve_device(args.device))
    for path in files:
        print(path)
    return 0
