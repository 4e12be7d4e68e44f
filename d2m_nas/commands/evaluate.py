"""`d2m-nas evaluate`: train ConvNet-3 on a synthetic set with the field's protocol and report test accuracy"""

from d2m_nas.cli import not_built

HELP = "train ConvNet-3 on a synthetic set with the field's protocol and report test accuracy"
DESCRIPTION = """Train the evaluation ConvNet on a synthetic set (SGD 0.01, momentum 0.9, wd 5e-4, batch 256, DSA, 1000 epochs, lr x0.1 at half) and report mean +- std test accuracy over --runs runs."""
WRITES_RUN_DIR = True


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_built("evaluate", "issue 2")
