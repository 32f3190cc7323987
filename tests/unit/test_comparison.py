"""The champion/challenger statistics against independent computations: statsmodels' mcnemar, scipy's
ttest_rel, and counts done by hand, on known data and the edge cases (no discordant pairs, one pair, all
agree, an empty window)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ttest_rel
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from stream.metrics.comparison import PairedCounts, compare, mcnemar, paired_t


def table(b: int, c: int, both: int = 5, neither: int = 3) -> list[list[int]]:
    # rows: champion right / wrong; columns: challenger right / wrong
    return [[both, b], [c, neither]]


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (0, 1), (3, 3), (2, 9), (12, 12), (24, 0), (10, 30),
                                      (100, 140), (0, 25), (500, 430)])
def test_mcnemar_equals_statsmodels(b: int, c: int) -> None:
    statistic, p, test = mcnemar(b, c)
    exact = b + c < 25
    expected = sm_mcnemar(table(b, c), exact=exact, correction=True)
    assert test == ("mcnemar_exact" if exact else "mcnemar_chi2")
    assert statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-9)


def test_mcnemar_no_discordant_pairs_is_p_one() -> None:
    assert mcnemar(0, 0) == (0.0, 1.0, "mcnemar_exact")
    assert float(sm_mcnemar(table(0, 0), exact=True).pvalue) == 1.0


def classification_pairs(champion_right: list[bool], challenger_right: list[bool],
                         agree: list[bool]) -> PairedCounts:
    counts = PairedCounts()
    half = len(agree) // 2  # in two batches: the counts add up
    for part in (slice(0, half), slice(half, None)):
        counts.add_classification(np.array(champion_right[part], bool), np.array(challenger_right[part], bool),
                                  np.array(agree[part], bool))
    return counts


def test_classification_comparison_on_known_data() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 400)
    champion = np.where(rng.random(400) < 0.85, truth, 1 - truth)
    challenger = np.where(rng.random(400) < 0.75, truth, 1 - truth)
    counts = classification_pairs((champion == truth).tolist(), (challenger == truth).tolist(),
                                   (champion == challenger).tolist())
    r = compare(counts, "classification")
    b = int(np.sum((champion == truth) & (challenger != truth)))
    c = int(np.sum((champion != truth) & (challenger == truth)))
    expected = sm_mcnemar(table(b, c), exact=False, correction=True)
    assert (r.pairs, r.champion_only, r.challenger_only) == (400, b, c)
    assert r.champion_value == pytest.approx(float(np.mean(champion == truth)))
    assert r.difference == pytest.approx(float(np.mean(challenger == truth) - np.mean(champion == truth)))
    assert r.agreement == pytest.approx(float(np.mean(champion == challenger)))
    assert r.p_value == pytest.approx(float(expected.pvalue)) and r.p_value < 0.05
    assert r.verdict == "champion_better" and r.metric == "accuracy"


def test_classification_edge_cases() -> None:
    empty = compare(PairedCounts(), "classification")
    assert empty.pairs == 0 and math.isnan(empty.p_value) and empty.verdict == "insufficient"
    one = compare(classification_pairs([True], [False], [False]), "classification", min_pairs=1)
    assert (one.champion_only, one.challenger_only, one.p_value, one.verdict) == (1, 0, 1.0, "no_difference")
    assert one.p_value == float(sm_mcnemar(table(1, 0), exact=True).pvalue)
    same = compare(classification_pairs([True] * 50 + [False] * 10, [True] * 50 + [False] * 10, [True] * 60),
                   "classification")
    assert (same.agreement, same.difference, same.p_value, same.verdict) == (1.0, 0.0, 1.0, "no_difference")
    few = compare(classification_pairs([True] * 29, [False] * 29, [False] * 29), "classification")
    assert few.p_value < 1e-6 and few.verdict == "insufficient"  # significant, but below min_pairs


def regression_pairs(champion_abs: np.ndarray, challenger_abs: np.ndarray, batches: int = 3) -> PairedCounts:
    counts = PairedCounts()
    for part in np.array_split(np.arange(len(champion_abs)), batches):
        counts.add_regression(champion_abs[part], challenger_abs[part],
                              np.isclose(champion_abs[part], challenger_abs[part], rtol=1e-9, atol=0))
    return counts


def test_regression_comparison_equals_ttest_rel() -> None:
    rng = np.random.default_rng(11)
    y = rng.normal(50, 10, 300)
    champion = np.abs(y + rng.normal(0, 2.0, 300) - y)
    challenger = np.abs(y + rng.normal(0.3, 2.2, 300) - y)
    r = compare(regression_pairs(champion, challenger), "regression")
    expected = ttest_rel(challenger, champion)
    assert r.statistic == pytest.approx(float(expected.statistic), rel=1e-9)
    assert r.p_value == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert r.champion_value == pytest.approx(float(champion.mean()))
    assert r.difference == pytest.approx(float(challenger.mean() - champion.mean()))
    assert r.metric == "mae" and r.test == "paired_t"
    better = compare(regression_pairs(champion, champion * 0.5), "regression")
    assert better.verdict == "challenger_better" and better.p_value < 1e-10


def test_regression_streaming_moments_match_numpy_with_large_values() -> None:
    rng = np.random.default_rng(2)
    champion = 1e6 + rng.random(1000)
    challenger = champion + rng.normal(0.01, 0.1, 1000)
    counts = regression_pairs(champion, challenger, batches=7)
    d = challenger - champion
    assert counts.mean_d == pytest.approx(float(d.mean()), rel=1e-6)
    assert counts.m2_d == pytest.approx(float(((d - d.mean()) ** 2).sum()), rel=1e-6)


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy on constant differences
def test_regression_edge_cases() -> None:
    one = compare(regression_pairs(np.array([1.0]), np.array([2.0]), batches=1), "regression", min_pairs=1)
    assert math.isnan(one.p_value) and one.verdict == "insufficient"
    with np.errstate(all="ignore"):
        assert np.isnan(ttest_rel([2.0], [1.0]).pvalue)
    x = np.linspace(1, 2, 40)
    same = compare(regression_pairs(x, x.copy()), "regression")
    assert (same.agreement, same.difference, same.verdict) == (1.0, 0.0, "insufficient")
    with np.errstate(all="ignore"):
        assert math.isnan(same.p_value) and np.isnan(ttest_rel(x, x).pvalue)
    q = np.arange(40) / 4  # exact in binary: every difference is exactly 1
    shifted = compare(regression_pairs(q, q + 1.0), "regression")
    assert (shifted.statistic, shifted.p_value, shifted.verdict) == (math.inf, 0.0, "champion_better")
    expected = ttest_rel(q + 1.0, q)
    assert (float(expected.statistic), float(expected.pvalue)) == (math.inf, 0.0)
    assert paired_t(0, 0.0, 0.0)[1] != paired_t(0, 0.0, 0.0)[1]  # NaN


def test_counts_round_trip_as_plain_lists() -> None:
    counts = classification_pairs([True, False], [False, False], [False, True])
    again = PairedCounts.from_list(counts.to_list())
    assert again == counts and isinstance(again.n, int)
