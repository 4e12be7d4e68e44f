"""Ensembles: several proxies combined into one score by rank averaging.

An ensemble's score of an architecture is the mean, over its components, of the architecture's
percentile among a reference set of architectures scored by the same component:

    p_c(a) = (#{r in R : s_c(r) < s_c(a)} + ½ #{r in R : s_c(r) = s_c(a)}) / |R|

(ties share the mid-percentile; a component whose score is NaN is left out of that architecture's
mean; all NaN gives NaN). Higher is better. When the reference set is the set being ranked — what
`d2m-nas rank` does, with its sample — this is exactly the average rank over the components
(up to a constant), the rule of the training-free "vote" ensembles. A search has no set to rank, so
its ensembles use a fixed seeded reference sample of the space (`reference_size` architectures,
scored once per proxy seed; that cost is charged to the evaluation that computed it).

Components are zero-cost or training-based proxies (a training-based one with its rule:
`synflow+random-subset@tse_e`); a component that names an ensemble stands for its components
(`zc-vote+random-subset@tse_e` is synflow + jacob_cov + snip + the trained rule, each weighted alike,
as the frontier study's ensembles are). Registered ensembles:
    zc-vote   synflow + jacob_cov + snip: the three proxies of the published zero-cost vote
              (Abdelfattah et al., ICLR 2021, which votes pairwise by majority; here rank average)
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Callable, Sequence

import numpy as np

from d2m_nas.errors import UserError
from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore

ENSEMBLES = {"zc-vote": "synflow+jacob_cov+snip"}
RULE = "rank-average"
DEFAULT_REFERENCE_SIZE = 100
Scorer = Callable[[Proxy, str, ProxyContext], ProxyScore]


def is_ensemble_spec(spec: str, defined: dict[str, str] | None = None) -> bool:
    return "+" in spec or spec in ENSEMBLES or spec in (defined or {})


def parse_definitions(texts: Sequence[str]) -> dict[str, str]:
    """`--ensemble NAME=A+B[+C...]` definitions as {name: spec}; one-line UserError when malformed."""
    defined: dict[str, str] = {}
    for text in texts:
        name, sep, spec = str(text).partition("=")
        name, spec = name.strip(), spec.strip()
        if not sep or not name or not spec or "+" in name or "@" in name:
            raise UserError(f"--ensemble must be NAME=PROXY+PROXY[+...], e.g. mix=synflow+random-subset@tse_e; "
                            f"got {text!r}")
        if name in defined or name in ENSEMBLES:
            raise UserError(f"--ensemble defines {name!r} twice (or over a registered ensemble)")
        defined[name] = spec
    return defined


def component_specs(spec: str, defined: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """(the ensemble's name, its component specs as written: a part may name another ensemble,
    which `proxies.ensemble_parts` expands). One-line UserError for a self-naming ensemble, a
    repeated component, or fewer than two components."""
    defined = {**ENSEMBLES, **(defined or {})}
    name, body = (spec, defined[spec]) if spec in defined else (spec, spec)
    parts = [part.strip() for part in body.split("+")]
    if any(not part for part in parts):
        raise UserError(f"ensemble {name!r}: empty component in {body!r}")
    for part in parts:
        if part == name:
            raise UserError(f"ensemble {name!r} names itself")
    if len(parts) < 2:
        raise UserError(f"ensemble {name!r} needs at least two components, got {body!r}")
    if len(set(parts)) != len(parts):
        raise UserError(f"ensemble {name!r} lists a component twice: {body!r}")
    return name, parts


def percentiles(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """p(a) for each value against the reference scores (NaN values stay NaN; NaN references are ignored)."""
    reference = np.sort(reference[~np.isnan(reference)])
    if len(reference) == 0:
        return np.full(len(values), math.nan)
    below = np.searchsorted(reference, values, side="left")
    at_or_below = np.searchsorted(reference, values, side="right")
    out = (below + 0.5 * (at_or_below - below)) / len(reference)
    return np.where(np.isnan(values), math.nan, out)


def rank_average(scores: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Ensemble scores of rows of `scores` (architectures × components) against `reference` (the
    reference architectures × the same components; default: `scores` itself)."""
    scores = np.asarray(scores, dtype=float)
    reference = scores if reference is None else np.asarray(reference, dtype=float)
    columns = np.stack([percentiles(scores[:, c], reference[:, c]) for c in range(scores.shape[1])], axis=1)
    counts = (~np.isnan(columns)).sum(axis=1)
    sums = np.nansum(columns, axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)


