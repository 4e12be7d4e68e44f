"""How well a proxy's ranking agrees with the ground truth: the one function every report uses.

All statistics are signed (a proxy that ranks backwards gets a negative correlation, never
`abs()`); higher scores and higher truths are taken as better. Pairs where either value is NaN
are dropped and counted. Undefined statistics (fewer than 2 pairs, a constant input) are NaN
with a reason instead of an exception. Kendall's tau is tau-b (ties in either variable
corrected), Spearman's rho uses average ranks for ties; both come from scipy.

Ties, one policy: a statistic that selects architectures by score takes the expectation over a
uniformly random tie-break, so it never depends on row order. Regret uses the mean truth of the
architectures tied at the best score; top-k overlap counts an architecture tied across the k-th
place by its chance of being chosen (`top_membership`). Training proxies scored by validation
accuracy on a few thousand images tie often, so this matters. (A search must return one
architecture: its incumbent is the earliest trial among those tied at the best score, and its
summary says how many were tied.)
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from scipy import stats


def _undefined_reason(x: np.ndarray, y: np.ndarray) -> str | None:
    if len(x) < 2:
        return f"fewer than 2 valid pairs ({len(x)})"
    if np.all(x == x[0]):
        return "the scores are constant"
    if np.all(y == y[0]):
        return "the ground truth is constant"
    return None


def _rho_tau(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if _undefined_reason(x, y):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(x, y).statistic
        tau = stats.kendalltau(x, y, variant="b").statistic
    return float(rho), float(tau)


def _stat(value: float, low: float = math.nan, high: float = math.nan, reason: str | None = None) -> dict:
    out = {"value": value, "ci_low": low, "ci_high": high}
    if reason:
        out["undefined"] = reason
    return out


def _top_count(k: int | float, n: int) -> int:
    return max(1, int(round(k * n))) if isinstance(k, float) and 0 < k < 1 else int(k)


def _top_label(k: int | float) -> str:
    return f"top{round(k * 100):g}%" if isinstance(k, float) and 0 < k < 1 else f"top{int(k)}"


def correlation_summary(scores: Sequence[float], truths: Sequence[float], *,
                        top_k: Sequence[int | float] = (0.1, 10), bootstrap: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> dict:
    """Spearman and Kendall (with bootstrap percentile CIs), top-k overlap and top-k
    correlations, and the regret of the best-scored architecture.

    top_k: counts (int) or fractions of the valid pairs (float in (0, 1)).
    Top-k overlap = |top-k by score ∩ top-k by truth| / k. Top-k correlations are computed on
    the k architectures with the highest truth (how well the proxy orders the good ones).
    Regret = best truth − truth of the best-scored architecture (the mean truth over
    architectures tied for the best score, i.e. a random tie-break in expectation).
    """
    scores = np.asarray(scores, dtype=float)
    truths = np.asarray(truths, dtype=float)
    if scores.shape != truths.shape or scores.ndim != 1:
        raise ValueError(f"scores and truths must be 1-D of equal length, got {scores.shape} and {truths.shape}")
    valid = ~(np.isnan(scores) | np.isnan(truths))
    x, y = scores[valid], truths[valid]
    n = len(x)
    summary: dict = {"n": n, "n_dropped_nan": int((~valid).sum()), "bootstrap": bootstrap,
                     "confidence": confidence, "seed": seed}

    reason = _undefined_reason(x, y)
    rho, tau = _rho_tau(x, y)
    low_rho = high_rho = low_tau = high_tau = math.nan
    if reason is None and bootstrap > 0:
        rng = np.random.default_rng(seed)
        samples = np.array([_rho_tau(x[i], y[i]) for i in rng.integers(0, n, size=(bootstrap, n))])
        alpha = (1 - confidence) / 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            low_rho, high_rho = np.nanquantile(samples[:, 0], [alpha, 1 - alpha])
            low_tau, high_tau = np.nanquantile(samples[:, 1], [alpha, 1 - alpha])
    summary["spearman"] = _stat(rho, float(low_rho), float(high_rho), reason)
    summary["kendall"] = _stat(tau, float(low_tau), float(high_tau), reason)

    summary["top_k"] = {}
    for k in top_k:
        count = _top_count(k, n)
        entry: dict = {"k": count}
        if n == 0 or count < 1 or count > n:
            entry.update(overlap=math.nan, spearman=math.nan, kendall=math.nan,
                         undefined=f"k={count} is outside 1..{n}")
        else:
            by_truth = np.argsort(-y, kind="stable")[:count]
            entry["overlap"] = float(top_membership(x, count) @ top_membership(y, count)) / count
            r, t = _rho_tau(x[by_truth], y[by_truth])
            entry.update(spearman=r, kendall=t)
            why = _undefined_reason(x[by_truth], y[by_truth])
            if why:
                entry["undefined"] = why
        summary["top_k"][_top_label(k)] = entry

    if n:
        best_scored = y[x == x.max()]
        summary["regret"] = {"best_truth": float(y.max()), "truth_of_best_scored": float(best_scored.mean()),
                             "regret": float(y.max() - best_scored.mean()), "ties_at_best_score": int(len(best_scored))}
    else:
        summary["regret"] = {"best_truth": math.nan, "truth_of_best_scored": math.nan, "regret": math.nan,
                             "ties_at_best_score": 0, "undefined": "no valid pairs"}
    return summary


def _rank_rows(values: np.ndarray) -> np.ndarray:
    """Average ranks along each row (ties share their mean rank, as Spearman's rho takes them)."""
    return stats.rankdata(values, axis=1)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (NaN where a row is constant)."""
    rx, ry = _rank_rows(x), _rank_rows(y)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))


def top_membership(values: np.ndarray, count: int) -> np.ndarray:
    """Each value's probability of being among the `count` highest when ties are broken uniformly at
    random: 1 above the count-th value, 0 below, and the free places shared by those equal to it."""
    values = np.asarray(values, dtype=float)
    kth = np.sort(values)[::-1][count - 1]
    above, at = values > kth, values == kth
    return above + at * ((count - above.sum()) / at.sum())


def _overlap_rows(x: np.ndarray, y: np.ndarray, count: int) -> np.ndarray:
    """Expected top-`count` overlap of each row pair (ties as in `correlation_summary`)."""
    return np.array([top_membership(a, count) @ top_membership(b, count) / count for a, b in zip(x, y)])


def paired_difference(scores_a: Sequence[float], scores_b: Sequence[float], truths: Sequence[float], *,
                      top_k: Sequence[int | float] = (0.1,), bootstrap: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> dict:
    """Proxy A against proxy B on the same architectures: Spearman's rho_A − rho_B and the top-k
    overlap differences, each with a paired bootstrap percentile CI (every resample draws the
    same architectures for A and for B, so what the two share does not widen the interval), and
    the fraction of resamples in which A does not beat B (`p_not_better`, a one-sided bootstrap
    p-value). Architectures where any of the three values is NaN are dropped and counted."""
    a, b, t = (np.asarray(v, dtype=float) for v in (scores_a, scores_b, truths))
    if not a.shape == b.shape == t.shape or a.ndim != 1:
        raise ValueError(f"scores and truths must be 1-D of equal length, got {a.shape}, {b.shape}, {t.shape}")
    valid = ~(np.isnan(a) | np.isnan(b) | np.isnan(t))
    a, b, t = a[valid], b[valid], t[valid]
    n = len(a)
    out: dict = {"n": n, "n_dropped_nan": int((~valid).sum()), "bootstrap": bootstrap, "confidence": confidence,
                 "seed": seed}
    if n < 3:
        out["undefined"] = f"fewer than 3 valid architectures ({n})"
        return out
    indices = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n)) if bootstrap > 0 else None
    alpha = (1 - confidence) / 2

    def difference(statistic) -> dict:
        value = float(statistic(a[None, :], t[None, :])[0] - statistic(b[None, :], t[None, :])[0])
        entry = {"value": value, "ci_low": math.nan, "ci_high": math.nan, "p_not_better": math.nan}
        if indices is not None:
            samples = statistic(a[indices], t[indices]) - statistic(b[indices], t[indices])
            samples = samples[np.isfinite(samples)]
            if len(samples):
                entry["ci_low"], entry["ci_high"] = (float(q) for q in np.quantile(samples, [alpha, 1 - alpha]))
                entry["p_not_better"] = float((samples <= 0).mean())
        return entry

    out["spearman_diff"] = difference(_spearman_rows)
    out["top_k_overlap_diff"] = {}
    for k in top_k:
        count = _top_count(k, n)
        if 1 <= count <= n:
            out["top_k_overlap_diff"][_top_label(k)] = {"k": count} | difference(
                lambda x, y, count=count: _overlap_rows(x, y, count))
    return out
