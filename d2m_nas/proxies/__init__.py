"""Proxies that score architectures, all behind one interface (`Proxy.score(arch, context)`)."""

from __future__ import annotations

from d2m_nas.errors import UserError
from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore
from d2m_nas.proxies.zero_cost import ZERO_COST_METRICS, ZeroCostProxy, score_zero_cost


def list_proxies() -> list[str]:
    return list(ZERO_COST_METRICS)


def create_proxy(name: str) -> Proxy:
    if name in ZERO_COST_METRICS:
        return ZeroCostProxy(name)
    raise UserError(f"unknown proxy {name!r}; choose from {', '.join(list_proxies())}")


def score_architecture(arch: str, proxies: list[Proxy], context: ProxyContext) -> dict[str, ProxyScore]:
    """Scores of one architecture by several proxies; zero-cost ones share one model build."""
    zero_cost = [p.name for p in proxies if isinstance(p, ZeroCostProxy)]
    scores = score_zero_cost(arch, zero_cost, context) if zero_cost else {}
    for proxy in proxies:
        if not isinstance(proxy, ZeroCostProxy):
            scores[proxy.name] = proxy.score(arch, context)
    return {p.name: scores[p.name] for p in proxies}


__all__ = ["Proxy", "ProxyContext", "ProxyScore", "ZERO_COST_METRICS", "ZeroCostProxy", "create_proxy",
           "list_proxies", "score_architecture", "score_zero_cost"]
