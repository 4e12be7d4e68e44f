"""Proxies that score architectures, all behind one interface (`Proxy.score(arch, context)`).

Zero-cost metrics (params, synflow, ...) and training-based proxies, named by their image source
(d2m, d2m-stream, pretrained-generator, random-subset, real-stream, dm). A training-based proxy
may name its score rule after an `@` (`random-subset@tse_e`, see `score_rules`). Ensembles join
proxies with `+` (`synflow+random-subset@tse_e`) or are named (`zc-vote`, or `--ensemble NAME=...`);
see `ensemble`.
"""

from __future__ import annotations

from dataclasses import replace

from d2m_nas.errors import UserError
from d2m_nas.plugins import load_entry_points
from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore
from d2m_nas.proxies.ensemble import (DEFAULT_REFERENCE_SIZE, ENSEMBLES, EnsembleProxy, component_specs,
                                      is_ensemble_spec)
from d2m_nas.proxies.score_rules import DEFAULT_RULE, RULES, check_rule
from d2m_nas.proxies.training import SOURCES as TRAINING_PROXIES
from d2m_nas.proxies.training import TrainingProxy, TrainingProxyConfig
from d2m_nas.proxies.zero_cost import ZERO_COST_METRICS, ZeroCostProxy, score_zero_cost
from search_spaces import zero_cost as _zc


ENTRY_POINT_GROUP = "d2m_nas.proxies"
_REGISTERED: dict[str, type[Proxy]] = {}  # a user's own proxies, by name


def register_proxy(cls: type[Proxy]) -> type[Proxy]:
    """Make a Proxy subclass available to every command as `--proxy NAME` (its `name`), beside the
    built-ins; usable as a class decorator. Packages can register through the entry-point group
    `d2m_nas.proxies` (name = the class), loaded when proxies are first looked up. The results
    cache keys it on its name, `version` and `config()` (else its public attributes)."""
    if not (isinstance(cls, type) and issubclass(cls, Proxy)) or not cls.name:
        raise ValueError(f"register_proxy takes a Proxy subclass with a name, got {cls!r}")
    if cls.name in _REGISTERED or cls.name in ZERO_COST_METRICS or cls.name in TRAINING_PROXIES \
            or cls.name in ENSEMBLES or any(c in cls.name for c in "+@[],"):
        raise ValueError(f"proxy name {cls.name!r} is taken or not a plain name")
    _REGISTERED[cls.name] = cls
    return cls


def _registered() -> dict[str, type[Proxy]]:
    load_entry_points(ENTRY_POINT_GROUP, _REGISTERED, register_proxy)
    return _REGISTERED


def list_proxies() -> list[str]:
    return [*ZERO_COST_METRICS, *TRAINING_PROXIES, *ENSEMBLES, *_registered()]


def proxy_needs_data(spec: str, ensembles: dict[str, str] | None = None) -> bool:
    """Whether the proxy `spec` reads the dataset (so a command knows to load it before building);
    one-line UserError for an unknown proxy or a malformed ensemble."""
    ensemble = ensemble_parts(spec, ensembles)
    if ensemble is not None:
        return any(proxy_needs_data(part) for part in ensemble[1])
    name = split_settings(split_spec(spec)[0])[0]
    if name in _registered():
        return _registered()[name].needs_data
    if name not in ZERO_COST_METRICS and name not in TRAINING_PROXIES:
        raise UserError(f"unknown proxy {name!r}; choose from {', '.join(list_proxies())}, or join them with + "
                        "into an ensemble")
    return name in TRAINING_PROXIES or name in _zc.BATCH_METRICS


def split_spec(spec: str) -> tuple[str, str | None]:
    """`NAME[@RULE]` as (name, rule or None); the name keeps any per-proxy settings (`NAME[k=v,...]`)."""
    name, _, rule = spec.partition("@")
    return name.strip(), (rule.strip() or None) if "@" in spec else None


# What a proxy's spec may set for itself (`random-subset[ipc=10,steps=200]`), over the command's
# --ipc/--steps/...: two budgets of one source, or d2m beside random-subset at other sizes, in one
# run. Training settings apply to training-based proxies; the network size (`channels`, `cells`,
# as --channels/--cells) to any, so zero-cost proxies can score full-size candidates beside a
# training proxy that trains scaled-down ones.
TRAINING_SETTINGS = {"ipc": int, "steps": int, "batch_size": int, "lr": float, "augment": str, "precision": str,
                     "memory_format": str}
MODEL_SETTINGS = {"channels": "channels", "cells": "cells_per_stage"}  # setting -> build option
PER_PROXY_SETTINGS = {**TRAINING_SETTINGS, "channels": int, "cells": int}


def split_settings(name: str) -> tuple[str, dict]:
    """`NAME[key=value,...]` as (NAME, {key: typed value}); one-line UserError when malformed."""
    base, bracket, rest = name.partition("[")
    if not bracket:
        return name.strip(), {}
    if not rest.endswith("]") or not rest[:-1].strip():
        raise UserError(f"{name!r}: per-proxy settings are NAME[key=value,...], e.g. random-subset[ipc=10,steps=200]")
    settings = {}
    for item in rest[:-1].split(","):
        key, equals, value = (part.strip() for part in item.partition("="))
        key = key.replace("-", "_")
        if key not in PER_PROXY_SETTINGS:
            raise UserError(f"{name!r}: unknown setting {key!r}; a proxy may set {', '.join(PER_PROXY_SETTINGS)}")
        try:
            settings[key] = PER_PROXY_SETTINGS[key](value) if equals and value else None
        except ValueError:
            settings[key] = None
        if settings[key] is None:
            raise UserError(f"{name!r}: {key} needs a {PER_PROXY_SETTINGS[key].__name__} value, got {value!r}")
    return base.strip(), settings


