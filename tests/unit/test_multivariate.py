"""PCA reconstruction-error drift: checked against scikit-learn's PCA; a correlation-only change is seen by it
and by none of the univariate window tests."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from stream.monitor.drift_stats import compare, significance_tests
from stream.monitor.multivariate import PCADrift
from stream.monitor.profiles import bin_counts, profile_numeric

NAMES = ["a", "b", "c", "d", "e"]


def correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    cov = np.eye(5)
    cov[0, 1] = cov[1, 0] = rho
    return rng.multivariate_normal(np.zeros(5), cov, n)


def test_reconstruction_error_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    ref = correlated(rng, 4000, 0.9) * [1, 2, 3, 4, 5] + 10
    det = PCADrift(NAMES, ref)
    z = (ref - ref.mean(axis=0)) / ref.std(axis=0)
    pca = PCA(n_components=det.components.shape[0]).fit(z)
    assert np.cumsum(pca.explained_variance_ratio_)[-1] >= 0.65
    expected = np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1).mean()
    window = ref[:1000]
    assert det.test(window).statistic == pytest.approx(
        np.linalg.norm(z[:1000] - pca.inverse_transform(pca.transform(z[:1000])), axis=1).mean(), rel=1e-9
    )
    assert det.center == pytest.approx(expected, rel=0.01)


def test_a_correlation_only_change_is_seen_by_pca_and_by_no_univariate_test() -> None:
    rng = np.random.default_rng(2)
    ref = correlated(rng, 5000, 0.9)
    det = PCADrift(NAMES, ref)
    profiles = [profile_numeric(ref[:, j]) for j in range(5)]
    n_tests = sum(significance_tests(p) for p in profiles)
    changed = correlated(rng, 1000, -0.9)  # same N(0, 1) marginals, the sign of the correlation flipped
    same = correlated(rng, 1000, 0.9)
    result = det.test(changed)
    assert result.drifted and result.statistic > result.upper
    assert {name for name, _ in result.attribution[:2]} == {"a", "b"}
    assert not det.test(same).drifted
    for j, prof in enumerate(profiles):
        for window in (changed, same):
            assert not any(r.drifted for r in compare(prof, bin_counts(prof, window[:, j]), n_tests=n_tests))


def test_edge_cases() -> None:
    rng = np.random.default_rng(3)
    ref = correlated(rng, 2000, 0.5)
    ref[:, 4] = 7.0  # a constant input
    det = PCADrift(NAMES, ref)
    assert not det.test(np.full((0, 5), 1.0)).drifted  # empty window
    nan_rows = correlated(rng, 600, 0.5)
    nan_rows[:, 4] = 7.0
    nan_rows[::2, 0] = np.nan  # rows with NaN are skipped
    r = det.test(nan_rows)
    assert r.n == 300 and not r.drifted
    with pytest.raises(ValueError, match="rows x 5"):
        det.test(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 1000"):
        PCADrift(NAMES, ref[:500])
    with pytest.raises(ValueError, match="finite"):
        PCADrift(NAMES, np.where(ref > 3, np.nan, ref))
