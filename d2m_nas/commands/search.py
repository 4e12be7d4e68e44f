"""`d2m-nas search`: search an architecture space with Optuna or NNI using a cheap proxy"""

from d2m_nas.cli import not_built

HELP = "search an architecture space with Optuna or NNI using a cheap proxy"
DESCRIPTION = """Ask a search backend (Optuna or NNI) for architectures, score each with a proxy (distilled data, random real subset, DM or zero-cost), and record every evaluation; resumable."""
WRITES_RUN_DIR = True


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_built("search", "issue 6")