def settings_name(base: str, settings: dict) -> str:
    """The canonical `NAME[key=value,...]` (keys sorted) that results are reported under."""
    return base + ("[" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in sorted(settings.items())) + "]" if settings else "")


def ensemble_parts(spec: str, ensembles: dict[str, str] | None = None,
                   _within: tuple[str, ...] = ()) -> tuple[str, list[str]] | None:
    """(name, component specs) when `spec` is an ensemble, else None. A named ensemble may carry
    settings for all its components, `zc-vote[channels=16,cells=5]` (a component's own win), and a
    component naming an ensemble stands for its components (`zc-vote+random-subset@tse_e`)."""
    if is_ensemble_spec(spec, ensembles):
        name, parts = component_specs(spec, ensembles)
        settings: dict = {}
    else:
        base, settings = split_settings(split_spec(spec)[0])
        if not settings or not is_ensemble_spec(base, ensembles):
            return None
        if "@" in spec:
            raise UserError(f"{spec!r}: an ensemble has no score rule of its own; give each component its @RULE")
        name, parts = component_specs(base, ensembles)
    if name in _within:
        raise UserError(f"ensemble {name!r} contains itself (through {' -> '.join(_within)})")
    flat = []
    for part in parts:
        inner = ensemble_parts(part, ensembles, (*_within, name))
        flat += inner[1] if inner is not None else [part]
    merged = []
    for part in flat:
        part_name, rule = split_spec(part)
        part_base, own = split_settings(part_name)
        merged.append(settings_name(part_base, {**settings, **own}) + (f"@{rule}" if rule else ""))
    if len(set(merged)) != len(merged):
        raise UserError(f"ensemble {name!r} lists a component twice once expanded: {'+'.join(merged)}")
    return (settings_name(name, settings) if settings else name), merged


def create_proxy(spec: str, training: TrainingProxyConfig | None = None, rule: str = DEFAULT_RULE,
                 ensembles: dict[str, str] | None = None, reference_size: int = DEFAULT_REFERENCE_SIZE) -> Proxy:
    """A proxy by `NAME[@RULE]`, or an ensemble (`A+B[+...]`, a registered name or one of
    `ensembles`); training-based ones take their settings from `training` (source set to NAME) and
    score with RULE, else `rule`. One-line UserError for an unknown name or rule, a rule given to
    a proxy that records none, or a malformed ensemble."""
    ensemble = ensemble_parts(spec, ensembles)
    if ensemble is not None:
        name, parts = ensemble
        return EnsembleProxy(name, [create_proxy(part, training, rule) for part in parts], reference_size)
    name, own_rule = split_spec(spec)
    name, settings = split_settings(name)
    model_options = {MODEL_SETTINGS[k]: v for k, v in settings.items() if k in MODEL_SETTINGS}
    for key in MODEL_SETTINGS:
        if settings.get(key, 1) < 1:
            raise UserError(f"{spec!r}: {key} must be at least 1, got {settings[key]}")
    if name in ZERO_COST_METRICS:
        if own_rule is not None or len(model_options) < len(settings):
            raise UserError(f"{spec!r}: score rules ({', '.join(RULES)}) and training settings apply to "
                            f"training-based proxies only; {name} is zero-cost (it may set channels and cells)")
        proxy = ZeroCostProxy(name)
    elif name in _registered():
        if own_rule is not None or settings:
            raise UserError(f"{spec!r}: score rules and settings apply to the built-in proxies only")
        return _registered()[name]()
    elif name in TRAINING_PROXIES:
        training_settings = {k: v for k, v in settings.items() if k in TRAINING_SETTINGS}
        proxy = TrainingProxy(replace(training or TrainingProxyConfig(), source=name, **training_settings),
                              check_rule(own_rule or rule))
    else:
        raise UserError(f"unknown proxy {name!r}; choose from {', '.join(list_proxies())}")
    proxy.name = settings_name(name, settings)  # two budgets or sizes of one proxy report apart
    proxy.model_options = model_options
    return proxy


def score_architecture(arch: str, proxies: list[Proxy], context: ProxyContext) -> dict[str, ProxyScore]:
    """Scores of one architecture by several proxies; zero-cost ones of one network size share one
    model build."""
    scores: dict[str, ProxyScore] = {}
    builds: dict[str, tuple[ProxyContext, list[ZeroCostProxy]]] = {}
    for proxy in proxies:
        own = proxy.context_for(context)
        if isinstance(proxy, ZeroCostProxy):
            builds.setdefault(repr(sorted(own.model_options.items())), (own, []))[1].append(proxy)
        else:
            scores[proxy.name] = proxy.score(arch, own)
    for own, group in builds.values():
        metrics = score_zero_cost(arch, [p.metric for p in group], own)
        scores.update({p.name: metrics[p.metric] for p in group})
    return {p.name: scores[p.name] for p in proxies}


__all__ = ["DEFAULT_RULE", "ENSEMBLES", "EnsembleProxy", "Proxy", "ProxyContext", "ProxyScore", "RULES",
           "TRAINING_PROXIES", "TrainingProxy", "TrainingProxyConfig", "ZERO_COST_METRICS", "ZeroCostProxy",
           "create_proxy", "ensemble_parts", "list_proxies",
           "proxy_needs_data", "register_proxy", "score_architecture", "score_zero_cost", "split_settings", "split_spec"]
