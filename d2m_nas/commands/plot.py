"""`d2m-nas plot`: draw figures of run directories (PNG and PDF)"""

from d2m_nas.cli import not_built

HELP = "draw figures of run directories (PNG and PDF)"
DESCRIPTION = """Proxy-vs-truth scatter, correlation vs cost, generated image grids, distillation loss curves and search trajectories."""
WRITES_RUN_DIR = False


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_built("plot", "issue 5")
