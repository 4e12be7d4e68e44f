"""Command-line options of the training-based proxies, shared by `rank` and `search`."""

from __future__ import annotations

from d2m_nas.commands.option_types import COUNT, POSITIVE
from d2m_nas.proxies.ensemble import DEFAULT_REFERENCE_SIZE
from d2m_nas.proxies.score_rules import DEFAULT_RULE, RULES
from d2m_nas.proxies.training import AUGMENTATIONS, TrainingProxyConfig

_DEFAULTS = TrainingProxyConfig()


def add_proxy_options(parser) -> None:
    """The group "training-based proxies": where the images come from and the training budget."""
    group = parser.add_argument_group(
        "training-based proxies", "d2m, d2m-stream, pretrained-generator (need --generator), random-subset, "
        "real-stream, dm (needs --dm-set): train the candidate for --steps SGD steps, score it on the validation split")
    group.add_argument("--generator", metavar="RUN",
                       help="a `d2m-nas distill` run directory (or generator checkpoint) for d2m, d2m-stream and "
                            "pretrained-generator")
    group.add_argument("--dm-set", metavar="FILE", help="a synthetic-set file (or a run directory holding "
                       "synthetic.pt) for the dm proxy; its IPC is the file's")
    group.add_argument("--ipc", type=COUNT, default=_DEFAULTS.ipc, metavar="K",
                       help=f"images per class of the fixed sets (d2m, pretrained-generator, random-subset) "
                            f"(default: {_DEFAULTS.ipc})")
    group.add_argument("--steps", type=COUNT, default=_DEFAULTS.steps, metavar="N",
                       help=f"optimiser steps per architecture (default: {_DEFAULTS.steps})")
    group.add_argument("--proxy-batch-size", type=COUNT, default=_DEFAULTS.batch_size, metavar="N",
                       help=f"training minibatch size (default: {_DEFAULTS.batch_size}; at most the fixed set's size)")
    group.add_argument("--proxy-lr", type=POSITIVE, default=_DEFAULTS.lr, metavar="LR",
                       help=f"SGD learning rate (Nesterov, cosine to 0 over the steps) (default: {_DEFAULTS.lr})")
    group.add_argument("--augment", choices=AUGMENTATIONS, default=_DEFAULTS.augment,
                       help=f"training augmentation (default: {_DEFAULTS.augment})")
    group.add_argument("--score", choices=list(RULES), default=DEFAULT_RULE, metavar="RULE",
                       help="score rule of the training-based proxies named without @RULE; every rule is "
                            "recorded from the same run whichever is chosen, and higher is better for all: "
                            + "; ".join(f"{name}: {text}" for name, text in RULES.items()).replace("%", "%%")
                            + f" (default: {DEFAULT_RULE})")
    group.add_argument("--ensemble", action="append", default=[], metavar="NAME=A+B[+...]",
                       help="define a named ensemble of proxies (repeatable); --proxy A+B names one inline, and "
                            "zc-vote (synflow+jacob_cov+snip) is registered. The score is the mean percentile of "
                            "the components: over the sample in rank, against --ensemble-reference architectures "
                            "in search")
    group.add_argument("--ensemble-reference", type=COUNT, default=DEFAULT_REFERENCE_SIZE, metavar="K",
                       help="search: the seeded sample of architectures an ensemble's components are ranked "
                            f"against, scored once per seed (default: {DEFAULT_REFERENCE_SIZE})")
    group.add_argument("--checkpoints", default=",".join(f"{f:g}" for f in _DEFAULTS.checkpoints),
                       metavar="F[,F...]", help="fractions of --steps after which the validation split is scored: "
                       "the learning curve, and the intermediate scores a pruner sees (default: "
                       f"{','.join(f'{f:g}' for f in _DEFAULTS.checkpoints)})")


def training_config(args) -> TrainingProxyConfig:
    """The training-proxy settings the options give (the source is set per proxy name)."""
    from d2m_nas.errors import UserError

    try:
        checkpoints = tuple(float(f) for f in str(args.checkpoints).split(",") if f.strip())
    except ValueError:
        raise UserError(f"--checkpoints must be fractions separated by commas, got {args.checkpoints!r}") from None
    return TrainingProxyConfig(ipc=args.ipc, steps=args.steps, batch_size=args.proxy_batch_size, lr=args.proxy_lr,
                               augment=args.augment, generator=args.generator, dm_set=args.dm_set,
                               checkpoints=checkpoints)


def build_proxies(names: list[str], args, dataset=None, train_indices=None) -> list:
    """The named proxies, checked: one-line UserError for an unknown name, a missing or corrupt
    generator or DM file, a generator or set made for another dataset, an --ipc the training part
    of the split cannot supply, or a non-positive budget. `dataset` and `train_indices` (the
    training part of the split) are needed when any training-based proxy is named."""
    from d2m_nas.proxies import TrainingProxy, create_proxy
    from d2m_nas.proxies.ensemble import parse_definitions

    config = training_config(args)
    ensembles = parse_definitions(args.ensemble)
    proxies = [create_proxy(name, config, args.score, ensembles, args.ensemble_reference) for name in names]
    for proxy in [c for p in proxies for c in getattr(p, "components", [p])]:
        if isinstance(proxy, TrainingProxy):
            if dataset is None:
                raise ValueError(f"build_proxies: the {proxy.name} proxy needs the dataset to be checked against")
            proxy.check(dataset, train_indices)
    return proxies
