"""Distribution-drift tests of a window against a reference, both given as counts on the same bins.

Every test returns a :class:`TestResult`. A window (or reference) with fewer than ``min_samples`` counted
values is ``insufficient`` and never ``drifted``. Methods:

- PSI: ``sum((q - p) * ln(q / p))`` over bins, with proportions smoothed as
  ``p' = (p + eps) / (1 + K * eps)`` (``eps = 1e-4``, ``K`` bins) so empty bins stay finite.
- Jensen-Shannon distance, base 2, in [0, 1]; no smoothing (equals ``scipy.spatial.distance.jensenshannon``).
- Kolmogorov-Smirnov: the largest gap between the two empirical CDFs at the bin boundaries; the p-value is
  Smirnov's asymptotic one that ``scipy.stats.ks_2samp(method="asymp")`` uses,
  ``kstwo.sf(D, round(n * m / (n + m)))``. Binning can only lower D (it is exact when every bin holds one
  distinct value), and ties make the test conservative.
- Wasserstein-1 between the two binned distributions placed on the bin representatives (the reference bin
  means). Exact when each bin holds a single distinct value; otherwise every value moves at most the
  spread of its bin, so the error is bounded by the widest occupied bin (unbounded for window values
  beyond the reference range, which sit on the outermost edge).
- Chi-square test of homogeneity on the 2 x K table (reference, window), without Yates' correction,
  after dropping categories absent from both; one remaining category means dof 0, statistic 0, p = 1.

p-value tests use a Bonferroni-corrected level ``alpha / n_features``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import chdtrc
from scipy.stats.distributions import kstwo

from stream.monitor.profiles import FeatureProfile, reference_counts

__all__ = [
    "TestResult",
    "Thresholds",
    "attribution",
    "chi_square",
    "compare",
    "jensen_shannon",
    "ks",
    "psi",
    "wasserstein",
]

PSI_EPS = 1e-4


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds.

    ``wasserstein_std`` flags drift when the Wasserstein distance exceeds that many reference standard
    deviations; None reports the distance without ever flagging it.
    """

    psi: float = 0.2
    js: float = 0.1
    alpha: float = 0.01
    wasserstein_std: float | None = None
    min_samples: int = 30


@dataclass(frozen=True)
class TestResult:
    """Outcome of one test.

    ``threshold`` is the Bonferroni-corrected level for p-value tests (drifted when ``p_value < threshold``)
    and the statistic bound otherwise (drifted when ``statistic > threshold``). ``n`` is the window count.
    An insufficient result has ``statistic`` NaN and ``p_value`` None.
    """

    __test__ = False  # not a pytest test class

    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    insufficient: bool
    n: int


def _prep(ref: np.ndarray, win: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    r = np.asarray(ref, dtype=np.float64).ravel()
    w = np.asarray(win, dtype=np.float64).ravel()
    if r.shape != w.shape:
        raise ValueError(f"reference and window counts differ in length: {r.size} != {w.size}")
    return r, w, int(r.sum()), int(w.sum())


def _insufficient(test: str, threshold: float, n: int) -> TestResult:
    return TestResult(test, float("nan"), None, threshold, False, True, n)


def psi(ref: np.ndarray, win: np.ndarray, threshold: float = 0.2, min_samples: int = 30) -> TestResult:
    """Population stability index with eps-smoothed proportions (see module docstring).

    Examples
    --------
    >>> r = psi(np.array([50, 50]), np.array([50, 50]))
    >>> r.statistic, r.drifted
    (0.0, False)
    """
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("psi", threshold, nw)
    k = r.size
    p = (r / nr + PSI_EPS) / (1 + k * PSI_EPS)
    q = (w / nw + PSI_EPS) / (1 + k * PSI_EPS)
    stat = float(np.sum((q - p) * np.log(q / p)))
    if null_psi(r, w) > threshold / 3:  # the window is too small for the threshold to mean anything
        return TestResult("psi", stat, None, threshold, False, True, nw)
    return TestResult("psi", stat, None, threshold, stat > threshold, False, nw)


def null_psi(ref: np.ndarray, win: np.ndarray) -> float:
    """Expected PSI between two samples of one distribution: about ``(K - 1) (1/n + 1/m)`` for K occupied bins.

    PSI and Jensen-Shannon are biased upwards on small samples: with 10 bins and 1000 reference values, a
    window of 100 values from the *reference* distribution has PSI > 0.2 in about 3% of windows and JS distance
    > 0.1 in about 80% (simulated). A PSI (or JS) verdict is therefore only given when this null expectation is
    at most a third of the PSI threshold (half of the squared JS threshold, JSD being about PSI / (8 ln 2));
    smaller windows are reported as insufficient, with their statistic.

    >>> round(null_psi(np.array([100] * 10), np.array([10] * 10)), 3)
    0.099
    """
    occupied = int(np.count_nonzero((ref > 0) | (win > 0)))
    nr, nw = float(ref.sum()), float(win.sum())
    if occupied < 2 or nr == 0 or nw == 0:
        return 0.0
    return (occupied - 1) * (1 / nr + 1 / nw)


def jensen_shannon(
    ref: np.ndarray, win: np.ndarray, threshold: float = 0.1, min_samples: int = 30
) -> TestResult:
    """Jensen-Shannon distance (base 2) between the normalised counts."""
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("js", threshold, nw)
    p, q = r / nr, w / nw
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    stat = float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))
    if null_psi(r, w) / (8 * np.log(2)) > threshold**2 / 2:  # see null_psi: too small to judge
        return TestResult("js", stat, None, threshold, False, True, nw)
    return TestResult("js", stat, None, threshold, stat > threshold, False, nw)


