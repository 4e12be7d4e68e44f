"""`d2m-nas data`: inspect, download and check datasets"""

from d2m_nas.cli import not_built

HELP = "inspect, download and check datasets"
DESCRIPTION = """Show where a dataset is looked for, download it when allowed, and print its size, classes and validation split."""
WRITES_RUN_DIR = False


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_built("data", "issue 2")
