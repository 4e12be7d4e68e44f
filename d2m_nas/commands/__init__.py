"""One module per subcommand. Each defines HELP (one line), DESCRIPTION, add_arguments(parser)
and run(args) -> int; WRITES_RUN_DIR says whether the common --out run directory applies."""

from d2m_nas.settings import DEFAULT_VAL_PER_CLASS

COMMANDS = ("data", "distill", "generate", "evaluate", "search", "rank", "report", "plot")


def add_split_options(parser) -> None:
    """--val-per-class and --split-seed: the one train/validation split every command shares, so
    that nothing trains on the images a proxy scores on."""
    parser.add_argument("--val-per-class", type=int, default=DEFAULT_VAL_PER_CLASS, metavar="N",
                        help="training images per class held out for validation; never trained on "
                             f"(default: {DEFAULT_VAL_PER_CLASS})")
    parser.add_argument("--split-seed", type=int, default=0, metavar="SEED",
                        help="seed of the train/validation split; keep it equal across commands (default: 0)")


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
