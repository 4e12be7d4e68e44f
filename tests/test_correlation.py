import math

import numpy as np
import pytest
from scipy import stats

from d2m_nas.correlation import correlation_summary


def test_matches_scipy_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    truths = rng.normal(size=200)
    scores = np.round(truths + rng.normal(size=200), 1)  # rounding creates ties
    summary = correlation_summary(scores, truths, bootstrap=0)
    assert summary["spearman"]["value"] == pytest.approx(stats.spearmanr(scores, truths).statistic)
    assert summary["kendall"]["value"] == pytest.approx(stats.kendalltau(scores, truths, variant="b").statistic)
    assert summary["n"] == 200 and summary["n_dropped_nan"] == 0


def test_hand_computed_ties_and_negative_correlation():
    # ranks of x with a tie: 1, 2.5, 2.5, 4 -> rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    # 5 concordant pairs, 1 pair tied in x: tau_b = 5 / sqrt(5 * 6)
    tied = correlation_summary([1, 2, 2, 3], [1, 2, 3, 4], bootstrap=0)
    assert tied["spearman"]["value"] == pytest.approx(math.sqrt(0.9))
    assert tied["kendall"]["value"] == pytest.approx(5 / math.sqrt(30))
    backwards = correlation_summary([1, 2, 3, 4, 5], [50, 40, 30, 20, 10], bootstrap=0)
    assert backwards["spearman"]["value"] == pytest.approx(-1.0)  # signed, never abs()
    assert backwards["kendall"]["value"] == pytest.approx(-1.0)
    assert backwards["regret"]["regret"] == pytest.approx(40.0)  # picked truth 10, best 50


def test_ties_never_depend_on_row_order():
    scores, truths = np.array([2.0, 1.0, 1.0, 0.0]), np.array([4.0, 3.0, 2.0, 1.0])
    summary = correlation_summary(scores, truths, top_k=(2,), bootstrap=0)
    # arch 0 is in the top 2 by score; archs 1 and 2 tie for the second place: each is chosen half the time
    assert summary["top_k"]["top2"]["overlap"] == pytest.approx((1 + 0.5) / 2)
    swapped = correlation_summary(scores[[0, 2, 1, 3]], truths[[0, 2, 1, 3]], top_k=(2,), bootstrap=0)
    assert swapped["top_k"]["top2"]["overlap"] == summary["top_k"]["top2"]["overlap"]
    tied_best = correlation_summary([5, 5, 1], [90, 80, 70], bootstrap=0)["regret"]
    assert tied_best["regret"] == pytest.approx(5.0) and tied_best["ties_at_best_score"] == 2  # mean of 90 and 80


def test_top_k_overlap_and_top_k_correlation_by_hand():
    truths = [10, 9, 8, 7, 6, 5]
    scores = [1, 6, 5, 4, 3, 2]  # the best architecture is scored last
    summary = correlation_summary(scores, truths, top_k=(3, 0.5), bootstrap=0)
    top3 = summary["top_k"]["top3"]
    assert top3["k"] == 3 and top3["overlap"] == pytest.approx(2 / 3)  # {1,2,3} vs {0,1,2}
    assert top3["spearman"] == pytest.approx(-0.5)  # scores 1,6,5 against truths 10,9,8
    assert summary["top_k"]["top50%"]["k"] == 3
    assert summary["regret"] == {"best_truth": 10.0, "truth_of_best_scored": 9.0, "regret": 1.0,
                                 "ties_at_best_score": 1}


def test_regret_with_tied_best_scores_uses_their_mean_truth():
    summary = correlation_summary([5, 5, 1], [90, 80, 95], bootstrap=0)
    assert summary["regret"]["truth_of_best_scored"] == pytest.approx(85.0)
    assert summary["regret"]["regret"] == pytest.approx(10.0) and summary["regret"]["ties_at_best_score"] == 2


