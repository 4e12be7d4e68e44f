"""`d2m-nas report`: summarise run directories: correlation tables in CSV, JSON and Markdown"""

from d2m_nas.cli import not_built

HELP = "summarise run directories: correlation tables in CSV, JSON and Markdown"
DESCRIPTION = """Collect results.csv from one or more run directories and write summary.json and report.md comparing every proxy side by side."""
WRITES_RUN_DIR = False


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_built("report", "issue 5")
