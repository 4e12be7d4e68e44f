"""One module per subcommand. Each defines HELP (one line), DESCRIPTION, add_arguments(parser)
and run(args) -> int; WRITES_RUN_DIR says whether the common --out run directory applies."""

from d2m_nas.commands.option_types import COUNT, WHOLE
from d2m_nas.settings import DEFAULT_VAL_PER_CLASS

COMMANDS = ("data", "distill", "generate", "evaluate", "search", "rank", "report", "plot")


def add_split_options(parser) -> None:
    """--val-per-class and --split-seed: the one train/validation split every command shares, so
    that nothing trains on the images a proxy scores on."""
    parser.add_argument("--val-per-class", type=WHOLE, default=DEFAULT_VAL_PER_CLASS, metavar="N",
                        help="training images per class held out for validation; never trained on "
                             f"(default: {DEFAULT_VAL_PER_CLASS})")
    parser.add_argument("--split-seed", type=WHOLE, default=0, metavar="SEED",
                        help="seed of the train/validation split; keep it equal across commands (default: 0)")


def add_download_option(parser) -> None:
    parser.add_argument("--download", action="store_true",
                        help="download the dataset into the data root if it is not there "
                             "(off by default: nothing touches the network unless asked)")


def add_size_options(parser) -> None:
    """--channels and --cells: the candidates' size, for spaces that scale (SearchSpace.size_options)."""
    parser.add_argument("--channels", type=COUNT, default=16, help="nasbench201: initial channels C (default: 16; "
                        "training-based proxies usually train scaled-down candidates, e.g. 8)")
    parser.add_argument("--cells", type=COUNT, default=5, help="nasbench201: cells per stage N (default: 5; e.g. 1 for "
                        "training-based proxies)")


def size_options(space, args) -> dict:
    """The build options --channels/--cells ask for, as far as the space takes them."""
    requested = {"channels": args.channels, "cells_per_stage": args.cells}
    return {name: value for name, value in requested.items() if name in space.size_options}


def proxy_context(args, device, space, dataset, train_indices, val_indices):
    """The proxies' context of a rank or search command, built alike by the command and its --workers."""
    from d2m_nas.proxies import ProxyContext

    return ProxyContext(space=space, dataset=dataset, device=device, seed=args.seed, batch_size=args.batch_size,
                        model_options=size_options(space, args), train_indices=train_indices, val_indices=val_indices)


def add_reference_options(parser) -> None:
    """--ground-truth-file and --bootstrap: what report and plot read their references and CIs with."""
    from pathlib import Path

    parser.add_argument("--ground-truth-file", type=Path, metavar="CSV",
                        help="NAS-Bench-201 table for the references "
                             "(default: <data-root>/nb201/nb201_ground_truth.csv)")
    parser.add_argument("--bootstrap", type=WHOLE, default=1000, metavar="N",
                        help="bootstrap resamples for the 95%% intervals (default: 1000); the seed is --seed")


def output_dir(out, run_dirs: list, default_name: str):
    """--out, or FIRST_RUN_DIR/<default_name>; refuses an input directory."""
    from pathlib import Path

    from d2m_nas.errors import UserError

    out = Path(out) if out is not None else Path(run_dirs[0]) / default_name
    if out.resolve() in {Path(p).resolve() for p in run_dirs}:
        raise UserError(f"--out {out} is an input run directory; writing there would overwrite its results.csv "
                        "and summary.json: choose another --out")
    return out


def space_named(name: str):
    """The search space --space names; one-line UserError for an unknown one."""
    from d2m_nas.errors import UserError
    from search_spaces.registry import create_space

    try:
        return create_space(name)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def read_ground_truth(args, data_root):
    """(table, column name, truths) of --ground-truth in --ground-truth-file (default: the data
    root's NAS-Bench-201 table), its read recorded; one-line UserError for a bad file or key."""
    from d2m_nas.errors import UserError
    from d2m_nas.provenance import record_read
    from search_spaces.ground_truth import GroundTruth, GroundTruthError, default_table_path

    path = args.ground_truth_file or default_table_path(data_root)
    try:
        table = GroundTruth.from_csv(path)
        record_read(path)
        return table, table.column_name(args.ground_truth), table.column(args.ground_truth)
    except GroundTruthError as exc:
        raise UserError(str(exc)) from None


def check_cache(location: str | None) -> None:
    """A --cache that cannot be opened (unreachable server, not a cache) is refused before the run
    directory is made."""
    from d2m_nas.errors import UserError
    from d2m_nas.score_cache import CacheError, ScoreCache

    if location:
        try:
            ScoreCache(location).close()
        except CacheError as exc:
            raise UserError(str(exc)) from None


def add_top_k_option(parser) -> None:
    parser.add_argument("--top-k", default="0.1,10", metavar="K[,K...]",
                        help="top-k sets: counts, or fractions below 1 (default: 0.1,10)")


def parse_top_k(text: str) -> tuple:
    """--top-k as a tuple of counts (ints) and fractions (floats below 1); one-line UserError otherwise."""
    from d2m_nas.errors import UserError

    try:
        values = tuple(float(k) if float(k) < 1 else int(float(k)) for k in str(text).split(",") if k.strip())
    except ValueError:
        raise UserError(f"--top-k must be numbers separated by commas, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UserError(f"--top-k must be positive counts or fractions, got {text!r}")
    return values


def warn_if_other_dataset(dataset: str, ground_truth, key: str) -> None:
    """Proxies that train on one dataset's images judged by another's accuracies: allowed (a transfer
    study), but rarely meant, so say so."""
    import sys

    if ground_truth.kind != "nasbench201-table":
        return  # a results file as ground truth names no dataset
    truth_dataset = str(key).split(":")[0].lower()
    if truth_dataset != dataset.lower():
        print(f"d2m-nas: warning: the proxies read {dataset} images but the ground truth {key} is "
              f"{truth_dataset}'s accuracy", file=sys.stderr)