def _direct(proxy: Proxy, arch: str, context: ProxyContext) -> ProxyScore:
    return proxy.rescored(proxy.score(arch, proxy.context_for(context)))


class EnsembleProxy(Proxy):
    """Rank average of `components` against a reference set of architectures (see the module)."""

    def __init__(self, name: str, components: list[Proxy], reference_size: int = DEFAULT_REFERENCE_SIZE) -> None:
        if reference_size < 2:
            raise UserError(f"--ensemble-reference must be at least 2, got {reference_size}")
        self.name = name
        self.components = components
        self.reference_size = reference_size
        self.needs_data = any(c.needs_data for c in components)
        self.uses_context_batch = any(c.uses_context_batch for c in components)
        self.scorer: Scorer = _direct  # a search routes component scores through its score cache
        self.reference: list[str] | None = None  # set by a funnel search: rank within its finalists
        self.voters: list[str] | None = None  # set by a stage-wise funnel: the labels that rank (else all)
        self._reference: dict[int, tuple[np.ndarray, float]] = {}  # seed -> (scores, seconds spent)

    @property
    def component_labels(self) -> list[str]:
        return [c.label for c in self.components]

    def config(self) -> dict:
        from d2m_nas.score_cache import proxy_settings

        finalists = {} if self.reference is None else {
            "reference": hashlib.sha256(json.dumps(list(self.reference)).encode()).hexdigest()[:16]}
        if self.voters is not None:
            finalists["voters"] = list(self.voters)
        return finalists | {"rule": RULE, "reference_size": self.reference_size,
                "components": [{"proxy": c.name, "label": c.label, "settings": proxy_settings(c)}
                               | ({"model_options": c.model_options} if c.model_options else {})
                               for c in self.components]}

    def reference_archs(self, context: ProxyContext) -> list[str]:
        if self.reference is not None:
            return list(self.reference)
        return context.space.sample(min(self.reference_size, len(context.space)), context.seed)

    def _component_scores(self, arch: str, context: ProxyContext) -> tuple[np.ndarray, float]:
        results = [self.scorer(c, arch, context) for c in self.components]
        return np.array([r.score for r in results], dtype=float), float(sum(r.seconds for r in results))

    def _score_reference(self, context: ProxyContext) -> float:
        """Score the reference architectures once per seed; the seconds spent now (0 when done)."""
        if context.seed in self._reference:
            return 0.0
        rows = [self._component_scores(a, context) for a in self.reference_archs(context)]
        self._reference[context.seed] = (np.stack([r[0] for r in rows]), sum(r[1] for r in rows))
        return self._reference[context.seed][1]

    def reference_table(self, context: ProxyContext) -> dict[str, list[float]]:
        """Each component's scores over the reference architectures, in their order."""
        self._score_reference(context)
        return dict(zip(self.component_labels, self._reference[context.seed][0].T.tolist()))

    def score(self, arch: str, context: ProxyContext) -> ProxyScore:
        charged = self._score_reference(context)
        reference, _ = self._reference[context.seed]
        values, seconds = self._component_scores(arch, context)
        if arch in self.reference_archs(context):
            seconds = 0.0  # its components' work is the reference's, charged once already
        voting = [i for i, label in enumerate(self.component_labels) if self.voters is None or label in self.voters]
        value = float(rank_average(values[None, voting], reference[:, voting])[0])
        return ProxyScore(value, seconds + charged, {
            "components": dict(zip(self.component_labels, values.tolist())), "reference_seconds": charged})
