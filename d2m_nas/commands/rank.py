"""`d2m-nas rank`: score a seeded sample of architectures with a proxy and correlate with ground truth"""

from d2m_nas.cli import not_built

HELP = "score a seeded sample of architectures with a proxy and correlate with ground truth"
DESCRIPTION = """Score K architectures of a space with a proxy and report Spearman and Kendall (with bootstrap CIs), top-k overlap and regret against a named ground-truth column."""
WRITES_RUN_DIR = True


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_built("rank", "issue 4")
