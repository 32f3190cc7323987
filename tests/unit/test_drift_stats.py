import math
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2, chi2_contingency, ks_2samp, kstwo, wasserstein_distance

from stream.monitor.drift_stats import (
    Thresholds,
    attribution,
    chi_square,
    coarse_groups,
    compare,
    jensen_shannon,
    ks,
    ks_pvalue,
    psi,
    wasserstein,
)
from stream.monitor.profiles import bin_counts, profile_categorical, profile_numeric, reference_counts

REF = np.array([120, 0, 300, 80, 500])
WIN = np.array([10, 40, 0, 25, 25])


def test_psi_matches_formula_with_zero_bins() -> None:
    eps, k = 1e-4, len(REF)
    p = (REF / REF.sum() + eps) / (1 + k * eps)
    q = (WIN / WIN.sum() + eps) / (1 + k * eps)
    expected = float(np.sum((q - p) * np.log(q / p)))
    r = psi(REF, WIN)
    assert r.statistic == pytest.approx(expected, abs=1e-9)
    assert r.drifted and not r.insufficient and r.n == 100
    assert r.p_value == chi_square(REF, WIN).p_value  # the chi-square test on the same bins gates PSI
    assert psi(REF, REF * 3).statistic == pytest.approx(0.0, abs=1e-12)


def test_js_matches_scipy_with_zero_bins() -> None:
    r = jensen_shannon(REF, WIN)
    assert r.statistic == pytest.approx(jensenshannon(REF, WIN, base=2), abs=1e-9)
    big = jensen_shannon(REF * 100, WIN * 100)  # same proportions, enough values for a verdict
    assert big.statistic == pytest.approx(r.statistic, abs=1e-12) and big.drifted
    disjoint = jensen_shannon(np.array([50, 0]), np.array([0, 50]))
    assert disjoint.statistic == pytest.approx(1.0, abs=1e-12)
    assert jensen_shannon(REF, REF * 2).statistic == pytest.approx(0.0, abs=1e-7)


@pytest.fixture
def integer_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    ref = rng.integers(0, 10, 1500).astype(float)
    win = np.minimum(rng.poisson(4.0, 400), 9).astype(float)
    return ref, win


def test_integer_data_is_binned_losslessly(integer_data: tuple[np.ndarray, np.ndarray]) -> None:
    ref, _ = integer_data
    p = profile_numeric(ref)
    assert p.edges == tuple(float(i) for i in range(10))  # the 99th percentile is the top value, 9
    assert p.bin_means == (*(float(i) for i in range(10)), 9.0)  # the empty last bin sits on its edge


def test_ks_matches_scipy_on_lossless_bins(integer_data: tuple[np.ndarray, np.ndarray]) -> None:
    ref, win = integer_data
    p = profile_numeric(ref)
    r = ks(reference_counts(p), bin_counts(p, win))
    expected = ks_2samp(ref, win, method="asymp")
    assert r.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert r.p_value == pytest.approx(expected.pvalue, abs=3e-3)
    assert r.drifted
    same = ks(reference_counts(p), bin_counts(p, ref[:500]))
    expected_same = ks_2samp(ref, ref[:500], method="asymp")
    assert same.p_value == pytest.approx(expected_same.pvalue, abs=3e-3)
    assert not same.drifted


@pytest.mark.parametrize(("en", "tol"), [(30.0, 0.02), (200.0, 0.01), (1000.0, 0.005), (8000.0, 0.002)])
def test_ks_pvalue_is_close_to_smirnov(en: float, tol: float) -> None:
    for d in np.linspace(0.2, 3.0, 15) / np.sqrt(en):
        assert ks_pvalue(float(d), en) == pytest.approx(kstwo.sf(d, round(en)), abs=tol)
    for level in (1e-2, 1e-3, 1e-4):  # the tail, where verdicts are made: within 8% relative
        assert ks_pvalue(float(kstwo.isf(level, round(en))), en) == pytest.approx(level, rel=0.08)
    assert ks_pvalue(0.0, en) == 1.0 and ks_pvalue(1.0, en) == pytest.approx(0.0, abs=1e-12)
    assert ks_pvalue(0.5, 0.0) == 1.0


def test_ks_effect_gate_ignores_negligible_shifts_of_huge_windows() -> None:
    rng = np.random.default_rng(3)
    ref, win = rng.normal(0, 1, 200_000), rng.normal(0.03, 1, 200_000)
    p = profile_numeric(ref)
    r = ks(reference_counts(p), bin_counts(p, win), alpha=0.001, min_effect=0.04)
    assert r.p_value is not None and r.p_value < 1e-6  # significant ...
    assert not r.drifted  # ... but negligible
    assert not any(x.drifted for x in compare(p, bin_counts(p, win), n_features=20))


