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