def test_constant_input_and_nan_give_reasons_not_crashes():
    constant = correlation_summary([3, 3, 3, 3], [1, 2, 3, 4], bootstrap=50)
    assert math.isnan(constant["spearman"]["value"]) and math.isnan(constant["kendall"]["ci_low"])
    assert constant["spearman"]["undefined"] == "the scores are constant"
    flat_truth = correlation_summary([1, 2, 3], [7, 7, 7], bootstrap=0)
    assert flat_truth["kendall"]["undefined"] == "the ground truth is constant"
    with_nan = correlation_summary([1, float("nan"), 3, 4], [1, 2, 3, float("nan")], bootstrap=0)
    assert with_nan["n"] == 2 and with_nan["n_dropped_nan"] == 2
    assert with_nan["spearman"]["value"] == pytest.approx(1.0)
    empty = correlation_summary([], [], bootstrap=10)
    assert empty["n"] == 0 and "fewer than 2" in empty["spearman"]["undefined"]
    assert math.isnan(empty["regret"]["regret"])
    with pytest.raises(ValueError, match="equal length"):
        correlation_summary([1, 2], [1, 2, 3])


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    truths = rng.normal(size=150)
    scores = truths + rng.normal(size=150)
    a = correlation_summary(scores, truths, bootstrap=300, seed=7)
    b = correlation_summary(scores, truths, bootstrap=300, seed=7)
    c = correlation_summary(scores, truths, bootstrap=300, seed=8)
    assert a == b and a["spearman"]["ci_low"] != c["spearman"]["ci_low"]
    for name in ("spearman", "kendall"):
        assert a[name]["ci_low"] < a[name]["value"] < a[name]["ci_high"]
    assert a["spearman"]["ci_high"] - a["spearman"]["ci_low"] < 0.3


def test_paired_bootstrap_matches_a_direct_computation():
    from d2m_nas.correlation import paired_difference

    rng = np.random.default_rng(3)
    truth = rng.normal(size=40)
    a, b = truth + rng.normal(size=40) * 0.5, truth + rng.normal(size=40)
    a[5] = np.nan  # dropped from both
    result = paired_difference(a, b, truth, top_k=(0.25,), bootstrap=200, seed=7)
    keep = ~np.isnan(a)
    x, y, t = a[keep], b[keep], truth[keep]
    assert result["n"] == 39 and result["n_dropped_nan"] == 1
    assert result["spearman_diff"]["value"] == pytest.approx(
        stats.spearmanr(x, t).statistic - stats.spearmanr(y, t).statistic)
    draws = np.random.default_rng(7).integers(0, 39, size=(200, 39))
    direct = np.array([stats.spearmanr(x[i], t[i]).statistic - stats.spearmanr(y[i], t[i]).statistic for i in draws])
    low, high = np.quantile(direct, [0.025, 0.975])
    assert [result["spearman_diff"]["ci_low"], result["spearman_diff"]["ci_high"]] == pytest.approx([low, high])
    assert result["spearman_diff"]["p_not_better"] == pytest.approx((direct <= 0).mean())
    k = 10

    def membership(v):  # chance of being in the top k under a random tie-break (resamples repeat archs)
        kth = np.sort(v)[::-1][k - 1]
        return np.where(v > kth, 1.0, np.where(v == kth, (k - (v > kth).sum()) / (v == kth).sum(), 0.0))

    def overlap(s, tt):
        return float((membership(s) * membership(tt)).sum()) / k

    top = result["top_k_overlap_diff"]["top25%"]
    assert top["k"] == k and top["value"] == pytest.approx(overlap(x, t) - overlap(y, t))
    direct_top = np.array([overlap(x[i], t[i]) - overlap(y[i], t[i]) for i in draws])
    assert [top["ci_low"], top["ci_high"]] == pytest.approx(np.quantile(direct_top, [0.025, 0.975]).tolist())
    assert paired_difference(a, a, truth, bootstrap=50)["spearman_diff"]["p_not_better"] == 1.0  # A never beats itself
    assert "undefined" in paired_difference([1, 2], [2, 1], [1, 2])
