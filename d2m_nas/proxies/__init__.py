"""Proxies that score architectures, all behind one interface (`Proxy.score(arch, context)`).

Zero-cost metrics (params, synflow, ...) and training-based proxies, named by their image source
(d2m, d2m-stream, pretrained-generator, random-subset, real-stream, dm).
"""

from __future__ import annotations

from dataclasses import replace

from d2m_nas.errors import UserError
from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore
from d2m_nas.proxies.training import SOURCES as TRAINING_PROXIES
from d2m_nas.proxies.training import TrainingProxy, TrainingProxyConfig
from d2m_nas.proxies.zero_cost import ZERO_COST_METRICS, ZeroCostProxy, score_zero_cost
from search_spaces import zero_cost as _zc


def list_proxies() -> list[str]:
    return [*ZERO_COST_METRICS, *TRAINING_PROXIES]


def proxy_needs_data(name: str) -> bool:
    """Whether the named proxy reads the dataset (so a command knows to load it before building)."""
    return name in TRAINING_PROXIES or name in _zc.BATCH_METRICS


def create_proxy(name: str, training: TrainingProxyConfig | None = None) -> Proxy:
    """A proxy by name; training-based ones take their settings from `training` (source set to `name`)."""
    if name in ZERO_COST_METRICS:
        return ZeroCostProxy(name)
    if name in TRAINING_PROXIES:
        return TrainingProxy(replace(training or TrainingProxyConfig(), source=name))
    raise UserError(f"unknown proxy {name!r}; choose from {', '.join(list_proxies())}")


def score_architecture(arch: str, proxies: list[Proxy], context: ProxyContext) -> dict[str, ProxyScore]:
    """Scores of one architecture by several proxies; zero-cost ones share one model build."""
    zero_cost = [p.name for p in proxies if isinstance(p, ZeroCostProxy)]
    scores = score_zero_cost(arch, zero_cost, context) if zero_cost else {}
    for proxy in proxies:
        if not isinstance(proxy, ZeroCostProxy):
            scores[proxy.name] = proxy.score(arch, context)
    return {p.name: scores[p.name] for p in proxies}


__all__ = ["Proxy", "ProxyContext", "ProxyScore", "TRAINING_PROXIES", "TrainingProxy", "TrainingProxyConfig",
           "ZERO_COST_METRICS", "ZeroCostProxy", "create_proxy", "list_proxies", "proxy_needs_data",
           "score_architecture", "score_zero_cost"]