def test_wasserstein_matches_scipy_on_lossless_bins(integer_data: tuple[np.ndarray, np.ndarray]) -> None:
    ref, win = integer_data
    p = profile_numeric(ref)
    r = wasserstein(reference_counts(p), bin_counts(p, win), np.asarray(p.bin_means))
    assert r.statistic == pytest.approx(wasserstein_distance(ref, win), abs=1e-9)
    assert not r.drifted  # no threshold given
    gated = wasserstein(reference_counts(p), bin_counts(p, win), np.asarray(p.bin_means), 0.1, gate_p=0.2,
                        alpha=0.01)  # fmt: skip
    assert gated.statistic > 0.1 and not gated.drifted and gated.p_value == 0.2


def test_wasserstein_continuous_error_is_within_bin_width() -> None:
    rng = np.random.default_rng(5)
    ref, win = rng.normal(0, 1, 5000), rng.normal(0.3, 1, 1000)
    p = profile_numeric(ref, bins=50)
    r = wasserstein(reference_counts(p), bin_counts(p, win), np.asarray(p.bin_means))
    widest_inner = np.max(np.diff(p.edges))
    assert abs(r.statistic - wasserstein_distance(ref, win)) < widest_inner


def test_chi_square_matches_contingency_with_new_and_zero_columns() -> None:
    ref = np.array([300, 0, 150, 50, 0])
    win = np.array([80, 0, 60, 20, 40])  # last slot: unseen categories
    r = chi_square(ref, win)
    stat, p, dof, _ = chi2_contingency(np.vstack([ref, win])[:, [0, 2, 3, 4]], correction=False, lambda_="cressie-read")
    assert r.statistic == pytest.approx(stat, abs=1e-9)
    assert r.p_value == pytest.approx(p, abs=1e-9)
    assert dof == 3 and r.drifted


def test_chi_square_pools_rare_columns() -> None:
    ref = np.array([300, 150, 50, 2, 0])
    win = np.array([40, 30, 10, 0, 1])  # one value of a category the reference never saw
    r = chi_square(ref, win)
    # expected window counts of the last three columns are 8.3, 0.28 and 0.14 (< 10): pooled, and the pool
    # (8.75) is merged into the smallest common column
    pooled = np.vstack([[300, 202], [40, 41]])
    stat, p, dof, _ = chi2_contingency(pooled, correction=False, lambda_="cressie-read")
    assert r.statistic == pytest.approx(stat, abs=1e-9) and r.p_value == pytest.approx(p, abs=1e-9)
    assert dof == 1
    unpooled, _, _, _ = chi2_contingency(np.vstack([ref, win]), correction=False, lambda_="cressie-read")
    assert unpooled > 2 * stat  # what a single unseen value did before pooling


def test_chi_square_effect_gate() -> None:
    ref, win = np.array([50_000, 50_000]), np.array([51_500, 48_500])
    assert chi_square(ref, win, alpha=0.01).drifted
    gated = chi_square(ref, win, alpha=0.01, min_effect=0.05)
    assert gated.p_value is not None and gated.p_value < 1e-6 and not gated.drifted


def test_coarse_groups_merge_fine_bins_by_reference_mass() -> None:
    assert coarse_groups(np.full(100, 7)).tolist() == list(range(0, 100, 10))
    skewed = np.array([500] + [5] * 99)
    starts = coarse_groups(skewed)
    sums = np.add.reduceat(skewed, starts)
    assert sums.sum() == skewed.sum() and starts[0] == 0 and np.all(np.diff(starts) > 0)
    assert coarse_groups(np.zeros(50)).tolist() == list(range(50))


def test_chi_square_two_categories_has_no_yates_correction() -> None:
    ref, win = np.array([500, 500]), np.array([40, 60])
    stat, p, _, _ = chi2_contingency(np.vstack([ref, win]), correction=False, lambda_="cressie-read")
    r = chi_square(ref, win)
    assert r.statistic == pytest.approx(stat, abs=1e-9) and r.p_value == pytest.approx(p, abs=1e-9)


def test_single_category_is_never_drift() -> None:
    prof = profile_categorical(np.array(["a"] * 100, dtype=object))
    results = compare(prof, bin_counts(prof, np.array(["a"] * 40, dtype=object)))
    by = {r.test: r for r in results}
    assert set(by) == {"psi", "js", "chi2"}
    assert by["chi2"].statistic == 0.0 and by["chi2"].p_value == 1.0
    assert not any(r.drifted for r in results)
    assert by["psi"].statistic == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n_win", [0, 1, 29])
def test_small_windows_are_insufficient(n_win: int) -> None:
    ref = np.array([100, 100, 100])
    win = np.array([n_win, 0, 0])
    for r in (psi(ref, win), jensen_shannon(ref, win), ks(ref, win), chi_square(ref, win)):
        assert r.insufficient and not r.drifted and math.isnan(r.statistic) and r.p_value is None
        assert r.n == n_win
    assert not psi(ref, np.array([60, 0, 0])).insufficient


def test_empty_reference_is_insufficient() -> None:
    prof = profile_numeric(np.array([np.nan] * 5))
    results = compare(prof, bin_counts(prof, np.arange(100.0)))
    assert all(r.insufficient and not r.drifted for r in results)


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        psi(np.array([1, 2]), np.array([1, 2, 3]))


