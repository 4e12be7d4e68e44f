"""Command-line options of the training-based proxies, shared by `rank` and `search`."""

from __future__ import annotations

from d2m_nas.commands.config_options import add_config_options, config_from_args
from d2m_nas.commands.option_types import COUNT
from d2m_nas.proxies.ensemble import DEFAULT_REFERENCE_SIZE
from d2m_nas.proxies.score_rules import DEFAULT_RULE, RULES
from d2m_nas.proxies.training import TrainingProxyConfig


def add_proxy_options(parser) -> None:
    """The group "training-based proxies": where the images come from and the training budget."""
    group = parser.add_argument_group(
        "training-based proxies", "d2m, d2m-stream, pretrained-generator (need --generator), random-subset, "
        "real-stream, dm (needs --dm-set): train the candidate for --steps SGD steps, score it on the validation split")
    add_config_options(group, TrainingProxyConfig())  # --ipc, --steps, --proxy-batch-size, --proxy-lr, ...
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


def training_config(args) -> TrainingProxyConfig:
    """The training-proxy settings the options give (the source is set per proxy name)."""
    return config_from_args(TrainingProxyConfig(), args)


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
