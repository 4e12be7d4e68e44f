"""`d2m-nas generate`: write a synthetic training set at any images-per-class budget"""

from d2m_nas.cli import not_built

HELP = "write a synthetic training set at any images-per-class budget"
DESCRIPTION = """Write a synthetic training set file: from a distilled generator at any IPC, or (--method random) a seeded random real subset, the first baseline."""
WRITES_RUN_DIR = True


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_built("generate", "issue 2")
