"""Zero-cost proxies: params, flops, synflow, snip, grad_norm, jacob_cov, NASWOT.

Several of them can be computed from one model build and one forward pass; `score_zero_cost`
does that, and each `ZeroCostProxy.score` is the single-metric case of it. When metrics share
work, each one's `seconds` is its own part (build and the shared pass are split evenly among
the metrics that used them), so the per-proxy seconds add up to the real total.
"""

from __future__ import annotations

from search_spaces import zero_cost as zc

from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore, Timer

ZERO_COST_METRICS = ("params", "flops", "synflow", "snip", "grad_norm", "jacob_cov", "naswot")


class ZeroCostProxy(Proxy):
    def __init__(self, metric: str) -> None:
        if metric not in ZERO_COST_METRICS:
            raise ValueError(f"unknown zero-cost metric {metric!r}; choose from {', '.join(ZERO_COST_METRICS)}")
        self.name = metric  # may gain per-proxy settings (`synflow[channels=16]`); the metric stays
        self.metric = metric
        self.needs_data = metric in zc.BATCH_METRICS

    @property
    def registered_name(self) -> str:
        return self.metric

    def config(self) -> dict:
        return {}  # a metric has no settings; its network size is in the key's model options

    def score(self, arch: str, context: ProxyContext) -> ProxyScore:
        return score_zero_cost(arch, [self.metric], context)[self.metric]


def score_zero_cost(arch: str, metrics: list[str], context: ProxyContext) -> dict[str, ProxyScore]:
    """All requested zero-cost metrics of `arch` from one model build (float32, train mode)."""
    scores: dict[str, ProxyScore] = {}
    with Timer(context.device) as build_time:
        model = context.build(arch)
    build_share = build_time.seconds / len(metrics)
    shape = context.input_shape
    separate = {"params": lambda: zc.count_params(model),
                "flops": lambda: zc.count_flops(model, shape),
                "synflow": lambda: zc.synflow(context.space.without_batchnorm(model, arch), shape)}
    for metric in metrics:
        if metric in separate:
            with Timer(context.device) as t:
                value = separate[metric]()
            scores[metric] = ProxyScore(value, t.seconds + build_share)
    batch_metrics = tuple(m for m in metrics if m in zc.BATCH_METRICS)
    if batch_metrics:
        images, labels = context.batch()
        with Timer(context.device) as t:
            values = zc.batch_metrics(model, images, labels, batch_metrics)
        for metric, value in values.items():
            scores[metric] = ProxyScore(value, t.seconds / len(batch_metrics) + build_share,
                                        {"shared_pass": ",".join(batch_metrics)} if len(batch_metrics) > 1 else {})
    return {metric: scores[metric] for metric in metrics}
