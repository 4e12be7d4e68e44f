"""One module per subcommand. Each defines HELP (one line), DESCRIPTION, add_arguments(parser)
and run(args) -> int; WRITES_RUN_DIR says whether the common --out run directory applies."""

COMMANDS = ("data", "distill", "generate", "evaluate", "search", "rank", "report", "plot")
