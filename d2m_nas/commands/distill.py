"""`d2m-nas distill`: distill a dataset into a conditional generator (D2M) or a DM image set"""

from d2m_nas.cli import not_built

HELP = "distill a dataset into a conditional generator (D2M) or a DM image set"
DESCRIPTION = """Pre-train a class-conditional generator on the real dataset (unless --generator is given), then distill the dataset into its weights with D2M's embedding and prediction matching."""
WRITES_RUN_DIR = True


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_built("distill", "issue 3")