def ks(ref: np.ndarray, win: np.ndarray, alpha: float = 0.01, min_samples: int = 30) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test on binned counts (asymptotic p-value, see module docstring)."""
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("ks", alpha, nw)
    d = float(np.max(np.abs(np.cumsum(r) / nr - np.cumsum(w) / nw)))
    d = min(max(d, 0.0), 1.0)
    en = nr * nw / (nr + nw)
    p = float(np.clip(kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return TestResult("ks", d, p, alpha, p < alpha, False, nw)


def wasserstein(
    ref: np.ndarray,
    win: np.ndarray,
    values: np.ndarray,
    threshold: float = float("inf"),
    min_samples: int = 30,
) -> TestResult:
    """Wasserstein-1 distance with all mass of bin ``i`` at ``values[i]`` (non-decreasing), in value units."""
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("wasserstein", threshold, nw)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size != r.size:
        raise ValueError(f"need one representative value per bin: {v.size} != {r.size}")
    gaps = np.abs(np.cumsum(r)[:-1] / nr - np.cumsum(w)[:-1] / nw)
    stat = float(np.sum(gaps * np.diff(v)))
    return TestResult("wasserstein", stat, None, threshold, stat > threshold, False, nw)


def chi_square(ref: np.ndarray, win: np.ndarray, alpha: float = 0.01, min_samples: int = 30) -> TestResult:
    """Chi-square test of homogeneity of reference vs window counts (no Yates' correction)."""
    r, w, nr, nw = _prep(ref, win)
    if min(nr, nw) < max(min_samples, 1):
        return _insufficient("chi2", alpha, nw)
    keep = (r + w) > 0
    table = np.vstack([r[keep], w[keep]])
    dof = table.shape[1] - 1
    if dof < 1:
        return TestResult("chi2", 0.0, 1.0, alpha, False, False, nw)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    p = float(chdtrc(dof, stat))
    return TestResult("chi2", stat, p, alpha, p < alpha, False, nw)


def compare(
    profile: FeatureProfile,
    window_counts: np.ndarray,
    n_features: int = 1,
    thresholds: Thresholds | None = None,
) -> list[TestResult]:
    """Run every test that applies to the feature kind.

    Numeric: psi, js, ks, wasserstein. Categorical: psi, js, chi2. ``window_counts`` comes from
    :func:`stream.monitor.profiles.bin_counts`; ``n_features`` sets the Bonferroni correction.
    """
    t = thresholds or Thresholds()
    ref = reference_counts(profile)
    level = t.alpha / max(n_features, 1)
    ms = t.min_samples
    out = [psi(ref, window_counts, t.psi, ms), jensen_shannon(ref, window_counts, t.js, ms)]
    if profile.kind == "categorical":
        out.append(chi_square(ref, window_counts, level, ms))
        return out
    out.append(ks(ref, window_counts, level, ms))
    w_thr = float("inf")
    if t.wasserstein_std is not None and profile.std:
        w_thr = t.wasserstein_std * profile.std
    out.append(wasserstein(ref, window_counts, np.asarray(profile.bin_means), w_thr, ms))
    return out


def attribution(results_by_feature: Mapping[str, Sequence[TestResult]]) -> list[tuple[str, float]]:
    """Features ranked by PSI, largest first (ties by name); insufficient windows are left out.

    Examples
    --------
    >>> a = psi(np.array([50, 50]), np.array([90, 10]))
    >>> b = psi(np.array([50, 50]), np.array([60, 40]))
    >>> [name for name, _ in attribution({"b": [b], "a": [a]})]
    ['a', 'b']
    """
    scores = [
        (name, r.statistic)
        for name, results in results_by_feature.items()
        for r in results
        if r.test == "psi" and not r.insufficient
    ]
    return sorted(scores, key=lambda s: (-s[1], s[0]))