def test_bonferroni_correction() -> None:
    ref = np.array([500, 500])
    # a window whose chi-square p-value lies between 0.005/20 and 0.005 (the default alpha per model window)
    p_values = {k: chi_square(ref, np.array([k, 100 - k])).p_value for k in range(50, 100)}
    k = next(k for k, p in p_values.items() if p is not None and 0.00025 < p < 0.005)
    win = np.array([k, 100 - k])
    prof = profile_categorical(np.repeat(np.array(["a", "b"], dtype=object), 500))
    one = {r.test: r for r in compare(prof, np.append(win, 0), n_features=1)}
    twenty = {r.test: r for r in compare(prof, np.append(win, 0), n_features=20)}
    assert one["chi2"].threshold == 0.005 and one["chi2"].drifted
    assert twenty["chi2"].threshold == pytest.approx(0.00025) and not twenty["chi2"].drifted


def test_compare_numeric_runs_all_tests_and_wasserstein_threshold() -> None:
    rng = np.random.default_rng(2)
    prof = profile_numeric(rng.normal(0, 2, 3000))
    win = bin_counts(prof, rng.normal(1.0, 2, 500))
    by = {r.test: r for r in compare(prof, win, thresholds=Thresholds(wasserstein_std=0.25))}
    assert set(by) == {"psi", "js", "ks", "wasserstein"}
    assert prof.std is not None
    assert by["wasserstein"].threshold == pytest.approx(0.25 * prof.std)
    assert by["wasserstein"].drifted and by["ks"].drifted and by["psi"].drifted
    stable = compare(prof, bin_counts(prof, rng.normal(0, 2, 500)), n_features=20)
    assert not any(r.drifted for r in stable)


def test_constant_feature_shift() -> None:
    prof = profile_numeric(np.full(200, 5.0))
    same = {r.test: r for r in compare(prof, bin_counts(prof, np.full(50, 5.0)))}
    assert not any(r.drifted for r in same.values()) and same["ks"].statistic == 0.0
    moved = {r.test: r for r in compare(prof, bin_counts(prof, np.full(50, 6.0)))}
    assert moved["ks"].statistic == 1.0 and moved["ks"].drifted and moved["psi"].drifted


def test_attribution_ranks_by_psi_and_skips_insufficient() -> None:
    ref = np.array([50, 50])
    results = {
        "small": [psi(ref, np.array([55, 45]))],
        "big": [psi(ref, np.array([90, 10])), jensen_shannon(ref, np.array([90, 10]))],
        "none": [psi(ref, np.array([1, 0]))],
    }
    ranked = attribution(results)
    assert [name for name, _ in ranked] == ["big", "small"]
    assert ranked[0][1] == results["big"][0].statistic


@pytest.mark.parametrize(("test", "n", "threshold"), [(psi, 100, 0.2), (jensen_shannon, 200, 0.1)])
def test_small_windows_beyond_the_threshold_are_not_drift(test: Any, n: int, threshold: float) -> None:
    """Small windows from the reference distribution itself exceed the thresholds often (PSI > 0.2 in ~3%
    of 100-value windows, JS > 0.1 in ~27% of 200-value ones); the chi-square gate keeps their flags at its
    level."""
    rng = np.random.default_rng(5)
    ref = np.full(10, 100)
    results = [test(ref, rng.multinomial(n, np.full(10, 0.1)), threshold, 30, 0.01) for _ in range(300)]
    assert not any(r.insufficient for r in results)
    assert sum(r.statistic > threshold for r in results) > 0  # the raw statistic would have alarmed
    assert sum(r.drifted for r in results) <= 6  # about the gate's level of 1% (seeded: 5 of 300)


def test_js_null_quantile_matches_chi_square_asymptotics() -> None:
    """Squared JS distance on unchanged data is about chi2(K-1) / (8 n_eff ln 2)."""
    rng = np.random.default_rng(8)
    n, m, k = 1000, 1000, 10
    u = np.full(k, 1 / k)
    stats = [jensen_shannon(rng.multinomial(n, u), rng.multinomial(m, u)).statistic ** 2 for _ in range(2000)]
    n_eff = n * m / (n + m)
    predicted = chi2.ppf(0.95, k - 1) / (8 * n_eff * np.log(2))
    assert np.quantile(stats, 0.95) == pytest.approx(predicted, rel=0.15)


@pytest.mark.parametrize(("test", "n", "threshold"), [(psi, 300, 0.2), (jensen_shannon, 1500, 0.1)])
def test_false_alarm_rate_of_large_enough_windows_is_small(test: Any, n: int, threshold: float) -> None:
    rng = np.random.default_rng(6)
    ref = np.full(10, 1000)
    results = [test(ref, rng.multinomial(n, np.full(10, 0.1)), threshold) for _ in range(500)]
    assert not any(r.insufficient for r in results)
    assert sum(r.drifted for r in results) <= 2  # at most 0.4% of stationary windows
